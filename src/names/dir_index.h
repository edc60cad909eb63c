// The per-directory name index of a casefolded directory: every stored name, found from any
// equivalent spelling in O(1) through the hash of its folded key.
//
// Coherence contract: the index describes the directory as of the last load() plus every
// insert()/erase() since. It does no I/O; the owner (src/fs) loads it from a full listing,
// applies each change it makes through the mount, and reloads it when the backing directory
// changed behind its back (its change time moved). While complete(), a name absent from the
// index is absent from the directory, so misses are answered without touching the backing fs.
//
// Memory: about 12 bytes per name plus the name (an open-addressing table of 8-byte slots at
// most 70% full, and the names in one arena); measured in bench/index_bench.cc.
//
// Not thread-safe: the owner serializes access (the directory's lock).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unicode/fold.h"

namespace foldfs::names {

struct FoldRules {
  unicode::Version version = unicode::Version::kUtf8_12_1;
  unicode::Strictness strictness = unicode::Strictness::kLenient;
};

class DirIndex {
 public:
  explicit DirIndex(FoldRules rules) : rules_(rules) {}

  // Replaces the content with a full listing and marks the index complete.
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
  // matches itself. Requires complete().
  std::optional<std::string> resolve(std::string_view name) const;

  // Every stored name equivalent to `name` (including itself if stored), sorted bytewise.
  std::vector<std::string> equivalents(std::string_view name) const;

  // Groups of two or more equivalent stored names, each sorted bytewise; groups sorted by
  // their first name.
  std::vector<std::vector<std::string>> collisions() const;

  size_t size() const { return size_; }
  size_t memory_bytes() const;  // heap held by the index

 private:
  // The key hash and, for refused names, a marker that the name only equals itself.
  struct KeyId {
    uint64_t hash;
    bool refused;
  };
  // Open addressing over 32 bits of the key hash; names live in one arena as
  // [length: uint16][bytes]. About 12 bytes per name plus the name itself.
  struct Slot {
    uint32_t offset_plus_one;  // 0: empty, ~0: erased
    uint32_t tag;              // low 32 bits of the key hash (the probe start)
  };
  KeyId key_id(std::string_view name) const;
  bool same_key(std::string_view a, std::string_view b) const;
  std::string_view name_at(uint32_t offset) const;
  long find_exact(std::string_view name, uint32_t tag) const;
  void rehash(size_t capacity);

  FoldRules rules_;
  bool complete_ = false;
  size_t size_ = 0;
  size_t tombstones_ = 0;
  size_t garbage_ = 0;  // arena bytes of erased names
  std::vector<Slot> slots_;  // power-of-two size
  std::vector<char> arena_;
};

}  // namespace foldfs::names
