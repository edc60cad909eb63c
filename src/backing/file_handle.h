// Backing file handles (name_to_handle_at / open_by_handle_at).
//
// A handle names a backing file without holding it open: the filesystem keeps one per inode
// instead of a file descriptor, so the number of cached inodes is not bounded by the open-files
// limit (20,000 per process on our machines). A handle also outlives the daemon: the same file
// gives the same handle after a restart, which is what makes node ids and NFS-style exports
// stable.
#pragma once

#include <fcntl.h>

#include <cstdint>
#include <cstring>
#include <string_view>

namespace foldfs::backing {

class FileHandle {
 public:
  static constexpr size_t kMaxBytes = 128;  // MAX_HANDLE_SZ

  // Fills the handle of `name` in `dirfd` (empty name: dirfd itself). Never follows a symlink.
  // Returns 0 or an errno (EOPNOTSUPP when the backing filesystem has no handles).
  int assign_from(int dirfd, const char* name);

  // Sets the handle from raw bytes (as reported by fanotify). Sizes over kMaxBytes clear it.
  void assign_raw(int type, const unsigned char* bytes, uint32_t size);

  // Opens the file the handle names. `mount_fd` is any fd on the backing filesystem.
  // Returns an fd >= 0 or -errno (ESTALE when the file is gone).
  int open(int mount_fd, int flags) const;

  bool empty() const { return size_ == 0; }
  bool operator==(const FileHandle& o) const {
    return type_ == o.type_ && size_ == o.size_ && std::memcmp(bytes_, o.bytes_, size_) == 0;
  }
  // A 64-bit digest, stable across restarts: used as the FUSE generation number.
  uint64_t digest() const;
  std::string_view bytes() const { return {reinterpret_cast<const char*>(bytes_), size_}; }
  int type() const { return type_; }
  uint32_t size() const { return size_; }

  // The inode number, for handles in the kernel's generic FILEID_INO32_GEN layout (type 1,
  // 8 bytes: 32-bit inode number, 32-bit generation; ext4, xfs). Other handles: false. Callers
  // must check the layout once against a known file (the backing root) before trusting it.
  bool ino32(uint32_t* ino) const;

 private:
  int type_ = 0;
  uint32_t size_ = 0;
  unsigned char bytes_[kMaxBytes];
};

}  // namespace foldfs::backing
