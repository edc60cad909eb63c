// Whether a file reached by a file handle lies inside the backing tree.
//
// A backing handle can name any file of the backing filesystem, and one brought back by the
// kernel (open_by_handle_at on the mount, an NFS client's handle) may have been forged. Before
// such a file enters the inode table it must be shown to lie inside the tree: a directory by
// walking ".." up to the backing root (directories are always connected to their parents); any
// other file by the path the backing filesystem knows for it (/proc/self/fd). What cannot be
// placed is refused.
#pragma once

#include <sys/types.h>

#include <string>

namespace foldfs::fs {

class Confinement {
 public:
  Confinement(std::string backing_path, dev_t root_dev, ino_t root_ino)
      : backing_path_(std::move(backing_path)), root_dev_(root_dev), root_ino_(root_ino) {}

  // Whether the file `fd` holds lies inside the backing tree.
  bool contains(int fd, bool is_dir) const;

 private:
  bool directory_inside(int fd) const;
  bool file_inside(int fd) const;

  const std::string backing_path_;  // realpath of the backing root
  const dev_t root_dev_;
  const ino_t root_ino_;
};

}  // namespace foldfs::fs
