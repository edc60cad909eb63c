// Walking a union of trees two ways, for the tests that compare them: through a mount (what
// lookups find) and by foldfs's merge (names/union_dir.h over fs::union_part) of the trees
// themselves; and random trees to walk. Shared by union_overlayfs_test.cc (the merge against
// kernel overlayfs) and mount_union_test.cc (the union mount against the merge).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
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

namespace foldfs::itest {

using backing::UniqueFd;
using View = std::map<std::string, std::string>;  // path -> "dir", "file:DATA", "link:TARGET"

inline std::string Describe(const std::string& path, const struct stat& st) {
  if (S_ISDIR(st.st_mode)) return "dir";
  if (S_ISLNK(st.st_mode)) {
    char target[256] = {};
    const ssize_t n = ::readlink(path.c_str(), target, sizeof(target) - 1);
    return "link:" + std::string(target, n > 0 ? static_cast<size_t>(n) : 0);
  }
  if (S_ISREG(st.st_mode)) return "file:" + read_file(path).value_or("<unreadable>");
  return "other:" + std::to_string(st.st_mode);
}

// What lookups through a mounted union find, from `dir` down. overlayfs lists a whiteout in a
// directory that is not merged (it reads such a directory as it is), but looking the name up finds
// nothing: an entry counts only if lstat finds it.
inline void WalkMount(const std::string& root, const std::string& rel, View* out) {
  const std::string dir = rel.empty() ? root : root + "/" + rel;
  DIR* d = ::opendir(dir.c_str());
  ASSERT_NE(d, nullptr) << dir << ": " << std::strerror(errno);
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  for (const std::string& name : names) {
    const std::string child = rel.empty() ? name : rel + "/" + name;
    struct stat st;
    if (::lstat((root + "/" + child).c_str(), &st) != 0) continue;
    (*out)[child] = Describe(root + "/" + child, st);
    if (S_ISDIR(st.st_mode)) WalkMount(root, child, out);
  }
}

// What foldfs's merge makes of the layers (`trees`, highest first): each merged directory is the
// list of its parts, (tree, path in that tree).
inline void WalkMerge(const std::vector<std::string>& trees,
                      const std::vector<std::pair<size_t, std::string>>& dir,
                      const std::string& rel, View* out) {
  std::vector<names::UnionPart> parts;
  for (const auto& [tree, path] : dir) {
    const UniqueFd fd(
        ::open((trees[tree] + "/" + path).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    ASSERT_TRUE(fd.valid()) << trees[tree] << "/" << path;
    std::vector<backing::DirEntry> entries;
    ASSERT_EQ(backing::read_directory(fd.get(), &entries), 0);
    parts.push_back(fs::union_part(fd.get(), tree, std::move(entries)));
    if (parts.back().opaque) break;
  }
  auto path_in = [&](size_t tree) {
    for (const auto& [t, p] : dir) {
      if (t == tree) return p;
    }
    return std::string("?");
  };
  for (const names::UnionEntry& e : names::merge_union_dir(parts, names::FoldRules{}).entries) {
    const std::string child = rel.empty() ? e.name : rel + "/" + e.name;
    const std::string in_tree = path_in(e.tree) + "/" + e.name;
    struct stat st;
    ASSERT_EQ(::lstat((trees[e.tree] + "/" + in_tree).c_str(), &st), 0) << in_tree;
    (*out)[child] = Describe(trees[e.tree] + "/" + in_tree, st);
    if (!e.directory) continue;
    std::vector<std::pair<size_t, std::string>> below;
    for (const names::UnionName& p : e.parts)
      below.emplace_back(p.tree, path_in(p.tree) + "/" + p.name);
    WalkMerge(trees, below, child, out);
  }
}

// The whiteouts and opaque directories under `dir`.
inline void CountMarks(const std::string& dir, int* whiteouts, int* opaques) {
  const UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  if (backing::is_opaque(fd.get())) ++*opaques;
  std::vector<backing::DirEntry> entries;
  ASSERT_EQ(backing::read_directory(fd.get(), &entries), 0);
  for (const auto& e : entries) {
    struct stat st;
    ASSERT_EQ(::fstatat(fd.get(), e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW), 0);
    if (backing::is_whiteout(st)) ++*whiteouts;
    if (S_ISDIR(st.st_mode)) CountMarks(dir + "/" + e.name, whiteouts, opaques);
  }
}

inline View Merge(const std::vector<std::string>& trees) {
  View out;
  std::vector<std::pair<size_t, std::string>> root;
  for (size_t t = 0; t < trees.size(); ++t) root.emplace_back(t, ".");
  WalkMerge(trees, root, "", &out);
  return out;
}

// A game and two mods that override its files in other spellings; `path` says where a tree's
// relative path is.
inline void MakeGameAndTwoMods(const std::function<std::string(const std::string&)>& path) {
  for (const char* dir :
       {"game/Data/Textures", "game/Data/Meshes", "mod1/data/textures", "mod2/DATA/meshes"}) {
    ASSERT_TRUE(run({"mkdir", "-p", path(dir)}).ok()) << dir;
  }
  const std::pair<const char*, const char*> files[] = {
      {"game/Data/Textures/sky.DDS", "game sky"}, {"game/Data/Textures/cloud.dds", "game cloud"},
      {"game/Data/Meshes/rock.nif", "game rock"}, {"game/Game.exe", "MZ"},
      {"mod1/data/textures/Sky.dds", "mod1 sky"}, {"mod2/DATA/meshes/Rock.NIF", "mod2 rock"}};
  for (const auto& [rel, data] : files) ASSERT_EQ(write_file(path(rel), data), Errno(0)) << rel;
}

// A directory's names, sorted (or one "<opendir: error>" entry).
inline std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return {"<opendir: " + std::string(std::strerror(errno)) + ">"};
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// A file's contents (or "<error>").
inline std::string Read(const std::string& path) {
  return read_file(path).value_or("<" + std::string(std::strerror(errno)) + ">");
}

inline std::string Show(const View& v) {
  std::string out;
  for (const auto& [path, what] : v) out += "  " + path + " = " + what + "\n";
  return out;
}

// Random layers, from a few names (by default ones that fold apart); contents say where they come
// from.
class Layers {
 public:
  // `whiteouts`: whether the layers get whiteouts (and the upper layer opaque directories) of their
  // own. overlayfs reads a whiteout with nothing below it (in a directory of one layer)
  // inconsistently: listed, not found by a lookup, and keeping its directory from being removed;
  // the changes made through overlayfs go without, and every mark in their upper layer is then
  // overlayfs's.
  // `names`: what entries are called; `key` (if given): the names that are one name (a
  // directory then holds at most one of them, so that no tree has a collision inside it).
  Layers(const std::string& base, size_t lowers, bool upper, uint32_t seed, bool whiteouts = true,
         std::vector<std::string> names = {"a", "b", "c", "d"},
         std::function<std::string(const std::string&)> key = nullptr)
      : rng_(seed), whiteouts_(whiteouts), names_(std::move(names)), key_(std::move(key)) {
    if (upper) trees_.push_back(base + "/upper");
    for (size_t k = 0; k < lowers; ++k) trees_.push_back(base + "/lower" + std::to_string(k));
    for (const auto& t : trees_) EXPECT_EQ(::mkdir(t.c_str(), 0755), 0) << t;
    work_ = base + "/work";
    mnt_ = base + "/mnt";
    EXPECT_EQ(::mkdir(work_.c_str(), 0755), 0);
    EXPECT_EQ(::mkdir(mnt_.c_str(), 0755), 0);
    // The bottom first, so that higher layers can copy up from it.
    for (size_t t = trees_.size(); t-- > 0;) Fill(t, "", 0);
    upper_ = upper;
  }
  ~Layers() {
    if (is_mount_point(mnt_)) ::umount2(mnt_.c_str(), MNT_DETACH);
  }

  const std::vector<std::string>& trees() const { return trees_; }
  const std::string& mnt() const { return mnt_; }
  std::mt19937& rng() { return rng_; }

  ::testing::AssertionResult MountOverlay() {
    std::string lower;
    for (size_t t = upper_ ? 1 : 0; t < trees_.size(); ++t) {
      lower += (lower.empty() ? "" : ":") + trees_[t];
    }
    std::string opts = "lowerdir=" + lower;
    if (upper_) opts += ",upperdir=" + trees_[0] + ",workdir=" + work_;
    if (::mount("overlay", mnt_.c_str(), "overlay", 0, opts.c_str()) != 0) {
      return ::testing::AssertionFailure()
             << "mount -t overlay -o " << opts << ": " << std::strerror(errno);
    }
    return ::testing::AssertionSuccess();
  }
  ::testing::AssertionResult Unmount() {
    if (::umount(mnt_.c_str()) != 0) {
      return ::testing::AssertionFailure() << "umount " << mnt_ << ": " << std::strerror(errno);
    }
    return ::testing::AssertionSuccess();
  }

 private:
  int Roll(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  void Fill(size_t tree, const std::string& rel, int depth) {
    const std::string dir = trees_[tree] + "/" + rel;
    const bool bottom = tree + 1 == trees_.size();
    std::vector<std::string> keys_here;
    for (const std::string& name : names_) {
      if (key_) {
        std::string k = key_(name);
        if (std::find(keys_here.begin(), keys_here.end(), k) != keys_here.end()) continue;
        if (Roll(2) == 0) continue;  // this spelling, or a later one of the key
        keys_here.push_back(std::move(k));
      }
      const std::string path = dir + name;
      const std::string tag = std::to_string(tree) + ":" + rel + name;
      switch (Roll(depth < 2 ? 7 : 5)) {
        case 0:
        case 1:
          break;  // nothing here
        case 2:
          EXPECT_EQ(write_file(path, tag), Errno(0));
          break;
        case 3:
          EXPECT_EQ(::symlink(("target-" + tag).c_str(), path.c_str()), 0);
          break;
        case 4:
          if (!bottom && CopyUpFromBelow(tree, rel, name)) break;
          if (whiteouts_) {
            // overlayfs makes whiteouts only for itself: a tree on an overlayfs has none
            const int err = MakeWhiteout(dir, name);
            EXPECT_TRUE(err == 0 || backing_kind() == "overlay") << path << ": " << err;
          }
          break;
        default: {
          EXPECT_EQ(::mkdir(path.c_str(), 0755), 0) << path;
          if (!bottom && (whiteouts_ || tree > 0) && Roll(4) == 0) {
            const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY));
            // overlayfs keeps trusted.overlay.* to itself: a tree on an overlayfs has no opaque
            // directories of its own
            const int err = backing::make_opaque(fd.get());
            EXPECT_TRUE(err == 0 || backing_kind() == "overlay") << path << ": " << err;
          }
          Fill(tree, rel + name + "/", depth + 1);
        }
      }
    }
  }

  int MakeWhiteout(const std::string& dir, const std::string& name) {
    const UniqueFd fd(::open(dir.c_str(), O_PATH | O_DIRECTORY));
    return backing::make_whiteout(fd.get(), name);
  }

  // A regular file of the next layer down, copied up (half the time): false when there is none.
  bool CopyUpFromBelow(size_t tree, const std::string& rel, const std::string& name) {
    const std::string below = trees_[tree + 1] + "/" + rel;
    struct stat st;
    if (Roll(2) == 0 || ::lstat((below + name).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return false;
    }
    const UniqueFd from(::open(below.c_str(), O_PATH | O_DIRECTORY));
    const UniqueFd to(::open((trees_[tree] + "/" + rel).c_str(), O_PATH | O_DIRECTORY));
    const UniqueFd work(::open(work_.c_str(), O_PATH | O_DIRECTORY));  // where no O_TMPFILE
    EXPECT_EQ(backing::copy_up(from.get(), name, to.get(), name, nullptr, {}, work.get()), 0);
    return true;
  }

  std::mt19937 rng_;
  bool whiteouts_ = true;
  std::vector<std::string> names_;
  std::function<std::string(const std::string&)> key_;
  std::vector<std::string> trees_;
  std::string work_;
  std::string mnt_;
  bool upper_ = false;
};

}  // namespace foldfs::itest
