// Reads the names of a backing directory (getdents64 on a fresh descriptor).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace foldfs::backing {

struct DirEntry {
  std::string name;
  uint64_t ino;
  unsigned char type;  // DT_*
};

// Lists `dirfd` (any descriptor of a directory, O_PATH is fine), without "." and "..".
// Returns 0 or an errno.
int read_directory(int dirfd, std::vector<DirEntry>* out);

}  // namespace foldfs::backing
