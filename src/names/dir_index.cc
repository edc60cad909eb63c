#include "names/dir_index.h"

#include <algorithm>
#include <cstring>

namespace foldfs::names {
namespace {

size_t capacity_for(size_t entries) {
  size_t cap = 16;
  while (cap * 7 / 10 < entries + 1) cap *= 2;
  return cap;
}

uint32_t tag_of(std::string_view key) {
  return static_cast<uint32_t>(unicode::key_hash(key));
}

// Exact names inside a group are found by their bytes' hash (the same function serves).
uint32_t exact_hash(std::string_view name) {
  return static_cast<uint32_t>(unicode::key_hash(name) >> 32);
}

}  // namespace

std::string_view DirIndex::key_of(std::string_view name, unicode::KeyBuffer* buf) const {
  if (buf->assign(name, rules_.version, rules_.strictness) == unicode::FoldStatus::kRefused) {
    return name;  // invalid bytes never equal a valid name's key: it matches only itself
  }
  return buf->view();
}

std::string_view DirIndex::name_at(uint32_t offset) const {
  uint16_t len;
  std::memcpy(&len, arena_.data() + offset, sizeof(len));
  return {arena_.data() + offset + sizeof(len), len};
}

void DirIndex::load(const std::vector<std::string>& names) {
  clear();
  complete_ = true;
  rehash(capacity_for(names.size()));
  size_t bytes = 0;
  for (const auto& n : names) bytes += sizeof(uint16_t) + n.size();
  arena_.reserve(bytes);
  for (const auto& n : names) insert(n);
}

void DirIndex::clear() {
  std::vector<Slot>().swap(slots_);
  std::vector<char>().swap(arena_);
  std::vector<Group>().swap(groups_);
  std::vector<uint32_t>().swap(free_groups_);
  size_ = 0;
  used_ = 0;
  garbage_ = 0;
  complete_ = false;
}

long DirIndex::find_slot(std::string_view key, uint32_t tag) const {
  if (slots_.empty()) return -1;
  const size_t mask = slots_.size() - 1;
  unicode::KeyBuffer buf;
  for (size_t i = tag & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.ref == kEmpty) return -1;
    if (s.ref == kTombstone || s.tag != tag) continue;
    const uint32_t first =
        (s.ref & kGroupBit) ? groups_[s.ref & ~kGroupBit].members.front() : s.ref - 1;
    if (key_of(name_at(first), &buf) == key) return static_cast<long>(i);
  }
}

long DirIndex::find_member(const Group& g, std::string_view name) const {
  if (g.exact.empty()) {
    for (size_t p = 0; p < g.members.size(); ++p) {
      if (name_at(g.members[p]) == name) return static_cast<long>(p);
    }
    return -1;
  }
  const size_t mask = g.exact.size() - 1;
  for (size_t i = exact_hash(name) & mask;; i = (i + 1) & mask) {
    const uint32_t e = g.exact[i];
    if (e == kEmpty) return -1;
    if (e != kTombstone && name_at(g.members[e - 1]) == name) return static_cast<long>(e - 1);
  }
}

uint32_t DirIndex::append_name(std::string_view name) {
  const uint32_t offset = static_cast<uint32_t>(arena_.size());
  const uint16_t len = static_cast<uint16_t>(name.size());
  arena_.resize(arena_.size() + sizeof(len) + name.size());
  std::memcpy(arena_.data() + offset, &len, sizeof(len));
  std::memcpy(arena_.data() + offset + sizeof(len), name.data(), name.size());
  return offset;
}

void DirIndex::put_slot(uint32_t ref, uint32_t tag) {
  const size_t mask = slots_.size() - 1;
  for (size_t i = tag & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.ref == kEmpty || s.ref == kTombstone) {
      if (s.ref == kEmpty) ++used_;
      s = Slot{ref, tag};
      return;
    }
  }
}

void DirIndex::grow_if_needed() {
  if ((used_ + 1) * 10 > slots_.size() * 7) rehash(capacity_for(size_ + 1));
}

uint32_t DirIndex::new_group() {
  if (!free_groups_.empty()) {
    const uint32_t g = free_groups_.back();
    free_groups_.pop_back();
    return g;
  }
  groups_.emplace_back();
  return static_cast<uint32_t>(groups_.size() - 1);
}

