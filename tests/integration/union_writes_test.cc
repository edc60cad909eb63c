// The writable union (issue 16; docs/union.md "Writes go to the upper tree only") against its
// reference model, the kernel's overlayfs: the same random layers are mounted twice, once by
// kernel overlayfs and once by foldfs (lowerdir=, upperdir=, workdir=), and the same random
// changes are made through both — creations, writes to lower files (copy-up), removals (whiteouts,
// and directories hiding every spelling below), renames (of files; of directories, which foldfs
// moves where a lower tree has a part as mv moves them across overlayfs's EXDEV), links,
// symlinks, mode changes — foldfs's through random
// spellings of each existing name. After every step both must have answered alike (the same
// errno) and show the same tree, and every few steps foldfs is unmounted and mounted again.
// Finally kernel overlayfs mounts foldfs's own layers: what foldfs wrote into its upper tree (its
// whiteouts, opaque directories, copy-ups) must read back the same through overlayfs.
//
// Names are chosen so that no two fold alike (overlayfs compares bytes): for them a
// case-insensitive union and overlayfs must agree on everything.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "union_walk.h"

namespace foldfs::itest {
namespace {

constexpr int kSeeds = 30;
constexpr int kSteps = 40;
constexpr int kRemountEvery = 10;

bool KernelHasOverlayfs() {
  const auto list = read_file("/proc/filesystems");
  return list && list->find("\toverlay\n") != std::string::npos;
}

// overlayfs's options for the same layers; redirect_dir off: a directory with a lower part is
// not moved (EXDEV), which is foldfs's rule.
std::string OverlayOptions(const std::vector<std::string>& trees, const std::string& work) {
  std::string lower;
  for (size_t t = 1; t < trees.size(); ++t) lower += (lower.empty() ? "" : ":") + trees[t];
  return "lowerdir=" + lower + ",upperdir=" + trees[0] + ",workdir=" + work + ",redirect_dir=off";
}

std::string FoldfsOptions(const std::vector<std::string>& trees, const std::string& work) {
  std::string lower;
  for (size_t t = 1; t < trees.size(); ++t) lower += (lower.empty() ? "" : ":") + trees[t];
  return "lowerdir=" + lower + ",upperdir=" + trees[0] + ",workdir=" + work;
}

// The modes too (a chmod through the union copies up).
void WalkModes(const std::string& root, const View& view, std::map<std::string, mode_t>* out) {
  for (const auto& [path, what] : view) {
    struct stat st;
    if (::lstat((root + "/" + path).c_str(), &st) == 0) (*out)[path] = st.st_mode;
  }
}

class Changes {
 public:
  Changes(uint32_t seed, std::string overlay, std::string foldfs)
      : rng_(seed), overlay_(std::move(overlay)), foldfs_(std::move(foldfs)) {}

