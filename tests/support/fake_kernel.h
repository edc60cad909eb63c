// A stand-in for the kernel in tests of the filesystem core (no FUSE): it records what the
// filesystem asks of it — that every dentry be revalidated (FUSE_NOTIFY_INC_EPOCH: the epoch
// goes up), and that inodes' attributes and pages be dropped.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "fs/kernel_notifier.h"

namespace foldfs::test_support {

class FakeKernel : public fs::KernelNotifier {
 public:
  // `has_epochs` false: a kernel older than FUSE_NOTIFY_INC_EPOCH (nothing can be invalidated).
  explicit FakeKernel(bool has_epochs = true) : has_epochs_(has_epochs) {}

  bool can_invalidate_all() const override { return has_epochs_; }
  bool invalidate_all_dentries() override {
    if (!has_epochs_) return false;
    invalidations_++;
    return true;
  }
  void invalidate_inode(uint64_t ino) override {
    std::lock_guard lock(mutex_);
    inodes_.push_back(ino);
  }

  // How many times every dentry was invalidated.
  int invalidations() const { return invalidations_.load(); }
  // The kernel's epoch: a dentry cached under an older one is revalidated before use.
  uint64_t epoch() const { return 1 + static_cast<uint64_t>(invalidations_.load()); }
  std::vector<uint64_t> invalidated_inodes() const {
    std::lock_guard lock(mutex_);
    return inodes_;
  }

 private:
  const bool has_epochs_;
  std::atomic<int> invalidations_{0};
  mutable std::mutex mutex_;
  std::vector<uint64_t> inodes_;
};

}  // namespace foldfs::test_support
