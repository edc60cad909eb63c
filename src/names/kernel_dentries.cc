#include "names/kernel_dentries.h"

#include "unicode/fold.h"

namespace foldfs::names {

uint64_t KernelDentries::spelling_hash(std::string_view spelling) {
  return unicode::key_hash(spelling) | 1;  // never kMany
}

bool KernelDentries::adopt_epoch(uint64_t epoch) {
  // A caller that observed an older epoch describes dentries the kernel already dropped.
  if (epoch < epoch_) return false;
  if (epoch > epoch_) {
    by_key_.clear();
    epoch_ = epoch;
  }
  return true;
}

bool KernelDentries::note(uint64_t epoch, uint64_t key_hash, std::string_view spelling) {
  const uint64_t h = spelling_hash(spelling);
  MutexLock lock(mutex_);
  if (!adopt_epoch(epoch)) return true;
  auto it = by_key_.find(key_hash);
  if (it == by_key_.end()) {
    if (by_key_.size() >= kMaxKeys) return false;
    by_key_.emplace(key_hash, h);
  } else if (it->second != h) {
    it->second = kMany;
  }
  return true;
}

bool KernelDentries::may_hold_other(uint64_t epoch, uint64_t key_hash, std::string_view spelling) {
  const uint64_t h = spelling_hash(spelling);
  MutexLock lock(mutex_);
  if (!adopt_epoch(epoch)) return true;  // be safe: invalidate
  auto it = by_key_.find(key_hash);
  if (it == by_key_.end()) return false;
  return it->second != h;
}

void KernelDentries::forget_all() {
  MutexLock lock(mutex_);
  by_key_.clear();
}

}  // namespace foldfs::names