  // One random change, made through both mounts; false (with a message) when they answer apart.
  ::testing::AssertionResult Step(const View& now, std::string* what) {
    std::vector<std::string> paths, dirs{""};
    for (const auto& [path, kind] : now) {
      paths.push_back(path);
      if (kind == "dir") dirs.push_back(path);
    }
    const std::string dir = Pick(dirs);
    const std::string fresh = Join(dir, std::string(1, static_cast<char>('a' + Roll(5))));
    const std::string old = paths.empty() ? fresh : Pick(paths);
    const std::string tag = "v" + std::to_string(counter_++);
    int a = 0, b = 0;
    switch (Roll(10)) {
      case 0:
        *what = "rm -rf " + old;
        a = run({"rm", "-rf", O(old)}).ok() ? 0 : 1;
        b = run({"rm", "-rf", F(old)}).ok() ? 0 : 1;
        break;
      case 1:
        *what = "mkdir " + fresh;
        a = Err(::mkdir(O(fresh).c_str(), 0750));
        b = Err(::mkdir(F(fresh, true).c_str(), 0750));
        break;
      case 2:
        *what = "write " + fresh;
        a = write_file(O(fresh), tag).value;
        b = write_file(F(fresh, true), tag).value;
        break;
      case 3: {
        *what = "append to " + old;
        a = Append(O(old), tag);
        b = Append(F(old), tag);
        break;
      }
      case 4: {
        const std::string to = Roll(2) || paths.empty() ? fresh : Pick(paths);
        // Half the time a directory: those with lower parts are moved whole.
        const std::string& from = dirs.size() > 1 && Roll(2) ? Pick(dirs) : old;
        if (from.empty()) return Skip(what);
        *what = "rename " + from + " -> " + to;
        a = Err(::rename(O(from).c_str(), O(to).c_str()));
        if (a == EXDEV) {  // what foldfs does in its place
          a = MoveLikeMv(O(from), O(to));
          ++moved_whole_;
        }
        b = Err(::rename(F(from).c_str(), F(to, true).c_str()));
        break;
      }
      case 5:
        *what = "chmod 0700 " + old;
        a = Err(::chmod(O(old).c_str(), 0700));
        b = Err(::chmod(F(old).c_str(), 0700));
        break;
      case 6:
        *what = "symlink " + fresh;
        a = Err(::symlink(("to-" + tag).c_str(), O(fresh).c_str()));
        b = Err(::symlink(("to-" + tag).c_str(), F(fresh, true).c_str()));
        break;
      case 7:
        // bindfs serves a file by the path it was reached by: once that name is removed, the
        // file's other hard links are gone for foldfs too (docs/union.md, "What is left").
        if (backing_kind() == "fuse") return Skip(what);
        *what = "link " + old + " " + fresh;
        a = Err(::link(O(old).c_str(), O(fresh).c_str()));
        b = Err(::link(F(old).c_str(), F(fresh, true).c_str()));
        break;
      case 8:
        *what = "rmdir " + old;
        a = Err(::rmdir(O(old).c_str()));
        b = Err(::rmdir(F(old).c_str()));
        break;
      default:
        *what = "unlink " + old;
        a = Err(::unlink(O(old).c_str()));
        b = Err(::unlink(F(old).c_str()));
        break;
    }
    if (a == 0 && b == 0) ++succeeded_;
    if (a == b) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << *what << ": overlayfs " << std::strerror(a) << ", foldfs " << std::strerror(b);
  }

 private:
  int Roll(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(Roll(static_cast<int>(v.size())))];
  }
  static std::string Join(const std::string& dir, const std::string& name) {
    return dir.empty() ? name : dir + "/" + name;
  }
  static int Err(int rc) { return rc == 0 ? 0 : errno; }
  // overlayfs (without redirect_dir) refuses to rename a directory that has lower parts; mv then
  // copies it and removes the old one, which is what foldfs's rename does itself: the model.
  static int MoveLikeMv(const std::string& from, const std::string& to) {
    struct stat st;
    if (::lstat(to.c_str(), &st) == 0 && ::rmdir(to.c_str()) != 0) return errno;
    if (!run({"cp", "-a", "--no-preserve=links", from, to}).ok()) return EIO;
    return run({"rm", "-rf", from}).ok() ? 0 : EIO;
  }
  static ::testing::AssertionResult Skip(std::string* what) {
    *what = "(nothing)";
    return ::testing::AssertionSuccess();
  }
  static int Append(const std::string& path, const std::string& text) {
    const backing::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_NOFOLLOW));
    if (!fd.valid()) return errno;
    return ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()) ? 0
                                                                                            : errno;
  }
  std::string O(const std::string& rel) const { return overlay_ + "/" + rel; }
  // The same path in foldfs, each existing component in a random spelling (a name being made,
  // `last_exact`, keeps its own: the listings then compare byte for byte).
  std::string F(const std::string& rel, bool last_exact = false) {
    std::string out = foldfs_ + "/";
    const size_t last = rel.rfind('/') == std::string::npos ? 0 : rel.rfind('/') + 1;
    for (size_t i = 0; i < rel.size(); ++i) {
      const char c = rel[i];
      out += (i >= last && last_exact) || Roll(2) ? c : static_cast<char>(std::toupper(c));
    }
    return out;
  }

  std::mt19937 rng_;
  const std::string overlay_, foldfs_;
  int counter_ = 0;

 public:
  int succeeded_ = 0;    // changes both made
  int moved_whole_ = 0;  // directories with lower parts renamed
};

