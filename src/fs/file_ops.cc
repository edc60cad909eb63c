// Open files and directories: open, create, flush, release, fsync, fallocate, lseek,
// copy_file_range, opendir, readdir, releasedir, fsyncdir.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "backing/dir_reader.h"
#include "fs/dir_lock.h"
#include "fs/filesystem.h"

namespace foldfs::fs {

using backing::SharedFd;
using backing::UniqueFd;

namespace {

struct OpenFile {
  UniqueFd fd;
};

OpenFile* as_file(uint64_t fh) {
  return reinterpret_cast<OpenFile*>(fh);
}
uint64_t to_fh(void* p) {
  return reinterpret_cast<uint64_t>(p);
}

constexpr int kCreateOnlyFlags = O_CREAT | O_EXCL | O_NOCTTY;

}  // namespace

int Filesystem::open(const Context&, uint64_t ino, int flags, uint64_t* fh) {
  auto node = inode(ino);
  if (!node) return ESTALE;
  if (options_.read_only && ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))) return EROFS;
  const int fd = open_inode(node, (flags & ~kCreateOnlyFlags) | O_NOFOLLOW);
  if (fd < 0) return -fd;
  *fh = to_fh(new OpenFile{UniqueFd(fd)});
  return 0;
}

int Filesystem::create(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode,
                       int flags, EntryOut* out, uint64_t* fh) {
  std::shared_ptr<Inode> dir;
  SharedFd dirfd;
  int err = begin_change(parent, &dir, &dirfd);
  if (err != 0) return err;

  DirLock lock(*dir->dir, DirLock::kWrite);
  const bool casefold = casefolded(*dir);
  if (int e = check_name(name, casefold, NameUse::kMake); e != 0) return e;
  std::string stored(name);
  bool exists = false;
  std::optional<names::FoldedName> folded;  // folded once per request, where names fold
  if (casefold) {
    folded.emplace(name, rules());
    err = resolve(dir, dirfd->get(), *folded, &stored);
    if (err != 0 && err != ENOENT) return err;
    exists = err == 0;
    if (!exists) stored = std::string(name);
  }
  const int at = dirfd->get();
  std::string whiteout;  // a union's upper tree: the whiteout the new file replaces
  if (exists && whiteout_at(at, stored)) {
    whiteout = std::move(stored);
    stored = temporary_name();
    exists = false;
  }
  if (exists && (flags & O_EXCL)) return EEXIST;

  const int open_flags = (flags & ~kCreateOnlyFlags) | O_NOFOLLOW | O_CLOEXEC;
  UniqueFd fd;
  bool created = false;
  // With the caller's ids (backing/acting_as.h): the new file is the caller's from the start.
  // O_CREAT without O_EXCL on an existing name opens it, whichever spelling was asked; the
  // kernel believes it created the file and checks nothing, and the backing filesystem checks
  // the caller's rights (mode, ACLs, groups) on the very file it opens, and drops setuid/setgid
  // bits on O_TRUNC as for any truncation by the caller. Nothing is checked on one lookup of the
  // name and then done on another.
  err = callers_.as(ctx, groups_decide_setgid(at, ctx, S_IFREG | mode), [&] {
    if (!exists) {
      fd.reset(::openat(at, stored.c_str(), open_flags | O_CREAT | O_EXCL,
                        creation_mode(ctx, at, mode)));
      created = fd.valid();
      if (created) return 0;
      if (errno != EEXIST || (flags & O_EXCL)) return errno;
    }
    fd.reset(::openat(at, stored.c_str(), open_flags));
    return fd.valid() ? 0 : errno;
  });
  if (err != 0) return err;
  if (!whiteout.empty()) {
    if ((err = replace_whiteout(at, stored, whiteout, false)) != 0) {
      ::unlinkat(at, stored.c_str(), 0);
      return err;
    }
    const std::string wanted(name);
    stored = whiteout == wanted || rename_keeping(at, whiteout, wanted) != 0 ? whiteout : wanted;
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errno;
  if (S_ISDIR(st.st_mode)) return EISDIR;  // open(O_CREAT) of a directory, as on ext4
  if (casefold) {
    if (created) index_change(*dir, at, stored, whiteout);
    note_change(*dir, *folded, exists ? stored : whiteout, false);
  }
  if (int e = enter_open_file(*dir, fd.get(), st, out); e != 0) return e;
  *fh = to_fh(new OpenFile{std::move(fd)});
  return 0;
}

int Filesystem::file_fd(uint64_t fh) const {
  return as_file(fh)->fd.get();
}

int Filesystem::flush(uint64_t fh) {
  if (!network_backing_) return ENOSYS;
  // Closing a duplicate reports delayed write errors (NFS backing) without closing the file.
  const int dup = ::dup(as_file(fh)->fd.get());
  if (dup < 0) return errno;
  return ::close(dup) == 0 ? 0 : errno;
}

int Filesystem::release(uint64_t fh) {
  delete as_file(fh);
  return 0;
}

int Filesystem::fsync(uint64_t fh, bool datasync) {
  const int fd = as_file(fh)->fd.get();
  return (datasync ? ::fdatasync(fd) : ::fsync(fd)) == 0 ? 0 : errno;
}

int Filesystem::fallocate(uint64_t fh, int mode, off_t offset, off_t length) {
  if (options_.read_only) return EROFS;
  return ::fallocate(as_file(fh)->fd.get(), mode, offset, length) == 0 ? 0 : errno;
}

int Filesystem::lseek(uint64_t fh, off_t offset, int whence, off_t* result) {
  const off_t r = ::lseek(as_file(fh)->fd.get(), offset, whence);
  if (r < 0) return errno;
  *result = r;
  return 0;
}

int Filesystem::copy_file_range(uint64_t fh_in, off_t off_in, uint64_t fh_out, off_t off_out,
                                size_t len, int flags, size_t* copied) {
  if (options_.read_only) return EROFS;
  loff_t in = off_in, out = off_out;
  const ssize_t n = ::copy_file_range(as_file(fh_in)->fd.get(), &in, as_file(fh_out)->fd.get(),
                                      &out, len, static_cast<unsigned>(flags));
  if (n < 0) return errno;
  *copied = static_cast<size_t>(n);
  return 0;
}

// Directories are read without per-open state: each readdir call opens the backing directory,
// seeks to the kernel's offset (the d_off cookie of the last entry it took) and reads on. That
// lets the kernel skip OPENDIR/RELEASEDIR round trips altogether (FUSE_CAP_NO_OPENDIR_SUPPORT):
// Wine's casefold probe (open, FS_IOC_GETFLAGS, close) then costs one round trip, not five.
int Filesystem::opendir(const Context&, uint64_t ino, uint64_t* fh) {
  std::shared_ptr<Inode> dir;
  if (int err = dir_inode(ino, &dir); err != 0) return err;
  *fh = 0;
  return 0;
}

namespace {

bool is_dot_name(const char* n) {
  return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

}  // namespace

// Calls visit(fd, name, d_ino, d_type, next_offset) for each entry from `offset` on until it
// returns false. Lists every backing name, equivalent spellings included: nothing in a
// directory with collisions is hidden.
int Filesystem::scan_directory(
    const std::shared_ptr<Inode>& dir, off_t offset,
    const std::function<bool(int, const char*, uint64_t, unsigned char, off_t)>& visit,
    size_t chunk) {
  const int raw = open_inode(dir, O_RDONLY | O_DIRECTORY);
  if (raw < 0) return -raw;
  UniqueFd fd(raw);
  return backing::scan_directory(
      fd.get(), offset,
      [&](const char* name, uint64_t ino, unsigned char type, off_t next) {
        return visit(fd.get(), name, ino, type, next);
      },
      chunk);
}

// Listings read the backing directory itself: queued outside changes need no catching up.
int Filesystem::readdir(uint64_t ino, off_t offset, const DirEmit& emit, size_t reply_bytes) {
  std::shared_ptr<Inode> dir;
  if (int err = dir_inode(ino, &dir); err != 0) return err;
  return scan_directory(
      dir, offset,
      [&](int, const char* name, uint64_t d_ino, unsigned char type, off_t next) {
        return emit(name, d_ino, DTTOIF(type), next);
      },
      reply_bytes);  // FUSE and getdents64 records are about the same size
}

// readdir with each entry's attributes: the kernel caches the entries as dentries, so `ls -l`
// and opening every file need no LOOKUP per name. In a casefolded directory the kernel then
// holds every stored spelling: the directory is marked listed (at the current epoch) so that a
// change through another spelling invalidates them (forget_other_spellings()).
//
// Attributes cost the daemon two system calls per entry and the kernel an inode per entry, which
// a program that only wants names (`find`) never uses: files get them only while programs show
// they want them (ListingDemand). Subdirectories always do: walking into them is
// what every program listing a tree does next.
int Filesystem::readdirplus(uint64_t ino, off_t offset, const DirPlusEmit& emit,
                            size_t reply_bytes) {
  std::shared_ptr<Inode> dir;
  if (int err = dir_inode(ino, &dir); err != 0) return err;
  DirLock lock(*dir->dir, DirLock::kRead);
  if (casefolded(*dir)) dir->dir->listed_epoch = kernel_.epoch();
  const bool files_too = listing_.files_get_attributes(*dir->dir);
  return scan_directory(
      dir, offset,
      [&](int fd, const char* name, uint64_t d_ino, unsigned char type, off_t next) {
        EntryOut out;
        const bool wanted = files_too || type == DT_DIR || type == DT_UNKNOWN;
        if (!wanted || is_dot_name(name) || enter_name(*dir, fd, name, &out) != 0) {
          out = EntryOut();  // no dentry for this one: the kernel looks it up if it needs it
          out.attr.st_ino = d_ino;
          out.attr.st_mode = DTTOIF(type);
        }
        if (emit(name, out, next)) return true;
        if (out.ino != 0) forget(out.ino, 1);  // did not fit: the kernel never saw it
        return false;
      },
      reply_bytes / 4);  // a FUSE entry with attributes is ~4x a getdents64 record
}

int Filesystem::releasedir(uint64_t) {
  return 0;
}

int Filesystem::fsyncdir(uint64_t ino, bool datasync) {
  std::shared_ptr<Inode> dir;
  if (int err = dir_inode(ino, &dir); err != 0) return err;
  const int raw = open_inode(dir, O_RDONLY | O_DIRECTORY);
  if (raw < 0) return -raw;
  UniqueFd fd(raw);
  return (datasync ? ::fdatasync(fd.get()) : ::fsync(fd.get())) == 0 ? 0 : errno;
}

}  // namespace foldfs::fs
