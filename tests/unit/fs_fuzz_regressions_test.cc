// Bugs found by the fuzz targets (tests/fuzz/), each as a plain test of the filesystem core.
// The fuzzer inputs that found them are kept in tests/fuzz/corpus/<target>/ (named after the
// test). See docs/testing.md, "Fuzzing".
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "fs/filesystem.h"
#include "support/fake_kernel.h"
#include "support/scratch_dir.h"

namespace foldfs::fs {
namespace {

constexpr uint32_t kCasefoldFlag = FS_CASEFOLD_FL;

class FuzzRegressionTest : public ::testing::Test {
 protected:
  // `base`: where the backing directory lives. Most tests use /tmp (as the other core tests);
  // a test about timestamps also runs on /dev/shm (tmpfs) when it is there.
  void make_root(const std::string& base = "/tmp") {
    roots_.push_back(std::make_unique<test_support::ScratchDir>("foldfs-fuzzreg", base));
    ASSERT_TRUE(roots_.back()->ok());
    root_ = roots_.back()->path();
  }
  void SetUp() override { make_root(); }
  void TearDown() override {
    fs_.reset();
    for (const auto& r : roots_) {
      // Tests set the immutable flag: clear it everywhere before the tree goes.
      for (auto& e : std::filesystem::recursive_directory_iterator(r->path()))
        set_raw_flags(e.path(), 0);
      set_raw_flags(r->path(), 0);
    }
    roots_.clear();
  }
  static void set_raw_flags(const std::filesystem::path& p, int flags) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    int cur = 0;
    if (::ioctl(fd, FS_IOC_GETFLAGS, &cur) == 0 && cur != flags)
      ::ioctl(fd, FS_IOC_SETFLAGS, &flags);
    ::close(fd);
  }
  void open_fs(CasefoldMode mode, bool read_only = false) {
    Options o;
    o.casefold = mode;
    o.read_only = read_only;
    o.outside = OutsideChanges::kRevalidate;
    int err = 0;
    fs_ = Filesystem::open(root_, o, &err);
    ASSERT_TRUE(fs_) << "errno " << err;
    fs_->set_notifier(&notifier_);
  }
  int lookup(uint64_t parent, const std::string& name, uint64_t* ino = nullptr) {
    EntryOut out;
    const int err = fs_->lookup(ctx_, parent, name, &out);
    if (ino) *ino = err == 0 ? out.ino : 0;
    return err;
  }
  int create(uint64_t parent, const std::string& name, uint64_t* ino = nullptr) {
    EntryOut out;
    uint64_t fh = 0;
    const int err = fs_->create(ctx_, parent, name, 0644, O_CREAT | O_EXCL | O_WRONLY, &out, &fh);
    if (err == 0) {
      fs_->release(fh);
      if (ino) *ino = out.ino;
    }
    return err;
  }
  int mkdir(uint64_t parent, const std::string& name, uint64_t* ino = nullptr) {
    EntryOut out;
    const int err = fs_->mkdir(ctx_, parent, name, 0755, &out);
    if (ino) *ino = err == 0 ? out.ino : 0;
    return err;
  }
  uint32_t flags_of(uint64_t ino) {
    uint32_t flags = 0;
    EXPECT_EQ(fs_->get_flags(ino, &flags), 0);
    return flags;
  }
  // A change made directly in the backing tree, as another program would make it.
  void backing_touch(const std::string& rel) { std::ofstream(root_ + "/" + rel) << "x"; }
  // Gives the backing root a modification time never seen before, so that the change above is
  // told apart by its times whatever the clock's granularity.
  void bump_root_mtime() {
    static long fake = 1000000;
    const struct timespec times[2] = {{0, UTIME_OMIT}, {++fake, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, root_.c_str(), times, 0), 0);
  }

