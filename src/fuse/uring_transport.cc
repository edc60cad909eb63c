// FUSE over io_uring for libfuse 3.14: see uring_transport.h for the design.
// Lock: phase_mutex_ only, a leaf (nothing else is taken while it is held).
#define FUSE_USE_VERSION 312
#include "fuse/uring_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <liburing.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace foldfs::fuse {
namespace {

// The kernel's FUSE-over-io_uring interface (include/uapi/linux/fuse.h, protocol 7.42); the
// Debian 12 headers predate it.
constexpr uint64_t kFuseOverIoUring = 1ULL << 41;  // FUSE_OVER_IO_URING, an INIT flag
constexpr uint64_t kFusePassthrough = 1ULL << 37;  // FUSE_PASSTHROUGH, an INIT flag (7.40)
// fuse_init_out's max_stack_depth (7.40) is the first of the 7 words Debian 12's header calls
// `unused`: how deep the backing filesystems may stack under the mount. 1: they may not be
// stacked themselves (overlayfs, a FUSE mount using passthrough); the mount itself then counts
// as one level, so overlayfs may still use it as a layer.
constexpr uint32_t kPassthroughStackDepth = 1;
constexpr uint32_t kCmdRegister = 1;        // FUSE_IO_URING_CMD_REGISTER
constexpr uint32_t kCmdCommitAndFetch = 2;  // FUSE_IO_URING_CMD_COMMIT_AND_FETCH
constexpr size_t kHeaderArea = 128;         // FUSE_URING_IN_OUT_HEADER_SZ
constexpr size_t kOpArea = 128;             // FUSE_URING_OP_IN_OUT_SZ
constexpr uint32_t kMinReadBuffer = 8192;   // FUSE_MIN_READ_BUFFER
constexpr uint32_t kDefaultMaxPages = 32;   // FUSE_DEFAULT_MAX_PAGES_PER_REQ
constexpr uint32_t kLibfuseMaxPages = 256;  // FUSE_MAX_MAX_PAGES in libfuse 3.14

struct RingEntInOut {  // struct fuse_uring_ent_in_out
  uint64_t flags;
  uint64_t commit_id;
  uint32_t payload_sz;
  uint32_t padding;
  uint64_t reserved;
};

struct RingReqHeader {       // struct fuse_uring_req_header
  char in_out[kHeaderArea];  // fuse_in_header going up, fuse_out_header coming back
  char op_in[kOpArea];       // the request's first argument (its per-operation header)
  RingEntInOut ent;
};

struct RingCmdReq {  // struct fuse_uring_cmd_req, in the SQE's command area
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};

constexpr uint64_t kStopTag = ~0ULL;
// Room before the payload where the request is reassembled the way libfuse reads it from
// /dev/fuse: in-header, then first argument, then the payload (which stays where it is).
constexpr size_t kHeadroom = 4096;

}  // namespace

struct UringTransport::Entry {
  RingReqHeader header;
  char* region = nullptr;  // kHeadroom + payload, mmap'ed
  char* payload = nullptr;
  size_t payload_size = 0;
  struct iovec iov[2];
  int cpu = 0;
  uint64_t unique = 0;
  bool replied = false;
};

