#include "names/dir_index.h"

#include <algorithm>

namespace foldfs::names {

DirIndex::KeyId DirIndex::key_id(std::string_view name) const {
  unicode::KeyBuffer key;
  const auto status = key.assign(name, rules_.version, rules_.strictness);
  if (status == unicode::FoldStatus::kRefused) return {unicode::key_hash(name), true};
  return {unicode::key_hash(key.view()), false};
}

bool DirIndex::same_key(std::string_view a, std::string_view b) const {
  return unicode::names_equal(a, b, rules_.version, rules_.strictness);
}

void DirIndex::load(const std::vector<std::string>& names) {
  clear();
  complete_ = true;
  for (const auto& n : names) insert(n);
}

void DirIndex::clear() {
  by_key_.clear();
  size_ = 0;
  complete_ = false;
}

void DirIndex::insert(std::string_view name) {
  if (!complete_) return;
  auto& bucket = by_key_[key_id(name).hash];
  if (std::find(bucket.begin(), bucket.end(), name) != bucket.end()) return;
  bucket.emplace_back(name);
  ++size_;
}

void DirIndex::erase(std::string_view name) {
  if (!complete_) return;
  auto it = by_key_.find(key_id(name).hash);
  if (it == by_key_.end()) return;
  auto& bucket = it->second;
  auto pos = std::find(bucket.begin(), bucket.end(), name);
  if (pos == bucket.end()) return;
  bucket.erase(pos);
  --size_;
  if (bucket.empty()) by_key_.erase(it);
}

std::vector<std::string> DirIndex::equivalents(std::string_view name) const {
  std::vector<std::string> out;
  const KeyId id = key_id(name);
  auto it = by_key_.find(id.hash);
  if (it == by_key_.end()) return out;
  for (const auto& stored : it->second) {
    const bool match = id.refused ? stored == name : same_key(stored, name);
    if (match) out.push_back(stored);
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
  std::vector<std::vector<std::string>> groups;
  for (const auto& [hash, bucket] : by_key_) {
    if (bucket.size() < 2) continue;
    std::vector<bool> used(bucket.size(), false);
    for (size_t i = 0; i < bucket.size(); ++i) {
      if (used[i]) continue;
      std::vector<std::string> group{bucket[i]};
      for (size_t j = i + 1; j < bucket.size(); ++j) {
        if (!used[j] && same_key(bucket[i], bucket[j])) {
          used[j] = true;
          group.push_back(bucket[j]);
        }
      }
      if (group.size() > 1) {
        std::sort(group.begin(), group.end());
        groups.push_back(std::move(group));
      }
    }
  }
  std::sort(groups.begin(), groups.end());
  return groups;
}

}  // namespace foldfs::names
