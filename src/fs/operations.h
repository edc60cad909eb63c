// The operations a mount serves, shaped like FUSE's lowlevel ops and free of libfuse types: what
// src/fuse's adapter calls. Filesystem (one backing tree, fs/filesystem.h) and UnionFilesystem
// (a case-insensitive union of trees, fs/union_fs.h) implement them.
//
// Every operation returns 0 or a positive errno and fills its out-parameters on success. No
// exception leaves an implementation (allocation failures become ENOMEM at the adapter edge).
#pragma once

#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "fs/caller.h"
#include "fs/kernel_notifier.h"
#include "fs/options.h"

namespace foldfs::fs {

struct EntryOut {
  uint64_t ino = 0;  // 0 with ENOENT-free reply means "negative entry"
  uint64_t generation = 0;
  struct stat attr {};
  double entry_timeout = 0;
  double attr_timeout = 0;
};

// The counters are readable by root through the mount: with the ioctl kStatsIoctl on the root
// directory (what `foldfs stats MNT` uses; it works with xattr=nosys too), or as the extended
// attribute kStatsXattr of the root (in the trusted namespace).
inline constexpr const char* kStatsXattr = "trusted.foldfs.stats";
inline constexpr size_t kStatsIoctlSize = 8192;
inline constexpr unsigned long kStatsIoctl = _IOR(0xF0, 1, char[kStatsIoctlSize]);

class Operations {
 public:
  static constexpr uint64_t kRootId = 1;  // the FUSE root

  virtual ~Operations() = default;

  // --- Services and state ---
  virtual void set_notifier(KernelNotifier* notifier) = 0;
  // More "name value" lines for stats_text(), from the layer that carries requests (set before
  // requests are served).
  virtual void set_transport_stats(std::function<std::string()> lines) = 0;
  // Starts the threads the filesystem runs (the outside-change watchers). Call it in the process
  // that serves requests: after daemonizing, since fork() keeps only the calling thread.
  virtual void start_services() = 0;
  // Stops them: call it before the session the notifier writes to goes away.
  virtual void stop_services() = 0;
  virtual const Options& options() const = 0;
  // The attribute timeout replies carry: the longest, and that of one inode.
  virtual double attr_timeout() const = 0;
  virtual double attr_timeout_of(uint64_t ino) const = 0;
  virtual std::string stats_text() const = 0;  // "name value" lines

  // --- Namespace ---
  virtual int lookup(const Context& ctx, uint64_t parent, std::string_view name, EntryOut* out) = 0;
  virtual void forget(uint64_t ino, uint64_t nlookup) = 0;
  virtual int mknod(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode,
                    dev_t rdev, EntryOut* out) = 0;
  virtual int mkdir(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode,
                    EntryOut* out) = 0;
  virtual int symlink(const Context& ctx, std::string_view target, uint64_t parent,
                      std::string_view name, EntryOut* out) = 0;
  virtual int link(const Context& ctx, uint64_t ino, uint64_t newparent, std::string_view newname,
                   EntryOut* out) = 0;
  virtual int unlink(const Context& ctx, uint64_t parent, std::string_view name) = 0;
  virtual int rmdir(const Context& ctx, uint64_t parent, std::string_view name) = 0;
  virtual int rename(const Context& ctx, uint64_t parent, std::string_view name, uint64_t newparent,
                     std::string_view newname, unsigned int flags) = 0;

  // --- Attributes ---
  virtual int getattr(uint64_t ino, struct stat* out) = 0;
  // `to_set` uses the FUSE_SET_ATTR_* bit values (declared in fs/options.h as kSetAttr*).
  virtual int setattr(const Context& ctx, uint64_t ino, const struct stat& attr, int to_set,
                      const uint64_t* fh, struct stat* out) = 0;
  virtual int readlink(uint64_t ino, std::string* out) = 0;
  virtual int statfs(uint64_t ino, struct statvfs* out) = 0;

  // --- Extended attributes. For get/list, size 0 asks for the needed size (*needed). ---
  virtual int setxattr(uint64_t ino, std::string_view name, std::string_view value, int flags) = 0;
  virtual int getxattr(uint64_t ino, std::string_view name, size_t size, std::string* value,
                       size_t* needed) = 0;
  virtual int listxattr(uint64_t ino, size_t size, std::string* list, size_t* needed) = 0;
  virtual int removexattr(uint64_t ino, std::string_view name) = 0;

  // --- Files. `fh` identifies an open backing descriptor. ---
  virtual int open(const Context& ctx, uint64_t ino, int flags, uint64_t* fh) = 0;
  virtual int create(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode,
                     int flags, EntryOut* out, uint64_t* fh) = 0;
  virtual int file_fd(uint64_t fh) const = 0;  // the backing descriptor of an open file
  // ENOSYS where closing a backing descriptor reports nothing (local filesystems): the kernel
  // then stops sending FLUSH, one round trip less for every close.
  virtual int flush(uint64_t fh) = 0;
  virtual int release(uint64_t fh) = 0;
  virtual int fsync(uint64_t fh, bool datasync) = 0;
  virtual int fallocate(uint64_t fh, int mode, off_t offset, off_t length) = 0;
  virtual int lseek(uint64_t fh, off_t offset, int whence, off_t* result) = 0;
  virtual int copy_file_range(uint64_t fh_in, off_t off_in, uint64_t fh_out, off_t off_out,
                              size_t len, int flags, size_t* copied) = 0;

  // --- Directories ---
  virtual int opendir(const Context& ctx, uint64_t ino, uint64_t* fh) = 0;
  // Calls `emit(name, ino, type, next_offset)` for entries from `offset` on until it returns
  // false (buffer full) or the directory ends.
  using DirEmit =
      std::function<bool(std::string_view name, uint64_t ino, mode_t type, off_t next_offset)>;
  // `reply_bytes`: the size of the kernel's buffer, so that about that much is read.
  virtual int readdir(uint64_t ino, off_t offset, const DirEmit& emit,
                      size_t reply_bytes = 32768) = 0;
  // Same with each entry's attributes; an entry with ino != 0 counts as one lookup.
  using DirPlusEmit =
      std::function<bool(std::string_view name, const EntryOut& entry, off_t next_offset)>;
  virtual int readdirplus(uint64_t ino, off_t offset, const DirPlusEmit& emit,
                          size_t reply_bytes = 32768) = 0;
  virtual int releasedir(uint64_t fh) = 0;
  virtual int fsyncdir(uint64_t ino, bool datasync) = 0;

  // --- Inode flags (FS_IOC_GETFLAGS / SETFLAGS) and fsxattr (FS_IOC_FSGETXATTR / SETXATTR) ---
  virtual int get_flags(uint64_t ino, uint32_t* flags) = 0;
  virtual int set_flags(const Context& ctx, uint64_t ino, uint32_t flags) = 0;
  virtual int get_fsxattr(uint64_t ino, void* fsxattr_out) = 0;  // struct fsxattr
  virtual int set_fsxattr(uint64_t ino, const void* fsxattr_in) = 0;
};

}  // namespace foldfs::fs
