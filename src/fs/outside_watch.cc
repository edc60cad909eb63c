#include "fs/outside_watch.h"

#include <algorithm>

namespace foldfs::fs {

std::unique_ptr<OutsideWatch> OutsideWatch::start(int root_fd, Listener& listener,
                                                  KernelNotifier* notifier, int* error) {
  std::unique_ptr<OutsideWatch> oc(new OutsideWatch(listener, notifier));
  OutsideWatch* raw = oc.get();
  oc->watcher_ =
      backing::DirWatcher::start([raw](const backing::DirWatcher::Event& e) { raw->dispatch(e); },
                                 [raw] { raw->send_invalidations(); }, error);
  if (!oc->watcher_) return nullptr;
  // The rule: no mark on the root, nothing is watched.
  if (int err = oc->watcher_->watch(root_fd); err != 0) {
    *error = err;
    return nullptr;
  }
  return oc;
}

// The watcher's thread calls back into this object: it stops first.
OutsideWatch::~OutsideWatch() {
  if (watcher_) watcher_->stop();
}

bool OutsideWatch::watch(int dirfd) {
  return watcher_->watch(dirfd) == 0;
}

void OutsideWatch::unwatch(int dirfd) {
  watcher_->unwatch(dirfd);
}

void OutsideWatch::deliver_queued() {
  watcher_->deliver_queued();
}

void OutsideWatch::stop() {
  watcher_->stop();
}

void OutsideWatch::dispatch(const backing::DirWatcher::Event& event) {
  seen_++;
  if (event.overflow) {
    listener_.lost_track();
    return;
  }
  if (event.attributes_changed) listener_.attributes_changed(event.dir, event.name);
  if (event.names_changed) listener_.names_changed(event.dir, event.name);
}

void OutsideWatch::invalidate_inodes(const std::vector<uint64_t>& ids) {
  if (ids.empty()) return;
  bool was_empty = false;
  {
    MutexLock lock(pending_mutex_);
    was_empty = pending_.empty();
    pending_.insert(pending_.end(), ids.begin(), ids.end());
  }
  if (was_empty) watcher_->kick();  // queued by a request's catch-up: the watcher sends them
}

void OutsideWatch::send_invalidations() {
  std::vector<uint64_t> ids;
  {
    MutexLock lock(pending_mutex_);
    ids.swap(pending_);
  }
  if (ids.empty() || !notifier_) return;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (uint64_t id : ids) notifier_->invalidate_inode(id);
}

}  // namespace foldfs::fs
