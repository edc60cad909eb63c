// FUSE over io_uring for libfuse 3.14, which predates it (the kernel has it since 6.14; the
// administrator turns it on with `echo Y > /sys/module/fuse/parameters/enable_uring`).
//
// Why: with /dev/fuse, the daemon thread that takes a request usually runs on another CPU than
// the caller, and each round trip then pays two cross-CPU wake-ups: ~40 µs on a small VM,
// against ~13 µs when both sides share a CPU (docs/benchmarks.md, "Transport"). With io_uring
// the kernel queues each request on the caller's CPU, where a daemon thread pinned to that CPU
// takes it.
//
// How: libfuse keeps the session. It mounts, reads INIT, FORGET and INTERRUPT from /dev/fuse,
// and dispatches every request to the handlers. This transport hooks libfuse's I/O
// (fuse_session_custom_io) to
//   1. add FUSE_OVER_IO_URING to the INIT reply when the kernel offers it;
//   2. then register ring entries on every CPU's queue (the kernel switches to the ring only
//      once every queue has one: until then, and if registration fails, /dev/fuse serves);
//   3. hand each request that arrives in a ring entry to fuse_session_process_buf, catch the
//      handler's reply in the writev hook, and commit it to the same entry.
//
// Threads: kThreadsPerCpu ring threads per CPU, each pinned there, each owning one io_uring
// and one entry (so a slow request holds up only its own thread; the kernel gives a new
// request to the entry that became free last). Handlers reply synchronously, so the thread
// that processes a request is the one that commits it: the entry being served is a
// thread-local. Each entry's buffer takes the largest request libfuse 3.14 can negotiate
// (256 pages): 1 MiB of address space per thread, resident only where large requests used it.
//
// The same hooks ask for FUSE passthrough in the INIT reply (libfuse 3.14 cannot): see
// fuse/passthrough.h; and for FUSE_HANDLE_KILLPRIV_V2 (patch_init_killpriv says why). Every
// session installs the hooks; without the ring there are no ring threads, only the INIT reply
// patched.
//
// Never a hang: once the INIT reply asks for the ring, the kernel holds every request until
// each CPU's queue has an entry (or a registration fails). So the threads make their rings
// and buffers *before* INIT, and the reply asks for the ring only if all of them are ready;
// otherwise, or on any later failure to register, requests stay on /dev/fuse.
//
// Lock: phase_mutex_ (a leaf) guards phase_, prepared_ and failed_: the threads' start-up
// handshake with the INIT reply and stop(). Everything else the threads share is set before
// they start or is atomic.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/thread_safety.h"

struct fuse_init_out;
struct fuse_session;
struct io_uring;

namespace foldfs::fuse {

class UringTransport {
 public:
  static constexpr int kThreadsPerCpu = 2;

  // Whether the running kernel has FUSE over io_uring switched on (the fuse module's
  // enable_uring parameter). `detail` says what was found, for messages.
  static bool kernel_enabled(std::string* detail);

  UringTransport() = default;
  ~UringTransport();
  UringTransport(const UringTransport&) = delete;
  UringTransport& operator=(const UringTransport&) = delete;

  // Hooks the session's I/O and, with `ring`, starts the ring threads, which get ready and
  // wait; call after fuse_session_mount (and daemonizing) and before the session loop. The ring
  // is used once INIT is answered, if the kernel offered it and every thread got ready. With
  // `passthrough`, the INIT reply also asks for FUSE passthrough where the kernel offers it.
  int install(struct fuse_session* se, bool ring, bool passthrough);
  // After INIT: whether the kernel agreed to passthrough.
  bool passthrough_granted() const { return passthrough_granted_.load(); }
  // After INIT: whether foldfs drops setuid/setgid bits itself (FUSE_HANDLE_KILLPRIV_V2).
  bool killpriv_granted() const { return killpriv_granted_.load(); }
  // Stops and joins the ring threads; call before the session is unmounted and destroyed.
  void stop();

  // "name value" lines for the stats attribute.
  std::string stats_text() const;

  // In a ring thread serving a request: where a reply payload of `size` bytes may be written
  // so that replying with fuse_reply_buf on it copies nothing. Elsewhere: nullptr.
  static char* reply_space(size_t size);

  struct Entry;  // one ring entry: its buffers and the request it serves

 private:
  static ssize_t hook_read(int fd, void* buf, size_t len, void* userdata);
  static ssize_t hook_writev(int fd, struct iovec* iov, int count, void* userdata);
  static ssize_t hook_splice_receive(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                                     unsigned int flags, void* userdata);
  static ssize_t hook_splice_send(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                                  unsigned int flags, void* userdata);

  enum class Phase { kPreparing, kGo, kStop };

  void note_request(const void* buf, size_t len);
  bool patch_init_reply(struct iovec* iov, int count);
  void patch_init_passthrough(struct iovec* iov, int count);
  void patch_init_killpriv(struct iovec* iov, int count);
  static struct fuse_init_out* init_reply(struct iovec* iov, int count);
  static struct fuse_init_out* extended_init_reply(struct iovec* iov, int count);
  bool all_threads_ready();
  void set_phase(Phase phase);
  bool wait_for_go();
  void report_ready(bool ok, int err);
  void run_thread(int cpu);
  bool prepare_entry(Entry* e, int cpu, int* err);
  void serve_entry(struct io_uring* ring, Entry* e);
  void serve(Entry* e);
  static void reply_error(Entry* e, int err);
  void note_failure(int err);

  struct fuse_session* se_ = nullptr;
  int dev_fd_ = -1;
  int stop_fd_ = -1;           // eventfd: readable once stop() is called
  size_t entry_capacity_ = 0;  // each entry's payload buffer
  std::atomic<uint64_t> init_unique_{0};
  std::atomic<bool> kernel_offers_{false};
  std::atomic<bool> kernel_offers_passthrough_{false};
  std::atomic<bool> kernel_offers_killpriv_{false};
  bool ring_ = true;               // set before the session runs
  bool want_passthrough_ = false;  // set before the session runs
  std::atomic<bool> passthrough_granted_{false};
  std::atomic<bool> killpriv_granted_{false};
  std::atomic<bool> init_answered_{false};
  std::vector<std::thread> threads_;
  int thread_count_ = 0;  // set before the threads start

  Mutex phase_mutex_;
  std::condition_variable_any phase_changed_;
  Phase phase_ GUARDED_BY(phase_mutex_) = Phase::kPreparing;
  int prepared_ GUARDED_BY(phase_mutex_) = 0;  // threads with their ring and entry ready
  int failed_ GUARDED_BY(phase_mutex_) = 0;    // threads that could not get ready

  std::atomic<uint64_t> requests_{0};
  std::atomic<int> serving_{0};  // threads whose entry is registered (or on its way)
};

}  // namespace foldfs::fuse
