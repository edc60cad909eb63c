#include "names/union_dir.h"

#include <algorithm>
#include <numeric>
#include <string_view>

namespace foldfs::names {
namespace {

using Group = std::vector<const UnionPartEntry*>;

// One entry of one part with its key folded once: the key's bytes are in the merge's arena (one
// string; offsets, so that it may grow). Small, as the sort moves these around.
struct Keyed {
  uint64_t hash = 0;
  uint32_t key_at = 0;
  uint32_t key_size = 0;
  uint32_t part = 0;   // index into the parts given
  uint32_t index = 0;  // into that part's entries
};

// The folded keys of every entry that counts, and how to compare them.
class Keys {
 public:
  Keys(const std::vector<UnionPart>& parts, FoldRules rules) : parts_(parts) {
    size_t count = 0;
    size_t bytes = 0;
    for (const UnionPart& p : parts) {
      for (const UnionPartEntry& e : p.entries) bytes += e.name.size();
      count += p.entries.size();
      if (p.opaque) break;
    }
    all_.reserve(count);
    arena_.reserve(bytes + bytes / 8);  // an ASCII key is as long as its name
    for (uint32_t p = 0; p < parts.size(); ++p) {
      const std::vector<UnionPartEntry>& entries = parts[p].entries;
      for (uint32_t i = 0; i < entries.size(); ++i) {
        const FoldedName folded(entries[i].name, rules);
        all_.push_back(Keyed{folded.hash(), static_cast<uint32_t>(arena_.size()),
                             static_cast<uint32_t>(folded.key().size()), p, i});
        arena_.append(folded.key());
      }
      if (parts[p].opaque) break;
    }
  }

  // Sorted so that each key is one run, its parts in order within it, each part's names
  // bytewise: the merge then visits each key once, with no map from keys to what was decided.
  void sort() {
    std::sort(all_.begin(), all_.end(), [this](const Keyed& a, const Keyed& b) {
      if (a.hash != b.hash) return a.hash < b.hash;
      if (const int c = key(a).compare(key(b)); c != 0) return c < 0;
      if (a.part != b.part) return a.part < b.part;
      return entry(a).name < entry(b).name;
    });
  }

  const std::vector<Keyed>& all() const { return all_; }
  bool same_key(const Keyed& a, const Keyed& b) const {
    return a.hash == b.hash && key(a) == key(b);
  }
  const UnionPartEntry& entry(const Keyed& k) const { return parts_[k.part].entries[k.index]; }

 private:
  std::string_view key(const Keyed& k) const {
    return std::string_view(arena_).substr(k.key_at, k.key_size);
  }

  const std::vector<UnionPart>& parts_;
  std::vector<Keyed> all_;
  std::string arena_;
};

// What `spelling` resolves to among a tree's equivalent names (sorted): itself, else the
// bytewise smallest, as DirIndex::resolve.
const UnionPartEntry* resolve_in(const Group& names, std::string_view spelling) {
  for (const UnionPartEntry* e : names) {
    if (e->name == spelling) return e;
  }
  return names.front();
}

// How a key stands once a higher tree decided it.
struct Decision {
  bool decided = false;
  bool whiteout = false;
  size_t index = 0;      // into UnionDir::entries (the resolving entry) or ::whiteouts
  bool merging = false;  // a directory that still merges with lower trees' directories
};

// The merge of one key: `group` holds one part's names of it (sorted), parts visited in order.
class KeyMerge {
 public:
  // `may_move`: the names of the parts may be moved out (each entry is visited once).
  KeyMerge(UnionDir* out, std::vector<size_t>* collision_parts, bool may_move)
      : out_(out), collision_parts_(collision_parts), may_move_(may_move) {}

  void next_key() { d_ = Decision{}; }

