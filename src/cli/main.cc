// The foldfs command: dispatches to the subcommands.
#include <libgen.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "cli/check_command.h"
#include "cli/fold_command.h"
#include "cli/mount_command.h"
#include "cli/stats_command.h"

namespace {

void usage(FILE* out) {
  std::fputs(
      "usage: foldfs mount [-f] [-d] [-o OPT[,OPT...]] BACKING MOUNTPOINT\n"
      "       foldfs check [--casefold=all] BACKING\n"
      "       foldfs check --lowerdir=TOP:...:BOTTOM [--upperdir=DIR]\n"
      "       foldfs fold [--strict] [--hex] [NAME...]\n"
      "       foldfs stats MOUNTPOINT\n"
      "       foldfs --help | --version\n"
      "\n"
      "mount options: casefold=flag|all, strict, allow_other, ro,\n"
      "               entry_timeout=S, attr_timeout=S, negative_timeout=S,\n"
      "               outside=watch|revalidate, uring=auto|on|off,\n"
      "               xattr=passthrough|nosys, passthrough=auto|off, fd_cache=N|auto,\n"
      "               device=PATH,\n"
      "               and the mount's flags: [no]suid, [no]dev, [no]exec, atime, noatime,\n"
      "               relatime, strictatime, [no]diratime, [no]symfollow, sync, async, dirsync\n"
      "               (README.md has each one)\n"
      "unmount with: umount MOUNTPOINT  (or fusermount3 -u MOUNTPOINT)\n",
      out);
}

bool invoked_as_mount_helper(const char* argv0) {
  std::string copy(argv0);
  const char* base = ::basename(copy.data());
  return std::strncmp(base, "mount.fuse.foldfs", 17) == 0 ||
         std::strncmp(base, "mount.foldfs", 12) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 1 && invoked_as_mount_helper(argv[0])) {
    return foldfs::cli::run_mount_helper(argc, argv);
  }
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const std::string command = argv[1];
  if (command == "mount") return foldfs::cli::run_mount_command(argc - 1, argv + 1);
  if (command == "check") return foldfs::cli::run_check_command(argc - 1, argv + 1);
  if (command == "fold") return run_fold_command(argc - 1, argv + 1);
  if (command == "stats") return foldfs::cli::run_stats_command(argc - 1, argv + 1);
  if (command == "--help" || command == "-h" || command == "help") {
    usage(stdout);
    return 0;
  }
  if (command == "--version") {
    std::puts("foldfs " FOLDFS_VERSION);
    return 0;
  }
  std::fprintf(stderr, "foldfs: unknown command '%s'\n", command.c_str());
  usage(stderr);
  return 2;
}
