// One directory of a case-insensitive union of trees, merged from the directories of each tree
// that take part in it (issue 16; the rules are docs/union.md "Names across trees"). No I/O: the
// caller lists each part and says which entries are directories and whiteouts.
//
// The rules, for one folded key (names are one name exactly when their keys are equal):
//   - the highest tree that holds the key decides it: its names are listed (all of them: names
//     that collide inside one tree stay reachable by their exact spelling, as in a single-tree
//     mount); a whiteout there, and nothing else under the key, hides the key from every lower
//     tree and lists nothing;
//   - a lower tree's name under a decided key is hidden by the one the key resolves to in the
//     deciding tree (the exact spelling, else the bytewise smallest, as DirIndex::resolve);
//   - except that a directory merges with the lower tree's directory under the key, tree after
//     tree, until a tree holds a non-directory there (which it hides, and the merge stops) or a
//     merged part is opaque;
//   - an opaque part hides every part below it.
//
// Not thread-safe; a pure function of its arguments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "names/folded_name.h"

namespace foldfs::names {

enum class UnionKind : uint8_t { kOther, kDirectory, kWhiteout };

struct UnionPartEntry {
  std::string name;
  UnionKind kind = UnionKind::kOther;
  uint64_t ino = 0;        // as the tree's directory lists it (d_ino), carried to the listing
  unsigned char type = 0;  // its DT_ type, likewise
};

// The directory as one tree holds it. Parts are given highest tree first.
struct UnionPart {
  size_t tree = 0;  // the tree's rank: 0 is the highest (the upper tree, or the first lower)
  std::vector<UnionPartEntry> entries;
  bool opaque = false;  // hides every part below it
  // FoldedName::hash() of each entry, when hash_keys() filled it (else empty): folded where the
  // part was read, so that the listing only looks them up.
  std::vector<uint64_t> key_hashes;
};

// Fills part->key_hashes.
void hash_keys(UnionPart* part, FoldRules rules);

// A name in one tree.
struct UnionName {
  size_t tree = 0;
  std::string name;
  bool operator==(const UnionName&) const = default;
};

struct UnionEntry {
  std::string name;  // the spelling listed: the deciding tree's
  size_t tree = 0;   // the deciding tree
  bool directory = false;
  // A directory's parts, highest first, starting with {tree, name}: the next level's UnionParts.
  std::vector<UnionName> parts;
  // Lower trees' names under the same key that this entry hides (a directory's merged parts
  // are not hidden), in tree order.
  std::vector<UnionName> hidden;
  uint64_t ino = 0;        // the deciding tree's d_ino
  unsigned char type = 0;  // and DT_ type
};

struct UnionWhiteout {
  UnionName whiteout;
  std::vector<UnionName> hidden;  // the lower names it hides, in tree order
};

// Names of one tree's directory that fold alike (a collision inside that tree), sorted bytewise.
struct UnionCollision {
  size_t tree = 0;
  std::vector<std::string> names;
};

struct UnionDir {
  std::vector<UnionEntry> entries;         // sorted bytewise by name (unless asked otherwise)
  std::vector<UnionWhiteout> whiteouts;    // sorted bytewise by the whiteout's name
  std::vector<UnionCollision> collisions;  // in part order, then by first name
};

UnionDir merge_union_dir(const std::vector<UnionPart>& parts, FoldRules rules);

// What a listing of the merged directory shows, and only that: the entries merge_union_dir()
// gives (each as its deciding part holds it: name, kind, d_ino, type), in no particular order,
// moved out of `parts`. A readdir needs no more, and this takes one hash of each name (the
// parts' key_hashes where given) instead of a sort of them all; names are folded again only to
// tell apart two whose hashes are equal.
std::vector<UnionPartEntry> union_listing(std::vector<UnionPart>&& parts, FoldRules rules);
// The same, moving the listed names out of `parts` instead of copying them; with `sorted` false
// the entries come in no particular order (a listing to serve, where sorting would only cost).
UnionDir merge_union_dir(std::vector<UnionPart>&& parts, FoldRules rules, bool sorted = true);

}  // namespace foldfs::names
