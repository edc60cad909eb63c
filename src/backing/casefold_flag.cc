#include "backing/casefold_flag.h"

#include <errno.h>
#include <sys/xattr.h>

#include "backing/proc_path.h"

namespace foldfs::backing {

int read_casefold_flag(int fd, bool* set) {
  char value[8];
  const ssize_t n = ::getxattr(ProcPath(fd).c_str(), kCasefoldXattr, value, sizeof(value));
  if (n < 0) {
    *set = false;
    return (errno == ENODATA || errno == ENOTSUP) ? 0 : errno;
  }
  *set = n >= 1 && value[0] == '1';
  return 0;
}

int write_casefold_flag(int fd, bool set) {
  const ProcPath path(fd);
  if (set) return ::setxattr(path.c_str(), kCasefoldXattr, "1", 1, 0) == 0 ? 0 : errno;
  if (::removexattr(path.c_str(), kCasefoldXattr) == 0 || errno == ENODATA) return 0;
  return errno;
}

}  // namespace foldfs::backing
