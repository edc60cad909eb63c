// The on-disk marks of a union's upper tree (issue 16, docs/union.md "Writes go to the upper tree
// only"): overlayfs's own format, so that the same upper tree can later be used by kernel
// overlayfs.
//   - a whiteout (a lower name removed through the union) is a character device 0/0 under the
//     removed name's spelling;
//   - an opaque directory (one that hides every lower directory merged with it) carries the
//     extended attribute trusted.overlay.opaque = "y".
// Both are read and written by descriptor of the directory that holds them, never by a path, and
// a whiteout is made by a call that fails on an existing name: nothing is followed or replaced.
// Making them needs root (mknod of a device: CAP_MKNOD; trusted.*: CAP_SYS_ADMIN).
#pragma once

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <string>
#include <string_view>

namespace foldfs::backing {

inline constexpr const char* kOpaqueXattr = "trusted.overlay.opaque";
// Overlayfs keeps what it knows about a file's layers under this prefix (opaque, redirect,
// origin, ...): it describes a tree's place in a union, not the file, so copy-up never copies it.
inline constexpr std::string_view kOverlayXattrPrefix = "trusted.overlay.";

inline bool is_overlay_xattr(std::string_view name) {
  return name.substr(0, kOverlayXattrPrefix.size()) == kOverlayXattrPrefix;
}

// The inode number of the file a copy was first made from (decimal), set on every copy (kept
// from the lower file where it is itself a copy): a union shows it as the copy's st_ino, so a
// file keeps its number when it is copied up, as overlayfs keeps it. Programs that tell files
// apart by (st_dev, st_ino), as Wine's server does, see the same file before and after.
inline constexpr const char* kOriginXattr = "trusted.foldfs.origin";

// The attributes that describe a file's place in a union (overlayfs's, and the origin): a union
// hides them, and they cannot be set through it.
inline bool is_union_xattr(std::string_view name) {
  return is_overlay_xattr(name) || name == kOriginXattr;
}

inline bool is_whiteout(const struct stat& st) {
  return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

// Makes a whiteout `name` in the directory `dirfd` (any descriptor of it, O_PATH is fine).
// 0 or an errno: EEXIST when the name exists (whatever it is; nothing is replaced).
int make_whiteout(int dirfd, const std::string& name);

// Whether the directory held by `fd` is opaque. A filesystem without extended attributes, or a
// directory without the attribute, is not. `fd` may be an O_PATH descriptor.
bool is_opaque(int fd);
// Makes the directory held by `fd` opaque. 0 or an errno.
int make_opaque(int fd);

}  // namespace foldfs::backing
