#include "fs/inode_table.h"

namespace foldfs::fs {

std::shared_ptr<Inode> InodeTable::get(uint64_t id) const {
  MutexLock lock(mutex_);
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::shared_ptr<Inode> InodeTable::acquire(std::shared_ptr<Inode> fresh, bool* identity_changed,
                                           bool* was_inserted) {
  MutexLock lock(mutex_);
  *identity_changed = false;
  auto [it, inserted] = by_id_.try_emplace(fresh->id, fresh);
  *was_inserted = inserted;
  if (!inserted && !fresh->handle.empty() && !(it->second->handle == fresh->handle)) {
    // The inode number now names another file. The kernel will see a new generation for the
    // node id and retire its old inode; lookups it still holds carry over to the new one.
    fresh->nlookup = it->second->nlookup;
    it->second = fresh;
    *identity_changed = true;
    *was_inserted = true;
  }
  ++it->second->nlookup;
  return it->second;
}

std::shared_ptr<Inode> InodeTable::release(uint64_t id, uint64_t n) {
  MutexLock lock(mutex_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return nullptr;
  Inode& inode = *it->second;
  if (inode.id == 1) return nullptr;  // the root is never forgotten
  inode.nlookup = n >= inode.nlookup ? 0 : inode.nlookup - n;
  if (inode.nlookup != 0) return nullptr;
  auto removed = std::move(it->second);
  by_id_.erase(it);
  return removed;
}

void InodeTable::insert_root(std::shared_ptr<Inode> root) {
  MutexLock lock(mutex_);
  root->nlookup = 1;
  by_id_[root->id] = std::move(root);
}

std::vector<std::shared_ptr<Inode>> InodeTable::directories() const {
  MutexLock lock(mutex_);
  std::vector<std::shared_ptr<Inode>> out;
  for (auto& [id, inode] : by_id_) {
    if (inode->is_dir()) out.push_back(inode);
  }
  return out;
}

std::vector<uint64_t> InodeTable::ids() const {
  MutexLock lock(mutex_);
  std::vector<uint64_t> out;
  out.reserve(by_id_.size());
  for (auto& [id, inode] : by_id_) out.push_back(id);
  return out;
}

size_t InodeTable::size() const {
  MutexLock lock(mutex_);
  return by_id_.size();
}

}  // namespace foldfs::fs
