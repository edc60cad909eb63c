#include "names/dir_index.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace foldfs::names {
namespace {

// A slot holds the arena offset of a name + 1 (0: never used) and 32 bits of its key hash.
constexpr uint32_t kEmpty = 0;
constexpr uint32_t kTombstone = ~0u;

size_t capacity_for(size_t entries) {
  size_t cap = 16;
  while (cap * 7 / 10 < entries + 1) cap *= 2;
  return cap;
}

}  // namespace

DirIndex::KeyId DirIndex::key_id(std::string_view name) const {
  unicode::KeyBuffer key;
  const auto status = key.assign(name, rules_.version, rules_.strictness);
  if (status == unicode::FoldStatus::kRefused) return {unicode::key_hash(name), true};
  return {unicode::key_hash(key.view()), false};
}

bool DirIndex::same_key(std::string_view a, std::string_view b) const {
  return unicode::names_equal(a, b, rules_.version, rules_.strictness);
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
  size_ = 0;
  tombstones_ = 0;
  garbage_ = 0;
  complete_ = false;
}

// Probes for `name` itself. Returns the slot index, or -1.
long DirIndex::find_exact(std::string_view name, uint32_t tag) const {
  if (slots_.empty()) return -1;
  const size_t mask = slots_.size() - 1;
  for (size_t i = tag & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.offset_plus_one == kEmpty) return -1;
    if (s.offset_plus_one != kTombstone && s.tag == tag && name_at(s.offset_plus_one - 1) == name) {
      return static_cast<long>(i);
    }
  }
}

void DirIndex::insert(std::string_view name) {
  if (!complete_ || name.size() > 0xffff) return;
  const uint32_t tag = static_cast<uint32_t>(key_id(name).hash);
  if (find_exact(name, tag) >= 0) return;
  if ((size_ + tombstones_ + 1) * 10 > slots_.size() * 7) rehash(capacity_for(size_ + 1));
  const uint32_t offset = static_cast<uint32_t>(arena_.size());
  const uint16_t len = static_cast<uint16_t>(name.size());
  arena_.resize(arena_.size() + sizeof(len) + name.size());
  std::memcpy(arena_.data() + offset, &len, sizeof(len));
  std::memcpy(arena_.data() + offset + sizeof(len), name.data(), name.size());
  const size_t mask = slots_.size() - 1;
  for (size_t i = tag & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.offset_plus_one == kEmpty || s.offset_plus_one == kTombstone) {
      if (s.offset_plus_one == kTombstone) --tombstones_;
      s.offset_plus_one = offset + 1;
      s.tag = tag;
      break;
    }
  }
  ++size_;
}

void DirIndex::erase(std::string_view name) {
  if (!complete_) return;
  const long i = find_exact(name, static_cast<uint32_t>(key_id(name).hash));
  if (i < 0) return;
  Slot& s = slots_[static_cast<size_t>(i)];
  garbage_ += sizeof(uint16_t) + name.size();
  s.offset_plus_one = kTombstone;
  ++tombstones_;
  --size_;
  // Most of the arena is names erased since: rebuild it compactly.
  if (garbage_ > 4096 && garbage_ * 2 > arena_.size()) rehash(capacity_for(size_));
}

// Rebuilds the table with `capacity` slots and a compact arena.
void DirIndex::rehash(size_t capacity) {
  std::vector<Slot> old_slots;
  old_slots.swap(slots_);
  std::vector<char> old_arena;
  old_arena.swap(arena_);
  slots_.assign(capacity, Slot{kEmpty, 0});
  arena_.reserve(old_arena.size() - garbage_);
  tombstones_ = 0;
  garbage_ = 0;
  const size_t mask = capacity - 1;
  for (const Slot& s : old_slots) {
    if (s.offset_plus_one == kEmpty || s.offset_plus_one == kTombstone) continue;
    uint16_t len;
    std::memcpy(&len, old_arena.data() + s.offset_plus_one - 1, sizeof(len));
    const uint32_t offset = static_cast<uint32_t>(arena_.size());
    arena_.insert(arena_.end(), old_arena.begin() + s.offset_plus_one - 1,
                  old_arena.begin() + s.offset_plus_one - 1 + sizeof(len) + len);
    for (size_t i = s.tag & mask;; i = (i + 1) & mask) {
      if (slots_[i].offset_plus_one == kEmpty) {
        slots_[i] = Slot{offset + 1, s.tag};
        break;
      }
    }
  }
}

std::vector<std::string> DirIndex::equivalents(std::string_view name) const {
  std::vector<std::string> out;
  if (slots_.empty()) return out;
  const KeyId id = key_id(name);
  const uint32_t tag = static_cast<uint32_t>(id.hash);
  const size_t mask = slots_.size() - 1;
  for (size_t i = tag & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.offset_plus_one == kEmpty) break;
    if (s.offset_plus_one == kTombstone || s.tag != tag) continue;
    const std::string_view stored = name_at(s.offset_plus_one - 1);
    const bool match = id.refused ? stored == name : same_key(stored, name);
    if (match) out.emplace_back(stored);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<std::string> DirIndex::resolve(std::string_view name) const {
  auto matches = equivalents(name);
  if (matches.empty()) return std::nullopt;
  if (std::find(matches.begin(), matches.end(), name) != matches.end()) return std::string(name);
  return std::move(matches.front());
}

std::vector<std::vector<std::string>> DirIndex::collisions() const {
  // Group every stored name by its full key (not the 32-bit tag). Refused names stand alone.
  std::map<std::string, std::vector<std::string>> by_key;
  for (const Slot& s : slots_) {
    if (s.offset_plus_one == kEmpty || s.offset_plus_one == kTombstone) continue;
    const std::string_view stored = name_at(s.offset_plus_one - 1);
    unicode::KeyBuffer key;
    if (key.assign(stored, rules_.version, rules_.strictness) == unicode::FoldStatus::kRefused) {
      continue;
    }
    by_key[std::string(key.view())].emplace_back(stored);
  }
  std::vector<std::vector<std::string>> groups;
  for (auto& [key, group] : by_key) {
    if (group.size() < 2) continue;
    std::sort(group.begin(), group.end());
    groups.push_back(std::move(group));
  }
  std::sort(groups.begin(), groups.end());
  return groups;
}

size_t DirIndex::memory_bytes() const {
  return slots_.capacity() * sizeof(Slot) + arena_.capacity();
}

}  // namespace foldfs::names
