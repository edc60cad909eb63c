// The kernel-invalidation path of foldfs: how the filesystem makes the kernel forget dentries.
//
// Contract (the reasoning is in docs/coherence.md):
//  - The kernel's FUSE dentry cache compares names bytewise, so one file in a casefolded
//    directory may sit in it under several spellings, and a miss under one spelling says
//    nothing the daemon can correct by invalidating another.
//  - fuse_lowlevel_notify_inval_entry() takes the parent directory's lock in the kernel: sent
//    from the handler of a request that holds that lock (create, unlink, rename, ...), it
//    deadlocks; sent after the reply, it leaves a window in which a later lookup sees the stale
//    dentry. Neither is acceptable, so foldfs does not use it on the operation path.
//  - FUSE_NOTIFY_INC_EPOCH (protocol 7.44, Linux 6.16+) bumps the connection's epoch without
//    taking any lock: it is safe inside a request handler, so it is sent BEFORE the reply of the
//    operation that needs it. Every dentry tagged with an older epoch is revalidated on next
//    use, and the kernel tags a lookup with the epoch read before the request was sent, so an
//    answer computed concurrently with the change can never be cached as current.
//  - libfuse 3.14 has no call for it; the notification is a bare 16-byte fuse_out_header
//    (error = FUSE_NOTIFY_INC_EPOCH, unique = 0) written to the session's device fd.
//  - On kernels that do not accept it, can_invalidate_all() is false and the filesystem lets
//    the kernel cache nothing in casefolded directories (timeouts 0).
#pragma once

#include <atomic>

#include "fs/filesystem.h"

struct fuse_session;

namespace foldfs::fuse {

class EpochNotifier final : public fs::KernelNotifier {
 public:
  void set_session(struct fuse_session* session) { session_ = session; }
  // Called from the INIT handler with the kernel's protocol version.
  void attach_from_init(unsigned proto_major, unsigned proto_minor);

  bool can_invalidate_all() const override { return supported_.load(); }
  bool invalidate_all_dentries() override;
  // fuse_lowlevel_notify_inval_inode: from the watcher's thread only (see fs::KernelNotifier).
  void invalidate_inode(uint64_t ino) override;

 private:
  std::atomic<struct fuse_session*> session_{nullptr};
  std::atomic<bool> supported_{false};
};

}  // namespace foldfs::fuse