namespace {

thread_local UringTransport::Entry* t_serving = nullptr;  // set while a ring request runs
// libfuse hands the hooks the session's userdata (the adapter's), not ours: one transport per
// process, found here.
std::atomic<UringTransport*> g_transport{nullptr};

// The CPUs listed in /sys/devices/system/cpu/possible ("0-3,8-11").
std::vector<int> possible_cpus() {
  std::ifstream in("/sys/devices/system/cpu/possible");
  std::string list;
  std::vector<int> cpus;
  if (!(in >> list)) {
    for (int c = 0; c < ::get_nprocs_conf(); ++c) cpus.push_back(c);
    return cpus;
  }
  size_t pos = 0;
  while (pos < list.size()) {
    size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    const std::string range = list.substr(pos, end - pos);
    const size_t dash = range.find('-');
    const int first = std::atoi(range.c_str());
    const int last = dash == std::string::npos ? first : std::atoi(range.c_str() + dash + 1);
    for (int c = first; c <= last; ++c) cpus.push_back(c);
    pos = end + 1;
  }
  return cpus;
}

void prep_cmd(struct io_uring_sqe* sqe, int fd, uint32_t op, UringTransport::Entry* e,
              uint64_t commit_id) {
  if (!sqe) return;  // cannot happen: a ring of 4 with at most 2 submissions outstanding
  memset(sqe, 0, 2 * sizeof(*sqe));  // SQE128: the command area runs into the second half
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fd;
  sqe->cmd_op = op;
  sqe->addr = reinterpret_cast<uint64_t>(e->iov);
  sqe->len = 2;
  sqe->user_data = reinterpret_cast<uint64_t>(e);
  auto* req = reinterpret_cast<RingCmdReq*>(sqe->cmd);
  req->commit_id = commit_id;
  req->qid = static_cast<uint16_t>(e->cpu);
}

void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  // Fails where the CPU is not ours to use (a cpuset): the thread then serves unpinned.
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int make_ring(struct io_uring* ring) {
  struct io_uring_params p;
  memset(&p, 0, sizeof(p));
  p.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int r = io_uring_queue_init_params(4, ring, &p);
  if (r == -EINVAL) {  // kernels before 6.1 lack the last two; they only save work
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SQE128;
    r = io_uring_queue_init_params(4, ring, &p);
  }
  return r;
}

}  // namespace

bool UringTransport::kernel_enabled(std::string* detail) {
  const char* path = "/sys/module/fuse/parameters/enable_uring";
  std::ifstream in(path);
  std::string value;
  if (!(in >> value)) {
    *detail = std::string(path) + " is missing: this kernel has no FUSE over io_uring";
    return false;
  }
  *detail = std::string(path) + " is " + value;
  return value == "Y" || value == "1";
}

UringTransport::~UringTransport() {
  stop();
}

int UringTransport::install(struct fuse_session* se, bool ring, bool passthrough) {
  ring_ = ring;
  want_passthrough_ = passthrough;
  UringTransport* none = nullptr;
  if (!g_transport.compare_exchange_strong(none, this)) return EBUSY;
  se_ = se;
  dev_fd_ = fuse_session_fd(se);
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) return errno;
  struct fuse_custom_io io;
  memset(&io, 0, sizeof(io));
  io.read = hook_read;
  io.writev = hook_writev;
  io.splice_receive = hook_splice_receive;
  io.splice_send = hook_splice_send;
  // Same fd as the mount's: libfuse keeps mounting, unmounting and closing it as before.
  if (int r = fuse_session_custom_io(se, &io, dev_fd_); r < 0) return -r;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  entry_capacity_ = std::max<size_t>(kMinReadBuffer, kLibfuseMaxPages * page);
  if (!ring_) return 0;
  // The kernel has a queue per possible CPU and uses the ring only once each has an entry.
  const std::vector<int> cpus = possible_cpus();
  thread_count_ = static_cast<int>(cpus.size()) * kThreadsPerCpu;
  for (int cpu : cpus) {
    for (int k = 0; k < kThreadsPerCpu; ++k) {
      try {
        threads_.emplace_back([this, cpu] { run_thread(cpu); });
      } catch (const std::exception&) {  // no thread: the ring is not asked for
        report_ready(false, EAGAIN);
      }
    }
  }
  return 0;
}

