// Open files and directories: open, create, flush, release, fsync, fallocate, lseek,
// copy_file_range, opendir, readdir, releasedir, fsyncdir.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/dir_lock.h"
#include "fs/filesystem.h"

namespace foldfs::fs {

using backing::SharedFd;
using backing::UniqueFd;

namespace {

struct OpenFile {
  UniqueFd fd;
};

struct OpenDir {
  DIR* stream = nullptr;  // owns its descriptor
  off_t offset = 0;
  struct dirent* pending = nullptr;  // read but not yet emitted
  ~OpenDir() {
    if (stream) ::closedir(stream);
  }
};

OpenFile* as_file(uint64_t fh) { return reinterpret_cast<OpenFile*>(fh); }
OpenDir* as_dir(uint64_t fh) { return reinterpret_cast<OpenDir*>(fh); }
uint64_t to_fh(void* p) { return reinterpret_cast<uint64_t>(p); }

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
  if (options_.read_only) return EROFS;
  std::shared_ptr<Inode> dir;
  if (int err = dir_inode(parent, &dir); err != 0) return err;
  int err = 0;
  SharedFd dirfd = path_fd(dir, &err);
  if (!dirfd) return err;

  DirLock lock(*dir->dir, DirLock::kWrite);
  const bool casefold = casefolded(*dir);
  if (int e = check_name(name, casefold); e != 0) return e;
  std::string stored(name);
  bool exists = false;
  if (casefold) {
    err = resolve_locked(dir, dirfd->get(), name, &stored);
    if (err != 0 && err != ENOENT) return err;
    exists = err == 0;
    if (!exists) stored = std::string(name);
  }
  if (exists && (flags & O_EXCL)) return EEXIST;

  const int open_flags = (flags & ~kCreateOnlyFlags) | O_NOFOLLOW | O_CLOEXEC;
  UniqueFd fd;
  bool created = false;
  if (!exists) {
    fd.reset(::openat(dirfd->get(), stored.c_str(), open_flags | O_CREAT | O_EXCL, mode));
    created = fd.valid();
    if (!created && (errno != EEXIST || (flags & O_EXCL))) return errno;
  }
  if (!fd.valid()) {
    // O_CREAT without O_EXCL on an existing name opens it, whichever spelling was asked.
    fd.reset(::openat(dirfd->get(), stored.c_str(), open_flags));
    if (!fd.valid()) return errno;
  }
  if (created) {
    if (int e = give_to_caller(ctx, dirfd->get(), stored, mode, false); e != 0) return e;
    if (casefold) index_change(*dir, dirfd->get(), stored, {});
  }
  if (casefold) invalidate_if_other_spelling(*dir, name);
  if (int e = make_entry(*dir, dirfd->get(), stored, out); e != 0) return e;
  note_kernel_entry(*dir, name, false);
  *fh = to_fh(new OpenFile{std::move(fd)});
  return 0;
}

int Filesystem::file_fd(uint64_t fh) const { return as_file(fh)->fd.get(); }

int Filesystem::flush(uint64_t fh) {
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

int Filesystem::opendir(const Context&, uint64_t ino, uint64_t* fh) {
  std::shared_ptr<Inode> dir;
  if (int err = dir_inode(ino, &dir); err != 0) return err;
  const int fd = open_inode(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return -fd;
  auto* d = new OpenDir;
  d->stream = ::fdopendir(fd);
  if (!d->stream) {
    const int err = errno;
    ::close(fd);
    delete d;
    return err;
  }
  *fh = to_fh(d);
  return 0;
}

// Lists every backing name, equivalent spellings included: nothing in a directory with
// collisions is hidden.
int Filesystem::readdir(uint64_t fh, off_t offset, const DirEmit& emit) {
  OpenDir* d = as_dir(fh);
  if (offset != d->offset) {
    ::seekdir(d->stream, offset);
    d->pending = nullptr;
    d->offset = offset;
  }
  for (;;) {
    if (!d->pending) {
      errno = 0;
      d->pending = ::readdir(d->stream);
      if (!d->pending) return errno;
    }
    const uint64_t ino = d->pending->d_ino;  // the backing number, as getattr reports it
    const off_t next = d->pending->d_off;
    if (!emit(d->pending->d_name, ino, DTTOIF(d->pending->d_type), next)) return 0;
    d->pending = nullptr;
    d->offset = next;
  }
}

int Filesystem::releasedir(uint64_t fh) {
  delete as_dir(fh);
  return 0;
}

int Filesystem::fsyncdir(uint64_t fh, bool datasync) {
  const int fd = ::dirfd(as_dir(fh)->stream);
  return (datasync ? ::fdatasync(fd) : ::fsync(fd)) == 0 ? 0 : errno;
}

}  // namespace foldfs::fs
