// The memory all directories' name indexes may hold together: a budget of names, kept by
// dropping the least recently loaded indexes (they load again on their next miss).
//
// Contract: the budget counts, for each directory it tracks, the size that directory last
// reported (loaded() or resized()); its total is exactly the sum of those counts, and a
// directory whose inode object is gone stops counting before anything is evicted for it. After
// loaded() or resized(), the indexes hold at most the budget, except while every other index is
// busy (victims are only try-locked: this never waits on another directory while a caller holds
// locks) and except the index just loaded, which is never its own victim. Between a change of an
// index and the report of its size the count may lag by that change; it never drifts.
//
// Lock order: mutex_ is taken with no DirState::index_lock held; under it, victims' index locks
// are only try-locked.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>

#include "base/thread_safety.h"
#include "fs/inode_table.h"

namespace foldfs::fs {

class IndexBudget {
 public:
  explicit IndexBudget(size_t names) : budget_(static_cast<long>(names)) {}

  // `dir`'s index was (re)loaded and holds `names` names: it becomes the most recently loaded,
  // and older indexes may be dropped.
  void loaded(const std::shared_ptr<Inode>& dir, size_t names) EXCLUDES(mutex_);
  // `dir`'s index now holds `names` names (changes; 0: cleared, no longer tracked). Nothing if
  // it is not tracked (never loaded, or evicted since).
  void resized(const Inode& dir, size_t names) EXCLUDES(mutex_);

  uint64_t evictions() const { return evictions_.load(); }
  // The names the indexes of live directories hold, as last reported.
  long names() const EXCLUDES(mutex_);

 private:
  struct Tracked {
    std::weak_ptr<Inode> dir;
    const Inode* key = nullptr;  // the address it is found by in where_
    long names = 0;
  };
  using Position = std::list<Tracked>::iterator;

  // The entry of `dir` if it is tracked and still that inode object (addresses are reused).
  Position find(const Inode& dir) REQUIRES(mutex_);
  void untrack(Position it) REQUIRES(mutex_);
  void untrack_gone() REQUIRES(mutex_);
  void evict_over_budget(const Inode* keep) REQUIRES(mutex_);

  const long budget_;
  mutable Mutex mutex_;
  std::list<Tracked> loaded_ GUARDED_BY(mutex_);  // oldest load first
  std::unordered_map<const Inode*, Position> where_ GUARDED_BY(mutex_);
  long names_ GUARDED_BY(mutex_) = 0;  // the sum of loaded_'s counts
  std::atomic<uint64_t> evictions_{0};
};

}  // namespace foldfs::fs
