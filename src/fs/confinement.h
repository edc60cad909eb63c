// Whether a file reached by a file handle lies inside the backing tree.
//
// A backing handle can name any file of the backing filesystem, and one brought back by the
// kernel (open_by_handle_at on the mount, an NFS client's handle, after the kernel forgot the
// inode or the daemon restarted) may have been forged. Before such a file enters the inode table
// it must be shown to lie inside the tree; what cannot be shown is refused (ESTALE).
//
// The argument, by kind of file:
//  - A directory is always connected to its parent in the backing filesystem (exportfs
//    reconnects directories): walking ".." from it reaches the backing root exactly when it is
//    inside.
//  - Any other file (regular, symlink, fifo, socket, device; hard-linked or not) has no parent
//    pointer, and once the backing filesystem dropped its dentry it is "disconnected": its
//    /proc/self/fd path reads "/", which proves nothing. Then:
//    1. when the backing root is the root of its filesystem (a mount of the whole filesystem),
//       every file of that filesystem is inside: nothing to prove;
//    2. else the file is inside exactly when some directory inside the tree holds a name for it.
//       The directories the caller says are likely (those the kernel holds: an NFS client keeps
//       the handles of the directories it works in) are searched first, then the whole tree from
//       the backing root, one directory listing at a time, up to kSearchBudget names. A name
//       found is checked to be this very file (same device, inode and handle) before it counts,
//       and the lookup it took leaves the file connected, so the next reconnection is cheap.
//    A file inside a tree of more than kSearchBudget names, whose directory the kernel does not
//    hold, is refused after cache loss: mount the whole filesystem (case 1) to avoid it.
// The search reads only the root's filesystem and never follows a symlink.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace foldfs::fs {

class Confinement {
 public:
  static constexpr long kSearchBudget = 1'000'000;

  // `backing_path`: realpath of the backing root; `root_fd`: a descriptor of it (kept open by
  // the caller for the object's life).
  Confinement(std::string backing_path, int root_fd, dev_t root_dev, ino_t root_ino);

  // Calls visit(dirfd) for directories inside the tree worth searching first, until it returns
  // true.
  using Likely = std::function<void(const std::function<bool(int dirfd)>& visit)>;

  // Whether the file `fd` holds (with stat `st`) lies inside the backing tree.
  bool contains(int fd, const struct stat& st, const Likely& likely = nullptr) const;
  // Whether the backing root is the root of its whole filesystem.
  bool whole_filesystem() const { return whole_filesystem_; }

 private:
  bool directory_inside(int fd) const;
  bool path_inside(int fd) const;
  // Whether `dirfd` holds a name for the file with `st` and `handle_bytes`; *budget counts down
  // the names read; `subdirs` (if given) gets the names of its subdirectories.
  bool names_file(int dirfd, const struct stat& st, const std::string& handle_bytes, long* budget,
                  std::vector<std::string>* subdirs) const;
  bool search_tree(const struct stat& st, const std::string& handle_bytes, long* budget) const;

  const std::string backing_path_;
  const int root_fd_;
  const dev_t root_dev_;
  const ino_t root_ino_;
  const bool whole_filesystem_;
};

// Whether `path` (a realpath) is where a mount shows the root of its filesystem
// (/proc/self/mountinfo: that mount's root field is "/").
bool is_filesystem_root(const std::string& path);

}  // namespace foldfs::fs
