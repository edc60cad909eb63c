// One tree's directory read as a part of a merged directory of a union (names/union_dir.h): which
// of its entries are directories and which are overlayfs's whiteouts (backing/union_format.h), and
// whether the directory is opaque. Shared by `foldfs check` and the tests that compare the merge
// with kernel overlayfs; the union mount reads its parts the same way.
#pragma once

#include <cstddef>
#include <vector>

#include "backing/dir_reader.h"
#include "names/union_dir.h"

namespace foldfs::fs {

// `entries`: the directory `dirfd` as read_directory() listed it. An entry whose type the listing
// does not give (DT_UNKNOWN), or a character device, is looked at (never followed); one gone
// meanwhile counts as a plain name.
// The names are moved out of `entries`.
names::UnionPart union_part(int dirfd, size_t tree, std::vector<backing::DirEntry>&& entries);

}  // namespace foldfs::fs
