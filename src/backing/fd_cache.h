// A bounded cache of O_PATH descriptors for backing files, keyed by node id.
//
// Coherence contract: an entry is a descriptor for the file that the caller's handle named when
// it was inserted; the cache never reopens anything itself. Callers erase the entry when the
// node id is forgotten or starts naming another file (inode number reuse). A descriptor handed
// out stays open for as long as the caller holds the shared_ptr, even if it is evicted
// meanwhile: eviction only drops the cache's reference.
//
// Lock order: FdCache::mutex_ is a leaf lock; nothing else is taken while it is held.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>

#include "backing/unique_fd.h"
#include "base/thread_safety.h"

namespace foldfs::backing {

using SharedFd = std::shared_ptr<const UniqueFd>;

class FdCache {
 public:
  explicit FdCache(size_t capacity) : capacity_(capacity) {}

  SharedFd get(uint64_t key) EXCLUDES(mutex_);
  // Inserts (or replaces) the descriptor for `key` and returns it.
  SharedFd put(uint64_t key, UniqueFd fd) EXCLUDES(mutex_);
  void erase(uint64_t key) EXCLUDES(mutex_);

  size_t size() const EXCLUDES(mutex_);
  size_t capacity() const { return capacity_; }
  uint64_t evictions() const EXCLUDES(mutex_);

 private:
  struct Slot {
    SharedFd fd;
    std::list<uint64_t>::iterator lru_pos;
  };
  void evict_over_capacity() REQUIRES(mutex_);

  const size_t capacity_;
  mutable Mutex mutex_;
  std::unordered_map<uint64_t, Slot> slots_ GUARDED_BY(mutex_);
  std::list<uint64_t> lru_ GUARDED_BY(mutex_);  // most recent first
  uint64_t evictions_ GUARDED_BY(mutex_) = 0;
};

}  // namespace foldfs::backing
