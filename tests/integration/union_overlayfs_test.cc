// The union's merge rules and its on-disk format, checked against the reference: the kernel's own
// overlayfs (docs/union.md took its format so that one upper tree serves both).
//
// Random layers (files, directories, symlinks, whiteouts, opaque directories, files copied up;
// the marks made by foldfs's own writers, src/backing/union_format.h and copy_up.h) are mounted
// as an overlayfs, and what a walk of that mount finds must be exactly what foldfs's merge
// (names/union_dir.h over fs::union_part) makes of the same layers. Then random removals,
// re-creations and writes are made through the overlayfs mount, which writes its own whiteouts,
// opaque directories and copy-ups into the upper layer; after unmounting, foldfs's merge of the
// layers must show what overlayfs showed. Names are chosen so that no two fold alike: overlayfs
// compares bytes, and for such names a case-insensitive union and overlayfs must agree on
// everything. (Case variants are the merge's own unit tests, tests/unit/union_dir_test.cc.)
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backing/copy_up.h"
#include "backing/dir_reader.h"
#include "backing/union_format.h"
#include "backing/unique_fd.h"
#include "fs/union_parts.h"
#include "harness.h"
#include "names/union_dir.h"
#include "union_walk.h"

namespace foldfs::itest {
namespace {

using backing::UniqueFd;
constexpr int kSeeds = 40;

bool KernelHasOverlayfs() {
  const auto list = read_file("/proc/filesystems");
  return list && list->find("\toverlay\n") != std::string::npos;
}
#define SKIP_WITHOUT_OVERLAYFS() \
  if (!KernelHasOverlayfs()) GTEST_SKIP() << "this kernel has no overlayfs to compare with"

TEST(UnionOverlayfs, TheMergeShowsWhatOverlayfsShowsOfTheSameLayers) {
  SKIP_WITHOUT_OVERLAYFS();
  for (int seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TempDir tmp;
    Layers layers(tmp.path(), 2 + seed % 3, seed % 2 == 0, static_cast<uint32_t>(seed));
    const View merged = Merge(layers.trees());
    ASSERT_TRUE(layers.MountOverlay());
    View shown;
    WalkMount(layers.mnt(), "", &shown);
    ASSERT_TRUE(layers.Unmount());
    ASSERT_EQ(merged, shown) << "foldfs's merge:\n"
                             << Show(merged) << "overlayfs:\n"
                             << Show(shown);
  }
}

// overlayfs writes into the upper layer (whiteouts for removed names, opaque directories made over
// removed ones, copy-ups of changed files); foldfs reads what it wrote as overlayfs does.
TEST(UnionOverlayfs, TheMergeReadsWhatOverlayfsWroteIntoTheUpperLayer) {
  SKIP_WITHOUT_OVERLAYFS();
  int changes = 0;
  int whiteouts = 0;
  int opaques = 0;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TempDir tmp;
    Layers layers(tmp.path(), 2 + seed % 3, true, static_cast<uint32_t>(1000 + seed), false);
    ASSERT_TRUE(layers.MountOverlay());
    for (int step = 0; step < 12; ++step) {
      View now;
      WalkMount(layers.mnt(), "", &now);
      if (now.empty()) break;
      auto it = now.begin();
      std::advance(it, std::uniform_int_distribution<size_t>(0, now.size() - 1)(layers.rng()));
      const std::string path = layers.mnt() + "/" + it->first;
      const RunResult removed = run({"rm", "-rf", path});
      ASSERT_TRUE(removed.ok()) << removed;
      switch (std::uniform_int_distribution<int>(0, 2)(layers.rng())) {
        case 0:  // a directory where the removed name was: overlayfs makes it opaque
          ASSERT_EQ(::mkdir(path.c_str(), 0755), 0) << path;
          ASSERT_EQ(write_file(path + "/new", "made through overlayfs"), Errno(0));
          break;
        case 1:  // a file there
          ASSERT_EQ(write_file(path, "rewritten through overlayfs"), Errno(0));
          break;
        default:
          break;
      }
      ++changes;
    }
    // A change of a lower file that stays: overlayfs copies it up.
    View now;
    WalkMount(layers.mnt(), "", &now);
    for (const auto& [path, what] : now) {
      if (what.rfind("file:", 0) != 0) continue;
      const UniqueFd fd(::open((layers.mnt() + "/" + path).c_str(), O_WRONLY | O_APPEND));
      ASSERT_TRUE(fd.valid()) << path;
      ASSERT_EQ(::write(fd.get(), "+", 1), 1);
    }
    View shown;
    WalkMount(layers.mnt(), "", &shown);
    ASSERT_TRUE(layers.Unmount());
    const View merged = Merge(layers.trees());
    ASSERT_EQ(merged, shown) << "foldfs's merge:\n"
                             << Show(merged) << "overlayfs:\n"
                             << Show(shown);
    CountMarks(layers.trees()[0], &whiteouts, &opaques);
  }
  EXPECT_GT(changes, kSeeds) << "the random changes did not happen";
  // Layers made without whiteouts: every one counted here is overlayfs's.
  EXPECT_GT(whiteouts, kSeeds) << "overlayfs wrote few whiteouts: the test does not test them";
  EXPECT_GT(opaques, 5) << "overlayfs wrote few opaque directories";
  std::printf("overlayfs wrote %d whiteouts and %d opaque directories in %d changes\n", whiteouts,
              opaques, changes);
}

}  // namespace
}  // namespace foldfs::itest