// Builds the exact table of a group anew, twice the size it needs (so at most half full).
void DirIndex::rebuild_exact(Group& g) const {
  g.exact.assign(capacity_for(g.members.size() * 2), kEmpty);
  g.exact_used = g.members.size();
  const size_t mask = g.exact.size() - 1;
  for (size_t p = 0; p < g.members.size(); ++p) {
    size_t i = exact_hash(name_at(g.members[p])) & mask;
    while (g.exact[i] != kEmpty) i = (i + 1) & mask;
    g.exact[i] = static_cast<uint32_t>(p + 1);
  }
}

void DirIndex::add_member(uint32_t group, uint32_t offset) {
  Group& g = groups_[group];
  g.members.push_back(offset);
  const std::string_view name = name_at(offset);
  if (g.smallest != kUnknown && name < name_at(g.members[g.smallest])) {
    g.smallest = static_cast<uint32_t>(g.members.size() - 1);
  }
  if (g.members.size() < kExactTableFrom) return;
  if (g.exact.empty() || (g.exact_used + 1) * 2 > g.exact.size()) {
    rebuild_exact(g);
    return;
  }
  const size_t mask = g.exact.size() - 1;
  size_t i = exact_hash(name) & mask;
  while (g.exact[i] != kEmpty && g.exact[i] != kTombstone) i = (i + 1) & mask;
  if (g.exact[i] == kEmpty) ++g.exact_used;
  g.exact[i] = static_cast<uint32_t>(g.members.size());
}

// Removes the member at `position`: the last member takes its place.
void DirIndex::remove_member(uint32_t group, size_t position) {
  Group& g = groups_[group];
  const size_t last = g.members.size() - 1;
  auto exact_slot_of = [&](size_t p) {
    const size_t mask = g.exact.size() - 1;
    size_t i = exact_hash(name_at(g.members[p])) & mask;
    while (g.exact[i] != p + 1) i = (i + 1) & mask;
    return i;
  };
  if (!g.exact.empty()) {
    g.exact[exact_slot_of(position)] = kTombstone;
    if (position != last) g.exact[exact_slot_of(last)] = static_cast<uint32_t>(position + 1);
  }
  if (g.smallest == position) {
    g.smallest = kUnknown;
  } else if (g.smallest == last) {
    g.smallest = static_cast<uint32_t>(position);
  }
  g.members[position] = g.members[last];
  g.members.pop_back();
  if (!g.exact.empty() && g.members.size() < kExactTableFrom / 2) {
    std::vector<uint32_t>().swap(g.exact);
    g.exact_used = 0;
  }
}

void DirIndex::insert(std::string_view name) {
  if (!complete_ || name.size() > 0xffff) return;
  unicode::KeyBuffer buf;
  const std::string_view key = key_of(name, &buf);
  const uint32_t tag = tag_of(key);
  const long at = find_slot(key, tag);
  if (at < 0) {
    grow_if_needed();
    put_slot(append_name(name) + 1, tag);
    ++size_;
    return;
  }
  Slot& slot = slots_[static_cast<size_t>(at)];
  if (slot.ref & kGroupBit) {
    const uint32_t group = slot.ref & ~kGroupBit;
    if (find_member(groups_[group], name) >= 0) return;
    add_member(group, append_name(name));
  } else {
    const uint32_t alone = slot.ref - 1;
    if (name_at(alone) == name) return;
    const uint32_t offset = append_name(name);
    const uint32_t group = new_group();
    groups_[group].members = {alone};
    groups_[group].smallest = 0;
    add_member(group, offset);
    slots_[static_cast<size_t>(at)].ref = kGroupBit | group;
  }
  ++size_;
}

void DirIndex::erase(std::string_view name) {
  if (!complete_) return;
  unicode::KeyBuffer buf;
  const std::string_view key = key_of(name, &buf);
  const long at = find_slot(key, tag_of(key));
  if (at < 0) return;
  Slot& slot = slots_[static_cast<size_t>(at)];
  if (slot.ref & kGroupBit) {
    const uint32_t group = slot.ref & ~kGroupBit;
    Group& g = groups_[group];
    const long p = find_member(g, name);
    if (p < 0) return;
    remove_member(group, static_cast<size_t>(p));
    if (g.members.size() == 1) {  // alone again: the slot holds the name itself
      slot.ref = g.members.front() + 1;
      groups_[group] = Group();
      free_groups_.push_back(group);
    }
  } else {
    if (name_at(slot.ref - 1) != name) return;
    slot.ref = kTombstone;
  }
  garbage_ += sizeof(uint16_t) + name.size();
  --size_;
  // Most of the arena is names erased since: rebuild it compactly.
  if (garbage_ > 4096 && garbage_ * 2 > arena_.size()) rehash(capacity_for(size_));
}

