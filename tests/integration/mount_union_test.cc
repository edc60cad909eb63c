// The read-only union mount (issue 16; docs/union.md): `foldfs mount -o lowerdir=TOP:...:BOTTOM`.
// A game and two mods seen as one case-insensitive folder; every listing and lookup of random
// trees (case variants, collisions inside a tree, whiteouts, opaque directories) against foldfs's
// merge of the same trees; changes made directly in any tree; file handles after cache loss and
// after a remount; refused setups. The trees live on the backing filesystem of FOLDFS_IT_BACKING
// (scripts/test.sh runs this suite over every kind).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "union_walk.h"

namespace foldfs::itest {
namespace {

using namespace std::chrono_literals;

// game, mod1, mod2: a game folder and two mods that override its files in other spellings.
class UnionMount : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeGameAndTwoMods([&](const std::string& rel) { return T(rel); });
  }
  std::string T(const std::string& rel) const { return m.bpath(rel); }
  // In the union: its root is the trees' roots (also where the harness's backing is a filesystem
  // mounted inside, FOLDFS_IT_BACKING=nested).
  std::string M(const std::string& rel) const {
    return rel.empty() ? m.mnt() : m.mnt() + "/" + rel;
  }
  std::string Options() const {
    return "lowerdir=" + T("mod2") + ":" + T("mod1") + ":" + T("game");
  }
  static bool MakeDirs(const std::string& path) { return run({"mkdir", "-p", path}).ok(); }
  Mount m;
};

TEST_F(UnionMount, AGameAndItsModsAreOneCaseInsensitiveFolder) {
  ASSERT_TRUE(m.start(Options()));
  // Each name once, in the spelling of the highest tree that has it; directories merged.
  EXPECT_EQ(List(m.mnt()), (std::vector<std::string>{"DATA", "Game.exe"}));
  EXPECT_EQ(List(M("data")), (std::vector<std::string>{"meshes", "textures"}));
  EXPECT_EQ(List(M("Data/Textures")), (std::vector<std::string>{"Sky.dds", "cloud.dds"}));
  // The highest tree's file, by any spelling; the game's own where no mod has one.
  EXPECT_EQ(Read(M("data/textures/SKY.DDS")), "mod1 sky");
  EXPECT_EQ(Read(M("DATA/TEXTURES/sky.dds")), "mod1 sky");
  EXPECT_EQ(Read(M("Data/Meshes/rock.nif")), "mod2 rock");
  EXPECT_EQ(Read(M("data/textures/Cloud.DDS")), "game cloud");
  EXPECT_EQ(Read(M("game.EXE")), "MZ");
  struct stat st;
  EXPECT_EQ(errno_of(::stat(M("data/textures/missing.dds").c_str(), &st)), Errno(ENOENT));
  EXPECT_EQ(errno_of(::stat(M("game.exe/x").c_str(), &st)), Errno(ENOTDIR));
  // Read-only: nothing is changed in any tree.
  EXPECT_EQ(write_file(M("data/new.txt"), "x"), Errno(EROFS));
  EXPECT_EQ(errno_of(::unlink(M("data/textures/sky.dds").c_str())), Errno(EROFS));
  EXPECT_EQ(errno_of(::open(M("game.exe").c_str(), O_WRONLY)), Errno(EROFS));
  EXPECT_EQ(errno_of(::mkdir(M("Saves").c_str(), 0755)), Errno(EROFS));
  EXPECT_EQ(Read(T("game/Data/Textures/sky.DDS")), "game sky");
  EXPECT_EQ(mount_fstype(m.mnt()), "fuse.foldfs");
  const RunResult lsattr = run({"lsattr", "-d", M("data")});
  EXPECT_TRUE(lsattr.ok() && lsattr.out.find('F') != std::string::npos) << lsattr;
}

