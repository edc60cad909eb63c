// Changes made outside the mount (issue 4 §4): directly in the backing tree, or through a second
// foldfs mount of the same tree. With outside=watch (the default) they are visible at once, with
// kernel cache timeouts far longer than the test; with outside=revalidate, within the timeouts.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "harness.h"

namespace foldfs::itest {
namespace {

using Clock = std::chrono::steady_clock;

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// How long until `path` exists (or stops existing), polling every 5 ms; -1 after `limit`.
double seconds_until(const std::string& path, bool want, std::chrono::milliseconds limit) {
  const auto start = Clock::now();
  while (Clock::now() - start < limit) {
    if (exists(path) == want) {
      return std::chrono::duration<double>(Clock::now() - start).count();
    }
    ::usleep(5000);
  }
  return -1;
}

constexpr const char* kLongCaching =
    "casefold=all,entry_timeout=60,negative_timeout=60,attr_timeout=60";

TEST(OutsideChanges, SecondMountOfTheSameTree) {
  Mount a;
  ASSERT_TRUE(a.start(kLongCaching));
  Mount b;
  ASSERT_TRUE(b.start_command({foldfs_binary(), "mount", "-o", kLongCaching, a.backing(), b.mnt()}));
  for (int round = 0; round < 20; ++round) {
    ASSERT_FALSE(exists(b.path("FOO")));  // b's kernel now caches a miss for 60 s
    ASSERT_FALSE(exists(b.path("foo")));
    ASSERT_EQ(write_file(a.path("foo"), "x"), Errno(0));
    const double seen = seconds_until(b.path("FOO"), true, std::chrono::seconds(5));
    ASSERT_GE(seen, 0) << "round " << round << ": a create through mount a never reached b";
    EXPECT_LT(seen, 1.0) << "round " << round;
    ASSERT_TRUE(exists(b.path("Foo")));
    ASSERT_EQ(errno_of(::unlink(a.path("FOO").c_str())), Errno(0));
    const double gone = seconds_until(b.path("foo"), false, std::chrono::seconds(5));
    ASSERT_GE(gone, 0) << "round " << round << ": an unlink through mount a never reached b";
    EXPECT_LT(gone, 1.0) << "round " << round;
    ASSERT_FALSE(exists(b.path("FOO")));
  }
}

TEST(OutsideChanges, DirectChangesInTheBackingTree) {
  Mount m;
  ASSERT_TRUE(m.start(kLongCaching));
  ASSERT_EQ(errno_of(::mkdir(m.path("Dir").c_str(), 0755)), Errno(0));
  ASSERT_FALSE(exists(m.path("DIR/NEW.TXT")));
  // Another program (a child process: not the daemon) writes into the backing tree.
  RunResult r = run({"touch", m.bpath("Dir/new.txt")});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_GE(seconds_until(m.path("dir/NEW.txt"), true, std::chrono::seconds(2)), 0);
  r = run({"mv", m.bpath("Dir/new.txt"), m.bpath("Dir/Renamed.txt")});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_GE(seconds_until(m.path("dir/new.TXT"), false, std::chrono::seconds(2)), 0);
  EXPECT_GE(seconds_until(m.path("DIR/RENAMED.TXT"), true, std::chrono::seconds(2)), 0);
  r = run({"rm", m.bpath("Dir/Renamed.txt")});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_GE(seconds_until(m.path("dir/renamed.txt"), false, std::chrono::seconds(2)), 0);
  EXPECT_EQ(list_dir(m.path("dir")), std::vector<std::string>{});
}

TEST(OutsideChanges, RevalidateModeSeesChangesWithinTheTimeouts) {
  // outside=revalidate is for backing filesystems with no change notification (NFS): the
  // documented bound is the kernel's entry/negative timeout.
  const std::string opts =
      "casefold=all,outside=revalidate,entry_timeout=1,negative_timeout=1,attr_timeout=1";
  Mount a;
  ASSERT_TRUE(a.start(opts));
  Mount b;
  ASSERT_TRUE(b.start_command({foldfs_binary(), "mount", "-o", opts, a.backing(), b.mnt()}));
  ASSERT_FALSE(exists(b.path("FOO")));
  ASSERT_EQ(write_file(a.path("foo"), "x"), Errno(0));
  const double seen = seconds_until(b.path("FOO"), true, std::chrono::seconds(5));
  ASSERT_GE(seen, 0);
  EXPECT_LT(seen, 2.0) << "the bound is negative_timeout (1 s) plus scheduling";
  ASSERT_EQ(errno_of(::unlink(a.path("FOO").c_str())), Errno(0));
  const double gone = seconds_until(b.path("Foo"), false, std::chrono::seconds(5));
  ASSERT_GE(gone, 0);
  EXPECT_LT(gone, 2.0);
  RunResult stats = run({foldfs_binary(), "stats", b.mnt()});
  EXPECT_NE(stats.out.find("watching 0"), std::string::npos) << stats;
}

}  // namespace
}  // namespace foldfs::itest
