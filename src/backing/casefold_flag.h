// Where the per-directory casefold flag lives in the backing tree.
//
// The flag is the extended attribute "trusted.foldfs.casefold" (value "1") on the backing
// directory. Why an xattr: it travels with the directory through renames done directly in the
// backing tree, survives unmount/remount and `cp -a`/`rsync -X` as root, and needs no side
// files that could be confused with user data. Why "trusted.": only root (CAP_SYS_ADMIN) can
// read or set it directly in the backing tree, so unprivileged users there cannot flip a
// directory's rules under a running mount. Through the mount the name is invisible: the
// filesystem hides and refuses every "trusted.foldfs." attribute.
#pragma once

#include <string_view>

namespace foldfs::backing {

inline constexpr const char* kCasefoldXattr = "trusted.foldfs.casefold";
inline constexpr std::string_view kReservedXattrPrefix = "trusted.foldfs.";

inline bool is_reserved_xattr(std::string_view name) {
  return name.substr(0, kReservedXattrPrefix.size()) == kReservedXattrPrefix;
}

// Reads the flag of the directory held by `fd` (O_PATH is fine). Returns 0 and sets *set, or
// an errno. A backing filesystem without xattr support reads as "not set".
int read_casefold_flag(int fd, bool* set);
// Sets or clears the flag. Returns 0 or an errno (ENOTSUP when the backing fs has no xattrs).
int write_casefold_flag(int fd, bool set);

}  // namespace foldfs::backing
