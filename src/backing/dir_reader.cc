#include "backing/dir_reader.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

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

int read_directory(int dirfd, std::vector<DirEntry>* out) {
  UniqueFd fd(::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return errno;
  alignas(8) char buf[64 * 1024];
  for (;;) {
    const long n = ::syscall(SYS_getdents64, fd.get(), buf, sizeof(buf));
    if (n < 0) return errno;
    if (n == 0) return 0;
    for (long pos = 0; pos < n;) {
      auto* d = reinterpret_cast<LinuxDirent64*>(buf + pos);
      if (!is_dot_or_dotdot(d->d_name)) out->push_back({d->d_name, d->d_ino, d->d_type});
      pos += d->d_reclen;
    }
  }
}

}  // namespace foldfs::backing
