// Reads the names of a backing directory (getdents64 on a fresh descriptor).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
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

// Reads the directory open for reading as `fd` from the position `offset` (0, or the d_off
// cookie of an entry already read), calling visit(name, d_ino, d_type, next_offset) for each
// entry, "." and ".." included, until it returns false or the directory ends. 0 or an errno.
using DirVisitor =
    std::function<bool(const char* name, uint64_t ino, unsigned char type, off_t next)>;
// `chunk` bounds each getdents64 read: about what the caller can take per call, so that little
// is read only to be thrown away.
int scan_directory(int fd, off_t offset, const DirVisitor& visit, size_t chunk = 32 * 1024);

}  // namespace foldfs::backing
