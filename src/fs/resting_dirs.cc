#include "fs/resting_dirs.h"

namespace foldfs::fs {

std::vector<std::shared_ptr<Inode>> RestingDirs::rest(std::shared_ptr<Inode> dir) {
  std::vector<std::shared_ptr<Inode>> pushed_out;
  MutexLock lock(mutex_);
  if (capacity_ == 0) {
    pushed_out.push_back(std::move(dir));
    return pushed_out;
  }
  if (auto it = by_id_.find(dir->id); it != by_id_.end()) {
    // An older object for that id goes; the same object rested again only moves to the end.
    if (*it->second != dir) pushed_out.push_back(std::move(*it->second));
    order_.erase(it->second);
    by_id_.erase(it);
  }
  const uint64_t id = dir->id;
  by_id_[id] = order_.insert(order_.end(), std::move(dir));
  while (order_.size() > capacity_) {
    by_id_.erase(order_.front()->id);
    pushed_out.push_back(std::move(order_.front()));
    order_.pop_front();
  }
  return pushed_out;
}

std::shared_ptr<Inode> RestingDirs::take(uint64_t id) {
  MutexLock lock(mutex_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return nullptr;
  std::shared_ptr<Inode> dir = std::move(*it->second);
  order_.erase(it->second);
  by_id_.erase(it);
  return dir;
}

std::shared_ptr<Inode> RestingDirs::find(uint64_t id) const {
  MutexLock lock(mutex_);
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : *it->second;
}

std::vector<std::shared_ptr<Inode>> RestingDirs::take_all() {
  MutexLock lock(mutex_);
  std::vector<std::shared_ptr<Inode>> all(std::make_move_iterator(order_.begin()),
                                          std::make_move_iterator(order_.end()));
  order_.clear();
  by_id_.clear();
  return all;
}

size_t RestingDirs::size() const {
  MutexLock lock(mutex_);
  return order_.size();
}

}  // namespace foldfs::fs
