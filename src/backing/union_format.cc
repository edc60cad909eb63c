#include "backing/union_format.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "backing/proc_path.h"

namespace foldfs::backing {

int make_whiteout(int dirfd, const std::string& name) {
  // mknodat never follows a symlink at `name` and fails on any existing entry.
  return ::mknodat(dirfd, name.c_str(), S_IFCHR | 0, makedev(0, 0)) == 0 ? 0 : errno;
}

// Through /proc/self/fd: the xattr calls take no O_PATH descriptor, and the magic link leads to
// exactly the directory `fd` holds (it is never resolved as a name in the tree).
bool is_opaque(int fd) {
  char value = 0;
  return ::getxattr(ProcPath(fd).c_str(), kOpaqueXattr, &value, 1) == 1 && value == 'y';
}

int make_opaque(int fd) {
  return ::setxattr(ProcPath(fd).c_str(), kOpaqueXattr, "y", 1, 0) == 0 ? 0 : errno;
}

}  // namespace foldfs::backing
