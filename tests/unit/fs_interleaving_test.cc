// Casefold flips against concurrent lookups, at the core level (issue 4 §3), with a model of the
// kernel's FUSE dentry cache: answers are cached per exact spelling, tagged with the epoch read
// BEFORE the request was sent, and valid only while that epoch is current (what
// fuse_lookup/fuse_dentry_revalidate do on Linux 6.16+), and the VFS's directory lock: lookups
// hold it shared, operations on the directory (create, unlink, the flag ioctl) exclusively. Two
// forced interleavings, then a randomized run with many threads (this binary also runs under
// ThreadSanitizer).
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "fs/filesystem.h"
#include "support/scratch_dir.h"

namespace foldfs::fs {
namespace {

constexpr uint32_t kCasefoldFlag = FS_CASEFOLD_FL;
#if defined(__SANITIZE_THREAD__)
constexpr int kRounds = 60;  // ThreadSanitizer makes each round ~30x slower
#else
constexpr int kRounds = 300;
#endif

class KernelModel : public KernelNotifier {
 public:
  bool can_invalidate_all() const override { return true; }
  bool invalidate_all_dentries() override {
    epoch_.fetch_add(1);
    return true;
  }

  // A lookup as the kernel makes it: from the cache when valid, else asking the filesystem.
  // Returns true when the name exists.
  bool lookup(Filesystem& fs, uint64_t dir, const std::string& name) {
    while (writers_waiting_.load() > 0) std::this_thread::yield();  // glibc favours readers
    std::shared_lock vfs(vfs_dir_lock_);
    const uint64_t snapshot = epoch_.load();
    {
      std::lock_guard lock(mutex_);
      auto it = cache_.find({dir, name});
      if (it != cache_.end() && it->second.epoch == snapshot) return it->second.positive;
    }
    EntryOut out;
    const int err = fs.lookup(Context{}, dir, name, &out);
    if (err == 0 && out.ino != 0) fs.forget(out.ino, 1);
    const bool positive = err == 0;
    if ((err == 0 || err == ENOENT) && out.entry_timeout > 0) {
      std::lock_guard lock(mutex_);
      cache_[{dir, name}] = Entry{positive, snapshot};
    }
    return positive;
  }

  // What the kernel does to the dentry an operation named: it now knows the answer.
  void operated(uint64_t dir, const std::string& name, bool positive, uint64_t snapshot) {
    std::lock_guard lock(mutex_);
    cache_[{dir, name}] = Entry{positive, snapshot};
  }
  uint64_t epoch() const { return epoch_.load(); }
  // The VFS's lock of the directory (i_rwsem): operations on it hold it exclusively.
  class ExclusiveVfsLock {
   public:
    ExclusiveVfsLock(KernelModel& k, bool take) : k_(k), take_(take) {
      if (!take_) return;
      k_.writers_waiting_++;
      k_.vfs_dir_lock_.lock();
      k_.writers_waiting_--;
    }
    ~ExclusiveVfsLock() {
      if (take_) k_.vfs_dir_lock_.unlock();
    }

   private:
    KernelModel& k_;
    bool take_;
  };

 private:
  std::shared_mutex vfs_dir_lock_;
  std::atomic<int> writers_waiting_{0};
  struct Entry {
    bool positive;
    uint64_t epoch;
  };
  std::atomic<uint64_t> epoch_{1};
  std::mutex mutex_;
  std::map<std::pair<uint64_t, std::string>, Entry> cache_;
};

// A gate a hooked thread waits at until the test opens it.
class Gate {
 public:
  void arrive_and_wait() {
    std::unique_lock lock(m_);
    arrived_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  // Whether a thread arrived within 10 s: a hooked operation that failed before its hook never
  // arrives, and the test must say so rather than wait for ever.
  bool wait_arrival() {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return arrived_; });
  }
  void open() {
    std::lock_guard lock(m_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool arrived_ = false;
  bool open_ = false;
};

class InterleavingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(scratch_.ok());
    root_ = scratch_.path();
    int err = 0;
    Options o;
    o.entry_timeout = o.negative_timeout = 60;
    fs_ = Filesystem::open(root_, o, &err);
    ASSERT_TRUE(fs_);
    fs_->set_notifier(&kernel_);
    EntryOut out;
    ASSERT_EQ(fs_->mkdir(Context{}, Filesystem::kRootId, "d", 0755, &out), 0);
    dir_ = out.ino;
  }
  void TearDown() override { fs_.reset(); }

  int create(const std::string& name) {
    KernelModel::ExclusiveVfsLock vfs(kernel_, true);
    const uint64_t snapshot = kernel_.epoch();
    EntryOut out;
    uint64_t fh = 0;
    const int err =
        fs_->create(Context{}, dir_, name, 0644, O_CREAT | O_EXCL | O_WRONLY, &out, &fh);
    if (err == 0) {
      fs_->release(fh);
      kernel_.operated(dir_, name, true, snapshot);
    }
    return err;
  }
  int unlink(const std::string& name) {
    KernelModel::ExclusiveVfsLock vfs(kernel_, true);
    const uint64_t snapshot = kernel_.epoch();
    const int err = fs_->unlink(Context{}, dir_, name);
    if (err == 0) kernel_.operated(dir_, name, false, snapshot);
    return err;
  }
  int flip(bool on) {
    KernelModel::ExclusiveVfsLock vfs(kernel_, !unlocked_flip_);
    return fs_->set_flags(Context{}, dir_, on ? kCasefoldFlag : 0);
  }
  // The forced interleavings hold the flip inside the daemon while a lookup is in flight, which
  // the VFS lock would forbid; they exercise the daemon's own lock instead.
  bool unlocked_flip_ = false;

