#include "names/union_dir.h"

#include <algorithm>
#include <map>
#include <string_view>
#include <unordered_map>

namespace foldfs::names {
namespace {

using Group = std::vector<const UnionPartEntry*>;

// A part's entries by key (in no order), each group sorted bytewise by name.
std::unordered_map<std::string, Group> group_by_key(const UnionPart& part, FoldRules rules) {
  std::unordered_map<std::string, Group> groups;
  groups.reserve(part.entries.size());
  for (const UnionPartEntry& e : part.entries) {
    const FoldedName folded(e.name, rules);
    groups[std::string(folded.key())].push_back(&e);
  }
  for (auto& [key, group] : groups) {
    std::sort(group.begin(), group.end(), [](auto* a, auto* b) { return a->name < b->name; });
  }
  return groups;
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
  bool whiteout = false;
  size_t index = 0;      // into UnionDir::entries (the resolving entry) or ::whiteouts
  bool merging = false;  // a directory that still merges with lower trees' directories
};

}  // namespace

UnionDir merge_union_dir(const std::vector<UnionPart>& parts, FoldRules rules) {
  UnionDir out;
  std::unordered_map<std::string, Decision> decided;
  for (const UnionPart& part : parts) {
    const size_t first_collision = out.collisions.size();
    for (const auto& [key, group] : group_by_key(part, rules)) {
      Group names;  // the group without whiteouts: a name beside a whiteout wins over it
      const UnionPartEntry* whiteout = nullptr;
      for (const UnionPartEntry* e : group) {
        if (e->kind != UnionKind::kWhiteout)
          names.push_back(e);
        else if (!whiteout)
          whiteout = e;
      }
      if (names.size() > 1) {
        UnionCollision c{part.tree, {}};
        for (const UnionPartEntry* e : names) c.names.push_back(e->name);
        out.collisions.push_back(std::move(c));
      }
      auto it = decided.find(key);
      if (it == decided.end()) {  // this tree decides the key
        if (names.empty()) {
          decided[key] = Decision{true, out.whiteouts.size(), false};
          out.whiteouts.push_back(UnionWhiteout{{part.tree, whiteout->name}, {}});
          continue;
        }
        const size_t first = out.entries.size();
        for (const UnionPartEntry* e : names) {
          UnionEntry entry{e->name, part.tree, e->kind == UnionKind::kDirectory, {}, {}};
          if (entry.directory) entry.parts.push_back({part.tree, e->name});
          out.entries.push_back(std::move(entry));
        }
        decided[key] = Decision{false, first, out.entries[first].directory};
        continue;
      }
      Decision& d = it->second;
      if (names.empty()) {  // a lower whiteout: nothing of the key below it merges
        d.merging = false;
        continue;
      }
      if (d.whiteout) {
        for (const UnionPartEntry* e : names) {
          out.whiteouts[d.index].hidden.push_back({part.tree, e->name});
        }
        continue;
      }
      UnionEntry& upper = out.entries[d.index];
      const UnionPartEntry* match = resolve_in(names, upper.name);
      const bool merges = d.merging && match->kind == UnionKind::kDirectory;
      for (const UnionPartEntry* e : names) {
        if (merges && e == match)
          upper.parts.push_back({part.tree, e->name});
        else
          upper.hidden.push_back({part.tree, e->name});
      }
      d.merging = merges;
    }
    std::sort(out.collisions.begin() + static_cast<std::ptrdiff_t>(first_collision),
              out.collisions.end(), [](const UnionCollision& a, const UnionCollision& b) {
                return a.names.front() < b.names.front();
              });
    if (part.opaque) break;
  }
  std::sort(out.entries.begin(), out.entries.end(),
            [](const UnionEntry& a, const UnionEntry& b) { return a.name < b.name; });
  std::sort(out.whiteouts.begin(), out.whiteouts.end(),
            [](const UnionWhiteout& a, const UnionWhiteout& b) {
              return a.whiteout.name < b.whiteout.name;
            });
  return out;
}

}  // namespace foldfs::names
