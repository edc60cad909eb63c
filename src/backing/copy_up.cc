#include "backing/copy_up.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string_view>
#include <vector>

#include "backing/dir_reader.h"
#include "backing/proc_path.h"
#include "backing/union_format.h"
#include "backing/unique_fd.h"

namespace foldfs::backing {
namespace {

constexpr size_t kChunk = size_t{1} << 20;

void at(const CopyUpHook& hook, const char* point) {
  if (hook) hook(point);
}

// --- Data ---

// [from, to) of `src` to the same place in `dst` by copy_file_range (in the kernel, a reflink
// where the filesystem shares extents), or by reads and writes where the two filesystems cannot
// (EXDEV and its kin). 0 or an errno.
int copy_range(int src, int dst, off_t from, off_t to, bool* use_read_write) {
  std::vector<char> buffer;
  while (from < to) {
    const size_t want = static_cast<size_t>(std::min<off_t>(to - from, kChunk));
    if (!*use_read_write) {
      off_t in = from;
      off_t out = from;
      const ssize_t n = ::copy_file_range(src, &in, dst, &out, want, 0);
      if (n > 0) {
        from += n;
        continue;
      }
      if (n == 0) return 0;  // the file got shorter meanwhile: copy what there is
      if (errno == EINTR) continue;
      if (errno != EXDEV && errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL) {
        return errno;
      }
      *use_read_write = true;
    }
    if (buffer.empty()) buffer.resize(kChunk);
    const ssize_t n = ::pread(src, buffer.data(), want, from);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return 0;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w =
          ::pwrite(dst, buffer.data() + done, static_cast<size_t>(n - done), from + done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return errno;
      done += w;
    }
    from += n;
  }
  return 0;
}

// The data of `src` (`size` bytes) into the empty `dst`, holes kept as holes: only the ranges
// SEEK_DATA finds are copied, and the size is set at the end.
int copy_data(int src, int dst, off_t size) {
  bool use_read_write = false;
  for (off_t pos = 0; pos < size;) {
    off_t data = ::lseek(src, pos, SEEK_DATA);
    off_t hole = size;
    if (data < 0 && errno == ENXIO) break;  // only a hole is left
    if (data < 0) {
      data = pos;  // a filesystem without SEEK_DATA: everything is data
    } else {
      hole = std::min<off_t>(size, std::max<off_t>(data, ::lseek(src, data, SEEK_HOLE)));
      if (hole <= data) hole = size;
    }
    if (const int err = copy_range(src, dst, data, hole, &use_read_write)) return err;
    pos = hole;
  }
  return ::ftruncate(dst, size) == 0 ? 0 : errno;
}

// --- Extended attributes ---

// Names of the attributes of the file `path` leads to, NUL-separated. `path` is "/proc/self/fd/N":
// the calls follow that magic link, which lands on the file the descriptor holds (a symlink
// itself, when it holds one) and goes no further.
int list_xattrs(const char* path, std::string* names) {
  for (;;) {
    const ssize_t need = ::listxattr(path, nullptr, 0);
    if (need < 0) return (errno == ENOTSUP) ? 0 : errno;
    names->resize(static_cast<size_t>(need));
    const ssize_t got = ::listxattr(path, names->data(), names->size());
    if (got >= 0) {
      names->resize(static_cast<size_t>(got));
      return 0;
    }
    if (errno != ERANGE) return errno;  // ERANGE: it grew meanwhile, ask again
  }
}

int read_xattr(const char* path, const char* name, std::string* value) {
  for (;;) {
    const ssize_t need = ::getxattr(path, name, nullptr, 0);
    if (need < 0) return errno;
    value->resize(static_cast<size_t>(need));
    const ssize_t got = ::getxattr(path, name, value->data(), value->size());
    if (got >= 0) {
      value->resize(static_cast<size_t>(got));
      return 0;
    }
    if (errno != ERANGE) return errno;
  }
}

template <typename Visit>
void each_name(const std::string& list, Visit visit) {
  for (size_t at = 0; at < list.size();) {
    const std::string_view name(list.c_str() + at);
    if (!name.empty()) visit(std::string(name));
    at += name.size() + 1;
  }
}

// Every attribute of `src` onto `dst` (both "/proc/self/fd/N"), overlayfs's own excepted; then
// the ACLs `dst` got from its new parent's default ACL and `src` does not have go again.
int copy_xattrs(const char* src, const char* dst) {
  std::string names;
  if (const int err = list_xattrs(src, &names)) return err;
  int result = 0;
  each_name(names, [&](const std::string& name) {
    if (result != 0 || is_overlay_xattr(name)) return;
    std::string value;
    const int err = read_xattr(src, name.c_str(), &value);
    if (err == ENODATA) return;  // removed meanwhile
    if (err != 0) {
      result = err;
      return;
    }
    if (::setxattr(dst, name.c_str(), value.data(), value.size(), 0) != 0) result = errno;
  });
  if (result != 0) return result == ENOTSUP ? EOPNOTSUPP : result;
  for (const char* acl : {"system.posix_acl_access", "system.posix_acl_default"}) {
    if (names.find(std::string(acl) + '\0') != std::string::npos) continue;
    if (::removexattr(dst, acl) != 0 && errno != ENODATA && errno != ENOTSUP &&
        errno != EOPNOTSUPP) {
      return errno;
    }
  }
  return 0;
}

// --- The copy of each kind ---

// Owner, extended attributes, mode (after the owner: chown clears setuid and setgid) and times
// (last: every step before changes them) of `dst`, held by the descriptor `fd` (O_PATH is fine),
// from `src_fd` whose stat is `st`.
int copy_metadata(int src_fd, int fd, const struct stat& st) {
  if (::fchownat(fd, "", st.st_uid, st.st_gid, AT_EMPTY_PATH) != 0) return errno;
  const ProcPath src(src_fd);
  const ProcPath dst(fd);
  if (const int err = copy_xattrs(src.c_str(), dst.c_str())) return err;
  // The first copy's origin is kept through copies of copies. Where the upper filesystem cannot
  // hold it (no trusted.* attributes on symlinks, on some filesystems), the copy shows its own
  // number: nothing else depends on it.
  std::string origin;
  if (read_xattr(src.c_str(), kOriginXattr, &origin) != 0) {
    origin = std::to_string(st.st_ino);
    ::setxattr(dst.c_str(), kOriginXattr, origin.data(), origin.size(), 0);
  }
  if (!S_ISLNK(st.st_mode) && ::chmod(dst.c_str(), st.st_mode & 07777) != 0) return errno;
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(fd, "", times, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return errno;
  return 0;
}

int sync_directory(int dir) {
  const UniqueFd fd(::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return errno;
  return ::fsync(fd.get()) == 0 ? 0 : errno;
}

// Where a regular file's copy is built before it gets its name: unnamed in the upper directory
// (O_TMPFILE), or where the upper filesystem has no unnamed files, under a name of its own in the
// work directory, removed again unless it was moved into place.
struct Scratch {
  UniqueFd fd;
  int work_dir = -1;
  std::string work_name;  // empty: unnamed
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    if (!work_name.empty()) ::unlinkat(work_dir, work_name.c_str(), 0);
  }
};

int make_scratch(int upper_dir, int work_dir, Scratch* s) {
  s->fd.reset(::openat(upper_dir, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (s->fd.valid()) return 0;
  if (errno != EISDIR && errno != ENOTSUP && errno != EOPNOTSUPP) return errno;
  if (work_dir < 0) return EOPNOTSUPP;
  static std::atomic<uint64_t> counter{0};
  for (int attempt = 0; attempt < 16; ++attempt) {
    const std::string name = std::string(kCopyUpWorkPrefix) + std::to_string(::getpid()) + "." +
                             std::to_string(counter++);
    s->fd.reset(
        ::openat(work_dir, name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (s->fd.valid()) {
      s->work_dir = work_dir;
      s->work_name = name;
      return 0;
    }
    if (errno != EEXIST) return errno;
  }
  return EEXIST;
}

// Gives the finished copy its name; fails on an existing name, never replaces it.
int place(Scratch* s, int upper_dir, const std::string& name) {
  if (s->work_name.empty()) {
    // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc link does the same without it.
    if (::linkat(s->fd.get(), "", upper_dir, name.c_str(), AT_EMPTY_PATH) == 0) return 0;
    if (errno != ENOENT && errno != EPERM) return errno;
    return ::linkat(AT_FDCWD, ProcPath(s->fd.get()).c_str(), upper_dir, name.c_str(),
                    AT_SYMLINK_FOLLOW) == 0
               ? 0
               : errno;
  }
  if (::renameat2(s->work_dir, s->work_name.c_str(), upper_dir, name.c_str(), RENAME_NOREPLACE) ==
      0) {
    s->work_name.clear();
    return 0;
  }
  if (errno != EINVAL && errno != ENOSYS) return errno;  // EEXIST; EXDEV: another filesystem
  // A filesystem without rename flags (a FUSE one may have none): a link fails on an existing
  // name too, and the work name goes with the Scratch.
  return ::linkat(s->work_dir, s->work_name.c_str(), upper_dir, name.c_str(), 0) == 0 ? 0 : errno;
}

int copy_regular(int src_path, const struct stat& st, int upper_dir, const std::string& name,
                 int work_dir, struct stat* out, const CopyUpHook& hook) {
  // The data through a descriptor opened from the one already checked: no name is resolved again.
  // O_NOATIME: copying up reads the lower file but is no access of it; its times stay.
  const UniqueFd src(::open(ProcPath(src_path).c_str(), O_RDONLY | O_CLOEXEC | O_NOATIME));
  if (!src.valid()) return errno;
  Scratch tmp;
  if (const int err = make_scratch(upper_dir, work_dir, &tmp)) return err;
  if (const int err = copy_data(src.get(), tmp.fd.get(), st.st_size)) return err;
  at(hook, "data-copied");
  if (const int err = copy_metadata(src_path, tmp.fd.get(), st)) return err;
  at(hook, "metadata-set");
  if (::fsync(tmp.fd.get()) != 0) return errno;
  at(hook, "synced");
  if (const int err = place(&tmp, upper_dir, name)) return err;
  at(hook, "linked");
  if (out != nullptr && ::fstat(tmp.fd.get(), out) != 0) return errno;
  return sync_directory(upper_dir);
}

// A node other than a regular file, made under `name` by one system call with no permission
// bits (whatever the umask): nobody but root can use it until its metadata is set.
int make_node(int src_path, const struct stat& st, int upper_dir, const std::string& name) {
  if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    const ssize_t n = ::readlinkat(src_path, "", target.data(), target.size());
    if (n < 0) return errno;
    if (static_cast<size_t>(n) >= target.size()) return EAGAIN;  // it changed meanwhile
    target.resize(static_cast<size_t>(n));
    return ::symlinkat(target.c_str(), upper_dir, name.c_str()) == 0 ? 0 : errno;
  }
  if (S_ISDIR(st.st_mode)) return ::mkdirat(upper_dir, name.c_str(), 0) == 0 ? 0 : errno;
  return ::mknodat(upper_dir, name.c_str(), st.st_mode & S_IFMT, st.st_rdev) == 0 ? 0 : errno;
}

// Whether `got` is what make_node made for `want`: whoever may write the upper directory could
// have put something else under the name meanwhile. Only a node of root's, of the same kind,
// without permission bits (a symlink: with a target of the same length), an empty directory, a
// device of the same number passes, and handing such a node to the copy's owner gives nobody
// more than the copy itself does.
bool is_what_was_made(const struct stat& got, const struct stat& want) {
  if ((got.st_mode & S_IFMT) != (want.st_mode & S_IFMT) || got.st_uid != ::geteuid()) return false;
  if (S_ISLNK(got.st_mode)) return got.st_size == want.st_size;
  if ((got.st_mode & 07777) != 0) return false;
  if (S_ISDIR(got.st_mode)) return got.st_nlink <= 2;
  return got.st_rdev == want.st_rdev;
}

int copy_other(int src_path, const struct stat& st, int upper_dir, const std::string& name,
               struct stat* out) {
  if (const int err = make_node(src_path, st, upper_dir, name)) return err;
  const UniqueFd made(::openat(upper_dir, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  struct stat made_st;
  if (!made.valid() || ::fstat(made.get(), &made_st) != 0) return errno;
  if (!is_what_was_made(made_st, st)) return EAGAIN;
  int err = copy_metadata(src_path, made.get(), st);
  if (err == 0 && out != nullptr && ::fstat(made.get(), out) != 0) err = errno;
  if (err == 0) return sync_directory(upper_dir);
  // Undone only while the name still holds the node made (ours, or what the check let through).
  struct stat now;
  if (::fstatat(upper_dir, name.c_str(), &now, AT_SYMLINK_NOFOLLOW) == 0 &&
      now.st_dev == made_st.st_dev && now.st_ino == made_st.st_ino) {
    ::unlinkat(upper_dir, name.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);
  }
  return err;
}

}  // namespace

int copy_up(int lower_dir, const std::string& lower_name, int upper_dir,
            const std::string& upper_name, struct stat* out, const CopyUpHook& hook, int work_dir) {
  if (lower_name.empty() || lower_name.find('/') != std::string::npos || upper_name.empty() ||
      upper_name.find('/') != std::string::npos || lower_name == "." || lower_name == ".." ||
      upper_name == "." || upper_name == "..") {
    return EINVAL;
  }
  // What is copied is what this descriptor holds from here on.
  const UniqueFd src(::openat(lower_dir, lower_name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!src.valid()) return errno;
  struct stat st;
  if (::fstat(src.get(), &st) != 0) return errno;
  if (S_ISREG(st.st_mode)) {
    return copy_regular(src.get(), st, upper_dir, upper_name, work_dir, out, hook);
  }
  return copy_other(src.get(), st, upper_dir, upper_name, out);
}

int clear_copy_up_leftovers(int work_dir) {
  std::vector<DirEntry> entries;
  if (int err = read_directory(work_dir, &entries); err != 0) return err;
  const std::string_view prefix(kCopyUpWorkPrefix);
  for (const DirEntry& e : entries) {
    if (e.name.compare(0, prefix.size(), prefix) != 0) continue;
    if (::unlinkat(work_dir, e.name.c_str(), 0) != 0 && errno != ENOENT) return errno;
  }
  return 0;
}

}  // namespace foldfs::backing
