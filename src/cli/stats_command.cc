#include "cli/stats_command.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "fs/filesystem.h"

namespace foldfs::cli {

int run_stats_command(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: foldfs stats MOUNTPOINT\n");
    return 2;
  }
  // The ioctl, not the extended attribute: it works with xattr=nosys too.
  const int fd = ::open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  std::string text(fs::kStatsIoctlSize, '\0');
  const int err = fd < 0 ? errno : ::ioctl(fd, fs::kStatsIoctl, text.data()) != 0 ? errno : 0;
  if (fd >= 0) ::close(fd);
  if (err != 0) {
    std::fprintf(stderr, "foldfs: '%s' is not a foldfs mount point (or not readable by you): %s\n",
                 argv[1], err == ENOTTY ? "not a foldfs root" : std::strerror(err));
    return 1;
  }
  text.resize(std::strlen(text.c_str()));
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

}  // namespace foldfs::cli
