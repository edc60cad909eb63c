#include "names/kernel_dentries.h"

namespace foldfs::names {

bool KernelDentries::catch_up(uint64_t epoch) {
  // A caller that observed an older epoch describes dentries the kernel already dropped.
  if (epoch < epoch_) return false;
  if (epoch > epoch_) {
    by_key_.clear();
    epoch_ = epoch;
  }
  return true;
}

void KernelDentries::note(uint64_t epoch, uint64_t key_hash, std::string_view spelling) {
  std::lock_guard lock(mutex_);
  if (!catch_up(epoch)) return;
  auto [it, inserted] = by_key_.try_emplace(key_hash);
  if (inserted) {
    it->second.spelling = spelling;
  } else if (!it->second.many && it->second.spelling != spelling) {
    it->second.many = true;
    it->second.spelling.clear();
  }
}

bool KernelDentries::may_hold_other(uint64_t epoch, uint64_t key_hash, std::string_view spelling) {
  std::lock_guard lock(mutex_);
  if (!catch_up(epoch)) return true;  // be safe: invalidate
  auto it = by_key_.find(key_hash);
  if (it == by_key_.end()) return false;
  return it->second.many || it->second.spelling != spelling;
}

void KernelDentries::forget(uint64_t key_hash) {
  std::lock_guard lock(mutex_);
  by_key_.erase(key_hash);
}

}  // namespace foldfs::names
