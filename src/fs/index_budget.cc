#include "fs/index_budget.h"

namespace foldfs::fs {

void IndexBudget::loaded(const std::shared_ptr<Inode>& dir, size_t names) {
  MutexLock lock(mutex_);
  Position it = find(*dir);
  if (it == loaded_.end()) {
    it = loaded_.insert(loaded_.end(), Tracked{dir, dir.get(), 0});
    where_[dir.get()] = it;
  } else {
    loaded_.splice(loaded_.end(), loaded_, it);  // the most recently loaded now
  }
  names_ += static_cast<long>(names) - it->names;
  it->names = static_cast<long>(names);
  evict_over_budget(dir.get());
}

void IndexBudget::resized(const Inode& dir, size_t names) {
  MutexLock lock(mutex_);
  Position it = find(dir);
  if (it == loaded_.end()) return;
  if (names == 0) {  // cleared: nothing left to evict
    untrack(it);
    return;
  }
  names_ += static_cast<long>(names) - it->names;
  it->names = static_cast<long>(names);
  evict_over_budget(nullptr);
}

long IndexBudget::names() const {
  MutexLock lock(mutex_);
  long live = 0;
  for (const Tracked& t : loaded_) live += t.dir.expired() ? 0 : t.names;
  return live;
}

IndexBudget::Position IndexBudget::find(const Inode& dir) {
  auto w = where_.find(&dir);
  if (w == where_.end()) return loaded_.end();
  Position it = w->second;
  if (it->dir.lock().get() == &dir) return it;
  untrack(it);  // a gone inode object whose address was reused
  return loaded_.end();
}

void IndexBudget::untrack(Position it) {
  names_ -= it->names;
  where_.erase(it->key);
  loaded_.erase(it);
}

void IndexBudget::untrack_gone() {
  for (auto it = loaded_.begin(); it != loaded_.end();) {
    auto next = std::next(it);
    if (it->dir.expired()) untrack(it);
    it = next;
  }
}

void IndexBudget::evict_over_budget(const Inode* keep) {
  if (names_ <= budget_) return;
  untrack_gone();  // directories the kernel forgot no longer count
  for (auto it = loaded_.begin(); names_ > budget_ && it != loaded_.end();) {
    auto next = std::next(it);
    auto victim = it->dir.lock();
    if (victim && victim.get() != keep && victim->dir->index_lock.try_lock()) {
      victim->dir->index.clear();
      victim->dir->index_lock.unlock();
      evictions_++;
      untrack(it);
    }
    it = next;
  }
}

}  // namespace foldfs::fs
