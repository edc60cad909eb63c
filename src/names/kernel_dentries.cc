#include "names/kernel_dentries.h"

#include "unicode/fold.h"

namespace foldfs::names {

uint64_t KernelDentries::spelling_hash(std::string_view spelling) {
  return unicode::key_hash(spelling) | 1;  // never kMany
}

KernelDentries::Slot& KernelDentries::slot_of(uint64_t key_hash) {
  const size_t mask = slots_.size() - 1;
  // Fibonacci hashing: the slot from the product's high bits, so that hashes alike in their low
  // bits do not share one probe run.
  const size_t start = static_cast<size_t>((key_hash * 0x9E3779B97F4A7C15ull) >> 32) & mask;
  for (size_t i = start;; i = (i + 1) & mask) {
    if (slots_[i].spellings == kEmpty || slots_[i].key_hash == key_hash) return slots_[i];
  }
}

void KernelDentries::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 16 : old.size() * 2, Slot{});
  for (const Slot& s : old) {
    if (s.spellings != kEmpty) slot_of(s.key_hash) = s;
  }
}

void KernelDentries::clear() {
  // A small table again: a directory looked up widely once need not keep its room forever.
  slots_.clear();
  keys_ = 0;
}

bool KernelDentries::adopt_epoch(uint64_t epoch) {
  // A caller that observed an older epoch describes dentries the kernel already dropped.
  if (epoch < epoch_) return false;
  if (epoch > epoch_) {
    clear();
    epoch_ = epoch;
  }
  return true;
}

bool KernelDentries::note(uint64_t epoch, uint64_t key_hash, std::string_view spelling) {
  const uint64_t h = spelling_hash(spelling);
  MutexLock lock(mutex_);
  if (!adopt_epoch(epoch)) return true;
  if (keys_ >= kMaxKeys) {
    if (slot_of(key_hash).spellings == kEmpty) return false;  // full: known keys only
  } else if ((keys_ + 1) * 3 > slots_.size() * 2) {           // at most two thirds full
    grow();
  }
  Slot& s = slot_of(key_hash);
  if (s.spellings == kEmpty) {
    s = Slot{key_hash, h};
    keys_++;
  } else if (s.spellings != h) {
    s.spellings = kMany;
  }
  return true;
}

bool KernelDentries::may_hold_other(uint64_t epoch, uint64_t key_hash, std::string_view spelling) {
  const uint64_t h = spelling_hash(spelling);
  MutexLock lock(mutex_);
  if (!adopt_epoch(epoch)) return true;  // be safe: invalidate
  if (slots_.empty()) return false;
  const Slot& s = slot_of(key_hash);
  return s.spellings != kEmpty && s.spellings != h;
}

void KernelDentries::forget_all() {
  MutexLock lock(mutex_);
  clear();
}

}  // namespace foldfs::names
