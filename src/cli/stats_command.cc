#include "cli/stats_command.h"

#include <errno.h>
#include <sys/xattr.h>

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
  char buf[4096];
  const ssize_t n = ::getxattr(argv[1], fs::kStatsXattr, buf, sizeof(buf));
  if (n < 0) {
    std::fprintf(stderr, "foldfs: '%s' is not a foldfs mount point (or not readable by you): %s\n",
                 argv[1], std::strerror(errno));
    return 1;
  }
  std::fwrite(buf, 1, static_cast<size_t>(n), stdout);
  return 0;
}

}  // namespace foldfs::cli
