// Shared pieces of the filesystem-core fuzz targets (fs_ops_fuzz, fs_ioctl_fuzz): a reader over
// the fuzzer's bytes, a fresh backing directory per input, and failure reporting.
#pragma once

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace foldfs::fuzz {

// Reads the input front to back; past the end every read is 0, so any prefix of an input is
// itself a meaningful input.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(u8()) << (8 * i);
    return v;
  }
  void bytes(void* out, size_t n) {
    auto* p = static_cast<uint8_t*>(out);
    for (size_t i = 0; i < n; ++i) p[i] = u8();
  }
  size_t pos() const { return pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

inline void remove_current_scratch();

// Prints what went wrong (with the trace of the operations so far, when given) and aborts, so
// that libFuzzer saves the input as a crash. The input's backing directory is removed first,
// unless $FOLDFS_FUZZ_KEEP is set (then its path is printed).
[[noreturn]] inline void fail(const std::string& trace, const char* fmt, ...) {
  remove_current_scratch();
  std::fprintf(stderr, "\n=== fuzz check failed ===\n");
  if (!trace.empty()) std::fprintf(stderr, "operations:\n%s", trace.c_str());
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
  std::abort();
}

// Where per-input backing directories live: $FOLDFS_FUZZ_DIR, else /dev/shm (a tmpfs: fast,
// and it keeps trusted.* xattrs as root), else /tmp. Chosen once per process.
inline const std::string& scratch_base() {
  static const std::string base = [] {
    auto usable = [](const std::string& dir) {
      std::string probe = dir + "/foldfs-fuzz-probe.XXXXXX";
      if (!::mkdtemp(probe.data())) return false;
      const bool ok = ::setxattr(probe.c_str(), "trusted.foldfs.probe", "1", 1, 0) == 0;
      ::rmdir(probe.c_str());
      return ok;
    };
    if (const char* env = std::getenv("FOLDFS_FUZZ_DIR"); env && *env) return std::string(env);
    if (usable("/dev/shm")) return std::string("/dev/shm");
    return std::string("/tmp");
  }();
  return base;
}

// Clears inode flags (immutable, append-only) that would keep a file from being removed.
inline void clear_inode_flags(int dirfd, const char* name, bool is_dir) {
  const int fd =
      ::openat(dirfd, name,
               (is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK) | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  int flags = 0;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 &&
      (flags & (FS_IMMUTABLE_FL | FS_APPEND_FL)) != 0) {
    flags &= ~(FS_IMMUTABLE_FL | FS_APPEND_FL);
    ::ioctl(fd, FS_IOC_SETFLAGS, &flags);
  }
  ::close(fd);
}

// Removes everything inside the directory `dirfd` (flags cleared first).
inline void remove_contents(int dirfd) {
  const int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return;
  }
  std::vector<std::pair<std::string, bool>> names;
  while (struct dirent* e = ::readdir(d)) {
    const std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    names.emplace_back(n, e->d_type == DT_DIR);
  }
  ::closedir(d);
  for (const auto& [name, is_dir] : names) {
    clear_inode_flags(dirfd, name.c_str(), is_dir);
    if (is_dir) {
      const int sub =
          ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) {
        remove_contents(sub);
        ::close(sub);
      }
    }
    ::unlinkat(dirfd, name.c_str(), is_dir ? AT_REMOVEDIR : 0);
  }
}

// A fresh, empty backing directory for one input; removed (whatever the input did to it) when
// the object goes, or when a check fails.
class ScratchDir {
 public:
  ScratchDir() {
    path_ = scratch_base() + "/foldfs-fuzz.XXXXXX";
    if (!::mkdtemp(path_.data())) {
      fail("", "cannot create a scratch directory under %s: %s", scratch_base().c_str(),
           std::strerror(errno));
    }
    current() = this;
  }
  ~ScratchDir() {
    current() = nullptr;
    remove();
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

  static ScratchDir*& current() {
    static ScratchDir* dir = nullptr;
    return dir;
  }
  void remove() {
    const int parent = ::open(scratch_base().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const std::string leaf = path_.substr(path_.rfind('/') + 1);
    clear_inode_flags(parent, leaf.c_str(), true);
    const int fd = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      remove_contents(fd);
      ::close(fd);
    }
    ::rmdir(path_.c_str());
    ::close(parent);
  }

 private:
  std::string path_;
};

inline void remove_current_scratch() {
  ScratchDir* dir = ScratchDir::current();
  if (!dir) return;
  if (std::getenv("FOLDFS_FUZZ_KEEP")) {
    std::fprintf(stderr, "backing directory kept: %s\n", dir->path().c_str());
    return;
  }
  ScratchDir::current() = nullptr;
  dir->remove();
}

// A readable rendering of a name for failure messages: printable ASCII as is, the rest as \xNN.
inline std::string show(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + "\"";
}

inline std::string errname(int err) {
  if (err == 0) return "0";
  const char* n = strerrorname_np(err);
  return n ? n : std::to_string(err);
}

}  // namespace foldfs::fuzz