// Random trees, each name in random spellings (collisions inside one tree included), with
// whiteouts and opaque directories: what lookups through the mount find, and what the listings
// show, is foldfs's merge of the trees; every path also resolves in other spellings.
TEST_F(UnionMount, ListingsAndLookupsAreTheMergeOfTheTrees) {
  const std::vector<std::string> names = {"a", "A", "b", "\xc3\xa4" /* ä */, "\xc3\x84" /* Ä */};
  int missing = 0;
  auto key = [](const std::string& n) {
    return n == "A" ? std::string("a") : n == "\xc3\x84" ? std::string("\xc3\xa4") : n;
  };
  // Seeds up to 12: collisions inside trees (answered from the merged listing); after: each
  // directory of a tree holds one spelling of a key (answered by asking the trees in turn).
  for (uint32_t seed = 1; seed <= 24; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const std::string base = T("seed" + std::to_string(seed));
    ASSERT_TRUE(MakeDirs(base));
    Layers layers(base, 3 + seed % 2, false, seed, true, names,
                  seed <= 12 ? nullptr : std::function<std::string(const std::string&)>(key));
    std::string opts = "lowerdir=";
    for (size_t t = 0; t < layers.trees().size(); ++t) {
      opts += (t ? ":" : "") + layers.trees()[t];
    }
    ASSERT_TRUE(m.start(opts));
    const View merged = Merge(layers.trees());
    View shown;
    WalkMount(m.mnt(), "", &shown);
    EXPECT_EQ(shown, merged) << "through the mount:\n"
                             << Show(shown) << "merged:\n"
                             << Show(merged);
    // Other spellings: every component flipped where that spelling is not itself listed.
    std::mt19937 rng(seed);
    for (const auto& [path, what] : merged) {
      std::string other;
      std::string so_far;
      bool unambiguous = true;
      for (size_t at = 0; at <= path.size();) {
        const size_t slash = std::min(path.find('/', at), path.size());
        std::string part = path.substr(at, slash - at);
        std::string flipped = part == "a"          ? "A"
                              : part == "A"        ? "a"
                              : part == "b"        ? "B"
                              : part == "\xc3\xa4" ? "\xc3\x84"
                                                   : "\xc3\xa4";
        const std::string sibling = (so_far.empty() ? "" : so_far + "/") + flipped;
        if (merged.count(sibling) || rng() % 2) flipped = part;  // listed itself: another name
        if (flipped != part && merged.count(sibling)) unambiguous = false;
        other += (other.empty() ? "" : "/") + flipped;
        so_far += (so_far.empty() ? "" : "/") + part;
        at = slash + 1;
      }
      if (!unambiguous) continue;
      struct stat st;
      ASSERT_EQ(errno_of(::lstat(M(other).c_str(), &st)), Errno(0)) << other << " for " << path;
      EXPECT_EQ(Describe(M(other), st), what) << other << " for " << path;
    }
    // Every name the trees may hold but the union does not list (hidden by a whiteout, below an
    // opaque directory or a file) is missing through the mount, in every spelling.
    std::vector<std::string> dirs = {""};
    for (const auto& [path, what] : merged) {
      if (what == "dir") dirs.push_back(path);
    }
    for (const std::string& dir : dirs) {
      for (const std::string& name : names) {
        bool listed = false;
        for (const std::string& other : names) {
          const std::string path = (dir.empty() ? "" : dir + "/") + other;
          if (key(other) == key(name) && merged.count(path)) listed = true;
        }
        if (listed) continue;
        const std::string path = (dir.empty() ? "" : dir + "/") + name;
        struct stat st;
        EXPECT_EQ(errno_of(::lstat(M(path).c_str(), &st)), Errno(ENOENT)) << path;
        ++missing;
      }
    }
    ASSERT_TRUE(m.unmount());
  }
  EXPECT_GT(missing, 50) << "few hidden names: the test does not test them";
}

