// The per-directory name index of a casefolded directory: every stored name, found from any
// equivalent spelling in O(1) through its folded key.
//
// Coherence contract: the index describes the directory as of the last load() plus every
// insert()/erase() since. It does no I/O; the owner (src/fs) loads it from a full listing,
// applies each change it makes through the mount, and reloads it when the backing directory
// changed behind its back (its change time moved). While complete(), a name absent from the
// index is absent from the directory, so misses are answered without touching the backing fs.
//
// Every operation costs O(1) (amortized) whatever the keys: names that share one key (a
// directory holding `a`, `A`, ... made on a case-sensitive filesystem, or 200,000 spellings of
// one name planted to stall the daemon) form one group, found through one slot, with its own
// table of exact names once it grows past a few members. Loading n names costs O(n).
//
// Memory: about 14–25 bytes per name plus the name (an open-addressing table of 8-byte slots at
// most 70% full, a 2-byte length before each name in one arena); groups of equal keys add a
// vector of members, and large groups a table of them. Measured in bench/index_bench.cc.
//
// Not thread-safe: the owner serializes access (the directory's lock).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "names/folded_name.h"

namespace foldfs::names {

class DirIndex {
 public:
  explicit DirIndex(FoldRules rules) : rules_(rules) {}

  // Replaces the content with a full listing (distinct names, as a directory holds them) and
  // marks the index complete.
  void load(const std::vector<std::string>& names);
  // Forgets everything; the index is incomplete until the next load().
  void clear();
  bool complete() const { return complete_; }

  // Record a change made through the mount. No-ops while incomplete.
  void insert(std::string_view name);
  void erase(std::string_view name);

  // The stored name `name` resolves to: itself when stored, else the bytewise smallest stored
  // equivalent (the documented rule for directories that hold several equivalent names).
  // nullopt when nothing matches. A name refused by the rules (strict, invalid UTF-8) only
  // matches itself. Requires complete(). Not const: it caches a group's smallest name. `name`
  // must be folded with this index's rules.
  std::optional<std::string> resolve(const FoldedName& name);
  std::optional<std::string> resolve(std::string_view name) {
    return resolve(FoldedName(name, rules_));
  }

  // Every stored name equivalent to `name` (including itself if stored), sorted bytewise.
  std::vector<std::string> equivalents(const FoldedName& name) const;
  // How many there are (no copies: a union asks on every lookup).
  size_t count_equivalents(const FoldedName& name) const;

  // Groups of two or more equivalent stored names, each sorted bytewise; groups sorted by
  // their first name.
  std::vector<std::vector<std::string>> collisions() const;

  size_t size() const { return size_; }
  size_t memory_bytes() const;  // heap held by the index

 private:
  // A slot of the key table: a name alone under its key (the arena offset of its record + 1),
  // or a group of names sharing the key (kGroupBit | group number). tag: the low 32 bits of the
  // key's hash, where probing starts.
  struct Slot {
    uint32_t ref;
    uint32_t tag;
  };
  // Names that share one key. `exact`: once the group is large, an open-addressing table of
  // member positions + 1 by a hash of the name's bytes, so that exact names are found, added
  // and removed in O(1).
  struct Group {
    std::vector<uint32_t> members;  // arena offsets
    uint32_t smallest = kUnknown;   // position in members of the bytewise smallest, or unknown
    std::vector<uint32_t> exact;
    size_t exact_used = 0;  // filled slots of `exact`, tombstones included
  };
  static constexpr uint32_t kEmpty = 0;
  static constexpr uint32_t kTombstone = ~0u;
  static constexpr uint32_t kGroupBit = 1u << 31;
  static constexpr uint32_t kUnknown = ~0u;
  static constexpr size_t kExactTableFrom = 8;  // members before a group gets its exact table

  // The key of `name` (its raw bytes when the rules refuse it: those then equal only
  // themselves) in `buf`, and its hash.
  std::string_view key_of(std::string_view name, unicode::KeyBuffer* buf) const;
  std::string_view name_at(uint32_t offset) const;
  // The slot of `key`, or -1.
  long find_slot(std::string_view key, uint32_t tag) const;
  // A member's position in group g holding exactly `name`, or -1.
  long find_member(const Group& g, std::string_view name) const;
  uint32_t append_name(std::string_view name);  // into the arena; returns the offset
  void put_slot(uint32_t ref, uint32_t tag);    // into a free slot (the table has room)
  void grow_if_needed();
  // Rebuilds the table with `capacity` slots and a compact arena.
  void rehash(size_t capacity);
  void add_member(uint32_t group, uint32_t offset);
  void remove_member(uint32_t group, size_t position);
  void rebuild_exact(Group& g) const;
  uint32_t new_group();
  std::string_view smallest_of(uint32_t group);

  FoldRules rules_;
  bool complete_ = false;
  size_t size_ = 0;
  size_t used_ = 0;          // filled slots, tombstones included
  size_t garbage_ = 0;       // arena bytes of erased names
  std::vector<Slot> slots_;  // power-of-two size
  std::vector<char> arena_;  // [length: uint16][bytes] per name
  std::vector<Group> groups_;
  std::vector<uint32_t> free_groups_;
};

}  // namespace foldfs::names
