#define FUSE_USE_VERSION 312
#include "fuse/kernel_notifier.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <unistd.h>

#include <cstdint>

namespace foldfs::fuse {
namespace {

// From the kernel's uapi/linux/fuse.h (libfuse 3.14 does not install it).
constexpr int32_t kNotifyIncEpoch = 8;  // FUSE_NOTIFY_INC_EPOCH, protocol 7.44
constexpr unsigned kEpochMinor = 44;

struct OutHeader {  // struct fuse_out_header
  uint32_t len;
  int32_t error;    // for notifications: the notify code
  uint64_t unique;  // 0: a notification, not a reply
};
static_assert(sizeof(OutHeader) == 16);

}  // namespace

void EpochNotifier::attach_from_init(unsigned proto_major, unsigned proto_minor) {
  supported_ = proto_major > 7 || (proto_major == 7 && proto_minor >= kEpochMinor);
}

bool EpochNotifier::invalidate_all_dentries() {
  struct fuse_session* se = session_.load();
  if (!se || !supported_.load()) return false;
  const OutHeader header{sizeof(OutHeader), kNotifyIncEpoch, 0};
  ssize_t n;
  do {
    n = ::write(fuse_session_fd(se), &header, sizeof(header));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(header))) return true;
  // The kernel refused it: stop letting it cache what we could not invalidate from now on.
  supported_ = false;
  return false;
}

void EpochNotifier::invalidate_inode(uint64_t ino) {
  struct fuse_session* se = session_.load();
  if (!se) return;
  // ENOENT: the kernel no longer holds the inode, nothing to drop.
  fuse_lowlevel_notify_inval_inode(se, ino, 0, 0);
}

}  // namespace foldfs::fuse
