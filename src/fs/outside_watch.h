// Changes made outside the mount (another program writing the backing tree, a second mount of
// it), reported by fanotify (backing::DirWatcher) and handed to the filesystem.
//
// One rule decides what is watched and which timeouts apply: outside changes are watched only
// when fanotify can mark the backing root (it reports handles and names there), and then for
// directories of the root's filesystem only — events of another filesystem could not be matched
// to inodes. A directory is watched once watch() placed its mark; everything else is
// revalidated within the short timeouts (docs/coherence.md).
//
// Coherence contract: every change made by another process to a watched directory's names, or to
// the attributes or data of the directory or of a file in it, reaches the Listener within a few
// milliseconds on the watcher's thread, and before deliver_queued() returns for a change that
// returned before it was called. Inode invalidations queued with invalidate_inodes() are sent to
// the kernel from the watcher's thread (they may wait on page locks: never inside a request).
//
// Lock order: the Listener runs with the watcher's read lock held (DirWatcher::read_mutex_);
// pending_mutex_ is a leaf.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backing/dir_watcher.h"
#include "backing/file_handle.h"
#include "base/thread_safety.h"
#include "fs/kernel_notifier.h"

namespace foldfs::fs {

class OutsideWatch {
 public:
  // What the filesystem does with a reported change.
  class Listener {
   public:
    virtual ~Listener() = default;
    // `name` appeared in, went from or moved in the directory whose handle is `dir`.
    virtual void names_changed(const backing::FileHandle& dir, const std::string& name) = 0;
    // Attributes or data of `name` in `dir` changed ("." for the directory itself).
    virtual void attributes_changed(const backing::FileHandle& dir, const std::string& name) = 0;
    // Events were lost (the kernel's queue overflowed): anything may have changed.
    virtual void lost_track() = 0;
  };

  // Watches the backing tree whose root `root_fd` holds. nullptr, with an errno in *error, when
  // outside changes cannot be watched there: the filesystem then revalidates.
  static std::unique_ptr<OutsideWatch> start(int root_fd, Listener& listener,
                                             KernelNotifier* notifier, int* error);
  ~OutsideWatch();

  // Places the mark of the directory `dirfd` holds; false when it cannot be watched.
  bool watch(int dirfd);
  void unwatch(int dirfd);
  // Delivers every change queued before the call (from the calling thread if need be).
  void deliver_queued();
  // The same for a caller that polled queue_fd() and found nothing queued.
  void wait_for_delivery() { watcher_->wait_for_delivery(); }
  int queue_fd() const { return watcher_->queue_fd(); }
  // The kernel is to drop the attributes and cached pages of these inodes (sent by the
  // watcher's thread, soon).
  void invalidate_inodes(const std::vector<uint64_t>& ids) EXCLUDES(pending_mutex_);
  // Stops the watcher's thread: call it before the session the notifier writes to goes away.
  void stop();

  uint64_t changes_seen() const { return seen_.load(); }

 private:
  OutsideWatch(Listener& listener, KernelNotifier* notifier)
      : listener_(listener), notifier_(notifier) {}
  void dispatch(const backing::DirWatcher::Event& event);
  void send_invalidations() EXCLUDES(pending_mutex_);  // on the watcher's thread

  Listener& listener_;
  KernelNotifier* const notifier_;
  std::unique_ptr<backing::DirWatcher> watcher_;
  std::atomic<uint64_t> seen_{0};
  Mutex pending_mutex_;
  std::vector<uint64_t> pending_ GUARDED_BY(pending_mutex_);
};

}  // namespace foldfs::fs