void UringTransport::stop() {
  set_phase(Phase::kStop);
  if (stop_fd_ >= 0) {
    const uint64_t one = 1;
    if (::write(stop_fd_, &one, sizeof(one)) < 0) {
      // An eventfd write fails only on overflow, which a single write cannot reach.
    }
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
  if (stop_fd_ >= 0) ::close(stop_fd_);
  stop_fd_ = -1;
  UringTransport* self = this;
  g_transport.compare_exchange_strong(self, nullptr);
}

std::string UringTransport::stats_text() const {
  std::string out;
  if (!ring_) return out;  // hooked in for the INIT reply only
  out += "uring_threads " + std::to_string(serving_.load()) + "\n";
  out += "uring_requests " + std::to_string(requests_.load()) + "\n";
  return out;
}

char* UringTransport::reply_space(size_t size) {
  Entry* e = t_serving;
  if (!e || size > e->payload_size) return nullptr;
  return e->payload;
}

// --- libfuse's I/O --------------------------------------------------------------------------

ssize_t UringTransport::hook_read(int fd, void* buf, size_t len, void*) {
  const ssize_t n = ::read(fd, buf, len);
  UringTransport* self = g_transport.load();
  if (n > 0 && self) self->note_request(buf, static_cast<size_t>(n));
  return n;
}

ssize_t UringTransport::hook_splice_receive(int fdin, off_t* offin, int fdout, off_t* offout,
                                            size_t len, unsigned int flags, void*) {
  return ::splice(fdin, offin, fdout, offout, len, flags);
}

ssize_t UringTransport::hook_splice_send(int fdin, off_t* offin, int fdout, off_t* offout,
                                         size_t len, unsigned int flags, void*) {
  // Never for a ring request: its reply belongs in its entry, not on /dev/fuse. adapter.cc's
  // reads use reply_space() there and never splice; should anything else try, libfuse 3.14
  // fails the reply (it has no fallback after a failed splice) and serve() answers EIO.
  if (t_serving) {
    errno = EINVAL;
    return -1;
  }
  return ::splice(fdin, offin, fdout, offout, len, flags);
}

// Remembers the INIT request: its unique (to recognise the reply) and whether the kernel
// offers the ring. INIT always arrives by read(): libfuse splices only after INIT.
void UringTransport::note_request(const void* buf, size_t len) {
  if (init_answered_.load(std::memory_order_relaxed) || len < sizeof(fuse_in_header)) return;
  const auto* in = static_cast<const fuse_in_header*>(buf);
  if (in->opcode != FUSE_INIT || len < sizeof(fuse_in_header) + sizeof(fuse_init_in)) return;
  const auto* init = reinterpret_cast<const fuse_init_in*>(in + 1);
  uint64_t flags = init->flags;
  if (flags & FUSE_INIT_EXT) flags |= static_cast<uint64_t>(init->flags2) << 32;
  kernel_offers_ = (flags & kFuseOverIoUring) != 0;
  kernel_offers_passthrough_ = (flags & kFusePassthrough) != 0;
  kernel_offers_killpriv_ = (flags & FUSE_HANDLE_KILLPRIV_V2) != 0;
  init_unique_ = in->unique;
}

// The body of a successful INIT reply, else nullptr.
fuse_init_out* UringTransport::init_reply(struct iovec* iov, int count) {
  if (count < 2) return nullptr;
  const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
  if (out->error != 0 || iov[1].iov_len < sizeof(fuse_init_out)) return nullptr;
  return static_cast<fuse_init_out*>(iov[1].iov_base);
}

// The body of a successful INIT reply that may carry flags2 (FUSE_INIT_EXT), else nullptr.
fuse_init_out* UringTransport::extended_init_reply(struct iovec* iov, int count) {
  fuse_init_out* init = init_reply(iov, count);
  return (init && (init->flags & FUSE_INIT_EXT)) ? init : nullptr;
}

// Takes on dropping setuid/setgid bits (FUSE_HANDLE_KILLPRIV_V2), which libfuse 3.14 cannot ask
// for. Without it the superblock lacks SB_NOSEC, so before every write the kernel asks the daemon
// for security.capability: one round trip per write, which halved passthrough writes. With it
// the kernel asks once per inode until its attributes change, and sends the daemon an empty
// SETATTR (or a truncate's kill flag) where bits must go: Filesystem::setattr drops them.
void UringTransport::patch_init_killpriv(struct iovec* iov, int count) {
  if (!kernel_offers_killpriv_) return;
  fuse_init_out* init = init_reply(iov, count);
  if (!init) return;
  init->flags |= FUSE_HANDLE_KILLPRIV_V2;
  killpriv_granted_ = true;
}

// Asks for passthrough in the INIT reply where wanted and offered (passthrough_granted_).
void UringTransport::patch_init_passthrough(struct iovec* iov, int count) {
  if (!want_passthrough_ || !kernel_offers_passthrough_) return;
  fuse_init_out* init = extended_init_reply(iov, count);
  if (!init || (init->flags & FUSE_WRITEBACK_CACHE)) return;
  init->flags2 |= static_cast<uint32_t>(kFusePassthrough >> 32);
  init->unused[0] = kPassthroughStackDepth;
  passthrough_granted_ = true;
}

// Asks for the ring in the INIT reply and learns the payload size the kernel will demand of
// each entry: max(FUSE_MIN_READ_BUFFER, max_write, max_pages pages). Returns whether it asked.
bool UringTransport::patch_init_reply(struct iovec* iov, int count) {
  if (!ring_ || !kernel_offers_) return false;
  fuse_init_out* init = extended_init_reply(iov, count);
  if (!init) return false;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t pages = (init->flags & FUSE_MAX_PAGES) ? init->max_pages : kDefaultMaxPages;
  const size_t payload = std::max({size_t{kMinReadBuffer}, size_t{init->max_write}, pages * page});
  if (payload > entry_capacity_ || !all_threads_ready()) return false;
  init->flags2 |= static_cast<uint32_t>(kFuseOverIoUring >> 32);
  return true;
}

// Waits (briefly: they only make a ring and map a buffer) until every ring thread is ready or
// has failed; true if all are ready.
bool UringTransport::all_threads_ready() {
  MutexLock lock(phase_mutex_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (prepared_ + failed_ < thread_count_) {
    if (phase_changed_.wait_until(phase_mutex_, deadline) == std::cv_status::timeout) break;
  }
  return prepared_ == thread_count_;
}

void UringTransport::set_phase(Phase phase) {
  {
    MutexLock lock(phase_mutex_);
    if (phase_ == Phase::kStop) return;
    phase_ = phase;
  }
  phase_changed_.notify_all();
}

// In a ring thread, once ready: true when the INIT reply asked for the ring, false on stop()
// or when it did not.
bool UringTransport::wait_for_go() {
  MutexLock lock(phase_mutex_);
  while (phase_ == Phase::kPreparing) phase_changed_.wait(phase_mutex_);
  return phase_ == Phase::kGo;
}

void UringTransport::report_ready(bool ok, int err) {
  {
    MutexLock lock(phase_mutex_);
    ok ? ++prepared_ : ++failed_;
  }
  phase_changed_.notify_all();
  if (!ok) note_failure(err);
}

ssize_t UringTransport::hook_writev(int fd, struct iovec* iov, int count, void*) {
  UringTransport* self = g_transport.load();
  if (!self) return ::writev(fd, iov, count);  // after stop(): plain /dev/fuse
  const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
  Entry* e = t_serving;
  if (e && out->unique == e->unique) {
    // The reply to the ring request this thread serves: into its entry, committed by serve().
    memcpy(e->header.in_out, out, sizeof(*out));
    size_t copied = 0;
    for (int i = 1; i < count; ++i) {
      if (copied + iov[i].iov_len > e->payload_size) {
        errno = EINVAL;
        return -1;
      }
      if (iov[i].iov_base != e->payload + copied)  // else written there by reply_space()
        memcpy(e->payload + copied, iov[i].iov_base, iov[i].iov_len);
      copied += iov[i].iov_len;
    }
    e->header.ent.payload_sz = static_cast<uint32_t>(copied);
    e->replied = true;
    return static_cast<ssize_t>(sizeof(*out) + copied);
  }
  const bool init_reply = out->unique != 0 && out->unique == self->init_unique_.load() &&
                          !self->init_answered_.exchange(true);
  if (init_reply) {
    self->patch_init_passthrough(iov, count);
    self->patch_init_killpriv(iov, count);
  }
  const bool asked = init_reply && self->patch_init_reply(iov, count);
  const ssize_t n = ::writev(fd, iov, count);
  if (init_reply && n < 0) self->passthrough_granted_ = self->killpriv_granted_ = false;
  // The kernel has taken the INIT reply when writev returns: entries may now register. Not
  // asked, the threads have nothing to do.
  if (init_reply) self->set_phase(asked && n >= 0 ? Phase::kGo : Phase::kStop);
  return n;
}

// --- ring threads ---------------------------------------------------------------------------

// One ring thread: its own io_uring and one entry on `cpu`'s queue, made ready before INIT,
// then served until stop() or the end of the connection.
void UringTransport::run_thread(int cpu) {
  pin_to(cpu);
  struct io_uring ring;
  if (int r = make_ring(&ring); r < 0) {
    report_ready(false, -r);
    return;
  }
  Entry e;
  int err = 0;
  const bool ready = prepare_entry(&e, cpu, &err);
  report_ready(ready, err);
  if (ready && wait_for_go()) serve_entry(&ring, &e);
  // Closing the ring cancels the entry's command; the kernel keeps the entry until the
  // connection ends.
  io_uring_queue_exit(&ring);
  if (e.region) ::munmap(e.region, kHeadroom + e.payload_size);
}

bool UringTransport::prepare_entry(Entry* e, int cpu, int* err) {
  e->cpu = cpu;
  e->payload_size = entry_capacity_;
  void* region = ::mmap(nullptr, kHeadroom + e->payload_size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (region == MAP_FAILED) {
    *err = errno;
    return false;
  }
  e->region = static_cast<char*>(region);
  e->payload = e->region + kHeadroom;
  e->iov[0] = {&e->header, sizeof(e->header)};
  e->iov[1] = {e->payload, e->payload_size};
  return true;
}

// Registers `e`, then serves one request after another in it: each completion of the entry's
// command is a request; committing the reply fetches the next.
void UringTransport::serve_entry(struct io_uring* ring, Entry* e) {
  struct io_uring_sqe* stop_sqe = io_uring_get_sqe(ring);
  io_uring_prep_poll_add(stop_sqe, stop_fd_, POLLIN);
  io_uring_sqe_set_data64(stop_sqe, kStopTag);
  prep_cmd(io_uring_get_sqe(ring), dev_fd_, kCmdRegister, e, 0);
  bool registered = false;  // known once the first request arrives
  ++serving_;
  for (;;) {
    const int r = io_uring_submit_and_wait(ring, 1);
    if (r < 0 && r != -EINTR) return;
    struct io_uring_cqe* cqe;
    while (io_uring_peek_cqe(ring, &cqe) == 0) {
      const uint64_t tag = cqe->user_data;
      const int res = cqe->res;
      io_uring_cqe_seen(ring, cqe);
      if (tag == kStopTag) return;
      if (res == -EAGAIN && !registered) {
        ::usleep(1000);  // the kernel has not finished INIT yet
        prep_cmd(io_uring_get_sqe(ring), dev_fd_, kCmdRegister, e, 0);
        continue;
      }
      if (res < 0) {        // -ENOTCONN: the connection ends (unmount)
        if (!registered) {  // the registration failed: the kernel went back to /dev/fuse
          --serving_;
          note_failure(-res);
        }
        return;
      }
      registered = true;
      const uint64_t commit_id = e->header.ent.commit_id;
      serve(e);
      prep_cmd(io_uring_get_sqe(ring), dev_fd_, kCmdCommitAndFetch, e, commit_id);
    }
  }
}

void UringTransport::note_failure(int err) {
  static std::atomic<bool> said{false};
  if (!said.exchange(true)) {
    std::fprintf(stderr,
                 "foldfs: a FUSE io_uring thread could not start (%s): requests the ring "
                 "cannot take go over /dev/fuse\n",
                 strerror(err));
  }
}

// An error reply left in `e` for the next commit.
void UringTransport::reply_error(Entry* e, int err) {
  const fuse_out_header out{sizeof(fuse_out_header), -err, e->unique};
  memcpy(e->header.in_out, &out, sizeof(out));
  e->header.ent.payload_sz = 0;
}

// Runs the request in `e` through libfuse as if read from /dev/fuse, and leaves the reply in
// `e`. A request the handlers did not answer (none should) gets EIO, so the entry lives on.
void UringTransport::serve(Entry* e) {
  ++requests_;
  fuse_in_header in;
  memcpy(&in, e->header.in_out, sizeof(in));
  const size_t payload = e->header.ent.payload_sz;
  const size_t op_size = in.len - sizeof(in) - payload;
  e->unique = in.unique;
  e->replied = false;
  if (in.len < sizeof(in) + payload || op_size > kOpArea || payload > e->payload_size) {
    reply_error(e, EIO);
    return;
  }
  char* start = e->payload - sizeof(in) - op_size;
  memcpy(start, &in, sizeof(in));
  memcpy(start + sizeof(in), e->header.op_in, op_size);
  struct fuse_buf buf;
  memset(&buf, 0, sizeof(buf));
  buf.mem = start;
  buf.size = in.len;
  t_serving = e;
  fuse_session_process_buf(se_, &buf);
  t_serving = nullptr;
  if (!e->replied) reply_error(e, EIO);
}

}  // namespace foldfs::fuse
