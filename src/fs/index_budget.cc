#include "fs/index_budget.h"

#include <algorithm>

namespace foldfs::fs {

void IndexBudget::loaded(const std::shared_ptr<Inode>& dir, long delta) {
  MutexLock lock(mutex_);
  names_ = std::max(0L, names_ + delta);
  loaded_.remove_if([&](const std::weak_ptr<Inode>& w) {
    auto d = w.lock();
    return !d || d == dir;
  });
  loaded_.push_back(dir);
  evict_over_budget(dir.get());
}

void IndexBudget::changed(long delta) {
  MutexLock lock(mutex_);
  names_ = std::max(0L, names_ + delta);
  evict_over_budget(nullptr);
}

long IndexBudget::names() const {
  MutexLock lock(mutex_);
  return names_;
}

void IndexBudget::evict_over_budget(const Inode* keep) {
  for (auto it = loaded_.begin(); names_ > budget_ && it != loaded_.end();) {
    auto victim = it->lock();
    if (victim.get() == keep) {
      ++it;
      continue;
    }
    if (victim) {
      DirState& state = *victim->dir;
      if (!state.index_lock.try_lock()) {
        ++it;
        continue;
      }
      names_ = std::max(0L, names_ - static_cast<long>(state.index.size()));
      state.index.clear();
      state.index_lock.unlock();
      evictions_++;
    }
    it = loaded_.erase(it);
  }
}

}  // namespace foldfs::fs