  std::vector<std::unique_ptr<test_support::ScratchDir>> roots_;
  std::string root_;
  std::unique_ptr<Filesystem> fs_;
  test_support::FakeKernel notifier_;
  Context ctx_;
  static constexpr uint64_t kRoot = Filesystem::kRootId;
};

// fs_ioctl_fuzz (corpus/fs_ioctl/regression_setflags_nonempty): chattr +F together with another
// flag on a non-empty directory. ext4 checks the casefold change before it applies anything;
// foldfs set the other flag, then answered ENOTEMPTY.
TEST_F(FuzzRegressionTest, FailedCasefoldFlipChangesNoOtherFlag) {
  open_fs(CasefoldMode::kFlag);
  uint64_t dir = 0;
  ASSERT_EQ(mkdir(kRoot, "d", &dir), 0);
  ASSERT_EQ(create(dir, "child"), 0);
  const uint32_t before = flags_of(dir);
  EXPECT_EQ(fs_->set_flags(ctx_, dir, before | kCasefoldFlag | FS_NOATIME_FL), ENOTEMPTY);
  EXPECT_EQ(flags_of(dir), before) << "the refused call changed FS_NOATIME_FL";
}

// The same with casefold=all, where clearing the flag is refused (EPERM).
TEST_F(FuzzRegressionTest, RefusedCasefoldClearChangesNoOtherFlag) {
  open_fs(CasefoldMode::kAll);
  uint64_t dir = 0;
  ASSERT_EQ(mkdir(kRoot, "d", &dir), 0);
  const uint32_t before = flags_of(dir);
  ASSERT_TRUE(before & kCasefoldFlag);
  EXPECT_EQ(fs_->set_flags(ctx_, dir, (before & ~kCasefoldFlag) | FS_NOATIME_FL), EPERM);
  EXPECT_EQ(flags_of(dir), before) << "the refused call changed FS_NOATIME_FL";
}

// fs_ioctl_fuzz (corpus/fs_ioctl/regression_setflags_immutable): `chattr +iF` on an empty
// directory. ext4 sets both at once; foldfs made the directory immutable first, then could not
// store the casefold flag on the immutable directory: EPERM, with the directory left immutable.
TEST_F(FuzzRegressionTest, CasefoldAndImmutableTogether) {
  open_fs(CasefoldMode::kFlag);
  uint64_t dir = 0;
  ASSERT_EQ(mkdir(kRoot, "d", &dir), 0);
  const uint32_t before = flags_of(dir);
  const int err = fs_->set_flags(ctx_, dir, before | kCasefoldFlag | FS_IMMUTABLE_FL);
  const uint32_t after = flags_of(dir);
  if (err == 0) {
    EXPECT_TRUE(after & kCasefoldFlag);
    EXPECT_TRUE(after & FS_IMMUTABLE_FL);
  } else {
    ADD_FAILURE() << "chattr +iF on an empty directory: " << strerrorname_np(err)
                  << " (ext4: success)";
    EXPECT_EQ(after, before) << "and the failed call left flags 0x" << std::hex << after;
  }
}

// fs_ioctl_fuzz (corpus/fs_ioctl/regression_setflags_ro): with `ro`, FS_IOC_SETFLAGS changed
// the backing file's flags. set_fsxattr, setxattr and every namespace change answer EROFS, as
// the VFS does for SETFLAGS on a read-only mount.
TEST_F(FuzzRegressionTest, ReadOnlyRefusesSetFlags) {
  backing_touch("f");
  open_fs(CasefoldMode::kFlag, /*read_only=*/true);
  uint64_t file = 0;
  ASSERT_EQ(lookup(kRoot, "f", &file), 0);
  const uint32_t before = flags_of(file);
  EXPECT_EQ(fs_->set_flags(ctx_, file, before | FS_NOATIME_FL), EROFS);
  EXPECT_EQ(flags_of(file), before);
}

// fs_ops_fuzz (corpus/fs_ops/regression_revalidate_stamp), outside=revalidate: a change through
// the mount took the directory's new times as the index's stamp without reloading it, so an
// outside change made just before (and not yet seen) was never seen: an equivalent of the
// outside name could then be created next to it.
TEST_F(FuzzRegressionTest, ChangeThroughTheMountKeepsAnEarlierOutsideChange) {
  open_fs(CasefoldMode::kAll);
  ASSERT_EQ(create(kRoot, "a"), 0);  // loads the index
  backing_touch("B");
  bump_root_mtime();
  ASSERT_EQ(fs_->unlink(ctx_, kRoot, "a"), 0);  // the stamp moves to the times after this
  EXPECT_EQ(lookup(kRoot, "b"), 0) << "the outside name is unreachable by another spelling";
  EXPECT_EQ(mkdir(kRoot, "b"), EEXIST);
  EXPECT_FALSE(std::filesystem::exists(root_ + "/b"));
}

// Found by fs_ops_fuzz (which now gives the directory a fresh time after each outside change,
// so that it checks the rest; no corpus file), outside=revalidate: the daemon tells outside
// changes by the directory's change and modification times. On tmpfs (Linux 6.18), a name
// removed right after the directory's times were read leaves them as they were (multigrain
// timestamps), and the daemon's index kept the name until the next change of the directory:
// an equivalent could not be created (EEXIST). The contract (docs/coherence.md): such a change
// is seen within the timeouts.
TEST_F(FuzzRegressionTest, OutsideRemovalIsSeenWithinTheTimeouts) {
  for (const std::string base : {"/tmp", "/dev/shm"}) {
    if (base != "/tmp") {
      if (!std::filesystem::is_directory(base)) continue;
      fs_.reset();
      make_root(base);
    }
    Options o;
    o.casefold = CasefoldMode::kAll;
    o.outside = OutsideChanges::kRevalidate;
    o.entry_timeout = o.negative_timeout = 0.05;
    int err = 0;
    fs_ = Filesystem::open(root_, o, &err);
    ASSERT_TRUE(fs_) << "errno " << err;
    fs_->set_notifier(&notifier_);
    int missed = 0;
    for (int i = 0; i < 5; ++i) {
      const std::string n = std::to_string(i);
      ASSERT_EQ(create(kRoot, "victim" + n), 0);
      ASSERT_EQ(create(kRoot, "mount" + n), 0);  // the index's stamp: the times after this
      ASSERT_EQ(::unlink((root_ + "/victim" + n).c_str()), 0);  // outside, at once
      ::usleep(100 * 1000);                                     // past the timeouts
      const int e = create(kRoot, "VICTIM" + n);
      if (e == EEXIST)
        ++missed;
      else
        EXPECT_EQ(e, 0);
    }
    EXPECT_EQ(missed, 0) << "outside removals not seen within the timeouts on " << base;
  }
}

// fs_ops_fuzz (corpus/fs_ops/regression_rename_hard_links): rename(2) between two hard links of
// one file does nothing (both names stay), but the daemon's index dropped the source name, so
// other spellings of it were no longer found. (The VFS answers such a rename itself, so through
// a mount this needs another way in; the core API takes it.)
TEST_F(FuzzRegressionTest, RenameBetweenHardLinksKeepsBothNames) {
  open_fs(CasefoldMode::kAll);
  uint64_t file = 0;
  ASSERT_EQ(create(kRoot, "a", &file), 0);
  EntryOut out;
  ASSERT_EQ(fs_->link(ctx_, file, kRoot, "b", &out), 0);
  ASSERT_EQ(fs_->rename(ctx_, kRoot, "a", kRoot, "b", 0), 0);
  EXPECT_TRUE(std::filesystem::exists(root_ + "/a"));
  EXPECT_TRUE(std::filesystem::exists(root_ + "/b"));
  EXPECT_EQ(lookup(kRoot, "A"), 0) << "\"a\" is still there";
  EXPECT_EQ(create(kRoot, "A"), EEXIST);
}

}  // namespace
}  // namespace foldfs::fs
