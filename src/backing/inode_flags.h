// Inode flags of backing files (FS_IOC_GETFLAGS / FS_IOC_SETFLAGS): which of them foldfs may ask
// the backing filesystem to change.
//
// A request through the mount (chattr, or a program's raw FS_IOC_SETFLAGS) carries every flag.
// Only those a user may set with chattr(1) pass through: the kernel's FS_FL_USER_MODIFIABLE
// (0x000380FF: secure deletion, undelete, compression, sync, immutable, append-only, nodump,
// noatime, notail, dirsync, topdir) and those chattr has learned since (NOCOW 'C', project
// inheritance 'P', DAX 'x', data journalling 'j', no compression 'm'). Every other bit describes
// how the backing filesystem lays the file out or what state it is in — extents 'e', inline data
// 'N', hashed directory 'I', verity 'V', encryption 'E', EA inode, EOF blocks, dirty, compressed
// blocks — and is kept exactly as the backing filesystem has it, whatever the request says. A
// request that writes 0x40000000 alone (casefold, nothing else) thus never asks ext4 to drop
// FS_EXTENT_FL from a directory, which it refuses without CAP_SYS_RESOURCE (EPERM) and would
// otherwise try to carry out by converting the directory's block map. FS_CASEFOLD_FL is foldfs's
// own (backing/casefold_flag.h) and never reaches the backing filesystem.
#pragma once

#include <linux/fs.h>

#include <cstdint>

namespace foldfs::backing {

inline constexpr uint32_t kCasefoldFlag = FS_CASEFOLD_FL;
inline constexpr uint32_t kUserSettableFlags = FS_FL_USER_MODIFIABLE | FS_NOCOW_FL |
                                               FS_PROJINHERIT_FL | FS_DAX_FL | FS_JOURNAL_DATA_FL |
                                               FS_NOCOMP_FL;
static_assert((kUserSettableFlags & kCasefoldFlag) == 0);

// The flags to ask the backing filesystem for when a request says `requested` and the file has
// `current`: the requested user-settable flags, every other flag as it is. Never casefold.
inline uint32_t backing_flags_for(uint32_t requested, uint32_t current) {
  return ((requested & kUserSettableFlags) | (current & ~kUserSettableFlags)) & ~kCasefoldFlag;
}

// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS on `fd` (opened for reading). 0 or an errno.
int get_inode_flags(int fd, uint32_t* flags);
int set_inode_flags(int fd, uint32_t flags);

}  // namespace foldfs::backing
