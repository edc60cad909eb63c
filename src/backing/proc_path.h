// "/proc/self/fd/N" for a descriptor: how calls without an fd variant (getxattr on an O_PATH fd,
// chmod of an O_PATH fd) reach exactly the file the descriptor holds. The magic link resolves to
// that file itself, never to a symlink's target, so no backing symlink is followed.
#pragma once

#include <cstdio>

namespace foldfs::backing {

struct ProcPath {
  explicit ProcPath(int fd) { std::snprintf(path, sizeof(path), "/proc/self/fd/%d", fd); }
  const char* c_str() const { return path; }
  char path[32];
};

}  // namespace foldfs::backing
