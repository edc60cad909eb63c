#include "fuse/mount_flags.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <string_view>

namespace foldfs::fuse {
namespace {

bool is_superblock_flag(std::string_view f) {
  return f == "sync" || f == "async" || f == "dirsync";
}

}  // namespace

std::string superblock_flag_options(const std::vector<std::string>& flags) {
  std::string out;
  for (const auto& f : flags) {
    if (is_superblock_flag(f)) out += "," + f;
  }
  return out;
}

int apply_mount_flags(const std::string& mountpoint, const std::vector<std::string>& flags,
                      std::string* error) {
  struct mount_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  bool any = false;
  auto set = [&](uint64_t bit, bool on) {
    attr.attr_set = on ? attr.attr_set | bit : attr.attr_set & ~bit;
    attr.attr_clr = on ? attr.attr_clr & ~bit : attr.attr_clr | bit;
    any = true;
  };
  auto atime = [&](uint64_t mode) {
    attr.attr_clr |= MOUNT_ATTR__ATIME;
    attr.attr_set = (attr.attr_set & ~MOUNT_ATTR__ATIME) | mode;
    any = true;
  };
  for (const auto& f : flags) {
    if (f == "suid" || f == "nosuid") set(MOUNT_ATTR_NOSUID, f == "nosuid");
    if (f == "dev" || f == "nodev") set(MOUNT_ATTR_NODEV, f == "nodev");
    if (f == "exec" || f == "noexec") set(MOUNT_ATTR_NOEXEC, f == "noexec");
    if (f == "diratime" || f == "nodiratime") set(MOUNT_ATTR_NODIRATIME, f == "nodiratime");
    if (f == "symfollow" || f == "nosymfollow") set(MOUNT_ATTR_NOSYMFOLLOW, f == "nosymfollow");
    if (f == "atime" || f == "relatime") atime(MOUNT_ATTR_RELATIME);
    if (f == "strictatime") atime(MOUNT_ATTR_STRICTATIME);
    if (f == "noatime") atime(MOUNT_ATTR_NOATIME);
  }
  if (!any) return 0;
  // AT_SYMLINK_NOFOLLOW: the mount point itself; resolving it asks the new filesystem nothing.
  if (::syscall(SYS_mount_setattr, AT_FDCWD, mountpoint.c_str(), AT_SYMLINK_NOFOLLOW, &attr,
                sizeof(attr)) == 0) {
    return 0;
  }
  const int err = errno;
  *error = "cannot set the mount's flags on '" + mountpoint + "': " + std::strerror(err);
  return err;
}

}  // namespace foldfs::fuse