// Rebuilds the table with `capacity` slots and a compact arena; groups keep their numbers.
void DirIndex::rehash(size_t capacity) {
  std::vector<Slot> old_slots;
  old_slots.swap(slots_);
  std::vector<char> old_arena;
  old_arena.swap(arena_);
  slots_.assign(capacity, Slot{kEmpty, 0});
  arena_.reserve(old_arena.size() - garbage_);
  used_ = 0;
  garbage_ = 0;
  auto move_name = [&](uint32_t old_offset) {
    uint16_t len;
    std::memcpy(&len, old_arena.data() + old_offset, sizeof(len));
    const uint32_t offset = static_cast<uint32_t>(arena_.size());
    arena_.insert(arena_.end(), old_arena.begin() + old_offset,
                  old_arena.begin() + old_offset + sizeof(len) + len);
    return offset;
  };
  for (const Slot& s : old_slots) {
    if (s.ref == kEmpty || s.ref == kTombstone) continue;
    if (s.ref & kGroupBit) {
      for (uint32_t& m : groups_[s.ref & ~kGroupBit].members) m = move_name(m);
      put_slot(s.ref, s.tag);
    } else {
      put_slot(move_name(s.ref - 1) + 1, s.tag);
    }
  }
}

std::string_view DirIndex::smallest_of(uint32_t group) {
  Group& g = groups_[group];
  if (g.smallest == kUnknown) {
    uint32_t best = 0;
    for (uint32_t p = 1; p < g.members.size(); ++p) {
      if (name_at(g.members[p]) < name_at(g.members[best])) best = p;
    }
    g.smallest = best;
  }
  return name_at(g.members[g.smallest]);
}

std::optional<std::string> DirIndex::resolve(const FoldedName& folded) {
  const std::string_view name = folded.name();
  const long at = find_slot(folded.key(), static_cast<uint32_t>(folded.hash()));
  if (at < 0) return std::nullopt;
  const Slot& slot = slots_[static_cast<size_t>(at)];
  if (!(slot.ref & kGroupBit)) return std::string(name_at(slot.ref - 1));
  const uint32_t group = slot.ref & ~kGroupBit;
  if (find_member(groups_[group], name) >= 0) return std::string(name);
  return std::string(smallest_of(group));
}

std::vector<std::string> DirIndex::equivalents(const FoldedName& name) const {
  std::vector<std::string> out;
  const long at = find_slot(name.key(), static_cast<uint32_t>(name.hash()));
  if (at < 0) return out;
  const Slot& slot = slots_[static_cast<size_t>(at)];
  if (slot.ref & kGroupBit) {
    for (uint32_t m : groups_[slot.ref & ~kGroupBit].members) out.emplace_back(name_at(m));
  } else {
    out.emplace_back(name_at(slot.ref - 1));
  }
  std::sort(out.begin(), out.end());
  return out;
}

size_t DirIndex::count_equivalents(const FoldedName& name) const {
  const long at = find_slot(name.key(), static_cast<uint32_t>(name.hash()));
  if (at < 0) return 0;
  const Slot& slot = slots_[static_cast<size_t>(at)];
  return (slot.ref & kGroupBit) ? groups_[slot.ref & ~kGroupBit].members.size() : 1;
}

std::vector<std::vector<std::string>> DirIndex::collisions() const {
  std::vector<std::vector<std::string>> out;
  for (const Slot& s : slots_) {
    if (s.ref == kEmpty || s.ref == kTombstone || !(s.ref & kGroupBit)) continue;
    std::vector<std::string> group;
    for (uint32_t m : groups_[s.ref & ~kGroupBit].members) group.emplace_back(name_at(m));
    std::sort(group.begin(), group.end());
    out.push_back(std::move(group));
  }
  std::sort(out.begin(), out.end());
  return out;
}

size_t DirIndex::memory_bytes() const {
  size_t bytes = slots_.capacity() * sizeof(Slot) + arena_.capacity() +
                 groups_.capacity() * sizeof(Group) + free_groups_.capacity() * sizeof(uint32_t);
  for (const Group& g : groups_) {
    bytes += (g.members.capacity() + g.exact.capacity()) * sizeof(uint32_t);
  }
  return bytes;
}

}  // namespace foldfs::names
