#include "cli/mount_command.h"

#include <sys/resource.h>

#include <cstdio>
#include <string>
#include <vector>

#include "fs/options.h"
#include "fuse/adapter.h"

namespace foldfs::cli {
namespace {

constexpr const char* kUsage =
    "usage: foldfs mount [-f] [-d] [-o OPT[,OPT...]] BACKING MOUNTPOINT\n";

int fail(const std::string& message) {
  std::fprintf(stderr, "foldfs: %s\n", message.c_str());
  return 1;
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "foldfs: %s\n%s", message.c_str(), kUsage);
  return 2;
}

// The daemon keeps descriptors for the files the kernel uses (fs::Options::fd_cache_capacity,
// sized from this limit): the soft limit, often 1,024, is raised to the hard one, as a daemon that
// never uses select() may.
void raise_open_file_limit() {
  struct rlimit limit;
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
}

int mount_with(fuse::MountRequest& request, const std::vector<std::string>& option_lists) {
  for (const auto& list : option_lists) {
    std::string error;
    if (!fs::parse_mount_options(list, &request.options, &error)) return fail(error);
  }
  raise_open_file_limit();
  std::string error;
  const int status = fuse::run_mount(request, &error);
  if (status != 0 && !error.empty()) return fail(error);
  return status;
}

}  // namespace

int run_mount_command(int argc, char** argv) {
  fuse::MountRequest request;
  std::vector<std::string> option_lists;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-f") {
      request.foreground = true;
    } else if (arg == "-d") {
      request.debug = true;
      request.foreground = true;
    } else if (arg == "-o") {
      if (i + 1 >= argc) return usage_error("-o needs an option list");
      option_lists.push_back(argv[++i]);
    } else if (arg.size() > 2 && arg.compare(0, 2, "-o") == 0) {
      option_lists.push_back(arg.substr(2));
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg.size() > 1 && arg[0] == '-') {
      return usage_error("unknown flag '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) return usage_error("need BACKING and MOUNTPOINT");
  request.backing = positional[0];
  request.mountpoint = positional[1];
  return mount_with(request, option_lists);
}

int run_mount_helper(int argc, char** argv) {
  fuse::MountRequest request;
  std::vector<std::string> option_lists;
  std::vector<std::string> positional;
  bool fake = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-o") {
      if (i + 1 >= argc) return usage_error("-o needs an option list");
      option_lists.push_back(argv[++i]);
    } else if (arg.size() > 2 && arg.compare(0, 2, "-o") == 0) {
      option_lists.push_back(arg.substr(2));
    } else if (arg == "-f") {
      fake = true;  // mount(8): pretend, do not mount
    } else if (arg == "-n" || arg == "-s" || arg == "-v") {
      // no mtab / sloppy / verbose: nothing to do for a FUSE mount
    } else if (arg.size() > 1 && arg[0] == '-') {
      return usage_error("unknown flag '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) return usage_error("need BACKING and MOUNTPOINT");
  if (fake) return 0;
  request.backing = positional[0];
  request.mountpoint = positional[1];
  return mount_with(request, option_lists);
}

}  // namespace foldfs::cli