  void part(const UnionPart& part, size_t part_index, const Group& group) {
    names_.clear();  // the group without whiteouts: a name beside a whiteout wins over it
    const UnionPartEntry* whiteout = nullptr;
    for (const UnionPartEntry* e : group) {
      if (e->kind != UnionKind::kWhiteout)
        names_.push_back(e);
      else if (!whiteout)
        whiteout = e;
    }
    if (names_.size() > 1) {
      UnionCollision c{part.tree, {}};
      for (const UnionPartEntry* e : names_) c.names.push_back(e->name);
      out_->collisions.push_back(std::move(c));
      collision_parts_->push_back(part_index);
    }
    if (!d_.decided) {
      decide(part, whiteout);
    } else if (names_.empty()) {  // a lower whiteout: nothing of the key below it merges
      d_.merging = false;
    } else if (d_.whiteout) {
      for (const UnionPartEntry* e : names_) {
        out_->whiteouts[d_.index].hidden.push_back({part.tree, e->name});
      }
    } else {
      below(part);
    }
  }

 private:
  // This tree decides the key.
  void decide(const UnionPart& part, const UnionPartEntry* whiteout) {
    d_.decided = true;
    if (names_.empty()) {
      d_.whiteout = true;
      d_.index = out_->whiteouts.size();
      out_->whiteouts.push_back(UnionWhiteout{{part.tree, whiteout->name}, {}});
      return;
    }
    d_.index = out_->entries.size();
    for (const UnionPartEntry* e : names_) {
      UnionEntry& entry = out_->entries.emplace_back();
      entry.tree = part.tree;
      entry.directory = e->kind == UnionKind::kDirectory;
      entry.ino = e->ino;
      entry.type = e->type;
      if (entry.directory) entry.parts.push_back({part.tree, e->name});
      // Moving is allowed only for parts merge_union_dir() was given to own (its rvalue form).
      entry.name = may_move_ ? std::move(const_cast<UnionPartEntry*>(e)->name) : e->name;
    }
    d_.merging = out_->entries[d_.index].directory;
  }

  // A lower tree's names under a decided key: merged, or hidden.
  void below(const UnionPart& part) {
    UnionEntry& upper = out_->entries[d_.index];
    const UnionPartEntry* match = resolve_in(names_, upper.name);
    const bool merges = d_.merging && match->kind == UnionKind::kDirectory;
    for (const UnionPartEntry* e : names_) {
      if (merges && e == match)
        upper.parts.push_back({part.tree, e->name});
      else
        upper.hidden.push_back({part.tree, e->name});
    }
    d_.merging = merges;
  }

  UnionDir* const out_;
  std::vector<size_t>* const collision_parts_;
  const bool may_move_;
  Decision d_;
  Group names_;
};

// Sorts `v` by `less` moving each element once (UnionEntry is large to move around in a sort).
template <typename T, typename Less>
void sort_moving_once(std::vector<T>* v, Less less) {
  std::vector<size_t> order(v->size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return less((*v)[a], (*v)[b]); });
  std::vector<T> sorted;
  sorted.reserve(v->size());
  for (size_t i : order) sorted.push_back(std::move((*v)[i]));
  *v = std::move(sorted);
}

// The merge. `may_move`: the entries' names may be moved out of `parts`.
UnionDir merge(const std::vector<UnionPart>& parts, FoldRules rules, bool may_move, bool sorted) {
  UnionDir out;

  Keys keys(parts, rules);
  keys.sort();
  const std::vector<Keyed>& all = keys.all();
  out.entries.reserve(all.size());
  std::vector<size_t> collision_parts;  // the part of each collision, to order them
  KeyMerge key(&out, &collision_parts, may_move);
  Group group;
  for (size_t i = 0; i < all.size();) {
    key.next_key();
    size_t end = i;
    while (end < all.size() && keys.same_key(all[end], all[i])) {
      const uint32_t part = all[end].part;
      group.clear();
      for (; end < all.size() && all[end].part == part && keys.same_key(all[end], all[i]); ++end) {
        group.push_back(&keys.entry(all[end]));
      }
      key.part(parts[part], part, group);
    }
    i = end;
  }
  // Collisions in part order, then by first name; entries and whiteouts by name.
  std::vector<size_t> order(out.collisions.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (collision_parts[a] != collision_parts[b]) return collision_parts[a] < collision_parts[b];
    return out.collisions[a].names.front() < out.collisions[b].names.front();
  });
  std::vector<UnionCollision> collisions;
  collisions.reserve(order.size());
  for (size_t i : order) collisions.push_back(std::move(out.collisions[i]));
  out.collisions = std::move(collisions);
  if (sorted) {
    sort_moving_once(&out.entries,
                     [](const UnionEntry& a, const UnionEntry& b) { return a.name < b.name; });
  }
  sort_moving_once(&out.whiteouts, [](const UnionWhiteout& a, const UnionWhiteout& b) {
    return a.whiteout.name < b.whiteout.name;
  });
  return out;
}

