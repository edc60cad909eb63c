// Watches backing directories for changes made by anyone but this process (fanotify, with
// directory file handles and names in the events).
//
// Coherence contract: after a change to a watched directory made by another process (another
// program, a second foldfs mount of the same tree), the callback runs on the watcher's thread
// with that directory's handle and the name involved, typically within a millisecond. Changes
// made by this process are not reported: the filesystem applies those itself. When the kernel's
// event queue overflows, one event with `overflow` set reports that anything may have changed.
//
// catch_up() closes the remaining window: a change that returned before catch_up() was called
// has been delivered to the callback when it returns (fanotify queues the event inside the
// changing system call).
//
// Lock order: read_mutex_ is held while the callback runs; the callback may take the
// filesystem's directory index locks, so never call catch_up() holding one of those.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backing/file_handle.h"
#include "backing/unique_fd.h"

namespace foldfs::backing {

class DirWatcher {
 public:
  struct Event {
    FileHandle dir;
    std::string name;
    bool overflow = false;
  };
  using Callback = std::function<void(const Event&)>;

  // Returns nullptr and sets *error when fanotify is not available (not root, or a backing
  // filesystem that cannot report directory handles).
  static std::unique_ptr<DirWatcher> start(Callback callback, int* error);
  ~DirWatcher();

  // Starts or stops watching the directory `dirfd` holds (O_PATH is fine). 0 or an errno.
  int watch(int dirfd);
  void unwatch(int dirfd);

  // Delivers every event already queued before returning (from the calling thread if need be).
  void catch_up();

 private:
  DirWatcher(UniqueFd fanotify, UniqueFd wakeup, Callback callback);
  void run();
  void drain();  // requires read_mutex_
  void dispatch(const char* buf, size_t len);

  std::mutex read_mutex_;  // one reader of the fanotify queue at a time
  UniqueFd fanotify_;
  UniqueFd wakeup_;  // eventfd: written by the destructor to stop the thread
  Callback callback_;
  std::thread thread_;
};

}  // namespace foldfs::backing