TEST(UnionWrites, TheSameChangesThroughKernelOverlayfsAndFoldfsShowTheSameTree) {
  if (!KernelHasOverlayfs()) GTEST_SKIP() << "this kernel has no overlayfs to compare with";
  int steps = 0, failures = 0, made = 0, whiteouts = 0, opaques = 0, moved_whole = 0;
  const char* only = std::getenv("FOLDFS_ONLY_SEED");  // to replay one seed
  for (int seed = only ? std::atoi(only) : 1; seed <= (only ? std::atoi(only) : kSeeds); ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TempDir ref;  // kernel overlayfs's layers
    Mount m;      // foldfs's, on the backing filesystem under test
    Layers a(ref.path(), 2 + seed % 2, true, static_cast<uint32_t>(seed), false);
    ASSERT_EQ(::mkdir(m.bpath("layers").c_str(), 0755), 0);
    Layers b(m.bpath("layers"), 2 + seed % 2, true, static_cast<uint32_t>(seed), false);
    ASSERT_EQ(Merge(a.trees()), Merge(b.trees())) << "the same seed made different layers";
    const std::string ref_work = ref.path() + "/ovl-work";
    ASSERT_EQ(::mkdir(ref_work.c_str(), 0755), 0);
    ASSERT_EQ(::mount("overlay", a.mnt().c_str(), "overlay", 0,
                      OverlayOptions(a.trees(), ref_work).c_str()),
              0)
        << std::strerror(errno);
    const std::string work = m.bpath("work");
    ASSERT_EQ(::mkdir(work.c_str(), 0700), 0);
    if (backing_kind() == "overlay") {
      // An overlayfs refuses whiteouts to its users (kernel overlayfs takes no upper layer there
      // either): the mount is refused, with the reason.
      EXPECT_FALSE(m.start(FoldfsOptions(b.trees(), work)));
      EXPECT_NE(m.start_result().err.find("cannot hold whiteouts"), std::string::npos)
          << m.start_result();
      GTEST_SKIP() << "an upper tree on an overlayfs cannot hold whiteouts: the mount refuses it";
    }
    ASSERT_TRUE(m.start(FoldfsOptions(b.trees(), work)));
    Changes changes(static_cast<uint32_t>(seed), a.mnt(), m.mnt());
    for (int step = 0; step < kSteps; ++step) {
      View before;
      WalkMount(a.mnt(), "", &before);
      std::string what;
      const auto same_answer = changes.Step(before, &what);
      if (std::getenv("FOLDFS_TRACE_STEPS"))
        std::fprintf(stderr, "seed %d step %d: %s\n", seed, step, what.c_str());
      EXPECT_TRUE(same_answer) << "step " << step;
      if (!same_answer) ++failures;
      ++steps;
      if (step % kRemountEvery == kRemountEvery - 1) {
        ASSERT_TRUE(m.unmount());
        ASSERT_TRUE(m.start(FoldfsOptions(b.trees(), work)));
      }
      View shown_a, shown_b;
      WalkMount(a.mnt(), "", &shown_a);
      WalkMount(m.mnt(), "", &shown_b);
      if (shown_a != shown_b && std::getenv("FOLDFS_TRACE_STEPS")) {
        const RunResult found =
            run({"sh", "-c", "find " + m.bpath("layers") + " -exec stat -c '%n %F %h %i' {} +"});
        std::fprintf(stderr, "%s", found.out.c_str());
      }
      ASSERT_EQ(shown_a, shown_b) << "after step " << step << " (" << what << ")\noverlayfs:\n"
                                  << Show(shown_a) << "foldfs:\n"
                                  << Show(shown_b);
      std::map<std::string, mode_t> modes_a, modes_b;
      WalkModes(a.mnt(), shown_a, &modes_a);
      WalkModes(m.mnt(), shown_b, &modes_b);
      ASSERT_EQ(modes_a, modes_b) << "after step " << step << " (" << what << ")";
      if (failures > 3) break;
    }
    made += changes.succeeded_;
    moved_whole += changes.moved_whole_;
    CountMarks(b.trees()[0], &whiteouts, &opaques);
    View final_shown;
    WalkMount(m.mnt(), "", &final_shown);
    ASSERT_TRUE(m.unmount());
    ASSERT_EQ(::umount(a.mnt().c_str()), 0);
    // What foldfs wrote, read by kernel overlayfs (which takes no upper layer on an overlayfs
    // or a FUSE filesystem).
    if (backing_kind() == "overlay" || backing_kind() == "fuse") continue;
    const std::string work2 = m.bpath("ovl-work");
    ASSERT_EQ(::mkdir(work2.c_str(), 0755), 0);
    if (::mount("overlay", b.mnt().c_str(), "overlay", 0,
                OverlayOptions(b.trees(), work2).c_str()) != 0) {
      ADD_FAILURE() << "overlayfs refused foldfs's layers: " << std::strerror(errno);
      continue;
    }
    View through_overlayfs;
    WalkMount(b.mnt(), "", &through_overlayfs);
    EXPECT_EQ(::umount(b.mnt().c_str()), 0);
    EXPECT_EQ(final_shown, through_overlayfs) << "foldfs:\n"
                                              << Show(final_shown) << "overlayfs over the same:\n"
                                              << Show(through_overlayfs);
  }
  std::printf(
      "%d random changes, %d made by both (%d renames of directories with lower parts); foldfs "
      "wrote %d whiteouts, %d opaque dirs\n",
      steps, made, moved_whole, whiteouts, opaques);
  EXPECT_GT(moved_whole, 0) << "no directory with lower parts was renamed";
  EXPECT_GT(made, steps / 3) << "most changes failed on both: the test tests little";
  EXPECT_GT(whiteouts, kSeeds) << "few whiteouts: removals of lower names went untested";
  EXPECT_GT(opaques, 0) << "no opaque directory: directories made over removed ones untested";
}

