#include "backing/dir_reader.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "backing/unique_fd.h"

namespace foldfs::backing {
namespace {

struct LinuxDirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

bool is_dot_or_dotdot(const char* name) {
  return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

}  // namespace

int scan_directory(int fd, off_t offset, const DirVisitor& visit, size_t chunk) {
  if (offset != 0 && ::lseek(fd, offset, SEEK_SET) < 0) return errno;
  alignas(8) char buf[32 * 1024];
  chunk = std::clamp<size_t>(chunk, 1024, sizeof(buf));
  for (;;) {
    const long n = ::syscall(SYS_getdents64, fd, buf, chunk);
    if (n < 0) return errno;
    if (n == 0) return 0;
    for (long pos = 0; pos < n;) {
      auto* d = reinterpret_cast<LinuxDirent64*>(buf + pos);
      if (!visit(d->d_name, d->d_ino, d->d_type, d->d_off)) return 0;
      pos += d->d_reclen;
    }
  }
}

int read_directory(int dirfd, std::vector<DirEntry>* out) {
  UniqueFd fd(::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return errno;
  return scan_directory(fd.get(), 0,
                        [out](const char* name, uint64_t ino, unsigned char type, off_t) {
                          if (!is_dot_or_dotdot(name)) out->push_back({name, ino, type});
                          return true;
                        });
}

}  // namespace foldfs::backing
