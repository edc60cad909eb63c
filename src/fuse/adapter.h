// The thin libfuse adapter (adapter.cc) and the mount runner (session.cc).
#pragma once

#include <string>

#include "fs/operations.h"
#include "fs/options.h"
#include "fuse/kernel_notifier.h"

struct fuse_lowlevel_ops;

namespace foldfs::fuse {

const struct fuse_lowlevel_ops& lowlevel_ops();
void* make_userdata(fs::Operations* fs, EpochNotifier* notifier);
void free_userdata(void* userdata);
class BackingFiles;
// Opens of regular files are offered to the kernel's passthrough through `backing` (before the
// session runs; nullptr: never).
void set_backing_files(void* userdata, BackingFiles* backing);

struct MountRequest {
  std::string backing;     // as given by the user
  std::string mountpoint;  // as given by the user
  fs::Options options;
  bool foreground = false;
  bool debug = false;
};

// Mounts and serves until unmounted. Without `foreground`, returns in the parent (exit status
// 0) once the mount is ready and keeps serving in a daemon child. Returns the process exit
// status; on failure, *error says why.
int run_mount(const MountRequest& request, std::string* error);

}  // namespace foldfs::fuse
