#include "backing/dir_watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <unistd.h>

#include <cstring>

namespace foldfs::backing {
namespace {

constexpr uint64_t kDirentEvents = FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO;
// Attributes (mode, owner, times, links, xattrs) and data of the directory and its children.
constexpr uint64_t kInodeEvents = FAN_ATTRIB | FAN_MODIFY | FAN_EVENT_ON_CHILD;
constexpr uint64_t kEvents = kDirentEvents | kInodeEvents | FAN_ONDIR;

// An event is its metadata, a file handle (at most MAX_HANDLE_SZ = 128 bytes) and a name (at
// most 255 bytes) with their headers: well under this.
constexpr size_t kLargestEvent = 1024;

}  // namespace

std::unique_ptr<DirWatcher> DirWatcher::start(Callback callback, Idle idle, int* error) {
  const int fan = ::fanotify_init(
      FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY);
  if (fan < 0) {
    *error = errno;
    return nullptr;
  }
  const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    *error = errno;
    ::close(fan);
    return nullptr;
  }
  std::unique_ptr<DirWatcher> w(
      new DirWatcher(UniqueFd(fan), UniqueFd(wake), std::move(callback), std::move(idle)));
  w->thread_ = std::thread([raw = w.get()] { raw->run(); });
  return w;
}

DirWatcher::DirWatcher(UniqueFd fanotify, UniqueFd wakeup, Callback callback, Idle idle)
    : fanotify_(std::move(fanotify)),
      wakeup_(std::move(wakeup)),
      callback_(std::move(callback)),
      idle_(std::move(idle)),
      self_(::getpid()) {}

DirWatcher::~DirWatcher() {
  stop();
}

void DirWatcher::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  const uint64_t one = 1;
  if (::write(wakeup_.get(), &one, sizeof(one)) < 0) {
    // The thread would block forever; nothing sensible to do but detach it.
    thread_.detach();
    return;
  }
  thread_.join();
}

int DirWatcher::watch(int dirfd) {
  // "." relative to the descriptor: an O_PATH descriptor is refused as the object itself.
  if (::fanotify_mark(fanotify_.get(), FAN_MARK_ADD | FAN_MARK_ONLYDIR, kEvents, dirfd, ".") != 0) {
    return errno;
  }
  return 0;
}

void DirWatcher::unwatch(int dirfd) {
  ::fanotify_mark(fanotify_.get(), FAN_MARK_REMOVE | FAN_MARK_ONLYDIR, kEvents, dirfd, ".");
}

void DirWatcher::run() {
  struct pollfd fds[2] = {{fanotify_.get(), POLLIN, 0}, {wakeup_.get(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) {
      uint64_t count;
      if (::read(wakeup_.get(), &count, sizeof(count)) < 0 && errno != EAGAIN) return;
      if (stopping_) return;
    }
    {
      MutexLock lock(read_mutex_);
      drain();
    }
    if (idle_) idle_();
    ::usleep(kBatchPauseMs * 1000);
  }
}

void DirWatcher::kick() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wakeup_.get(), &one, sizeof(one));
}

void DirWatcher::deliver_queued() {
  MutexLock lock(read_mutex_);
  drain();
}

void DirWatcher::wait_for_delivery() {
  MutexLock lock(read_mutex_);
}

void DirWatcher::drain() {
  alignas(struct fanotify_event_metadata) static thread_local char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fanotify_.get(), buf, sizeof(buf));
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;  // EAGAIN: the queue is empty
    }
    dispatch(buf, static_cast<size_t>(n));
    // fanotify fills a read with queued events until the queue is empty or the next one does
    // not fit; well short of the buffer means empty, so the EAGAIN read can be skipped.
    if (static_cast<size_t>(n) + kLargestEvent <= sizeof(buf)) return;
  }
}

void DirWatcher::dispatch(const char* buf, size_t len) {
  auto* meta = reinterpret_cast<const struct fanotify_event_metadata*>(buf);
  for (; FAN_EVENT_OK(meta, len); meta = FAN_EVENT_NEXT(meta, len)) {
    if (meta->vers != FANOTIFY_METADATA_VERSION) return;
    if (meta->mask & FAN_Q_OVERFLOW) {
      Event e;
      e.overflow = true;
      callback_(e);
      continue;
    }
    if (meta->pid == self_) continue;  // our own change: already applied
    const char* info = reinterpret_cast<const char*>(meta) + meta->metadata_len;
    const char* end = reinterpret_cast<const char*>(meta) + meta->event_len;
    while (info + sizeof(struct fanotify_event_info_header) <= end) {
      auto* hdr = reinterpret_cast<const struct fanotify_event_info_header*>(info);
      if (hdr->len == 0) break;
      if (hdr->info_type == FAN_EVENT_INFO_TYPE_DFID_NAME) {
        auto* fid = reinterpret_cast<const struct fanotify_event_info_fid*>(info);
        auto* fh = reinterpret_cast<const struct file_handle*>(fid->handle);
        const char* name = reinterpret_cast<const char*>(fh->f_handle) + fh->handle_bytes;
        Event e;
        e.dir.assign_raw(fh->handle_type, fh->f_handle, fh->handle_bytes);
        e.name = name;
        e.names_changed = (meta->mask & kDirentEvents) != 0;
        e.attributes_changed = (meta->mask & (FAN_ATTRIB | FAN_MODIFY)) != 0;
        callback_(e);
      }
      info += hdr->len;
    }
  }
}

}  // namespace foldfs::backing
