#pragma once

namespace foldfs::cli {

// foldfs mount [-f] [-d] [-o OPT[,OPT...]] BACKING MOUNTPOINT   (argv[0] == "mount")
int run_mount_command(int argc, char** argv);

// mount(8) helper form: mount.fuse.foldfs BACKING MOUNTPOINT [-sfnv] [-o OPTS]
int run_mount_helper(int argc, char** argv);

}  // namespace foldfs::cli
