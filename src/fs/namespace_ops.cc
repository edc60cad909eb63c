// Operations that change names: mknod, mkdir, symlink, link, unlink, rmdir, rename.
// The lock order is in filesystem.h.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "backing/casefold_flag.h"
#include "backing/dir_reader.h"
#include "backing/proc_path.h"
#include "backing/thread_umask.h"
#include "backing/union_format.h"
#include "fs/dir_lock.h"
#include "fs/filesystem.h"

namespace foldfs::fs {

using backing::SharedFd;
using backing::UniqueFd;

struct Filesystem::NodeSpec {
  std::function<int(int dirfd, const char* name)> make;  // 0 or errno; runs as the caller
  mode_t mode = 0;
  bool is_dir = false;
};

bool Filesystem::groups_decide_setgid(int dirfd, const Context& ctx, mode_t mode) {
  // The kernel drops S_ISGID from a new file in a setgid directory whose group the caller is
  // not in (mode_strip_sgid): only then do the supplementary groups decide the mode.
  if (S_ISDIR(mode) || (mode & (S_ISGID | S_IXGRP)) != (S_ISGID | S_IXGRP)) return false;
  struct stat parent;
  return ::fstat(dirfd, &parent) == 0 && (parent.st_mode & S_ISGID) && parent.st_gid != ctx.gid;
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

// The flag is an attribute only root may write (trusted.*), so this step runs with the daemon's
// ids, and it has to reach the new directory by name. A user who can write the backing
// directory may have swapped something else in by then: the flag goes only on an empty
// directory owned by the caller — one the caller could have given the flag itself (chattr +F).
int Filesystem::inherit_casefold_flag(const Context& ctx, int dirfd, const std::string& name) {
  UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub.valid()) return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? ESTALE : errno;
  struct stat st;
  if (::fstat(sub.get(), &st) != 0) return errno;
  const uid_t owner = callers_.owner_for(ctx);
  std::vector<backing::DirEntry> entries;
  if (st.st_uid != owner) return ESTALE;
  if (int e = backing::read_directory(sub.get(), &entries); e != 0) return e;
  if (!entries.empty()) return ESTALE;
  return backing::write_casefold_flag(sub.get(), true);
}

int Filesystem::create_node(const Context& ctx, uint64_t parent, std::string_view name,
                            const NodeSpec& spec, EntryOut* out) {
  std::shared_ptr<Inode> dir;
  SharedFd dirfd;
  int err = begin_change(parent, &dir, &dirfd);
  if (err != 0) return err;

  DirLock lock(*dir->dir, DirLock::kWrite);
  const bool casefold = casefolded(*dir);
  if (int e = check_name(name, casefold, NameUse::kMake); e != 0) return e;
  std::string created(name);
  std::optional<names::FoldedName> folded;  // folded once per request, where names fold
  const int fd = dirfd->get();
  std::string whiteout;  // a union's upper tree: the whiteout the new name replaces
  if (casefold) {
    folded.emplace(name, rules());
    std::string existing;
    err = resolve(dir, fd, *folded, &existing);
    if (err == 0 && !whiteout_at(fd, existing)) return EEXIST;  // as ext4 answers
    if (err != 0 && err != ENOENT) return err;
    if (err == 0) whiteout = std::move(existing);
  }
  const std::string made = whiteout.empty() ? created : temporary_name();
  err = callers_.as(ctx, groups_decide_setgid(fd, ctx, spec.mode),
                    [&] { return spec.make(fd, made.c_str()); });
  if (err != 0) return err;
  if (!whiteout.empty()) {
    if ((err = replace_whiteout(fd, made, whiteout, spec.is_dir)) != 0) {
      ::unlinkat(fd, made.c_str(), spec.is_dir ? AT_REMOVEDIR : 0);
      return err;
    }
    // The whiteout's spelling, then the caller's where it differs (never over another name).
    if (whiteout != created && rename_keeping(fd, whiteout, created) != 0) created = whiteout;
  }
  if (spec.is_dir && casefold && options_.casefold == CasefoldMode::kFlag) {
    // New subdirectories of a casefolded directory inherit the flag. A directory that cannot
    // take it is removed again (with the caller's rights): the failed call leaves nothing.
    if (int e = inherit_casefold_flag(ctx, fd, created); e != 0) {
      if (e != ESTALE) {
        callers_.as(ctx, false,
                    [&] { return ::unlinkat(fd, created.c_str(), AT_REMOVEDIR) == 0 ? 0 : errno; });
      }
      return e;
    }
  }
  if (casefold) {
    index_change(*dir, fd, created, whiteout);
    note_change(*dir, *folded, whiteout, false);
  }
  return enter_name(*dir, fd, created, out);
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
  spec.mode = node->type;
  spec.make = [&source](int dirfd, const char* n) {
    if (::linkat(source->get(), "", dirfd, n, AT_EMPTY_PATH) == 0) return 0;
    if (errno != ENOENT && errno != EPERM) return errno;
    // Without CAP_DAC_READ_SEARCH (a caller's ids), AT_EMPTY_PATH is refused: link through the
    // descriptor's /proc link instead, which reaches exactly the file it holds.
    const backing::ProcPath path(source->get());
    return ::linkat(AT_FDCWD, path.c_str(), dirfd, n, AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
  };
  return create_node(ctx, newparent, newname, spec, out);
}

int Filesystem::remove_node(const Context& ctx, uint64_t parent, std::string_view name,
                            bool is_dir) {
  std::shared_ptr<Inode> dir;
  SharedFd dirfd;
  int err = begin_change(parent, &dir, &dirfd);
  if (err != 0) return err;

  DirLock lock(*dir->dir, DirLock::kWrite);
  const bool casefold = casefolded(*dir);
  if (int e = check_name(name, casefold, NameUse::kFind); e != 0) return e;
  std::string stored(name);
  std::optional<names::FoldedName> folded;
  if (casefold) {
    folded.emplace(name, rules());
    if (int e = resolve(dir, dirfd->get(), *folded, &stored); e != 0) return e;
  }
  const int fd = dirfd->get();
  if (whiteout_at(fd, stored)) return ENOENT;  // a union's upper tree: nothing is there
  if (is_dir && union_upper_) {
    if (int e = clear_whiteouts(fd, stored); e != 0 && e != ENOTDIR) return e;
  }
  // With the caller's rights: a sticky directory's rules are checked on what is removed.
  err = callers_.as(ctx, false, [&] {
    return ::unlinkat(fd, stored.c_str(), is_dir ? AT_REMOVEDIR : 0) == 0 ? 0 : errno;
  });
  if (err != 0) return err;
  if (casefold) {
    index_change(*dir, dirfd->get(), {}, stored);
    note_change(*dir, *folded, stored, true);  // the kernel keeps `name` as a negative dentry
  }
  return 0;
}

int Filesystem::unlink(const Context& ctx, uint64_t parent, std::string_view name) {
  return remove_node(ctx, parent, name, false);
}

int Filesystem::rmdir(const Context& ctx, uint64_t parent, std::string_view name) {
  return remove_node(ctx, parent, name, true);
}

int Filesystem::rename(const Context& ctx, uint64_t parent, std::string_view name,
                       uint64_t newparent, std::string_view newname, unsigned int flags) {
  const bool leave_whiteout = (flags & kRenameWhiteout) != 0;
  flags &= ~kRenameWhiteout;
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return EINVAL;
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) return EINVAL;
  if (leave_whiteout && (!union_upper_ || (flags & RENAME_EXCHANGE))) return EINVAL;
  if (options_.read_only) return EROFS;
  std::shared_ptr<Inode> from, to;
  if (int err = dir_inode(parent, &from); err != 0) return err;
  if (int err = dir_inode(newparent, &to); err != 0) return err;
  take_in_outside_changes(*from, *to);
  int err = 0;
  SharedFd from_fd = path_fd(from, &err);
  if (!from_fd) return err;
  SharedFd to_fd = path_fd(to, &err);
  if (!to_fd) return err;

  TwoDirLock lock(*from, *to);
  const bool from_cf = casefolded(*from);
  const bool to_cf = casefolded(*to);
  if (int e = check_name(name, from_cf, NameUse::kFind); e != 0) return e;
  if (int e = check_name(newname, to_cf, NameUse::kMake); e != 0) return e;

  std::optional<names::FoldedName> folded_from, folded_to;  // folded once per request
  std::string source(name);
  if (from_cf) {
    folded_from.emplace(name, rules());
    if (int e = resolve(from, from_fd->get(), *folded_from, &source); e != 0) return e;
  }
  std::string target(newname);
  if (to_cf) {
    folded_to.emplace(newname, rules());
    std::string existing;
    err = resolve(to, to_fd->get(), *folded_to, &existing);
    if (err != 0 && err != ENOENT) return err;
    if (err == 0) {
      if (flags & RENAME_NOREPLACE) return EEXIST;
      // Two spellings of one entry: the same file, so nothing to do (as on ext4).
      if (from.get() == to.get() && existing == source) {
        forget_other_spellings(*from, *folded_from, source);
        forget_other_spellings(*to, *folded_to, existing);
        return 0;
      }
      target = std::move(existing);  // replacing keeps the existing entry's spelling
    }
  }
  if (whiteout_at(from_fd->get(), source)) return ENOENT;  // a union's upper tree
  struct stat st;
  if (whiteout_at(to_fd->get(), target) &&
      ::fstatat(from_fd->get(), source.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISDIR(st.st_mode)) {
    // A directory cannot replace the device a whiteout is: the whiteout goes first, and the
    // directory, now in a place the lower trees have a name of, hides it (opaque).
    UniqueFd sub(
        ::openat(from_fd->get(), source.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub.valid()) return errno;
    if (int e = backing::make_opaque(sub.get()); e != 0) return e;
    if (::unlinkat(to_fd->get(), target.c_str(), 0) != 0) return errno;
  }
  auto do_rename = [&](unsigned int how) {
    return ::renameat2(from_fd->get(), source.c_str(), to_fd->get(), target.c_str(), how) == 0
               ? 0
               : errno;
  };
  if (leave_whiteout) {
    // CAP_MKNOD, which a caller's ids do not carry: the kernel has checked the caller's rights
    // (default_permissions). Where the filesystem has no RENAME_WHITEOUT, the whiteout follows.
    err = do_rename(flags | RENAME_WHITEOUT);
    if (err == EINVAL && (err = callers_.as(ctx, false, [&] { return do_rename(flags); })) == 0) {
      err = backing::make_whiteout(from_fd->get(), source);
    }
  } else {
    err = callers_.as(ctx, false, [&] { return do_rename(flags); });
  }
  if (err != 0) return err;
  // Renaming one hard link onto another of the same file does nothing: both names stay.
  const bool source_stays =
      !leave_whiteout && ::fstatat(from_fd->get(), source.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (!(flags & RENAME_EXCHANGE) && !source_stays) {
    if (from_cf && !leave_whiteout) index_change(*from, from_fd->get(), {}, source);
    if (to_cf) index_change(*to, to_fd->get(), target, {});
  }
  if (from_cf) forget_other_spellings(*from, *folded_from, source);
  if (to_cf) note_change(*to, *folded_to, target, false);
  if (from_cf && (flags & RENAME_EXCHANGE)) note_kernel_entry(*from, *folded_from, false);
  return 0;
}

}  // namespace foldfs::fs