// A change made directly in any tree shows through the mount in every spelling, as soon as the
// tree's watch reports it (bounded wait), also where the kernel held the union's earlier answer.
TEST_F(UnionMount, ChangesMadeDirectlyInAnyTreeAreSeen) {
  ASSERT_TRUE(m.start(Options()));
  const std::string sky = M("data/textures/SKY.dds");
  ASSERT_EQ(Read(sky), "mod1 sky");
  struct stat st;
  ASSERT_EQ(errno_of(::stat(M("data/textures/Moon.dds").c_str(), &st)), Errno(ENOENT));
  // The highest mod gets its own sky, in yet another spelling.
  ASSERT_TRUE(MakeDirs(T("mod2/DATA/TEXTURES")));
  ASSERT_EQ(write_file(T("mod2/DATA/TEXTURES/sky.dds"), "mod2 sky"), Errno(0));
  EXPECT_GE(seconds_until([&] { return Read(sky) == "mod2 sky"; }, 10s), 0) << Read(sky);
  EXPECT_EQ(List(M("data/textures")), (std::vector<std::string>{"cloud.dds", "sky.dds"}));
  // A lower tree gains a file: the negative answer the kernel held goes.
  ASSERT_EQ(write_file(T("game/Data/Textures/moon.DDS"), "game moon"), Errno(0));
  EXPECT_GE(seconds_until([&] { return Read(M("data/textures/Moon.dds")) == "game moon"; }, 10s),
            0);
  // The override goes again: the mod below shows.
  ASSERT_EQ(::unlink(T("mod2/DATA/TEXTURES/sky.dds").c_str()), 0);
  EXPECT_GE(seconds_until([&] { return Read(sky) == "mod1 sky"; }, 10s), 0) << Read(sky);
}

TEST_F(UnionMount, AWhiteoutMadeInAHigherTreeHidesEverySpellingAtOnce) {
  if (backing_kind() == "overlay") GTEST_SKIP() << "overlayfs makes no whiteouts but its own";
  ASSERT_TRUE(m.start(Options()));
  const std::string sky = M("data/textures/SKY.dds");
  ASSERT_EQ(Read(sky), "mod1 sky");
  ASSERT_TRUE(MakeDirs(T("mod2/DATA/TEXTURES")));
  ASSERT_EQ(::mknod(T("mod2/DATA/TEXTURES/SKY.DDS").c_str(), S_IFCHR | 0600, makedev(0, 0)), 0);
  struct stat st;
  EXPECT_GE(seconds_until([&] { return ::stat(sky.c_str(), &st) != 0 && errno == ENOENT; }, 10s),
            0);
  EXPECT_EQ(List(M("data/textures")), (std::vector<std::string>{"cloud.dds"}));
  ASSERT_EQ(::unlink(T("mod2/DATA/TEXTURES/SKY.DDS").c_str()), 0);
  EXPECT_GE(seconds_until([&] { return Read(sky) == "mod1 sky"; }, 10s), 0) << Read(sky);
}

// Handles of a union's files and merged directories work after the kernel dropped its caches and
// after a remount; a directory reached so gets the union's rules (its parts in every tree), and a
// handle of what the union no longer shows is refused.
TEST_F(UnionMount, HandlesSurviveCacheLossAndRemount) {
  SKIP_WHERE_THE_BACKING_LACKS(kPersistentHandles);
  ASSERT_TRUE(m.start(Options()));
  Handle dir = handle_of(M("data/textures"));
  Handle file = handle_of(M("data/textures/sky.dds"));
  ASSERT_FALSE(dir.storage.empty());
  ASSERT_FALSE(file.storage.empty());
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "caches dropped" : "remounted");
    if (round == 1) {
      ASSERT_TRUE(m.unmount());
      ASSERT_TRUE(m.start(Options()));
    }
    ASSERT_TRUE(drop_caches());
    const int dfd = open_handle(m.mnt(), dir, O_RDONLY | O_DIRECTORY);
    ASSERT_GE(dfd, 0) << std::strerror(-dfd);
    EXPECT_EQ(Read("/proc/self/fd/" + std::to_string(dfd) + "/SKY.DDS"), "mod1 sky");
    EXPECT_EQ(Read("/proc/self/fd/" + std::to_string(dfd) + "/CLOUD.dds"), "game cloud")
        << "the directory came back without the game's part";
    ::close(dfd);
    const int ffd = open_handle(m.mnt(), file, O_RDONLY);
    ASSERT_GE(ffd, 0) << std::strerror(-ffd);
    char buf[32] = {};
    EXPECT_EQ(::read(ffd, buf, sizeof(buf) - 1), 8);
    EXPECT_STREQ(buf, "mod1 sky");
    ::close(ffd);
  }
  // mod2 gets a file "Textures": the merged textures directory is no longer shown, and the
  // directory's handle leads nowhere (its files' handles still open their files).
  ASSERT_EQ(write_file(T("mod2/DATA/Textures"), "not a directory"), Errno(0));
  ASSERT_TRUE(m.unmount());
  ASSERT_TRUE(m.start(Options()));
  ASSERT_TRUE(drop_caches());
  const int gone = open_handle(m.mnt(), dir, O_RDONLY | O_DIRECTORY);
  EXPECT_EQ(gone, -ESTALE) << "a hidden directory opened by handle";
  if (gone >= 0) ::close(gone);
  EXPECT_EQ(Read(M("data/textures")), "not a directory");
}

