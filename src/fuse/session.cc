// Mounting and serving: checks the request, opens the backing tree, mounts, daemonizes once the
// mount exists, and runs libfuse's multithreaded loop until the filesystem is unmounted.
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <memory>
#include <vector>

#include "fs/filesystem.h"
#include "fs/union_fs.h"
#include "fuse/adapter.h"
#include "fuse/mount_flags.h"
#include "fuse/passthrough.h"
#include "fuse/uring_transport.h"

namespace foldfs::fuse {
namespace {

std::string real_path(const std::string& path, int* err) {
  char buf[PATH_MAX];
  if (!::realpath(path.c_str(), buf)) {
    *err = errno;
    return {};
  }
  *err = 0;
  return buf;
}

bool is_same_or_inside(const std::string& inner, const std::string& outer) {
  if (inner == outer) return true;
  const std::string prefix = outer == "/" ? "/" : outer + "/";
  return inner.compare(0, prefix.size(), prefix) == 0;
}

// Escapes a value for libfuse's -o parser, where ',' separates options.
std::string escape_option_value(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == ',' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// The real path of the directory `given` (`what` names it in a message). "" with *error set when
// it cannot be resolved or is not a directory.
std::string real_directory(const std::string& given, const std::string& what, std::string* error) {
  int err = 0;
  std::string real = real_path(given, &err);
  struct stat st;
  if (err != 0) {
    *error = what + " '" + given + "': " + strerror(err);
  } else if (::stat(real.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *error = what + " '" + given + "' is not a directory";
  } else {
    return real;
  }
  return {};
}

// A union's trees: directories, none inside another (a tree's files would be reached through two
// trees, and its handles would name two files), the mount point inside none. Sets *trees to their
// real paths.
int check_union_request(const MountRequest& r, std::vector<std::string>* trees,
                        std::string* work_dir, std::string* error) {
  if (r.options.casefold_given) {
    *error = "casefold= does not apply to a union: every directory of a union is case-insensitive";
    return 1;
  }
  for (const std::string& given : r.options.lower_trees) {
    std::string tree = real_directory(given, "lowerdir: tree", error);
    if (tree.empty()) return 1;
    for (size_t k = 0; k < trees->size(); ++k) {
      if (is_same_or_inside(tree, (*trees)[k]) || is_same_or_inside((*trees)[k], tree)) {
        *error = "lowerdir: '" + given + "' and '" + r.options.lower_trees[k] +
                 "' are the same tree or one is inside the other";
        return 1;
      }
    }
    trees->push_back(std::move(tree));
  }
  std::vector<std::string> given = r.options.lower_trees;
  if (!r.options.upper_tree.empty()) {
    std::string upper = real_directory(r.options.upper_tree, "upperdir", error);
    if (upper.empty()) return 1;
    for (size_t k = 0; k < trees->size(); ++k) {
      if (is_same_or_inside(upper, (*trees)[k]) || is_same_or_inside((*trees)[k], upper)) {
        *error = "upperdir '" + r.options.upper_tree + "' and lowerdir '" + given[k] +
                 "' are the same tree or one is inside the other";
        return 1;
      }
    }
    trees->insert(trees->begin(), std::move(upper));
    given.insert(given.begin(), r.options.upper_tree);
  }
  const std::string mnt = real_directory(r.mountpoint, "mount point", error);
  if (mnt.empty()) return 1;
  for (size_t k = 0; k < trees->size(); ++k) {
    if (is_same_or_inside(mnt, (*trees)[k])) {
      *error = "mount point '" + r.mountpoint + "' is inside the tree '" + given[k] +
               "': the mount would hide its own files";
      return 1;
    }
  }
  if (!r.options.work_dir.empty()) {
    const std::string work = real_directory(r.options.work_dir, "workdir", error);
    if (work.empty()) return 1;
    struct stat w, u;
    if (::stat(work.c_str(), &w) != 0 || ::stat(trees->front().c_str(), &u) != 0 ||
        w.st_dev != u.st_dev) {
      *error = "workdir '" + r.options.work_dir + "' is not on the filesystem of upperdir '" +
               r.options.upper_tree + "'";
      return 1;
    }
    for (size_t k = 0; k < trees->size(); ++k) {
      if (is_same_or_inside(work, (*trees)[k]) || is_same_or_inside((*trees)[k], work) ||
          is_same_or_inside(mnt, work)) {
        *error = "workdir '" + r.options.work_dir + "' must be outside every tree and the mount";
        return 1;
      }
    }
    *work_dir = work;
  }
  return 0;
}

int check_request(const MountRequest& r, std::string* backing, std::string* error) {
  *backing = real_directory(r.backing, "backing directory", error);
  if (backing->empty()) return 1;
  const std::string mnt = real_directory(r.mountpoint, "mount point", error);
  if (mnt.empty()) return 1;
  if (is_same_or_inside(mnt, *backing)) {
    *error = "mount point '" + r.mountpoint + "' is inside the backing directory '" + r.backing +
             "': the mount would hide its own backing files";
    return 1;
  }
  struct stat st;
  if (!r.options.device.empty() &&
      (::stat(r.options.device.c_str(), &st) != 0 || !S_ISBLK(st.st_mode))) {
    *error = "device=" + r.options.device + ": not a block device";
    return 1;
  }
  return 0;
}

// Sets *use_uring: whether to hook the io_uring transport in. 1 with *error when uring=on
// cannot be had, else 0.
int choose_transport(const fs::Options& options, bool* use_uring, std::string* error) {
  std::string detail;
  *use_uring = options.uring != fs::Uring::kOff && UringTransport::kernel_enabled(&detail);
  if (*use_uring || options.uring != fs::Uring::kOn) return 0;
  *error = "uring=on, but the kernel's FUSE over io_uring is off (" + detail +
           "): as root, echo Y > /sys/module/fuse/parameters/enable_uring, or mount with "
           "uring=auto";
  return 1;
}

}  // namespace

int run_mount(const MountRequest& request, std::string* error) {
  const bool is_union = !request.options.lower_trees.empty();
  if (!is_union && (!request.options.upper_tree.empty() || !request.options.work_dir.empty())) {
    *error = "upperdir= and workdir= need lowerdir= (the trees below the writable one)";
    return 1;
  }
  if (!request.options.work_dir.empty() && request.options.upper_tree.empty()) {
    *error = "workdir= needs upperdir=";
    return 1;
  }
  std::string backing;
  std::vector<std::string> trees;
  std::string work_dir;
  if (int status = is_union ? check_union_request(request, &trees, &work_dir, error)
                            : check_request(request, &backing, error);
      status != 0) {
    return status;
  }
  const bool writable_union = is_union && !request.options.upper_tree.empty();
  bool uring = false;
  if (int status = choose_transport(request.options, &uring, error); status != 0) return status;

  // Modes come from the kernel with the caller's umask already applied.
  ::umask(0);
  std::unique_ptr<fs::Operations> filesystem;
  if (is_union) {
    // Without upperdir=, read-only: the kernel refuses every change with EROFS before asking.
    fs::Options options = request.options;
    options.work_dir = work_dir;
    filesystem = fs::UnionFilesystem::open(trees, options, error);
    if (!filesystem) return 1;
    backing = request.backing;  // the source shown by mount(8), as overlayfs shows its own
  } else {
    int err = 0;
    filesystem = fs::Filesystem::open(backing, request.options, &err);
    if (!filesystem) {
      *error = "cannot open backing directory '" + request.backing + "': " + strerror(err);
      return 1;
    }
  }
  EpochNotifier notifier;
  filesystem->set_notifier(&notifier);

  // With device=, the kernel mounts a fuseblk superblock on that device (it holds the device
  // exclusively while mounted; nothing reads or writes it) and shows it as the source.
  std::string opts = request.options.device.empty()
                         ? "fsname=" + escape_option_value(backing)
                         : "blkdev,fsname=" + escape_option_value(request.options.device);
  opts += ",subtype=foldfs,default_permissions";
  if (request.options.allow_other) opts += ",allow_other";
  if (request.options.read_only || (is_union && !writable_union)) opts += ",ro";
  opts += superblock_flag_options(request.options.mount_flags);
  std::vector<std::string> argv_storage = {"foldfs", "-o", opts};
  if (request.debug) argv_storage.push_back("-d");
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());

  void* userdata = make_userdata(filesystem.get(), &notifier);
  struct fuse_session* se =
      fuse_session_new(&args, &lowlevel_ops(), sizeof(struct fuse_lowlevel_ops), userdata);
  if (!se) {
    free_userdata(userdata);
    *error = "cannot create FUSE session";
    return 1;
  }
  notifier.set_session(se);
  int status = 1;
  if (fuse_set_signal_handlers(se) != 0) {
    *error = "cannot install signal handlers";
  } else {
    if (fuse_session_mount(se, request.mountpoint.c_str()) != 0) {
      *error = "cannot mount on '" + request.mountpoint + "'";
    } else if (apply_mount_flags(request.mountpoint, request.options.mount_flags, error) != 0) {
      fuse_session_unmount(se);  // a mount without the flags asked for is no mount
    } else {
      if (!request.foreground) fuse_daemonize(0);
      // After daemonizing: the ring's threads start here and must live in the serving process.
      UringTransport transport;
      const bool passthrough = request.options.passthrough == fs::Passthrough::kAuto;
      BackingFiles backing(fuse_session_fd(se),
                           [&transport] { return transport.passthrough_granted(); });
      // Always hooked: the INIT reply takes on dropping setuid/setgid bits in every mode (see
      // UringTransport::patch_init_killpriv), and asks for passthrough and the ring where wanted.
      if (transport.install(se, uring, passthrough) == 0) {
        if (passthrough) set_backing_files(userdata, &backing);
        filesystem->set_transport_stats([&transport, &backing, passthrough] {
          return transport.stats_text() + (passthrough ? backing.stats_text() : "passthrough 0\n") +
                 "killpriv " + (transport.killpriv_granted() ? "1" : "0") + "\n";
        });
      }
      filesystem->start_services();
      struct fuse_loop_config* config = fuse_loop_cfg_create();
      fuse_loop_cfg_set_clone_fd(config, 1);
      fuse_loop_cfg_set_max_threads(config, 16);
      status = fuse_session_loop_mt(se, config) == 0 ? 0 : 1;
      fuse_loop_cfg_destroy(config);
      // The watcher's thread writes invalidations to the session, the ring's threads serve it:
      // both stop before the session goes.
      filesystem->stop_services();
      transport.stop();
      filesystem->set_transport_stats(nullptr);
      set_backing_files(userdata, nullptr);
      notifier.set_session(nullptr);
      fuse_session_unmount(se);
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_session_destroy(se);
  free_userdata(userdata);
  fuse_opt_free_args(&args);
  return status;
}

}  // namespace foldfs::fuse
