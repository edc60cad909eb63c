// Holds a directory's namespace lock (DirState::ns_lock) for the length of an operation:
// shared for lookups, exclusive for changes. Two directories (rename) are locked in increasing
// node id order, the order written in filesystem.h.
#pragma once

#include <optional>

#include "base/thread_safety.h"
#include "fs/inode_table.h"

namespace foldfs::fs {

class SCOPED_CAPABILITY DirLock {
 public:
  enum Mode { kRead, kWrite };
  // The analysis cannot follow a mode chosen at run time: the lock counts as held exclusively.
  DirLock(DirState& dir, Mode mode) ACQUIRE(dir.ns_lock) NO_THREAD_SAFETY_ANALYSIS : dir_(&dir),
                                                                                     mode_(mode) {
    if (mode == kRead)
      dir.ns_lock.lock_shared();
    else
      dir.ns_lock.lock();
  }
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock() RELEASE() NO_THREAD_SAFETY_ANALYSIS {
    if (mode_ == kRead)
      dir_->ns_lock.unlock_shared();
    else
      dir_->ns_lock.unlock();
  }

 private:
  DirState* dir_;
  Mode mode_;
};

// Exclusive locks on two directories (the same one once), in increasing node id order.
class TwoDirLock {
 public:
  TwoDirLock(Inode& a, Inode& b) {
    Inode* first = a.id <= b.id ? &a : &b;
    Inode* second = first == &a ? &b : &a;
    first_.emplace(*first->dir, DirLock::kWrite);
    if (second != first) second_.emplace(*second->dir, DirLock::kWrite);
  }

 private:
  // Destroyed in reverse order of declaration: second_ unlocks first.
  std::optional<DirLock> first_;
  std::optional<DirLock> second_;
};

}  // namespace foldfs::fs
