// Changes made outside the mount (issue 4 §4): directly in the backing tree, or through a second
// foldfs mount of the same tree. With outside=watch (the default) they are visible at once, with
// kernel cache timeouts far longer than the test; with outside=revalidate, within the timeouts.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>

#include "harness.h"

namespace foldfs::itest {
namespace {

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// How long until `path` exists (or stops existing); -1 after `limit`.
double seconds_until_exists(const std::string& path, bool want, std::chrono::milliseconds limit) {
  return seconds_until([&] { return exists(path) == want; }, limit);
}

mode_t mode_of(const std::string& path) {
  auto st = lstat_of(path);
  return st ? st->st_mode & 07777 : 0;
}

constexpr const char* kLongCaching =
    "casefold=all,entry_timeout=60,negative_timeout=60,attr_timeout=60";
constexpr const char* kShortCaching =
    "casefold=all,entry_timeout=1,negative_timeout=1,attr_timeout=1";

// What a change made outside may take to be seen: where the daemon watches the backing
// filesystem (outside_changes_pushed), at once with kernel timeouts of a minute; elsewhere
// (filesystems without handles or change reports, filesystems mounted inside the tree) within
// the timeouts, 1 s here. Mounts `m` with the options that bound applies to.
double start_with_the_bound_that_applies(Mount& m) {
  EXPECT_TRUE(m.start(kLongCaching));
  if (outside_changes_pushed(m)) return 1.0;
  EXPECT_TRUE(m.unmount());
  EXPECT_TRUE(m.start(kShortCaching));
  return 2.0;  // the 1 s timeout and scheduling
}

TEST(OutsideChanges, SecondMountOfTheSameTree) {
  Mount a;
  ASSERT_TRUE(a.start(kLongCaching));
  Mount b;
  const double bound = start_with_the_bound_that_applies(b);
  ASSERT_TRUE(b.unmount());
  const char* options = bound > 1.0 ? kShortCaching : kLongCaching;
  ASSERT_TRUE(b.start_command({foldfs_binary(), "mount", "-o", options, a.backing(), b.mnt()}));
  // b's paths: where a's tests work, through b.
  auto in_b = [&](const std::string& rel) { return b.mnt() + a.path(rel).substr(a.mnt().size()); };
  for (int round = 0; round < 20; ++round) {
    ASSERT_FALSE(exists(in_b("FOO")));  // b's kernel now caches a miss for 60 s
    ASSERT_FALSE(exists(in_b("foo")));
    ASSERT_EQ(write_file(a.path("foo"), "x"), Errno(0));
    const double seen = seconds_until_exists(in_b("FOO"), true, std::chrono::seconds(5));
    ASSERT_GE(seen, 0) << "round " << round << ": a create through mount a never reached b";
    EXPECT_LT(seen, bound) << "round " << round;
    ASSERT_TRUE(exists(in_b("Foo")));
    ASSERT_EQ(errno_of(::unlink(a.path("FOO").c_str())), Errno(0));
    const double gone = seconds_until_exists(in_b("foo"), false, std::chrono::seconds(5));
    ASSERT_GE(gone, 0) << "round " << round << ": an unlink through mount a never reached b";
    EXPECT_LT(gone, bound) << "round " << round;
    // Every spelling: where nothing is pushed, each dentry b's kernel holds expires by itself.
    const double all_gone = seconds_until_exists(in_b("FOO"), false, std::chrono::seconds(5));
    ASSERT_GE(all_gone, 0) << "round " << round;
    EXPECT_LT(all_gone, bound) << "round " << round;
  }
}

TEST(OutsideChanges, DirectChangesInTheBackingTree) {
  Mount m;
  start_with_the_bound_that_applies(m);
  ASSERT_EQ(errno_of(::mkdir(m.path("Dir").c_str(), 0755)), Errno(0));
  ASSERT_FALSE(exists(m.path("DIR/NEW.TXT")));
  // Another program (a child process: not the daemon) writes into the backing tree.
  RunResult r = run({"touch", m.bpath("Dir/new.txt")});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_GE(seconds_until_exists(m.path("dir/NEW.txt"), true, std::chrono::seconds(2)), 0);
  r = run({"mv", m.bpath("Dir/new.txt"), m.bpath("Dir/Renamed.txt")});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_GE(seconds_until_exists(m.path("dir/new.TXT"), false, std::chrono::seconds(2)), 0);
  EXPECT_GE(seconds_until_exists(m.path("DIR/RENAMED.TXT"), true, std::chrono::seconds(2)), 0);
  r = run({"rm", m.bpath("Dir/Renamed.txt")});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_GE(seconds_until_exists(m.path("dir/renamed.txt"), false, std::chrono::seconds(2)), 0);
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
  auto in_b = [&](const std::string& rel) { return b.mnt() + a.path(rel).substr(a.mnt().size()); };
  ASSERT_FALSE(exists(in_b("FOO")));
  ASSERT_EQ(write_file(a.path("foo"), "x"), Errno(0));
  const double seen = seconds_until_exists(in_b("FOO"), true, std::chrono::seconds(5));
  ASSERT_GE(seen, 0);
  EXPECT_LT(seen, 2.0) << "the bound is negative_timeout (1 s) plus scheduling";
  ASSERT_EQ(errno_of(::unlink(a.path("FOO").c_str())), Errno(0));
  const double gone = seconds_until_exists(in_b("Foo"), false, std::chrono::seconds(5));
  ASSERT_GE(gone, 0);
  EXPECT_LT(gone, 2.0);
  RunResult stats = run({foldfs_binary(), "stats", b.mnt()});
  EXPECT_NE(stats.out.find("watching 0"), std::string::npos) << stats;
}

// With the default timeouts the kernel keeps answers for a minute (outside=watch pushes every
// outside change to it), so attribute and data changes made directly in the backing tree must
// be pushed too: each is seen through the mount long before the kernel's copy would expire.
TEST(OutsideChanges, AttributeAndDataChangesArePushedToTheKernel) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=all"));
  // Where nothing is pushed, the default timeouts are short and bound the same checks.
  const double bound = outside_changes_pushed(m) ? 1.0 : 2.0;
  ASSERT_EQ(errno_of(::mkdir(m.path("Saves").c_str(), 0755)), Errno(0));
  ASSERT_EQ(write_file(m.path("Saves/Slot1.sav"), "aaaa"), Errno(0));
  const std::string file = m.path("SAVES/slot1.SAV");
  for (int round = 0; round < 5; ++round) {
    // The kernel now holds the attributes and the pages.
    ASSERT_EQ(mode_of(file), 0644u);
    ASSERT_EQ(read_file(file), std::optional<std::string>("aaaa"));

    RunResult r = run({"chmod", "600", m.bpath("Saves/Slot1.sav")});
    ASSERT_TRUE(r.ok()) << r;
    double seen = seconds_until([&] { return mode_of(file) == 0600; }, 5s);
    ASSERT_GE(seen, 0) << "round " << round << ": an outside chmod never reached the mount";
    EXPECT_LT(seen, bound) << "round " << round;

    // Same size, new bytes: only an invalidation of the cached pages shows them.
    r = run({"sh", "-c",
             "printf bbbb | dd of=" + m.bpath("Saves/Slot1.sav") + " conv=notrunc status=none"});
    ASSERT_TRUE(r.ok()) << r;
    seen = seconds_until([&] { return read_file(file) == std::optional<std::string>("bbbb"); }, 5s);
    ASSERT_GE(seen, 0) << "round " << round << ": outside data never reached the mount";
    EXPECT_LT(seen, bound) << "round " << round;

    r = run({"sh", "-c", "printf cc >> " + m.bpath("Saves/Slot1.sav")});
    ASSERT_TRUE(r.ok()) << r;
    seen =
        seconds_until([&] { return read_file(file) == std::optional<std::string>("bbbbcc"); }, 5s);
    ASSERT_GE(seen, 0) << "round " << round << ": an outside append never reached the mount";

    // The directory's own attributes.
    r = run({"chmod", "700", m.bpath("Saves")});
    ASSERT_TRUE(r.ok()) << r;
    seen = seconds_until([&] { return mode_of(m.path("saves")) == 0700; }, 5s);
    ASSERT_GE(seen, 0) << "round " << round << ": an outside chmod of a directory";

    // Back to the start through the mount (our own changes need no push).
    ASSERT_EQ(errno_of(::chmod(m.path("saves").c_str(), 0755)), Errno(0));
    ASSERT_EQ(write_file(file, "aaaa"), Errno(0));
    ASSERT_EQ(errno_of(::chmod(file.c_str(), 0644)), Errno(0));
  }
}

// A change by another spelling makes the kernel forget every dentry of the mount, and with them
// the directory's inode. The directory keeps its name index and its watch while it rests: when
// the kernel finds it again nothing is listed again, and what changed outside meanwhile is there.
TEST(OutsideChanges, AForgottenDirectoryKeepsItsIndexAndSeesWhatChangedWhileForgotten) {
  Mount m;
  ASSERT_TRUE(m.start(kLongCaching));
  if (!outside_changes_pushed(m)) GTEST_SKIP() << "outside changes are not watched here";
  ASSERT_EQ(errno_of(::mkdir(m.path("Folder").c_str(), 0755)), Errno(0));
  for (int i = 0; i < 500; ++i) {
    ASSERT_EQ(write_file(m.bpath("Folder/File" + std::to_string(i)), ""), Errno(0));
  }
  ASSERT_FALSE(exists(m.path("folder/missing")));  // loads the index
  const uint64_t loads_before = stats_of(m)["index_loads"];
  constexpr int kRounds = 40;
  for (int i = 0; i < kRounds; ++i) {
    const std::string n = std::to_string(i);
    ASSERT_EQ(write_file(m.path("Folder/New" + n), ""), Errno(0));
    ASSERT_EQ(errno_of(::unlink(m.path("FOLDER/NEW" + n).c_str())), Errno(0));  // forgets all
    ASSERT_EQ(write_file(m.bpath("Folder/Outside" + n), ""), Errno(0));
    EXPECT_TRUE(exists(m.path("folder/OUTSIDE" + n))) << "round " << i;
    ASSERT_EQ(errno_of(::unlink(m.bpath("Folder/File" + n).c_str())), Errno(0));
    EXPECT_FALSE(exists(m.path("folder/file" + n))) << "round " << i;
  }
  auto stats = stats_of(m);
  std::string all;
  for (const auto& [key, value] : stats) all += key + " " + std::to_string(value) + "\n";
  EXPECT_LT(stats.at("index_loads") - loads_before, 4u) << "the index was listed again:\n" << all;
  // Whether the folder rested depends on the order of the kernel's FORGET and its next LOOKUP
  // (over io_uring they travel apart): either way nothing may be listed again.
  EXPECT_EQ(stats["indexed_names"], 1u + 500u) << "the root's \"Folder\" and the folder's names";
}

// The reason for pushing: with the default options, hits, other spellings and misses are
// answered by the kernel well past the 1 s a polling design could allow. Under
// outside=revalidate (nothing is pushed) the default stays 1 s.
TEST(OutsideChanges, DefaultTimeoutsKeepAnswersInTheKernelWhenChangesArePushed) {
  for (const std::string outside : {"watch", "revalidate"}) {
    SCOPED_TRACE("outside=" + outside);
    Mount m;
    ASSERT_TRUE(m.start("casefold=all,outside=" + outside));
    ASSERT_EQ(write_file(m.path("Texture.dds"), "x"), Errno(0));
    const std::vector<std::string> names = {"Texture.dds", "TEXTURE.DDS", "missing.dds"};
    // A drop_caches by a test running alongside voids the window; five tries bound it.
    uint64_t reached = 0;
    bool undisturbed = false;
    for (int attempt = 0; attempt < 5 && !undisturbed; ++attempt) {
      const uint64_t drops = machine_cache_drops();
      for (const auto& n : names) exists(m.path(n));
      ::usleep(1500 * 1000);  // past the 1 s a polling design would use
      const uint64_t before = stats_of(m)["lookups"];
      for (const auto& n : names) exists(m.path(n));
      reached = stats_of(m)["lookups"] - before;
      undisturbed = machine_cache_drops() == drops;
    }
    if (!undisturbed) GTEST_SKIP() << "another process dropped the kernel's caches in every try";
    if (outside == "watch" && outside_changes_pushed(m)) {
      EXPECT_EQ(reached, 0u) << "the kernel asked again after 1.5 s";
    } else {
      EXPECT_GE(reached, names.size()) << "revalidate mode must not cache past 1 s";
    }
  }
}

}  // namespace
}  // namespace foldfs::itest
