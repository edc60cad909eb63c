// Mount options of a foldfs filesystem, and their parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace foldfs::fs {

enum class CasefoldMode { kFlag, kAll };

// How changes made outside the mount (directly in the backing tree, or through another mount of
// it) are noticed. kWatch: fanotify reports them and they are visible at once; kRevalidate: the
// daemon compares a directory's change time before using its index, and the kernel's caches
// expire after the timeouts (for network filesystems, where no notification exists).
enum class OutsideChanges { kWatch, kRevalidate };

// How requests travel between the kernel and the daemon. kAuto: FUSE over io_uring when the
// kernel has it switched on (fuse module parameter enable_uring), else /dev/fuse; kOn: io_uring
// or refuse to mount; kOff: /dev/fuse only. See src/fuse/uring_transport.h.
enum class Uring { kAuto, kOn, kOff };

// Extended attributes. kPassthrough: read and written in the backing tree. kNosys: every
// extended-attribute request answers ENOSYS, after which the kernel stops sending them (each
// kind once): Wine's DOS attributes, Samba's EAs, DOS attributes and NT ACLs, POSIX ACLs and
// file capabilities are then unavailable through the mount, and attribute reads and listings
// cost no round trip for them (README, docs/wine.md, docs/samba.md).
enum class Xattrs { kPassthrough, kNosys };

// File data. kAuto: regular files opened through the mount are handed to the kernel's FUSE
// passthrough where the kernel offers it and the daemon may use it (CAP_SYS_ADMIN): reads,
// writes and mmap go to the backing file without the daemon (src/fuse/passthrough.h). kOff:
// every read and write crosses the daemon.
enum class Passthrough { kAuto, kOff };

struct Options {
  CasefoldMode casefold = CasefoldMode::kFlag;      // casefold=flag|all
  bool casefold_given = false;                      // whether casefold= was given
  bool strict = false;                              // strict
  bool read_only = false;                           // ro
  bool allow_other = false;                         // allow_other
  OutsideChanges outside = OutsideChanges::kWatch;  // outside=watch|revalidate
  Uring uring = Uring::kAuto;                       // uring=auto|on|off
  Xattrs xattrs = Xattrs::kPassthrough;             // xattr=passthrough|nosys
  Passthrough passthrough = Passthrough::kAuto;     // passthrough=auto|off
  // Seconds the kernel may keep answers without asking the daemon. Coherence does not depend
  // on them for changes made through the mount (see filesystem.h); they bound how long a
  // change made directly in the backing tree may go unseen. kAutoTimeout (not given): the
  // filesystem picks kPushedTimeout where outside changes are pushed to the kernel as they
  // happen (outside=watch on a kernel with epoch invalidation, the directory watched), else
  // kPolledTimeout (docs/benchmarks.md has the measurements behind both).
  static constexpr double kAutoTimeout = -1;
  static constexpr double kPushedTimeout = 60;
  static constexpr double kPolledTimeout = 1;
  double entry_timeout = kAutoTimeout;     // entry_timeout=
  double attr_timeout = kAutoTimeout;      // attr_timeout=
  double negative_timeout = kAutoTimeout;  // negative_timeout=
  // Descriptors kept open for backing files (fd_cache=N). kAutoFdCache (fd_cache=auto, the
  // default): sized from the open-file limit by auto_fd_cache_capacity() when mounting.
  static constexpr size_t kAutoFdCache = 0;
  size_t fd_cache_capacity = kAutoFdCache;
  // Names held by all directory indexes together before the least recently loaded indexes are
  // dropped (they reload on demand). About 20-40 bytes + the name each (bench/index_bench:
  // heap_B_per_entry): 4M names of 20 bytes ~ 200 MiB.
  size_t index_budget = 4u << 20;
  // Flags of the mount (dev, nosuid, noexec, noatime, relatime, nodiratime, nosymfollow, sync,
  // dirsync, ... and their opposites), in the order given: the later of two opposites wins.
  // Applied by the kernel to the mount as for any filesystem; the default is nosuid,nodev (and
  // the kernel's relatime). README lists them.
  std::vector<std::string> mount_flags;
  // device=PATH: mount as fuseblk on this block device (otherwise unused; foldfs never reads or
  // writes it) instead of an anonymous device, so that the mount's device number, and the
  // filesystem UUID on the device, identify it across remounts. NFS servers tell filesystems
  // apart by them (FUSE reports no f_fsid): docs/nfs.md.
  std::string device;
  // lowerdir=TOP:...:BOTTOM: a read-only, case-insensitive union of these trees, leftmost highest
  // (overlayfs's syntax: a ':' or '\\' inside a path escaped by '\\'; docs/union.md). Empty: one
  // backing tree.
  std::vector<std::string> lower_trees;
  // upperdir=DIR (with lowerdir=): the union's writable tree, above every lower tree; every change
  // goes there (copy-up, whiteouts: docs/union.md). Empty: the union is read-only.
  std::string upper_tree;
  // workdir=DIR (optional, with upperdir=): an empty directory on the upper tree's filesystem,
  // outside every tree, where copy-ups are built when the upper filesystem has no unnamed files.
  std::string work_dir;
  // Test-only (debug_no_invalidation): keep the timeouts but never invalidate kernel dentries.
  // This is the naive design the coherence tests must catch; never use it for real data.
  bool debug_no_invalidation = false;
};

// Parses a comma-separated option list (as given to -o) into *out, on top of what *out holds.
// Generic mount(8) options (rw, defaults, noauto, ...) are accepted and ignored. Returns true,
// or false with a message in *error ("unknown option 'x'", "bad value for casefold: 'y'").
bool parse_mount_options(std::string_view list, Options* out, std::string* error);

// overlayfs's list of trees: paths separated by ':', a ':' or '\\' inside a path escaped by '\\'.
std::vector<std::string> split_tree_list(std::string_view list);

// The descriptor cache for a daemon allowed `open_files` descriptors: half of what is left after
// 1,024 for open files, pinned inodes and the daemon's own (at least 128, at most 65,536), so
// that a working set of thousands of files is not reopened by handle on every request.
size_t auto_fd_cache_capacity(uint64_t open_files);
// The capacity to use: the option's, or the automatic one.
size_t fd_cache_capacity_for(const Options& options, uint64_t open_files);

// FUSE_SET_ATTR_* values, so that the fs core need not include libfuse (src/fuse/adapter.cc
// checks them against libfuse's with static_assert).
inline constexpr int kSetAttrMode = 1 << 0;
inline constexpr int kSetAttrUid = 1 << 1;
inline constexpr int kSetAttrGid = 1 << 2;
inline constexpr int kSetAttrSize = 1 << 3;
inline constexpr int kSetAttrAtime = 1 << 4;
inline constexpr int kSetAttrMtime = 1 << 5;
inline constexpr int kSetAttrAtimeNow = 1 << 7;
inline constexpr int kSetAttrMtimeNow = 1 << 8;
// FATTR_KILL_SUIDGID (libfuse 3.14 passes it as FUSE_SET_ATTR_KILL_SUID): with
// FUSE_HANDLE_KILLPRIV_V2, a truncate by a caller without CAP_FSETID (and every chown) sets it.
inline constexpr int kSetAttrKillSuidgid = 1 << 11;

}  // namespace foldfs::fs
