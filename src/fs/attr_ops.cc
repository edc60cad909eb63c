// Attributes, links, xattrs, statfs and inode flags (chattr/lsattr).
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "backing/casefold_flag.h"
#include "backing/dir_reader.h"
#include "backing/inode_flags.h"
#include "backing/proc_path.h"
#include "fs/dir_lock.h"
#include "fs/filesystem.h"

namespace foldfs::fs {

using backing::ProcPath;
using backing::SharedFd;
using backing::UniqueFd;

namespace {

// The setuid/setgid bits a change of data by `ctx` removes from a regular file of `mode` and
// group `gid`, as the VFS decides for a local filesystem (setattr_should_drop_suidgid): none for
// a caller with CAP_FSETID; setuid always; setgid when the group may execute, or when the caller
// is not in the file's group (and so could not have set it).
mode_t setid_bits_to_drop(const Context& ctx, mode_t mode, gid_t gid, bool known_unprivileged) {
  if (!S_ISREG(mode) || !(mode & (S_ISUID | S_ISGID))) return 0;
  if (!known_unprivileged && ctx.holds_cap_fsetid && ctx.holds_cap_fsetid()) return 0;
  mode_t drop = mode & S_ISUID;
  if (!(mode & S_ISGID)) return drop;
  if (mode & S_IXGRP) return drop | S_ISGID;
  bool in_group = ctx.gid == gid;
  std::vector<gid_t> groups;
  if (!in_group && ctx.supplementary_groups && ctx.supplementary_groups(&groups)) {
    in_group = std::find(groups.begin(), groups.end(), gid) != groups.end();
  }
  return in_group ? drop : drop | S_ISGID;
}

bool unsupported(int err) {
  return err == ENOTTY || err == EOPNOTSUPP || err == EINVAL;
}

}  // namespace

int Filesystem::getattr(uint64_t ino, struct stat* out) {
  std::shared_ptr<Inode> node;
  SharedFd fd;
  if (int err = inode_and_fd(ino, &node, &fd); err != 0) return err;
  // st_ino stays the backing inode number: users see real numbers, and the kernel's
  // export code matches a reconnected directory against readdir's d_ino by it.
  return ::fstat(fd->get(), out) == 0 ? 0 : errno;
}

int Filesystem::setattr(const Context& ctx, uint64_t ino, const struct stat& attr, int to_set,
                        const uint64_t* fh, struct stat* out) {
  if (options_.read_only) return EROFS;
  std::shared_ptr<Inode> node;
  SharedFd pfd;
  if (int err = inode_and_fd(ino, &node, &pfd); err != 0) return err;
  const int open_fd = fh ? file_fd(*fh) : -1;
  const ProcPath path(pfd->get());
  const bool is_symlink = S_ISLNK(node->type);

  // The kernel asks for setuid/setgid to be dropped by the caller's change of data: an empty
  // SETATTR before a write, fallocate or copy (its file_remove_privs: with FUSE_HANDLE_KILLPRIV_V2
  // for every such change, otherwise only when a file capability went), or the kill flag on a
  // truncate by a caller without CAP_FSETID. Passthrough writes reach the backing file with the
  // daemon's credentials, which keep the bits: this is the one place they go. Done as the
  // daemon, by descriptor (the kernel's own kill ignores ownership too). A chown's flag is left
  // to the backing filesystem's chown, which drops them by its own rule.
  const bool truncate_kill = (to_set & kSetAttrSize) && (to_set & kSetAttrKillSuidgid);
  if ((to_set == 0 || truncate_kill) && S_ISREG(node->type)) {
    struct stat st;
    if (::fstat(pfd->get(), &st) != 0) return errno;
    if (const mode_t drop = setid_bits_to_drop(ctx, st.st_mode, st.st_gid, truncate_kill)) {
      if (::chmod(path.c_str(), st.st_mode & 07777 & ~drop) != 0) return errno;
    }
  }

  if (to_set & kSetAttrMode) {
    if (is_symlink) return EOPNOTSUPP;
    const int r = open_fd >= 0 ? ::fchmod(open_fd, attr.st_mode & 07777)
                               : ::chmod(path.c_str(), attr.st_mode & 07777);
    if (r != 0) return errno;
  }
  if (to_set & (kSetAttrUid | kSetAttrGid)) {
    const uid_t uid = (to_set & kSetAttrUid) ? attr.st_uid : static_cast<uid_t>(-1);
    const gid_t gid = (to_set & kSetAttrGid) ? attr.st_gid : static_cast<gid_t>(-1);
    if (::fchownat(pfd->get(), "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
      return errno;
    }
  }
  if (to_set & kSetAttrSize) {
    int r;
    if (open_fd >= 0) {
      r = ::ftruncate(open_fd, attr.st_size);
    } else {
      const int fd = open_inode(node, O_WRONLY | O_NOFOLLOW);
      if (fd < 0) return -fd;
      r = ::ftruncate(fd, attr.st_size);
      const int saved = errno;
      ::close(fd);
      errno = saved;
    }
    if (r != 0) return errno;
  }
  if (to_set & (kSetAttrAtime | kSetAttrMtime)) {
    struct timespec times[2];
    times[0].tv_nsec = UTIME_OMIT;
    times[1].tv_nsec = UTIME_OMIT;
    if (to_set & kSetAttrAtime) {
      times[0] = (to_set & kSetAttrAtimeNow) ? timespec{0, UTIME_NOW} : attr.st_atim;
    }
    if (to_set & kSetAttrMtime) {
      times[1] = (to_set & kSetAttrMtimeNow) ? timespec{0, UTIME_NOW} : attr.st_mtim;
    }
    // AT_EMPTY_PATH acts on the descriptor itself: on a symlink, the link, never its target.
    if (::utimensat(pfd->get(), "", times, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != EINVAL || is_symlink || ::utimensat(AT_FDCWD, path.c_str(), times, 0) != 0) {
        return errno;
      }
    }
  }
  return getattr(ino, out);
}

int Filesystem::readlink(uint64_t ino, std::string* out) {
  auto node = inode(ino);
  if (!node) return ESTALE;
  if (!S_ISLNK(node->type)) return EINVAL;
  int err = 0;
  SharedFd fd = path_fd(node, &err);
  if (!fd) return err;
  char buf[PATH_MAX + 1];
  const ssize_t n = ::readlinkat(fd->get(), "", buf, sizeof(buf));
  if (n < 0) return errno;
  out->assign(buf, static_cast<size_t>(n));
  return 0;
}

int Filesystem::statfs(uint64_t, struct statvfs* out) {
  return ::fstatvfs(ids_.root_fd(), out) == 0 ? 0 : errno;
}

// ---------------------------------------------------------------------------------------------
// Extended attributes. The magic /proc path reaches the file an O_PATH descriptor holds (for a
// symlink, the link itself). foldfs's own attributes never show through the mount. With
// xattr=nosys every request answers ENOSYS, and the kernel sends no more of that kind.

int Filesystem::setxattr(uint64_t ino, std::string_view name, std::string_view value, int flags) {
  counters_.xattr_requests++;
  if (options_.xattrs == Xattrs::kNosys) return ENOSYS;
  if (backing::is_reserved_xattr(name)) return EPERM;
  if (options_.read_only) return EROFS;
  std::shared_ptr<Inode> node;
  SharedFd fd;
  if (int err = inode_and_fd(ino, &node, &fd); err != 0) return err;
  const std::string n(name);
  if (::setxattr(ProcPath(fd->get()).c_str(), n.c_str(), value.data(), value.size(), flags) != 0) {
    return errno;
  }
  return 0;
}

int Filesystem::getxattr(uint64_t ino, std::string_view name, size_t size, std::string* value,
                         size_t* needed) {
  counters_.xattr_requests++;
  if (options_.xattrs == Xattrs::kNosys) return ENOSYS;
  if (ino == kRootId && name == kStatsXattr) {
    const std::string text = stats_text();
    *needed = text.size();
    if (size == 0) return 0;
    if (size < text.size()) return ERANGE;
    *value = text;
    return 0;
  }
  if (backing::is_reserved_xattr(name)) return ENODATA;
  std::shared_ptr<Inode> node;
  SharedFd fd;
  if (int err = inode_and_fd(ino, &node, &fd); err != 0) return err;
  const std::string n(name);
  const ProcPath path(fd->get());
  value->resize(size);
  const ssize_t r = ::getxattr(path.c_str(), n.c_str(), size ? value->data() : nullptr, size);
  if (r < 0) return errno;
  *needed = static_cast<size_t>(r);
  value->resize(size ? static_cast<size_t>(r) : 0);
  return 0;
}

int Filesystem::listxattr(uint64_t ino, size_t size, std::string* list, size_t* needed) {
  counters_.xattr_requests++;
  if (options_.xattrs == Xattrs::kNosys) return ENOSYS;
  std::shared_ptr<Inode> node;
  SharedFd fd;
  if (int err = inode_and_fd(ino, &node, &fd); err != 0) return err;
  const ProcPath path(fd->get());
  std::string raw;
  for (;;) {
    const ssize_t want = ::listxattr(path.c_str(), nullptr, 0);
    if (want < 0) return errno;
    raw.resize(static_cast<size_t>(want));
    const ssize_t got = ::listxattr(path.c_str(), raw.data(), raw.size());
    if (got >= 0) {
      raw.resize(static_cast<size_t>(got));
      break;
    }
    if (errno != ERANGE) return errno;  // grew meanwhile: ask again
  }
  std::string visible;
  for (size_t pos = 0; pos < raw.size();) {
    const size_t end = raw.find('\0', pos);
    const std::string_view entry(raw.data() + pos,
                                 (end == std::string::npos ? raw.size() : end) - pos);
    if (!backing::is_reserved_xattr(entry)) {
      visible.append(entry);
      visible.push_back('\0');
    }
    pos = end == std::string::npos ? raw.size() : end + 1;
  }
  *needed = visible.size();
  if (size == 0) return 0;
  if (size < visible.size()) return ERANGE;
  *list = std::move(visible);
  return 0;
}

int Filesystem::removexattr(uint64_t ino, std::string_view name) {
  counters_.xattr_requests++;
  if (options_.xattrs == Xattrs::kNosys) return ENOSYS;
  if (backing::is_reserved_xattr(name)) return EPERM;
  if (options_.read_only) return EROFS;
  std::shared_ptr<Inode> node;
  SharedFd fd;
  if (int err = inode_and_fd(ino, &node, &fd); err != 0) return err;
  const std::string n(name);
  return ::removexattr(ProcPath(fd->get()).c_str(), n.c_str()) == 0 ? 0 : errno;
}

// ---------------------------------------------------------------------------------------------
// Inode flags. FS_CASEFOLD_FL is foldfs's own (stored as an xattr, see backing/casefold_flag.h);
// the flags a user may set pass through to the backing filesystem when it has them, and those
// that describe its own layout are never asked to change (backing/inode_flags.h).

using backing::kCasefoldFlag;

int Filesystem::get_flags(uint64_t ino, uint32_t* flags) {
  auto node = inode(ino);
  if (!node) return ESTALE;
  const int fd = open_inode(
      node, (node->is_dir() ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK) | O_NOFOLLOW);
  if (fd < 0) return -fd;
  UniqueFd owned(fd);
  uint32_t value = 0;
  const int err = backing::get_inode_flags(fd, &value);
  if (err != 0 && !unsupported(err)) return err;
  if (err != 0) value = 0;  // a backing filesystem without flags: none set
  value &= ~kCasefoldFlag;
  if (node->is_dir() && casefolded(*node)) value |= kCasefoldFlag;
  *flags = value;
  return 0;
}

// Like ext4, a request is checked whole before anything is applied: a refused casefold change
// changes no other flag either. The casefold attribute is written while the directory can take
// it: before the backing flags when they make it immutable, after them when they stop.
int Filesystem::set_flags(const Context&, uint64_t ino, uint32_t flags) {
  if (options_.read_only) return EROFS;
  auto node = inode(ino);
  if (!node) return ESTALE;
  const bool want_casefold = flags & kCasefoldFlag;
  if (want_casefold && !node->is_dir()) return EOPNOTSUPP;  // as ext4: only directories fold
  const int fd = open_inode(
      node, (node->is_dir() ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK) | O_NOFOLLOW);
  if (fd < 0) return -fd;
  UniqueFd owned(fd);
  std::optional<DirLock> lock;
  if (node->is_dir()) lock.emplace(*node->dir, DirLock::kWrite);
  uint32_t current = 0;
  const int get_err = backing::get_inode_flags(fd, &current);
  if (get_err != 0 && !unsupported(get_err)) return get_err;
  // Without flags of its own (get unsupported: none set), the backing filesystem is asked for
  // exactly what the request says, and answers for itself. A request that changes nothing
  // reaches it not at all.
  if (get_err != 0) current = 0;
  const uint32_t others = backing::backing_flags_for(flags, current);
  current &= ~kCasefoldFlag;
  auto set_others = [&]() { return others == current ? 0 : backing::set_inode_flags(fd, others); };
  const bool flip = node->is_dir() && want_casefold != casefolded(*node);
  if (!flip) return set_others();
  if (options_.casefold == CasefoldMode::kAll) return EPERM;  // every directory folds
  std::vector<backing::DirEntry> entries;
  if (int e = backing::read_directory(fd, &entries); e != 0) return e;
  if (!entries.empty()) return ENOTEMPTY;  // as ext4: rules change only on empty directories
  const bool becomes_immutable = (others & FS_IMMUTABLE_FL) && !(current & FS_IMMUTABLE_FL);
  if (!becomes_immutable) {
    if (int e = set_others(); e != 0) return e;
  }
  if (int e = backing::write_casefold_flag(fd, want_casefold); e != 0) {
    if (!becomes_immutable && others != current) backing::set_inode_flags(fd, current);  // undo
    return e;
  }
  if (becomes_immutable) {
    if (int e = set_others(); e != 0) {
      backing::write_casefold_flag(fd, !want_casefold);  // undo
      return e;
    }
  }
  hook("flip:written");
  {
    MutexLock index_lock(node->dir->index_lock);
    node->dir->index.clear();
  }
  budget_.resized(*node, 0);
  node->dir->casefold = want_casefold;
  // Whatever the kernel cached under the old rules (misses above all) is void now.
  kernel_.forget_everything();
  return 0;
}

int Filesystem::get_fsxattr(uint64_t ino, void* out) {
  auto node = inode(ino);
  if (!node) return ESTALE;
  auto* fsx = static_cast<struct fsxattr*>(out);
  std::memset(fsx, 0, sizeof(*fsx));
  const int fd = open_inode(
      node, (node->is_dir() ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK) | O_NOFOLLOW);
  if (fd < 0) return -fd;
  UniqueFd owned(fd);
  if (::ioctl(fd, FS_IOC_FSGETXATTR, fsx) != 0) {
    if (!unsupported(errno)) return errno;
    std::memset(fsx, 0, sizeof(*fsx));  // no such attributes here: all zero
  }
  return 0;
}

int Filesystem::set_fsxattr(uint64_t ino, const void* in) {
  if (options_.read_only) return EROFS;  // also for the flags that pass through
  auto node = inode(ino);
  if (!node) return ESTALE;
  const auto* wanted = static_cast<const struct fsxattr*>(in);
  const int fd = open_inode(
      node, (node->is_dir() ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK) | O_NOFOLLOW);
  if (fd < 0) return -fd;
  UniqueFd owned(fd);
  struct fsxattr copy = *wanted;
  if (::ioctl(fd, FS_IOC_FSSETXATTR, &copy) == 0) return 0;
  if (!unsupported(errno)) return errno;
  // The backing fs has none: setting what reads back as all-zero is a successful no-op.
  return wanted->fsx_xflags == 0 && wanted->fsx_extsize == 0 && wanted->fsx_projid == 0 &&
                 wanted->fsx_cowextsize == 0
             ? 0
             : EOPNOTSUPP;
}

}  // namespace foldfs::fs
