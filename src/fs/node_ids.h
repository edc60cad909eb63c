// Node ids: how a backing file becomes a FUSE node id and generation, and how an id comes back.
//
// Contract:
//  - the backing root is node kRootId (1);
//  - on the root's filesystem, a file whose handle fits (backing/node_id_codec.h) has the handle
//    squeezed into 64 bits as its id: the same id after a restart, never another file's, and
//    handle_of() turns it back into the handle when the kernel reconnects an inode it dropped;
//  - any other file (a handle that does not fit, a filesystem mounted inside the tree, no
//    handles at all) gets its inode number with a device index in the top byte: unique while the
//    daemon runs, not reconnectable after a restart;
//  - the generation is a digest of the handle, so the kernel's export handle stays valid exactly
//    as long as the backing file does.
// Handles are opened against a descriptor of their own filesystem: the backing root's, or the
// first directory seen on a filesystem mounted inside the tree (a handle given to the wrong
// filesystem names nothing, or another file).
//
// Lock order: mutex_ is a leaf.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "backing/file_handle.h"
#include "backing/node_id_codec.h"
#include "backing/unique_fd.h"
#include "base/thread_safety.h"

namespace foldfs::fs {

class NodeIds {
 public:
  static constexpr uint64_t kRootId = 1;

  struct Identity {
    uint64_t id = 0;
    uint64_t generation = 0;
  };

  // `root`: the backing root's stat and handle (empty without handles); `root_fd`: the root
  // opened for reading (open_by_handle_at takes no O_PATH descriptor).
  NodeIds(const struct stat& root, const backing::FileHandle& root_handle,
          backing::UniqueFd root_fd);

  Identity identify(const struct stat& st, const backing::FileHandle& handle) EXCLUDES(mutex_);
  // The handle an id stands for, when it is one (persistent ids); nullopt otherwise.
  std::optional<backing::FileHandle> handle_of(uint64_t id) const;
  // The id of a file of the root's filesystem known only by its handle (fanotify reports
  // handles): read off the handle where it is the id, else learnt by opening it.
  std::optional<uint64_t> id_of(const backing::FileHandle& handle) EXCLUDES(mutex_);

  // A directory on `dev`: handles of its filesystem are opened against it from now on.
  void note_directory(dev_t dev, int fd) EXCLUDES(mutex_);
  // Opens `handle` of a file on `dev`: a descriptor, or -errno.
  int open(const backing::FileHandle& handle, dev_t dev, int flags) const EXCLUDES(mutex_);

  bool persistent() const { return codec_.has_value(); }
  bool is_root(const struct stat& st) const {
    return st.st_dev == root_dev_ && st.st_ino == root_ino_;
  }
  dev_t root_dev() const { return root_dev_; }
  ino_t root_ino() const { return root_ino_; }
  int root_fd() const { return root_fd_.get(); }  // the backing root, opened for reading

 private:
  struct Device {
    dev_t dev;
    backing::UniqueFd fd;  // a directory of that filesystem; kept until the NodeIds go
  };
  size_t device_index(dev_t dev) REQUIRES(mutex_);

  const dev_t root_dev_;
  const ino_t root_ino_;
  const backing::UniqueFd root_fd_;
  const std::optional<backing::NodeIdCodec> codec_;
  mutable Mutex mutex_;
  std::vector<Device> devices_ GUARDED_BY(mutex_);
};

}  // namespace foldfs::fs
