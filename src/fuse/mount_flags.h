// Flags of the foldfs mount itself (dev, suid, exec, atime and friends): what `-o` asks for,
// applied by the kernel to the mount as for any filesystem.
//
// libfuse 3.14 turns some of them into mount(2) flags (and mounts nosuid,nodev unless told
// otherwise) and refuses the rest (relatime, strictatime, diratime, nodiratime, symfollow,
// nosymfollow). So the per-mount flags are applied with mount_setattr(2) once the mount exists,
// which every one of them supports; sync, async and dirsync are flags of the superblock and go to
// libfuse.
#pragma once

#include <string>
#include <vector>

namespace foldfs::fuse {

// The options to hand to libfuse's -o (superblock flags), from `flags` in order.
std::string superblock_flag_options(const std::vector<std::string>& flags);

// Applies the per-mount flags among `flags` (the later of two opposites wins) to the mount at
// `mountpoint`. 0, or an errno with a message in *error.
int apply_mount_flags(const std::string& mountpoint, const std::vector<std::string>& flags,
                      std::string* error);

}  // namespace foldfs::fuse
