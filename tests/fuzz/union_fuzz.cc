// libFuzzer target over the merge of one directory of a union of trees (src/names/union_dir.h).
//
// Input: records [control byte][length byte][name bytes]; control & 3 is the entry's kind
// (0 other, 1 directory, 2 whiteout) or 3: the next tree starts (control & 4: the part before it
// is opaque). Names are kept distinct inside a tree, as a directory holds them.
//
// Checks, for any parts: entries are sorted and distinct; an entry comes from the highest tree
// (above the first opaque part) that holds a non-whiteout name of its key, and two entries share
// a key only inside that tree; no entry shares a key with a whiteout; every non-whiteout name
// of every part down to the first opaque one is accounted for exactly once (listed, a merged
// part, or hidden by an entry or a whiteout); a directory's parts are directories, in tree
// order, and the first is the entry itself. union_listing() (what readdir serves) lists exactly
// the entries, each with its deciding part's d_ino and type.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "names/union_dir.h"

namespace {

using namespace foldfs::names;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "union_fuzz: check failed: %s\n", what);
    std::abort();
  }
}

std::vector<UnionPart> parse(const uint8_t* data, size_t size) {
  std::vector<UnionPart> parts(1);
  std::set<std::string> names;  // of the current part
  for (size_t i = 0; i + 1 < size;) {
    const uint8_t control = data[i];
    const size_t length = data[i + 1] % 12;
    i += 2;
    if ((control & 3) == 3) {
      parts.back().opaque = (control & 4) != 0;
      if (parts.size() < 8) {  // at most 8 trees: later records go to the last one
        parts.push_back(UnionPart{parts.size(), {}, false, {}});
        names.clear();
      }
      continue;
    }
    if (length == 0 || i + length > size) break;
    std::string name(reinterpret_cast<const char*>(data + i), length);
    i += length;
    if (!names.insert(name).second) continue;
    // d_ino and type tell every name of every part apart (the listing must carry the right ones).
    const uint64_t ino = parts.size() * 1000 + parts.back().entries.size();
    parts.back().entries.push_back(
        {name, static_cast<UnionKind>(control & 3), ino, static_cast<unsigned char>(control >> 4)});
  }
  return parts;
}

std::string key_of(const std::string& name) {
  const FoldedName folded(name, FoldRules{});
  return std::string(folded.key());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<UnionPart> parts = parse(data, size);
  const UnionDir d = merge_union_dir(parts, FoldRules{});

  // The parts that count: down to the first opaque one.
  size_t counted = 0;
  while (counted < parts.size() && !(counted > 0 && parts[counted - 1].opaque)) ++counted;
  std::map<std::string, size_t> decider;  // key -> highest tree with a non-whiteout name
  std::set<std::string> whiteout_first;   // keys a whiteout decides
  std::multiset<std::pair<size_t, std::string>> expected;  // non-whiteout names, counted once
  for (size_t p = 0; p < counted; ++p) {
    std::set<std::string> seen_here;
    for (const auto& e : parts[p].entries) {
      const std::string key = key_of(e.name);
      if (e.kind != UnionKind::kWhiteout) {
        expected.insert({parts[p].tree, e.name});
        if (!decider.count(key) && !whiteout_first.count(key)) decider[key] = parts[p].tree;
        seen_here.insert(key);
      }
    }
    for (const auto& e : parts[p].entries) {
      const std::string key = key_of(e.name);
      if (e.kind == UnionKind::kWhiteout && !seen_here.count(key) && !decider.count(key)) {
        whiteout_first.insert(key);
      }
    }
  }

  std::multiset<std::pair<size_t, std::string>> accounted;
  std::set<std::string> entry_keys;
  for (size_t k = 0; k < d.entries.size(); ++k) {
    const UnionEntry& e = d.entries[k];
    if (k > 0) check(d.entries[k - 1].name < e.name, "entries not sorted and distinct");
    const std::string key = key_of(e.name);
    check(decider.count(key) && decider[key] == e.tree, "an entry not from its key's highest tree");
    check(!whiteout_first.count(key), "an entry under a key a whiteout decides");
    entry_keys.insert(key);
    accounted.insert({e.tree, e.name});
    if (e.directory) {
      check(!e.parts.empty() && e.parts[0] == (UnionName{e.tree, e.name}),
            "a directory's first part is not itself");
      for (size_t p = 1; p < e.parts.size(); ++p) {
        check(e.parts[p].tree > e.parts[p - 1].tree, "merged parts out of tree order");
        check(key_of(e.parts[p].name) == key, "a merged part of another key");
        accounted.insert({e.parts[p].tree, e.parts[p].name});
      }
    } else {
      check(e.parts.empty(), "a non-directory with merged parts");
    }
    for (const UnionName& h : e.hidden) {
      check(h.tree > e.tree && key_of(h.name) == key, "a hidden name not below or of another key");
      accounted.insert({h.tree, h.name});
    }
  }
  for (const UnionWhiteout& w : d.whiteouts) {
    const std::string key = key_of(w.whiteout.name);
    check(whiteout_first.count(key) && !entry_keys.count(key), "a whiteout beside an entry");
    for (const UnionName& h : w.hidden) {
      check(h.tree > w.whiteout.tree && key_of(h.name) == key, "a whiteout hides another key");
      accounted.insert({h.tree, h.name});
    }
  }
  check(accounted == expected, "a name not accounted for exactly once");

  std::multiset<std::tuple<std::string, uint64_t, unsigned char>> shown, listed;
  for (const UnionEntry& e : d.entries) shown.insert({e.name, e.ino, e.type});
  std::vector<UnionPart> moved = parts;
  for (size_t p = 0; p < moved.size(); p += 2) hash_keys(&moved[p], FoldRules{});  // both ways
  for (const UnionPartEntry& e : union_listing(std::move(moved), FoldRules{})) {
    listed.insert({e.name, e.ino, e.type});
  }
  check(listed == shown, "the listing is not the merge's entries");
  return 0;
}
