// Directories the kernel forgot, kept for a while with their watch mark and name index, so that
// the kernel finding one again costs no listing. It finds them again often: an epoch bump
// (KernelCache::forget_everything) drops every dentry of the mount, and FUSE forgets a
// directory's inode with its last dentry, so a 5,000-name folder would otherwise be listed
// again after every create by another spelling.
//
// Contract: only watched directories rest, and their marks stay while they do, so every outside
// change keeps reaching their index (the filesystem's listener finds resting directories by
// handle, as it finds live ones). A directory leaves by take() — the kernel found it again; the
// kernel holds no dentry in a directory it forgot, so its record starts empty — or as the oldest
// when more than `capacity` rest, or all at once by take_all() (events were lost). The caller
// removes the mark of a directory that left other than by take(), unless an inode with its id
// and handle is live again (the mark belongs to the backing inode, and that one uses it).
// Index memory stays within IndexBudget: a resting index counts, and may be evicted, as any.
//
// Lock order: mutex_ is a leaf.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "base/thread_safety.h"
#include "fs/inode_table.h"

namespace foldfs::fs {

class RestingDirs {
 public:
  explicit RestingDirs(size_t capacity) : capacity_(capacity) {}

  // `dir` (a watched directory the kernel forgot) rests. Returns the directories it pushed out.
  std::vector<std::shared_ptr<Inode>> rest(std::shared_ptr<Inode> dir) EXCLUDES(mutex_);
  // The resting directory with node id `id`, no longer resting; nullptr if none rests.
  std::shared_ptr<Inode> take(uint64_t id) EXCLUDES(mutex_);
  // The resting directory with node id `id`, left resting; nullptr if none.
  std::shared_ptr<Inode> find(uint64_t id) const EXCLUDES(mutex_);
  std::vector<std::shared_ptr<Inode>> take_all() EXCLUDES(mutex_);
  size_t size() const EXCLUDES(mutex_);

 private:
  using Position = std::list<std::shared_ptr<Inode>>::iterator;

  const size_t capacity_;
  mutable Mutex mutex_;
  std::list<std::shared_ptr<Inode>> order_ GUARDED_BY(mutex_);  // oldest first
  std::unordered_map<uint64_t, Position> by_id_ GUARDED_BY(mutex_);
};

}  // namespace foldfs::fs