  test_support::ScratchDir scratch_{"foldfs-interleave"};
  std::string root_;
  std::unique_ptr<Filesystem> fs_;
  KernelModel kernel_;
  uint64_t dir_ = 0;
};

TEST_F(InterleavingTest, LookupAnsweredBeforeTheFlipCannotOutliveIt) {
  unlocked_flip_ = true;
  Gate gate;
  std::atomic<bool> armed{true};
  fs_->set_test_hook([&](const char* point) {
    if (std::strcmp(point, "lookup:answered") == 0 && armed.exchange(false)) {
      gate.arrive_and_wait();
    }
  });
  // A lookup of "FOO" under case-sensitive rules is paused after computing its answer.
  std::thread lookup([&] { EXPECT_FALSE(kernel_.lookup(*fs_, dir_, "FOO")); });
  if (!gate.wait_arrival()) {
    gate.open();
    lookup.join();
    FAIL() << "the lookup never reached its hook";
  }
  std::atomic<bool> flipped{false};
  std::thread flipper([&] {
    EXPECT_EQ(flip(true), 0);
    flipped = true;
  });
  ::usleep(50 * 1000);
  EXPECT_FALSE(flipped) << "a flip must wait for lookups in flight in that directory";
  gate.open();
  lookup.join();
  flipper.join();
  fs_->set_test_hook(nullptr);
  ASSERT_EQ(create("foo"), 0);
  EXPECT_TRUE(kernel_.lookup(*fs_, dir_, "FOO")) << "the old-rules miss survived the flip";
}

TEST_F(InterleavingTest, LookupWaitingBehindTheFlipUsesTheNewRules) {
  unlocked_flip_ = true;
  Gate gate;
  fs_->set_test_hook([&](const char* point) {
    if (std::strcmp(point, "flip:written") == 0) gate.arrive_and_wait();
  });
  std::thread flipper([&] { EXPECT_EQ(flip(true), 0); });
  if (!gate.wait_arrival()) {  // the flag is written, the rules in memory not yet switched
    gate.open();
    flipper.join();
    FAIL() << "the flip never reached its hook";
  }
  std::atomic<bool> answered{false};
  std::thread lookup([&] {
    EXPECT_FALSE(kernel_.lookup(*fs_, dir_, "FOO"));
    answered = true;
  });
  ::usleep(50 * 1000);
  EXPECT_FALSE(answered) << "a lookup must not run against a directory in mid-flip";
  gate.open();
  flipper.join();
  lookup.join();
  fs_->set_test_hook(nullptr);
  ASSERT_EQ(create("foo"), 0);
  EXPECT_TRUE(kernel_.lookup(*fs_, dir_, "FOO"));
  EXPECT_TRUE(kernel_.lookup(*fs_, dir_, "Foo"));
}

TEST_F(InterleavingTest, TheNaiveDesignIsCaught) {
  // Without the invalidation the model's cached miss survives the flip: the check above bites.
  Options o;
  o.entry_timeout = o.negative_timeout = 60;
  o.debug_no_invalidation = true;
  int err = 0;
  fs_ = Filesystem::open(root_, o, &err);
  ASSERT_TRUE(fs_);
  fs_->set_notifier(&kernel_);
  EntryOut out;
  ASSERT_EQ(fs_->mkdir(Context{}, Filesystem::kRootId, "naive", 0755, &out), 0);
  dir_ = out.ino;
  EXPECT_FALSE(kernel_.lookup(*fs_, dir_, "FOO"));
  ASSERT_EQ(flip(true), 0);
  ASSERT_EQ(create("foo"), 0);
  EXPECT_FALSE(kernel_.lookup(*fs_, dir_, "FOO")) << "expected the stale miss of a naive design";
}

TEST_F(InterleavingTest, ManyLookupThreadsAgainstFlipsAndCreates) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> lookers;
  const std::vector<std::string> spellings = {"foo", "FOO", "Foo", "fOo", "bar", "BAR"};
  for (int t = 0; t < 4; ++t) {
    lookers.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      while (!stop) kernel_.lookup(*fs_, dir_, spellings[rng() % spellings.size()]);
    });
  }
  for (int round = 0; round < kRounds; ++round) {
    ASSERT_EQ(flip(true), 0) << "round " << round;
    ASSERT_EQ(create("foo"), 0) << "round " << round;
    EXPECT_TRUE(kernel_.lookup(*fs_, dir_, "FOO")) << "round " << round;
    EXPECT_TRUE(kernel_.lookup(*fs_, dir_, "Foo")) << "round " << round;
    ASSERT_EQ(unlink("FOO"), 0) << "round " << round;
    EXPECT_FALSE(kernel_.lookup(*fs_, dir_, "foo")) << "round " << round;
    EXPECT_FALSE(kernel_.lookup(*fs_, dir_, "fOo")) << "round " << round;
    ASSERT_EQ(flip(false), 0) << "round " << round;
    ASSERT_EQ(create("foo"), 0) << "round " << round;
    EXPECT_FALSE(kernel_.lookup(*fs_, dir_, "FOO")) << "round " << round << ": case-sensitive";
    EXPECT_TRUE(kernel_.lookup(*fs_, dir_, "foo")) << "round " << round;
    ASSERT_EQ(unlink("foo"), 0) << "round " << round;
  }
  stop = true;
  for (auto& t : lookers) t.join();
}

}  // namespace
}  // namespace foldfs::fs