// The daemon killed while programs read through the union: every one of them gets an error
// promptly (never hangs), the trees are untouched, and a new mount serves them again.
TEST_F(UnionMount, AKilledDaemonFailsItsReadersPromptlyAndLeavesTheTreesAlone) {
  std::string big(8 << 20, 'b');
  ASSERT_EQ(write_file(T("mod1/data/textures/Big.dds"), big), Errno(0));
  ASSERT_TRUE(m.start(Options()));
  std::vector<pid_t> readers;
  for (int i = 0; i < 4; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (;;) {  // until the mount fails it
        const int fd =
            ::open(M(i % 2 ? "DATA/TEXTURES/big.DDS" : "data/textures/BIG.dds").c_str(), O_RDONLY);
        if (fd < 0) ::_exit(errno);
        char buf[1 << 16];
        ssize_t n;
        while ((n = ::read(fd, buf, sizeof(buf))) > 0) {
        }
        const int e = n < 0 ? errno : 0;
        ::close(fd);
        if (e != 0) ::_exit(e);
        if (List(M("data")).size() != 2) ::_exit(EIO);
      }
    }
    readers.push_back(pid);
  }
  std::this_thread::sleep_for(200ms);
  for (pid_t d : m.daemon_pids()) ::kill(d, SIGKILL);
  for (pid_t pid : readers) {
    int status = 0;
    bool done = false;
    for (int i = 0; i < 500 && !done; ++i) {
      done = ::waitpid(pid, &status, WNOHANG) == pid;
      if (!done) std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(done) << "a reader still hangs 5 s after the daemon was killed";
    if (!done) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      continue;
    }
    const int e = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    EXPECT_TRUE(e == ENOTCONN || e == ECONNABORTED || e == EIO || e == ECANCELED)
        << "a reader ended with " << e;
  }
  ASSERT_TRUE(run({"umount", "-l", m.mnt()}).ok());
  EXPECT_EQ(Read(T("mod1/data/textures/Big.dds")), big);
  EXPECT_EQ(Read(T("game/Data/Textures/sky.DDS")), "game sky");
  ASSERT_TRUE(m.start(Options()));
  EXPECT_EQ(Read(M("data/textures/big.dds")), big);
}

TEST_F(UnionMount, RefusesTreesInsideEachOtherAndAMountPointInsideATree) {
  for (const std::string& opts :
       {"lowerdir=" + T("game") + ":" + T("game/Data"), "lowerdir=" + T("mod1") + ":" + T("mod1"),
        "lowerdir=" + T("mod1") + ":" + T("no-such-tree"),
        "lowerdir=" + T("mod1") + ":" + T("game/Game.exe")}) {
    const RunResult r = run({foldfs_binary(), "mount", "-o", opts, "none", m.mnt()});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_EQ(r.err.rfind("foldfs: lowerdir: ", 0), 0u) << r;
    EXPECT_FALSE(is_mount_point(m.mnt()));
  }
  const RunResult flag =
      run({foldfs_binary(), "mount", "-o", Options() + ",casefold=flag", "none", m.mnt()});
  EXPECT_EQ(flag.exit_code, 1) << flag;
  EXPECT_NE(flag.err.find("casefold= does not apply to a union"), std::string::npos) << flag;
  ASSERT_TRUE(MakeDirs(T("game/mnt")));
  const RunResult inside = run({foldfs_binary(), "mount", "-o", Options(), "none", T("game/mnt")});
  EXPECT_EQ(inside.exit_code, 1) << inside;
  EXPECT_NE(inside.err.find("inside the tree"), std::string::npos) << inside;
  EXPECT_FALSE(is_mount_point(T("game/mnt")));
}

}  // namespace
}  // namespace foldfs::itest