// Each key seen by union_listing() and the first part that held it: an open-addressing table
// over the keys' hashes. A slot names its key by the name that brought it (where that name stays:
// in the listing, or in its part), folded again only when another name's hash equals its own.
class KeyParts {
 public:
  KeyParts(size_t most, FoldRules rules) : rules_(rules) {
    size_t slots = 16;
    while (slots < most + most / 2) slots *= 2;  // at most two thirds full
    slots_.resize(slots);
  }

  static constexpr uint32_t kFree = ~uint32_t{0};
  struct Slot {
    uint64_t hash = 0;
    const std::string* name = nullptr;
    uint32_t part = kFree;
  };

  // The slot of the key of `name` (hash `hash`): the one holding the first part that held it, or
  // a free slot (part kFree), which the caller fills.
  Slot& find(uint64_t hash, const std::string& name) {
    const size_t mask = slots_.size() - 1;
    for (size_t i = static_cast<size_t>((hash * 0x9E3779B97F4A7C15ull) >> 32) & mask;;
         i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.part == kFree) return s;
      if (s.hash == hash && same_key(*s.name, name)) return s;
    }
  }

 private:
  bool same_key(const std::string& a, const std::string& b) const {
    if (a == b) return true;
    const FoldedName fa(a, rules_);
    const FoldedName fb(b, rules_);
    return fa.key() == fb.key();
  }

  const FoldRules rules_;
  std::vector<Slot> slots_;
};

}  // namespace

void hash_keys(UnionPart* part, FoldRules rules) {
  part->key_hashes.clear();
  part->key_hashes.reserve(part->entries.size());
  for (const UnionPartEntry& e : part->entries) {
    part->key_hashes.push_back(FoldedName(e.name, rules).hash());
  }
}

// Part by part, highest first: a name is listed when no higher part holds its key (a whiteout
// holds it too) and it is no whiteout; names colliding inside one tree are all listed.
std::vector<UnionPartEntry> union_listing(std::vector<UnionPart>&& parts, FoldRules rules) {
  size_t count = 0;
  for (const UnionPart& p : parts) {
    count += p.entries.size();
    if (p.opaque) break;
  }
  KeyParts keys(count, rules);
  std::vector<UnionPartEntry> listed;
  listed.reserve(count);  // never reallocated: slots point at the names moved in
  for (uint32_t p = 0; p < parts.size(); ++p) {
    UnionPart& part = parts[p];
    const bool hashed = part.key_hashes.size() == part.entries.size();
    for (size_t i = 0; i < part.entries.size(); ++i) {
      UnionPartEntry& e = part.entries[i];
      const uint64_t hash = hashed ? part.key_hashes[i] : FoldedName(e.name, rules).hash();
      KeyParts::Slot& slot = keys.find(hash, e.name);
      if (slot.part != KeyParts::kFree && slot.part != p) continue;  // a higher part's key
      const bool first = slot.part == KeyParts::kFree;
      const std::string* name = &e.name;
      if (e.kind != UnionKind::kWhiteout) {
        listed.push_back(std::move(e));
        name = &listed.back().name;
      }
      if (first) slot = KeyParts::Slot{hash, name, p};
    }
    if (part.opaque) break;
  }
  return listed;
}

UnionDir merge_union_dir(const std::vector<UnionPart>& parts, FoldRules rules) {
  return merge(parts, rules, false, true);
}

UnionDir merge_union_dir(std::vector<UnionPart>&& parts, FoldRules rules, bool sorted) {
  return merge(parts, rules, true, sorted);
}

}  // namespace foldfs::names
