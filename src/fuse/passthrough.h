// FUSE passthrough (Linux 6.9+, CONFIG_FUSE_PASSTHROUGH): the kernel reads, writes and maps a
// regular file opened through the mount straight from the backing file, with no request to the
// daemon per read or write.
//
// How: the INIT reply asks for it (fuse/uring_transport.h patches the reply: libfuse 3.14
// cannot). On OPEN and CREATE the daemon registers the open backing descriptor with the FUSE
// device's FUSE_DEV_IOC_BACKING_OPEN ioctl and answers with FOPEN_PASSTHROUGH and the id it got
// (adapter.cc). The kernel then opens its own backing file per open file, from the registered
// file's path, with the caller's open flags. Permission checks stay where they are: the kernel
// checks the caller against the mount's inode (default_permissions) before OPEN is sent.
//
// One backing id per node: the kernel lets the open files of one inode use one backing file
// only (a second one is refused with EBUSY), so the id registered at a node's first open is
// answered to every later open of it, and closed (FUSE_DEV_IOC_BACKING_CLOSE) when the last
// open file of the node is released. When the kernel refuses to register (EPERM: the daemon
// lacks CAP_SYS_ADMIN; ELOOP: the backing filesystem is itself stacked; EOPNOTSUPP) the open is
// answered without passthrough, and so is every open of that node while it stays refused: the
// kernel also refuses to mix cached and passthrough opens of one inode.
//
// Credentials: the kernel does the backing I/O with the credentials of the thread that
// registered the file (root, with its capabilities), after its own checks in the caller's
// context: the open's permissions against the mount's inode, and before each write
// file_remove_privs() on the mount's file. Root's credentials keep setuid/setgid bits, so the
// daemon drops them: with FUSE_HANDLE_KILLPRIV_V2 that call becomes an empty SETATTR, and
// Filesystem::setattr applies the local rule (docs/design.md "Privileges"). Quotas and reserved
// blocks are charged to root, as for every write the daemon makes without passthrough.
//
// Lock: mutex_ (a leaf) guards the two maps; the ioctls are made under it, so that a node's
// first open and its last release cannot interleave.
#pragma once

#include <stdint.h>

#include <atomic>
#include <functional>
#include <string>
#include <unordered_map>

#include "base/thread_safety.h"

namespace foldfs::fuse {

class BackingFiles {
 public:
  // `dev_fd`: the session's /dev/fuse descriptor (the ioctls act on its connection);
  // `granted`: whether the kernel agreed to passthrough at INIT (known once INIT is answered,
  // before any OPEN).
  BackingFiles(int dev_fd, std::function<bool()> granted)
      : dev_fd_(dev_fd), granted_(std::move(granted)) {}
  BackingFiles(const BackingFiles&) = delete;
  BackingFiles& operator=(const BackingFiles&) = delete;

  // An open file `fh` of node `node`, whose backing descriptor is `fd`: the backing id to answer
  // with (> 0), or 0 to answer without passthrough.
  int32_t opened(uint64_t node, uint64_t fh, int fd);
  // The open file `fh` is released (whether or not it used passthrough).
  void released(uint64_t fh);

  // Whether opens are answered with passthrough (INIT granted it).
  bool active() const { return granted_(); }
  // "name value" lines for foldfs stats.
  std::string stats_text() const;

 private:
  struct Node {
    int32_t backing_id = 0;  // 0: refused
    int open_files = 0;
  };

  int register_backing(int fd);

  const int dev_fd_;
  const std::function<bool()> granted_;
  mutable Mutex mutex_;
  std::unordered_map<uint64_t, Node> nodes_ GUARDED_BY(mutex_);
  std::unordered_map<uint64_t, uint64_t> files_ GUARDED_BY(mutex_);  // fh -> node
  std::atomic<uint64_t> opens_{0};    // opens answered with passthrough
  std::atomic<uint64_t> refused_{0};  // registrations the kernel refused
  std::atomic<int> last_refusal_{0};  // its errno
};

}  // namespace foldfs::fuse
