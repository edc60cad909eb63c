// The changes a writable union (fs/union_fs.h) makes in its upper tree beyond a mount's own:
// names made over whiteouts, removals that leave whiteouts, copy-ups (docs/union.md, "Writes go
// to the upper tree only"). Each runs under the directory's write lock, as every change of names
// does, so no lookup of this tree sees one of its steps; each step on disk is one system call
// that leaves the union showing either the old state or the new one.
// The lock order is in filesystem.h.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>

#include "backing/copy_up.h"
#include "backing/dir_reader.h"
#include "backing/union_format.h"
#include "fs/dir_lock.h"
#include "fs/filesystem.h"

namespace foldfs::fs {

using backing::SharedFd;
using backing::UniqueFd;

void Filesystem::serve_as_union_upper(UniqueFd work_dir) {
  union_upper_ = true;
  work_dir_ = std::move(work_dir);
}

bool Filesystem::whiteout_at(int dirfd, const std::string& name) const {
  struct stat st;
  return union_upper_ && ::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
         backing::is_whiteout(st);
}

// Unique in this process. A crash between making a node under it and moving the node into place
// leaves the node under this name (an empty file or directory of the caller's, or a whiteout):
// the union does not list it (read_union_part), and kernel overlayfs would.
namespace {
constexpr std::string_view kTemporaryPrefix = ".foldfs-new.";
}

std::string Filesystem::temporary_name() {
  static std::atomic<uint64_t> next{0};
  return std::string(kTemporaryPrefix) + std::to_string(::getpid()) + "." + std::to_string(next++);
}

bool Filesystem::is_temporary_name(std::string_view name) {
  return name.substr(0, kTemporaryPrefix.size()) == kTemporaryPrefix;
}

// A file takes the whiteout's place by one rename (a non-directory replaces a non-directory). A
// directory cannot replace a device: it is made opaque, exchanged with the whiteout, and the
// whiteout (now under the temporary name) removed. Where the filesystem cannot exchange, the
// whiteout goes first: a crash in between shows the lower trees' entry again.
int Filesystem::replace_whiteout(int dirfd, const std::string& made, const std::string& whiteout,
                                 bool is_dir) {
  if (!is_dir) return ::renameat(dirfd, made.c_str(), dirfd, whiteout.c_str()) == 0 ? 0 : errno;
  UniqueFd sub(::openat(dirfd, made.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub.valid()) return errno;
  if (int err = backing::make_opaque(sub.get()); err != 0) return err;
  if (::renameat2(dirfd, made.c_str(), dirfd, whiteout.c_str(), RENAME_EXCHANGE) == 0) {
    ::unlinkat(dirfd, made.c_str(), 0);
    return 0;
  }
  if (errno != EINVAL) return errno;
  if (::unlinkat(dirfd, whiteout.c_str(), 0) != 0) return errno;
  return ::renameat(dirfd, made.c_str(), dirfd, whiteout.c_str()) == 0 ? 0 : errno;
}

// Renames `from` to `to` in `dirfd` without replacing anything. Where the filesystem has no
// RENAME_NOREPLACE (bindfs), the check and the rename are two steps: the caller holds the
// directory's write lock, so only a change made outside the mount can come between them.
int Filesystem::rename_keeping(int dirfd, const std::string& from, const std::string& to) {
  if (::renameat2(dirfd, from.c_str(), dirfd, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL) return errno;
  struct stat st;
  if (::fstatat(dirfd, to.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return EEXIST;
  return ::renameat(dirfd, from.c_str(), dirfd, to.c_str()) == 0 ? 0 : errno;
}

int Filesystem::clear_whiteouts(int dirfd, const std::string& name) {
  UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub.valid()) return errno;
  std::vector<backing::DirEntry> entries;
  if (int err = backing::read_directory(sub.get(), &entries); err != 0) return err;
  for (const auto& e : entries) {
    if (!whiteout_at(sub.get(), e.name)) return ENOTEMPTY;
  }
  for (const auto& e : entries) {
    if (::unlinkat(sub.get(), e.name.c_str(), 0) != 0 && errno != ENOENT) return errno;
  }
  return 0;
}

int Filesystem::remove_tree(const Context& ctx, int dirfd, const std::string& name, size_t depth) {
  if (depth > 4096) return ELOOP;
  UniqueFd sub;
  int err = callers_.as(ctx, false, [&] {
    sub.reset(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    return sub.valid() ? 0 : errno;
  });
  if (err != 0) return err;
  std::vector<backing::DirEntry> entries;
  if ((err = backing::read_directory(sub.get(), &entries)) != 0) return err;
  int first = 0;
  for (const auto& e : entries) {
    struct stat st;
    if (::fstatat(sub.get(), e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      err = remove_tree(ctx, sub.get(), e.name, depth + 1);
    } else {
      err = callers_.as(ctx, false,
                        [&] { return ::unlinkat(sub.get(), e.name.c_str(), 0) == 0 ? 0 : errno; });
      if ((err == EACCES || err == EPERM) && backing::is_whiteout(st)) {
        err = ::unlinkat(sub.get(), e.name.c_str(), 0) == 0 ? 0 : errno;
      }
    }
    if (err != 0 && err != ENOENT && first == 0) first = err;
  }
  if (first != 0) return first;
  return callers_.as(
      ctx, false, [&] { return ::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) == 0 ? 0 : errno; });
}

int Filesystem::remove_leaving_whiteout(uint64_t parent, std::string_view name, bool is_dir,
                                        const Context* whole_tree) {
  if (!union_upper_) return EINVAL;
  std::shared_ptr<Inode> dir;
  SharedFd dirfd;
  if (int err = begin_change(parent, &dir, &dirfd); err != 0) return err;
  DirLock lock(*dir->dir, DirLock::kWrite);
  const names::FoldedName folded(name, rules());
  std::string stored;
  int err = resolve(dir, dirfd->get(), folded, &stored);
  if (err != 0 && err != ENOENT) return err;
  const int fd = dirfd->get();
  if (err == ENOENT) {
    stored = std::string(name);
    if ((err = backing::make_whiteout(fd, stored)) != 0) return err;
    index_change(*dir, fd, stored, {});
    note_change(*dir, folded, {}, true);
    return 0;
  }
  struct stat st;
  if (::fstatat(fd, stored.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno;
  if (backing::is_whiteout(st)) return ENOENT;
  if (is_dir != S_ISDIR(st.st_mode)) return is_dir ? ENOTDIR : EISDIR;
  if (is_dir && !whole_tree && (err = clear_whiteouts(fd, stored)) != 0) return err;
  // The whiteout is made aside and exchanged with the name: the name never shows the lower
  // trees' entry.
  const std::string aside = temporary_name();
  if ((err = backing::make_whiteout(fd, aside)) != 0) return err;
  auto remove = [&](const std::string& what) {
    if (whole_tree && is_dir) return remove_tree(*whole_tree, fd, what);
    return ::unlinkat(fd, what.c_str(), is_dir ? AT_REMOVEDIR : 0) == 0 ? 0 : errno;
  };
  if (::renameat2(fd, aside.c_str(), fd, stored.c_str(), RENAME_EXCHANGE) == 0) {
    // The name is a whiteout now: what cannot be removed of the old entry stays under a name the
    // union does not list.
    remove(aside);
    err = 0;
  } else {
    // Without RENAME_EXCHANGE (bindfs): the old entry is moved aside, then the whiteout made.
    // A crash in between shows the lower trees' entry of the name again.
    err = errno;
    ::unlinkat(fd, aside.c_str(), 0);
    if (err == EINVAL) {
      err = ::renameat(fd, stored.c_str(), fd, aside.c_str()) == 0 ? 0 : errno;
      if (err == 0) err = backing::make_whiteout(fd, stored);
      if (err == 0) remove(aside);
    }
  }
  if (err != 0) return err;
  note_change(*dir, folded, stored, true);
  return 0;
}

int Filesystem::copy_in(uint64_t parent, std::string_view name, int lower_dir,
                        const std::string& lower_name, EntryOut* out) {
  if (!union_upper_) return EINVAL;
  std::shared_ptr<Inode> dir;
  SharedFd dirfd;
  if (int err = begin_change(parent, &dir, &dirfd); err != 0) return err;
  DirLock lock(*dir->dir, DirLock::kWrite);
  const names::FoldedName folded(name, rules());
  std::string stored;
  int err = resolve(dir, dirfd->get(), folded, &stored);
  if (err == 0) return EEXIST;
  if (err != ENOENT) return err;
  const int fd = dirfd->get();
  const std::string copy(name);
  struct stat st;
  if ((err = backing::copy_up(lower_dir, lower_name, fd, copy, &st, {}, work_dir_.get())) != 0) {
    return err;
  }
  index_change(*dir, fd, copy, {});
  note_change(*dir, folded, {}, false);
  return enter_name(*dir, fd, copy, out, st);
}

int Filesystem::descriptor(uint64_t ino, SharedFd* out) {
  std::shared_ptr<Inode> node;
  return inode_and_fd(ino, &node, out);
}

}  // namespace foldfs::fs
