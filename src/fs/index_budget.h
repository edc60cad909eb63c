// The memory all directories' name indexes may hold together: a budget of names, kept by
// dropping the least recently loaded indexes (they load again on their next miss).
//
// Contract: after loaded() or changed(), the indexes hold at most the budget, except while every
// other index is busy (victims are only try-locked: this never waits on another directory while
// a caller holds locks) and except the index just loaded, which is never its own victim. The
// count is an estimate between loads: exact at loads and evictions.
//
// Lock order: mutex_ is taken with no DirState::index_lock held; under it, victims' index locks
// are only try-locked.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>

#include "base/thread_safety.h"
#include "fs/inode_table.h"

namespace foldfs::fs {

class IndexBudget {
 public:
  explicit IndexBudget(size_t names) : budget_(static_cast<long>(names)) {}

  // `dir`'s index was (re)loaded and holds `delta` names more than before: it becomes the most
  // recently loaded, and older indexes may be dropped.
  void loaded(const std::shared_ptr<Inode>& dir, long delta) EXCLUDES(mutex_);
  // An index gained or lost `delta` names through changes.
  void changed(long delta) EXCLUDES(mutex_);

  uint64_t evictions() const { return evictions_.load(); }
  long names() const EXCLUDES(mutex_);

 private:
  void evict_over_budget(const Inode* keep) REQUIRES(mutex_);

  const long budget_;
  mutable Mutex mutex_;
  std::list<std::weak_ptr<Inode>> loaded_ GUARDED_BY(mutex_);  // oldest first
  long names_ GUARDED_BY(mutex_) = 0;
  std::atomic<uint64_t> evictions_{0};
};

}  // namespace foldfs::fs
