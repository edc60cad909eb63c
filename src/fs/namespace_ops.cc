// Operations that change names: mknod, mkdir, symlink, link, unlink, rmdir, rename.
// The lock order is in filesystem.h.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "backing/casefold_flag.h"
#include "backing/proc_path.h"
#include "backing/thread_umask.h"
#include "fs/dir_lock.h"
#include "fs/filesystem.h"

namespace foldfs::fs {

using backing::SharedFd;
using backing::UniqueFd;

struct Filesystem::NodeSpec {
  std::function<int(int dirfd, const char* name)> make;  // 0 or errno
  mode_t mode = 0;
  bool give_to_caller = true;  // false for hard links: the file keeps its owner
  bool is_symlink = false;
  bool is_dir = false;
};

// Files are created by the daemon (root); they must belong to the caller, as on a local fs.
// A setgid parent already gave its group (the backing fs applies that rule), so only the owner
// changes then. chown clears setuid/setgid bits, which are put back afterwards.
int Filesystem::give_to_caller(const Context& ctx, int dirfd, const std::string& name, mode_t mode,
                               bool is_symlink) {
  if (ctx.uid == daemon_uid_ && ctx.gid == daemon_gid_) return 0;
  struct stat parent;
  if (::fstat(dirfd, &parent) != 0) return errno;
  // The bits the node got (after the umask or a default ACL), to restore what chown clears.
  const bool privileged = !is_symlink && (mode & (S_ISUID | S_ISGID)) && !S_ISDIR(mode);
  struct stat created;
  if (privileged && ::fstatat(dirfd, name.c_str(), &created, AT_SYMLINK_NOFOLLOW) != 0)
    return errno;
  const gid_t gid = (parent.st_mode & S_ISGID) ? static_cast<gid_t>(-1) : ctx.gid;
  if (::fchownat(dirfd, name.c_str(), ctx.uid, gid, AT_SYMLINK_NOFOLLOW) != 0) return errno;
  if (privileged && (created.st_mode & (S_ISUID | S_ISGID))) {
    if (::fchmodat(dirfd, name.c_str(), created.st_mode & 07777, 0) != 0) return errno;
  }
  return 0;
}

// The mode to create a node with. The backing filesystem applies the caller's umask, or the
// parent's default ACL instead, exactly as the kernel would for a local file: the creating
// thread runs with the caller's umask. Where a thread cannot have its own umask, the same rule
// is applied here.
mode_t Filesystem::creation_mode(const Context& ctx, int dirfd, mode_t mode) const {
  if (backing::set_thread_umask(ctx.umask & 0777)) return mode;
  const backing::ProcPath path(dirfd);
  if (::getxattr(path.c_str(), "system.posix_acl_default", nullptr, 0) > 0) return mode;
  return mode & ~ctx.umask;
}

int Filesystem::create_node(const Context& ctx, uint64_t parent, std::string_view name,
                            const NodeSpec& spec, EntryOut* out) {
  std::shared_ptr<Inode> dir;
  SharedFd dirfd;
  int err = begin_change(parent, &dir, &dirfd);
  if (err != 0) return err;

  DirLock lock(*dir->dir, DirLock::kWrite);
  const bool casefold = casefolded(*dir);
  if (int e = check_name(name, casefold); e != 0) return e;
  const std::string created(name);
  if (casefold) {
    std::string existing;
    err = resolve_locked(dir, dirfd->get(), name, &existing);
    if (err == 0) return EEXIST;  // an equivalent name exists: ext4 answers EEXIST too
    if (err != ENOENT) return err;
  }
  if (int e = spec.make(dirfd->get(), created.c_str()); e != 0) return e;
  // A node that cannot be finished (owner, inherited flag) is removed again: a failed call
  // leaves nothing behind.
  auto undo = [&](int e) {
    ::unlinkat(dirfd->get(), created.c_str(), spec.is_dir ? AT_REMOVEDIR : 0);
    return e;
  };
  if (spec.give_to_caller) {
    if (int e = give_to_caller(ctx, dirfd->get(), created, spec.mode, spec.is_symlink); e != 0) {
      return undo(e);
    }
  }
  if (spec.is_dir && casefold && options_.casefold == CasefoldMode::kFlag) {
    // New subdirectories of a casefolded directory inherit the flag.
    UniqueFd sub(::openat(dirfd->get(), created.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!sub.valid()) return undo(errno);
    if (int e = backing::write_casefold_flag(sub.get(), true); e != 0) return undo(e);
  }
  if (casefold) index_change(*dir, dirfd->get(), created, {});
  note_change(*dir, name, {}, false);
  return make_entry(*dir, dirfd->get(), created, out);
}

int Filesystem::mknod(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode,
                      dev_t rdev, EntryOut* out) {
  NodeSpec spec;
  spec.mode = mode;
  spec.make = [this, &ctx, mode, rdev](int dirfd, const char* n) {
    return ::mknodat(dirfd, n, creation_mode(ctx, dirfd, mode), rdev) == 0 ? 0 : errno;
  };
  return create_node(ctx, parent, name, spec, out);
}

int Filesystem::mkdir(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode,
                      EntryOut* out) {
  NodeSpec spec;
  spec.mode = mode | S_IFDIR;
  spec.is_dir = true;
  spec.make = [this, &ctx, mode](int dirfd, const char* n) {
    return ::mkdirat(dirfd, n, creation_mode(ctx, dirfd, mode)) == 0 ? 0 : errno;
  };
  return create_node(ctx, parent, name, spec, out);
}

int Filesystem::symlink(const Context& ctx, std::string_view target, uint64_t parent,
                        std::string_view name, EntryOut* out) {
  if (target.find('\0') != std::string_view::npos) return EINVAL;
  NodeSpec spec;
  spec.mode = S_IFLNK | 0777;
  spec.is_symlink = true;
  const std::string text(target);
  spec.make = [&text](int dirfd, const char* n) {
    return ::symlinkat(text.c_str(), dirfd, n) == 0 ? 0 : errno;
  };
  return create_node(ctx, parent, name, spec, out);
}

int Filesystem::link(const Context& ctx, uint64_t ino, uint64_t newparent, std::string_view newname,
                     EntryOut* out) {
  auto node = inode(ino);
  if (!node) return ESTALE;
  int err = 0;
  SharedFd source = path_fd(node, &err);
  if (!source) return err;
  NodeSpec spec;
  spec.give_to_caller = false;
  spec.make = [&source](int dirfd, const char* n) {
    if (::linkat(source->get(), "", dirfd, n, AT_EMPTY_PATH) == 0) return 0;
    if (errno != ENOENT && errno != EPERM) return errno;
    // Without CAP_DAC_READ_SEARCH, AT_EMPTY_PATH is refused: link through /proc instead.
    const backing::ProcPath path(source->get());
    return ::linkat(AT_FDCWD, path.c_str(), dirfd, n, AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
  };
  return create_node(ctx, newparent, newname, spec, out);
}

int Filesystem::remove_node(uint64_t parent, std::string_view name, bool is_dir) {
  std::shared_ptr<Inode> dir;
  SharedFd dirfd;
  int err = begin_change(parent, &dir, &dirfd);
  if (err != 0) return err;

  DirLock lock(*dir->dir, DirLock::kWrite);
  const bool casefold = casefolded(*dir);
  if (int e = check_name(name, casefold); e != 0) return e;
  std::string stored(name);
  if (casefold) {
    if (int e = resolve_locked(dir, dirfd->get(), name, &stored); e != 0) return e;
  }
  if (::unlinkat(dirfd->get(), stored.c_str(), is_dir ? AT_REMOVEDIR : 0) != 0) return errno;
  if (casefold) {
    index_change(*dir, dirfd->get(), {}, stored);
    note_change(*dir, name, stored, true);  // the kernel keeps `name` as a negative dentry
  }
  return 0;
}

int Filesystem::unlink(const Context&, uint64_t parent, std::string_view name) {
  return remove_node(parent, name, false);
}

int Filesystem::rmdir(const Context&, uint64_t parent, std::string_view name) {
  return remove_node(parent, name, true);
}

int Filesystem::rename(const Context&, uint64_t parent, std::string_view name, uint64_t newparent,
                       std::string_view newname, unsigned int flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return EINVAL;
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) return EINVAL;
  if (options_.read_only) return EROFS;
  std::shared_ptr<Inode> from, to;
  if (int err = dir_inode(parent, &from); err != 0) return err;
  if (int err = dir_inode(newparent, &to); err != 0) return err;
  catch_up_for(*from, *to);
  int err = 0;
  SharedFd from_fd = path_fd(from, &err);
  if (!from_fd) return err;
  SharedFd to_fd = path_fd(to, &err);
  if (!to_fd) return err;

  TwoDirLock lock(*from, *to);
  const bool from_cf = casefolded(*from);
  const bool to_cf = casefolded(*to);
  if (int e = check_name(name, from_cf); e != 0) return e;
  if (int e = check_name(newname, to_cf); e != 0) return e;

  std::string source(name);
  if (from_cf) {
    if (int e = resolve_locked(from, from_fd->get(), name, &source); e != 0) return e;
  }
  std::string target(newname);
  if (to_cf) {
    std::string existing;
    err = resolve_locked(to, to_fd->get(), newname, &existing);
    if (err != 0 && err != ENOENT) return err;
    if (err == 0) {
      if (flags & RENAME_NOREPLACE) return EEXIST;
      // Two spellings of one entry: the same file, so nothing to do (as on ext4).
      if (from.get() == to.get() && existing == source) {
        invalidate_if_other_spelling(*from, name, source);
        invalidate_if_other_spelling(*to, newname, existing);
        return 0;
      }
      target = std::move(existing);  // replacing keeps the existing entry's spelling
    }
  }
  if (::renameat2(from_fd->get(), source.c_str(), to_fd->get(), target.c_str(), flags) != 0) {
    return errno;
  }
  // Renaming one hard link onto another of the same file does nothing: both names stay.
  struct stat st;
  const bool source_stays =
      ::fstatat(from_fd->get(), source.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (!(flags & RENAME_EXCHANGE) && !source_stays) {
    if (from_cf) index_change(*from, from_fd->get(), {}, source);
    if (to_cf) index_change(*to, to_fd->get(), target, {});
  }
  if (from_cf) invalidate_if_other_spelling(*from, name, source);
  if (to_cf) note_change(*to, newname, target, false);
  if (from_cf && (flags & RENAME_EXCHANGE)) note_kernel_entry(*from, name, false);
  return 0;
}

}  // namespace foldfs::fs