Errno StatErrno(const std::string& path) {
  struct stat st;
  return errno_of(::lstat(path.c_str(), &st));
}

// A game, two mods overriding its files in other spellings, and the folder everything the game
// writes goes to (a mod manager's "overwrite").
class UnionWritesMount : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeGameAndTwoMods([&](const std::string& rel) { return T(rel); });
    ASSERT_TRUE(run({"mkdir", "-p", T("overwrite"), T("work")}).ok());
    if (backing_kind() == "overlay") {
      GTEST_SKIP() << "an upper tree on an overlayfs cannot hold whiteouts: the mount refuses it";
    }
  }
  std::string T(const std::string& rel) const { return m.bpath(rel); }
  std::string M(const std::string& rel) const {
    return rel.empty() ? m.mnt() : m.mnt() + "/" + rel;
  }
  std::string Options() const {
    return "lowerdir=" + T("mod2") + ":" + T("mod1") + ":" + T("game") +
           ",upperdir=" + T("overwrite") + ",workdir=" + T("work");
  }
  View Lower() const { return Merge({T("mod2"), T("mod1"), T("game")}); }
  Mount m;
};

TEST_F(UnionWritesMount, ChangesGoToTheUpperTreeAndShowInEverySpelling) {
  const View lower_before = Lower();
  ASSERT_TRUE(m.start(Options()));
  // A mod's file changed: copied up, the change seen in every spelling.
  {
    const backing::UniqueFd fd(::open(M("DATA/TEXTURES/SKY.DDS").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(fd.valid()) << std::strerror(errno);
    ASSERT_EQ(::write(fd.get(), "+patched", 8), 8);
  }
  EXPECT_EQ(Read(M("data/textures/sky.dds")), "mod1 sky+patched");
  EXPECT_EQ(Read(T("overwrite/DATA/textures/Sky.dds")), "mod1 sky+patched");
  EXPECT_EQ(List(M("Data/Textures")), (std::vector<std::string>{"Sky.dds", "cloud.dds"}));
  // Saves: a new directory and files, found in any spelling at once, also where the kernel had
  // just been told the name is missing.
  ASSERT_EQ(::mkdir(M("Saves").c_str(), 0755), 0);
  ASSERT_EQ(write_file(M("SAVES/slot1.sav"), "save 1"), Errno(0));
  EXPECT_EQ(StatErrno(M("saves/SLOT2.sav")), Errno(ENOENT));
  ASSERT_EQ(write_file(M("Saves/Slot2.SAV"), "save 2"), Errno(0));
  EXPECT_EQ(Read(M("saves/SLOT2.sav")), "save 2");
  EXPECT_EQ(Read(M("saves/SLOT1.SAV")), "save 1");
  EXPECT_EQ(Read(T("overwrite/Saves/slot1.sav")), "save 1");
  // Removing a name in one spelling hides every spelling of it in every tree below, at once.
  ASSERT_EQ(Read(M("Data/Textures/sky.DDS")), "mod1 sky+patched");
  ASSERT_EQ(::unlink(M("data/textures/SKY.dds").c_str()), 0);
  EXPECT_EQ(StatErrno(M("Data/Textures/sky.DDS")), Errno(ENOENT));
  EXPECT_EQ(StatErrno(M("DATA/TEXTURES/Sky.dds")), Errno(ENOENT));
  EXPECT_EQ(List(M("data/textures")), (std::vector<std::string>{"cloud.dds"}));
  // Made again: one name, the new file.
  ASSERT_EQ(write_file(M("data/textures/sky.dds"), "new sky"), Errno(0));
  EXPECT_EQ(Read(M("DATA/TEXTURES/SKY.DDS")), "new sky");
  EXPECT_EQ(List(M("data/textures")), (std::vector<std::string>{"cloud.dds", "sky.dds"}));
  // A merged directory removed, then made again: empty (the lower meshes stay hidden).
  ASSERT_TRUE(run({"rm", "-rf", M("data/MESHES")}).ok());
  EXPECT_EQ(List(M("Data")), (std::vector<std::string>{"textures"}));
  ASSERT_EQ(::mkdir(M("data/Meshes").c_str(), 0755), 0);
  EXPECT_EQ(List(M("DATA/MESHES")), std::vector<std::string>{});
  EXPECT_EQ(StatErrno(M("data/meshes/rock.nif")), Errno(ENOENT));
  // A lower file renamed (copied up, a whiteout left).
  ASSERT_EQ(::rename(M("GAME.EXE").c_str(), M("Game.bak").c_str()), 0);
  auto check = [&] {
    EXPECT_EQ(List(M("")), (std::vector<std::string>{"DATA", "Game.bak", "Saves"}));
    EXPECT_EQ(Read(M("game.BAK")), "MZ");
    EXPECT_EQ(StatErrno(M("game.exe")), Errno(ENOENT));
    EXPECT_EQ(Read(M("data/textures/SKY.dds")), "new sky");
    EXPECT_EQ(Read(M("data/textures/CLOUD.dds")), "game cloud");
    EXPECT_EQ(List(M("data/meshes")), std::vector<std::string>{});
    EXPECT_EQ(List(M("saves")), (std::vector<std::string>{"Slot2.SAV", "slot1.sav"}));
  };
  check();
  ASSERT_TRUE(m.unmount());
  ASSERT_TRUE(m.start(Options()));
  check();
  // The game and the mods are untouched.
  EXPECT_EQ(Lower(), lower_before);
}

// rename(2) of a merged directory (a game's folder that mods add to): the whole directory is
// copied to the new name and the old name whited out, as mv would do across overlayfs's EXDEV, so
// programs that rename by the system call alone (Windows programs under Wine) work.
TEST_F(UnionWritesMount, ADirectoryWithLowerPartsIsRenamedWhole) {
  const View lower_before = Lower();
  ASSERT_TRUE(m.start(Options()));
  ASSERT_EQ(write_file(M("data/textures/new.dds"), "new"), Errno(0));  // an upper part too
  struct stat sky_before;
  ASSERT_EQ(::stat(M("data/textures/sky.dds").c_str(), &sky_before), 0);
  ASSERT_EQ(::rename(M("DATA/TEXTURES").c_str(), M("data/TexturesOld").c_str()), 0)
      << std::strerror(errno);
  EXPECT_EQ(List(M("data")), (std::vector<std::string>{"TexturesOld", "meshes"}));
  EXPECT_EQ(List(M("data/texturesold")),
            (std::vector<std::string>{"Sky.dds", "cloud.dds", "new.dds"}));
  EXPECT_EQ(Read(M("DATA/TEXTURESOLD/SKY.DDS")), "mod1 sky");
  EXPECT_EQ(Read(M("data/texturesold/Cloud.dds")), "game cloud");
  EXPECT_EQ(StatErrno(M("Data/Textures")), Errno(ENOENT));
  EXPECT_EQ(StatErrno(M("data/textures/cloud.dds")), Errno(ENOENT));
  struct stat sky_after;
  ASSERT_EQ(::stat(M("data/texturesold/sky.dds").c_str(), &sky_after), 0);
  EXPECT_EQ(sky_after.st_ino, sky_before.st_ino) << "a copy keeps its inode number";
  // A new directory of the old name is empty: nothing of the lower trees shows through it.
  ASSERT_EQ(::mkdir(M("data/textures").c_str(), 0755), 0);
  EXPECT_EQ(List(M("Data/Textures")), std::vector<std::string>{});
  ASSERT_TRUE(m.unmount());
  ASSERT_TRUE(m.start(Options()));
  EXPECT_EQ(List(M("data/texturesold")),
            (std::vector<std::string>{"Sky.dds", "cloud.dds", "new.dds"}));
  EXPECT_EQ(List(M("Data/Textures")), std::vector<std::string>{});
  EXPECT_EQ(Lower(), lower_before);
}

// The old directory of such a rename is removed with the renaming user's rights: a user who may
// move a directory (write on its parent) may not delete what others keep in it, and the daemon
// (root) must not do it for them (they could move another user's directory in there first).
// What they may not remove stays in the upper tree under a name the union does not list; the
// move itself is done, and nothing of anyone's is lost.
TEST_F(UnionWritesMount, RemovingTheOldDirectoryOfAMoveUsesTheCallersRights) {
  constexpr uid_t kUser = 4321;
  ASSERT_TRUE(run({"mkdir", "-p", T("game/Shared/RootsOwn"), T("overwrite")}).ok());
  ASSERT_EQ(write_file(T("game/Shared/RootsOwn/keep.txt"), "root's"), Errno(0));
  ASSERT_EQ(::chown(T("game/Shared").c_str(), kUser, kUser), 0);
  ASSERT_EQ(::chmod(T("game").c_str(), 0777), 0);
  ASSERT_TRUE(m.start(Options() + ",allow_other"));
  ASSERT_EQ(write_file(M("shared/Mine.txt"), "user's"), Errno(0));  // upper parts: the user's
  ASSERT_EQ(write_file(M("shared/rootsown/New.txt"), "root's new"), Errno(0));  // and root's
  ASSERT_EQ(::chmod(M("").c_str(), 0777), 0);
  ASSERT_EQ(::chown(M("shared/mine.txt").c_str(), kUser, kUser), 0);
  const int moved = run_as(kUser, kUser, [&] {
    return ::rename(M("SHARED").c_str(), M("Moved").c_str()) == 0 ? 0 : errno;
  });
  ASSERT_EQ(moved, 0) << std::strerror(moved);
  EXPECT_EQ(List(M("")), (std::vector<std::string>{"DATA", "Game.exe", "Moved"}));
  EXPECT_EQ(Read(M("moved/rootsown/KEEP.txt")), "root's");
  EXPECT_EQ(Read(M("moved/MINE.TXT")), "user's");
  EXPECT_EQ(Read(M("moved/RootsOwn/new.txt")), "root's new");
  EXPECT_EQ(StatErrno(M("Shared")), Errno(ENOENT));
  // The part of the old upper directory the user could not remove is still in the upper tree.
  const RunResult left = run({"find", T("overwrite"), "-path", "*/.foldfs-new.*/RootsOwn/New.txt"});
  EXPECT_TRUE(left.ok() && !left.out.empty()) << left;
  EXPECT_EQ(Read(T("game/Shared/RootsOwn/keep.txt")), "root's");
}

// Faults: an upper tree that is full. A change that needs a copy-up is refused with the upper
// filesystem's ENOSPC, nothing half-made is left in the upper tree or the work directory, the
// union still shows the lower file as it was, and once there is room the same change works.
TEST_F(UnionWritesMount, AFullUpperTreeRefusesTheChangeLeavesNothingAndRecovers) {
  const std::string small = T("small");
  ASSERT_EQ(::mkdir(small.c_str(), 0755), 0);
  ASSERT_EQ(::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{small};
  ASSERT_TRUE(run({"mkdir", "-p", small + "/up", small + "/work"}).ok());
  const std::string big(2 << 20, 'g');
  ASSERT_EQ(write_file(T("game/Data/big.bin"), big), Errno(0));
  const std::string opts = "lowerdir=" + T("mod2") + ":" + T("mod1") + ":" + T("game") +
                           ",upperdir=" + small + "/up,workdir=" + small + "/work";
  ASSERT_TRUE(m.start(opts));
  EXPECT_EQ(errno_of(::open(M("DATA/BIG.BIN").c_str(), O_WRONLY | O_APPEND)), Errno(ENOSPC));
  EXPECT_EQ(Read(M("data/big.bin")), big);
  const RunResult files = run({"find", small, "-type", "f"});
  EXPECT_TRUE(files.ok() && files.out.empty()) << files;
  // Saves still fit.
  ASSERT_EQ(write_file(M("data/small.sav"), "s"), Errno(0));
  ASSERT_EQ(::mount("tmpfs", small.c_str(), "tmpfs", MS_REMOUNT, "size=8m"), 0);
  {
    const backing::UniqueFd fd(::open(M("data/Big.bin").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(fd.valid()) << std::strerror(errno);
    ASSERT_EQ(::write(fd.get(), "+", 1), 1);
  }
  EXPECT_EQ(Read(M("DATA/big.bin")), big + "+");
  EXPECT_EQ(Read(T("game/Data/big.bin")), big);
  ASSERT_TRUE(m.unmount());
}

// A copy-up changes which tree holds a file, not the file a program holds: the same inode number
// (kept on remount), and a descriptor opened before the copy-up still works after the kernel
// looked the name up again (Wine's server checks both).
TEST_F(UnionWritesMount, AFileKeepsItsInodeNumberAndOpenDescriptorsThroughACopyUp) {
  ASSERT_TRUE(m.start(Options()));
  struct stat before;
  ASSERT_EQ(::stat(M("data/textures/CLOUD.dds").c_str(), &before), 0);
  backing::UniqueFd reader(::open(M("Data/Textures/cloud.DDS").c_str(), O_RDONLY));
  ASSERT_TRUE(reader.valid());
  {
    const backing::UniqueFd writer(
        ::open(M("DATA/textures/Cloud.dds").c_str(), O_WRONLY | O_APPEND));
    ASSERT_TRUE(writer.valid()) << std::strerror(errno);
    ASSERT_EQ(::write(writer.get(), "+", 1), 1);
  }
  struct stat again, held;
  ASSERT_EQ(::stat(M("data/TEXTURES/cloud.dds").c_str(), &again), 0);
  ASSERT_EQ(::fstat(reader.get(), &held), 0) << std::strerror(errno);
  EXPECT_EQ(again.st_ino, before.st_ino);
  EXPECT_EQ(held.st_ino, before.st_ino);
  EXPECT_EQ(Read(M("data/textures/cloud.dds")), "game cloud+");
  reader.reset();
  ASSERT_TRUE(m.unmount());
  ASSERT_TRUE(m.start(Options()));
  ASSERT_EQ(::stat(M("Data/Textures/Cloud.DDS").c_str(), &again), 0);
  EXPECT_EQ(again.st_ino, before.st_ino) << "after a remount";
}

// What a user may change is what the union shows them: the kernel checks the caller against the
// union's attributes, and a copy-up keeps owner and mode.
TEST_F(UnionWritesMount, CopyUpKeepsOwnerModeAndTimes) {
  ASSERT_EQ(::chown(T("game/Data/Textures/cloud.dds").c_str(), 1234, 1234), 0);
  ASSERT_EQ(::chmod(T("game/Data/Textures/cloud.dds").c_str(), 0640), 0);
  struct stat before;
  ASSERT_EQ(::stat(T("game/Data/Textures/cloud.dds").c_str(), &before), 0);
  ASSERT_TRUE(m.start(Options()));
  ASSERT_EQ(::chmod(M("DATA/textures/CLOUD.DDS").c_str(), 0600), 0);
  struct stat after;
  ASSERT_EQ(::stat(M("data/textures/cloud.dds").c_str(), &after), 0);
  EXPECT_EQ(after.st_mode & 07777, 0600u);
  EXPECT_EQ(after.st_uid, 1234u);
  EXPECT_EQ(after.st_gid, 1234u);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(Read(M("data/textures/cloud.dds")), "game cloud");
  struct stat lower;
  ASSERT_EQ(::stat(T("game/Data/Textures/cloud.dds").c_str(), &lower), 0);
  EXPECT_EQ(lower.st_mode & 07777, 0640u);
}

TEST_F(UnionWritesMount, BadSetupsAreRefusedWithAMessage) {
  auto refused = [&](const std::string& opts, const std::string& says) {
    EXPECT_FALSE(m.start(opts)) << opts;
    EXPECT_NE(m.start_result().err.find(says), std::string::npos) << m.start_result();
  };
  const std::string lower = "lowerdir=" + T("mod1") + ":" + T("game");
  refused("upperdir=" + T("overwrite"), "need lowerdir=");
  refused(lower + ",workdir=" + T("work"), "workdir= needs upperdir=");
  refused(lower + ",upperdir=" + T("game/Data"), "one is inside the other");
  refused(lower + ",upperdir=" + T("overwrite") + ",workdir=" + T("overwrite/w"), "workdir");
  refused(lower + ",upperdir=" + T("no-such-dir"), "upperdir");
}

// Crashes: a writer makes random changes through the union (copy-ups of lower files, removals
// leaving whiteouts, directories made over them, renames) while the daemon is SIGKILLed at a
// random moment; after each crash the union is mounted again and must show a consistent tree:
// the lower trees untouched, every file either a lower file as it was or one a change wrote
// whole (a file being written when the daemon died may be empty: its writer's write never
// returned), and kernel overlayfs reading the same layers shows the same tree (the upper tree
// holds no half-made whiteout or copy).
bool WholeContent(const std::string& what) {
  if (what.rfind("file:", 0) != 0) return true;
  std::string c = what.substr(5);
  while (c.size() >= 8 && c.compare(c.size() - 8, 8, "+aaaaaaa") == 0) c.resize(c.size() - 8);
  if (c.empty()) return true;
  if (c[0] == 'W') return c == "W" + std::string(100, 'w');
  return c.find(':') != std::string::npos && c.find('+') == std::string::npos;  // a lower tag
}

void RandomWriter(const std::string& root, uint32_t seed) {
  std::mt19937 rng(seed);
  const char* names[] = {"a", "b", "c", "d", "e"};
  for (int i = 0; i < 100000; ++i) {
    std::string path = root;
    const int depth = 1 + static_cast<int>(rng() % 3);
    for (int d = 0; d < depth; ++d) {
      path += "/" + std::string(names[rng() % 5]);  // one spelling: overlayfs compares bytes
    }
    int fd = -1;
    switch (rng() % 6) {
      case 0:
        fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
        if (fd >= 0) (void)!::write(fd, ("W" + std::string(100, 'w')).data(), 101);
        break;
      case 1:
        fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_NOFOLLOW);
        if (fd >= 0) (void)!::write(fd, "+aaaaaaa", 8);
        break;
      case 2:
        ::unlink(path.c_str());
        break;
      case 3:
        ::rmdir(path.c_str());
        ::mkdir(path.c_str(), 0755);
        break;
      case 4:
        ::rename(path.c_str(), (root + "/" + names[rng() % 5]).c_str());
        break;
      default:
        ::chmod(path.c_str(), 0600 | (rng() % 2 ? 044 : 0));
    }
    if (fd >= 0) ::close(fd);
    if (errno == ENOTCONN || errno == ECONNABORTED) break;
  }
}

TEST_F(UnionWritesMount, AKilledDaemonLeavesAConsistentUnion) {
  if (!KernelHasOverlayfs()) GTEST_SKIP() << "this kernel has no overlayfs to compare with";
  const bool overlayfs_reads_it = backing_kind() != "fuse";
  ASSERT_EQ(::mkdir(T("crash").c_str(), 0755), 0);
  Layers layers(T("crash"), 2, true, 77, false);
  std::vector<View> lower_before;
  for (size_t t = 1; t < layers.trees().size(); ++t)
    lower_before.push_back(Merge({layers.trees()[t]}));
  const std::string opts = FoldfsOptions(layers.trees(), T("work"));
  std::mt19937 rng(7);
  int files_checked = 0;
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ASSERT_TRUE(m.start(opts));
    const pid_t writer = ::fork();
    if (writer == 0) {
      RandomWriter(m.mnt(), static_cast<uint32_t>(round));
      ::_exit(0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 300));
    for (pid_t d : m.daemon_pids()) ::kill(d, SIGKILL);
    int status = 0;
    ::waitpid(writer, &status, 0);
    ASSERT_TRUE(run({"umount", "-l", m.mnt()}).ok());
    for (size_t t = 1; t < layers.trees().size(); ++t) {
      EXPECT_EQ(Merge({layers.trees()[t]}), lower_before[t - 1]) << "lower tree " << t;
    }
    ASSERT_TRUE(m.start(opts));
    View shown;
    WalkMount(m.mnt(), "", &shown);
    for (const auto& [path, what] : shown) {
      EXPECT_TRUE(WholeContent(what)) << path << " = " << what;
      ++files_checked;
    }
    ASSERT_TRUE(m.unmount());
    if (!overlayfs_reads_it) continue;
    const std::string work = T("ovl-work");
    run({"rm", "-rf", work});
    ASSERT_EQ(::mkdir(work.c_str(), 0755), 0);
    ASSERT_EQ(::mount("overlay", layers.mnt().c_str(), "overlay", 0,
                      OverlayOptions(layers.trees(), work).c_str()),
              0)
        << std::strerror(errno);
    View through_overlayfs;
    WalkMount(layers.mnt(), "", &through_overlayfs);
    ASSERT_EQ(::umount(layers.mnt().c_str()), 0);
    std::erase_if(through_overlayfs, [](const auto& e) {
      return e.first.find(".foldfs-new.") != std::string::npos;  // the union hides them
    });
    EXPECT_EQ(shown, through_overlayfs) << "foldfs:\n"
                                        << Show(shown) << "overlayfs:\n"
                                        << Show(through_overlayfs);
  }
  EXPECT_GT(files_checked, 50);
}

}  // namespace
}  // namespace foldfs::itest
