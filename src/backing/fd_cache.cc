#include "backing/fd_cache.h"

namespace foldfs::backing {

SharedFd FdCache::get(uint64_t key) {
  MutexLock lock(mutex_);
  auto it = slots_.find(key);
  if (it == slots_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
  return it->second.fd;
}

SharedFd FdCache::put(uint64_t key, UniqueFd fd) {
  auto shared = std::make_shared<const UniqueFd>(std::move(fd));
  MutexLock lock(mutex_);
  auto [it, inserted] = slots_.try_emplace(key);
  if (inserted) {
    lru_.push_front(key);
    it->second.lru_pos = lru_.begin();
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
  }
  it->second.fd = shared;
  evict_over_capacity();
  return shared;
}

void FdCache::erase(uint64_t key) {
  MutexLock lock(mutex_);
  auto it = slots_.find(key);
  if (it == slots_.end()) return;
  lru_.erase(it->second.lru_pos);
  slots_.erase(it);
}

void FdCache::evict_over_capacity() {
  while (slots_.size() > capacity_) {
    const uint64_t victim = lru_.back();
    lru_.pop_back();
    slots_.erase(victim);
    ++evictions_;
  }
}

size_t FdCache::size() const {
  MutexLock lock(mutex_);
  return slots_.size();
}

uint64_t FdCache::evictions() const {
  MutexLock lock(mutex_);
  return evictions_;
}

}  // namespace foldfs::backing
