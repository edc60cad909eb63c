#include "fs/union_parts.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "backing/union_format.h"

namespace foldfs::fs {
namespace {

names::UnionKind kind_of(int dirfd, const backing::DirEntry& e) {
  if (e.type == DT_DIR) return names::UnionKind::kDirectory;
  if (e.type != DT_CHR && e.type != DT_UNKNOWN) return names::UnionKind::kOther;
  struct stat st;
  if (::fstatat(dirfd, e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return names::UnionKind::kOther;
  }
  if (S_ISDIR(st.st_mode)) return names::UnionKind::kDirectory;
  if (backing::is_whiteout(st)) return names::UnionKind::kWhiteout;
  return names::UnionKind::kOther;
}

}  // namespace

names::UnionPart union_part(int dirfd, size_t tree, std::vector<backing::DirEntry>&& entries) {
  names::UnionPart part;
  part.tree = tree;
  part.entries.reserve(entries.size());
  for (auto& e : entries) {
    const names::UnionKind kind = kind_of(dirfd, e);
    part.entries.push_back({std::move(e.name), kind, e.ino, e.type});
  }
  part.opaque = backing::is_opaque(dirfd);
  return part;
}

}  // namespace foldfs::fs
