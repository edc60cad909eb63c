#include "backing/inode_flags.h"

#include <errno.h>
#include <sys/ioctl.h>

namespace foldfs::backing {

int get_inode_flags(int fd, uint32_t* flags) {
  int value = 0;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &value) != 0) return errno;
  *flags = static_cast<uint32_t>(value);
  return 0;
}

int set_inode_flags(int fd, uint32_t flags) {
  int value = static_cast<int>(flags);
  return ::ioctl(fd, FS_IOC_SETFLAGS, &value) == 0 ? 0 : errno;
}

}  // namespace foldfs::backing
