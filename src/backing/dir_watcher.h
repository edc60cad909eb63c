// Watches backing directories for changes made by anyone but this process (fanotify, with
// directory file handles and names in the events).
//
// Coherence contract: after a change made by another process (another program, a second foldfs
// mount of the same tree) to a watched directory's names, or to the attributes or data of the
// directory or of a file in it, the callback runs on the watcher's thread with that directory's
// handle and the name involved ("." for the directory itself), within a few milliseconds
// (kBatchPause). Changes made by this process are not reported: the filesystem applies those
// itself. When the kernel's event queue overflows, one event with `overflow` set reports that
// anything may have changed.
//
// deliver_queued() closes the remaining window: a change that returned before deliver_queued() was
// called has been delivered to the callback when it returns (fanotify queues the event inside the
// changing system call).
//
// After each batch of events, and after kick(), `idle` runs on the watcher's thread with no
// lock of the watcher held: the place for work that must not run inside a request handler.
//
// Lock order: read_mutex_ is held while the callback runs; the callback may take the
// filesystem's directory index locks, so never call deliver_queued() holding one of those.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backing/file_handle.h"
#include "backing/unique_fd.h"
#include "base/thread_safety.h"

namespace foldfs::backing {

class DirWatcher {
 public:
  struct Event {
    FileHandle dir;
    std::string name;
    bool overflow = false;
    bool names_changed = false;       // `name` appeared, disappeared or moved
    bool attributes_changed = false;  // attributes or data of `name` changed
  };
  using Callback = std::function<void(const Event&)>;
  using Idle = std::function<void()>;

  // How long the thread rests after a batch: our own changes queue events too (fanotify cannot
  // filter them out), and waking for each would cost every create a context switch.
  static constexpr int kBatchPauseMs = 2;

  // Returns nullptr and sets *error when fanotify is not available (not root, or a backing
  // filesystem that cannot report directory handles).
  static std::unique_ptr<DirWatcher> start(Callback callback, Idle idle, int* error);
  ~DirWatcher();

  // Starts or stops watching the directory `dirfd` holds (O_PATH is fine). 0 or an errno.
  int watch(int dirfd);
  void unwatch(int dirfd);

  // Delivers every event already queued before returning (from the calling thread if need be).
  void deliver_queued() EXCLUDES(read_mutex_);
  // The same when the caller saw the queue empty (polled queue_fd()): only waits for events the
  // watcher's thread has read and is still handing out.
  void wait_for_delivery() EXCLUDES(read_mutex_);
  // The fanotify queue, to poll (readable while events are queued); never read it.
  int queue_fd() const { return fanotify_.get(); }

  // Makes the watcher's thread run `idle` soon.
  void kick();

  // Stops the thread (the destructor does too): no callback runs after it returns.
  // deliver_queued() still works from other threads.
  void stop();

 private:
  DirWatcher(UniqueFd fanotify, UniqueFd wakeup, Callback callback, Idle idle);
  void run();
  void drain() REQUIRES(read_mutex_);
  void dispatch(const char* buf, size_t len) REQUIRES(read_mutex_);

  Mutex read_mutex_;  // one reader of the fanotify queue at a time
  UniqueFd fanotify_;
  UniqueFd wakeup_;  // eventfd: written by kick() and by the destructor
  std::atomic<bool> stopping_{false};
  Callback callback_;
  Idle idle_;
  const pid_t self_;  // the daemon: its own changes are skipped
  std::thread thread_;
};

}  // namespace foldfs::backing
