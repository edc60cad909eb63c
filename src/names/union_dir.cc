#include "names/union_dir.h"

#include <algorithm>
#include <numeric>
#include <string_view>

namespace foldfs::names {
namespace {

using Group = std::vector<const UnionPartEntry*>;

// One entry of one part with its key folded once: the key's bytes are in the merge's arena (one
// string, never resized once views into it are taken).
struct Keyed {
  std::string_view key;
  uint64_t hash = 0;
  size_t part = 0;  // index into the parts given
  const UnionPartEntry* entry = nullptr;
};

// Every entry of the parts that count (down to the first opaque one), sorted so that each key is
// one run, its parts in order within it, each part's names bytewise: the merge then visits each
// key once, with no map from keys to what was decided. `arena` keeps the keys' bytes.
std::vector<Keyed> sorted_by_key(const std::vector<UnionPart>& parts, FoldRules rules,
                                 std::string* arena) {
  std::vector<Keyed> all;
  std::vector<std::pair<size_t, size_t>> spans;  // each key's offset and length in the arena
  for (size_t p = 0; p < parts.size(); ++p) {
    for (const UnionPartEntry& e : parts[p].entries) {
      const FoldedName folded(e.name, rules);
      spans.emplace_back(arena->size(), folded.key().size());
      arena->append(folded.key());
      all.push_back(Keyed{{}, folded.hash(), p, &e});
    }
    if (parts[p].opaque) break;
  }
  for (size_t i = 0; i < all.size(); ++i) {
    all[i].key = std::string_view(*arena).substr(spans[i].first, spans[i].second);
  }
  std::sort(all.begin(), all.end(), [](const Keyed& a, const Keyed& b) {
    if (a.hash != b.hash) return a.hash < b.hash;
    if (a.key != b.key) return a.key < b.key;
    if (a.part != b.part) return a.part < b.part;
    return a.entry->name < b.entry->name;
  });
  return all;
}

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
      UnionEntry entry{{}, part.tree, e->kind == UnionKind::kDirectory, {}, {}, e->ino, e->type};
      if (entry.directory) entry.parts.push_back({part.tree, e->name});
      // Moving is allowed only for parts merge_union_dir() was given to own (its rvalue form).
      entry.name = may_move_ ? std::move(const_cast<UnionPartEntry*>(e)->name) : e->name;
      out_->entries.push_back(std::move(entry));
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

  std::string arena;
  const std::vector<Keyed> all = sorted_by_key(parts, rules, &arena);
  out.entries.reserve(all.size());
  std::vector<size_t> collision_parts;  // the part of each collision, to order them
  Group group;
  for (size_t i = 0; i < all.size();) {
    KeyMerge key(&out, &collision_parts, may_move);
    size_t end = i;
    while (end < all.size() && all[end].hash == all[i].hash && all[end].key == all[i].key) {
      const size_t part = all[end].part;
      group.clear();
      for (; end < all.size() && all[end].part == part && all[end].hash == all[i].hash &&
             all[end].key == all[i].key;
           ++end) {
        group.push_back(all[end].entry);
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

}  // namespace

UnionDir merge_union_dir(const std::vector<UnionPart>& parts, FoldRules rules) {
  return merge(parts, rules, false, true);
}

UnionDir merge_union_dir(std::vector<UnionPart>&& parts, FoldRules rules, bool sorted) {
  return merge(parts, rules, true, sorted);
}

}  // namespace foldfs::names
