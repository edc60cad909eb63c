// The read-only union (src/fs/union_fs.h) driven without FUSE: what lookups decide, that every
// tree lookup the union takes is given back when the kernel forgets, and (under ThreadSanitizer)
// lookups, listings and forgets from many threads at once.
#include "fs/union_fs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/fake_kernel.h"
#include "support/other_process.h"
#include "support/scratch_dir.h"

namespace foldfs::fs {
namespace {

using test_support::ScratchDir;

void Write(const std::string& path, const std::string& data) {
  std::ofstream(path) << data;
}

uint64_t Stat(const std::string& text, const std::string& name) {
  const size_t at = text.find(name + " ");
  return at == std::string::npos ? ~0ull : std::stoull(text.substr(at + name.size() + 1));
}

class UnionFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto* t : {&mod_, &game_}) ASSERT_TRUE(t->ok());
    ASSERT_EQ(::mkdir((game_.path() + "/Data").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((game_.path() + "/Data/Textures").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((mod_.path() + "/DATA").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((mod_.path() + "/DATA/textures").c_str(), 0755), 0);
    for (int i = 0; i < 20; ++i) {
      Write(game_.path() + "/Data/Textures/tex" + std::to_string(i) + ".dds", "game");
      if (i % 2) Write(mod_.path() + "/DATA/textures/TEX" + std::to_string(i) + ".DDS", "mod");
    }
    Write(game_.path() + "/Data/readme.txt", "game readme");
    ASSERT_EQ(::mknod((mod_.path() + "/DATA/README.TXT").c_str(), S_IFCHR | 0600, makedev(0, 0)),
              0);  // a whiteout
    Options options;
    std::string error;
    fs_ = UnionFilesystem::open({mod_.path(), game_.path()}, options, &error);
    ASSERT_TRUE(fs_) << error;
    fs_->set_notifier(&kernel_);
  }
  void TearDown() override {
    if (fs_) fs_->set_notifier(nullptr);
  }
  int Lookup(uint64_t parent, const std::string& name, EntryOut* out) {
    return fs_->lookup(Context{}, parent, name, out);
  }
  std::string ReadAll(uint64_t ino) {
    uint64_t fh = 0;
    if (fs_->open(Context{}, ino, O_RDONLY, &fh) != 0) return "<open failed>";
    char buf[64] = {};
    const ssize_t n = ::pread(fs_->file_fd(fh), buf, sizeof(buf), 0);
    fs_->release(fh);
    return n < 0 ? "<read failed>" : std::string(buf, static_cast<size_t>(n));
  }
  std::vector<std::string> List(uint64_t ino) {
    std::vector<std::string> out;
    fs_->readdir(
        ino, 0,
        [&](std::string_view name, uint64_t, mode_t, off_t) {
          if (name != "." && name != "..") out.emplace_back(name);
          return true;
        },
        32768);
    return out;
  }

  ScratchDir mod_{"foldfs-mod"};
  ScratchDir game_{"foldfs-game"};
  test_support::FakeKernel kernel_;
  std::unique_ptr<UnionFilesystem> fs_;
};

TEST_F(UnionFsTest, LookupsFollowTheRulesAndForgetsGiveBackEveryTreeLookup) {
  const std::string before = fs_->stats_text();
  EntryOut data, textures, file, missing, whiteout;
  ASSERT_EQ(Lookup(Operations::kRootId, "data", &data), 0);
  ASSERT_EQ(Lookup(data.ino, "Textures", &textures), 0);
  ASSERT_EQ(Lookup(textures.ino, "tex3.dds", &file), 0);
  EXPECT_EQ(ReadAll(file.ino), "mod");
  EntryOut game_file;
  ASSERT_EQ(Lookup(textures.ino, "TEX4.dds", &game_file), 0);
  EXPECT_EQ(ReadAll(game_file.ino), "game");
  EXPECT_EQ(Lookup(textures.ino, "tex99.dds", &missing), ENOENT);
  EXPECT_EQ(Lookup(data.ino, "readme.txt", &whiteout), ENOENT) << "the whiteout hides it";
  EXPECT_EQ(List(textures.ino).size(), 20u);
  const std::vector<std::string> top = List(data.ino);
  EXPECT_EQ(top, std::vector<std::string>{"textures"});
  EXPECT_EQ(fs_->mkdir(Context{}, data.ino, "x", 0755, &missing), EROFS);

  const std::string during = fs_->stats_text();
  EXPECT_GT(Stat(during, "tree1_inodes"), Stat(before, "tree1_inodes"));
  for (uint64_t ino : {game_file.ino, file.ino, textures.ino, data.ino}) fs_->forget(ino, 1);
  const std::string after = fs_->stats_text();
  EXPECT_EQ(Stat(after, "tree0_inodes"), Stat(before, "tree0_inodes")) << after;
  EXPECT_EQ(Stat(after, "tree1_inodes"), Stat(before, "tree1_inodes")) << after;
  EXPECT_EQ(Stat(after, "union_nodes"), 1u) << "only the root is left";
}

// Lookups of random spellings, listings and forgets from several threads: each thread forgets
// what it looked up, so at the end only the root is left, in the union and in every tree.
TEST_F(UnionFsTest, ConcurrentLookupsListingsAndForgetsGiveEverythingBack) {
  const std::string before = fs_->stats_text();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t));
      for (int i = 0; i < 300; ++i) {
        EntryOut data, textures, file;
        if (Lookup(Operations::kRootId, rng() % 2 ? "DATA" : "data", &data) != 0) {
          failures++;
          continue;
        }
        if (Lookup(data.ino, rng() % 2 ? "TEXTURES" : "textures", &textures) != 0) {
          failures++;
          fs_->forget(data.ino, 1);
          continue;
        }
        const int n = static_cast<int>(rng() % 20);
        if (Lookup(textures.ino, (rng() % 2 ? "TEX" : "tex") + std::to_string(n) + ".dds", &file) !=
            0) {
          failures++;
        } else {
          if (ReadAll(file.ino) != (n % 2 ? "mod" : "game")) failures++;
          fs_->forget(file.ino, 1);
        }
        if (i % 10 == 0 && List(textures.ino).size() != 20) failures++;
        fs_->forget(textures.ino, 1);
        fs_->forget(data.ino, 1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const std::string after = fs_->stats_text();
  EXPECT_EQ(Stat(after, "union_nodes"), 1u) << after;
  EXPECT_EQ(Stat(after, "tree0_inodes"), Stat(before, "tree0_inodes")) << after;
  EXPECT_EQ(Stat(after, "tree1_inodes"), Stat(before, "tree1_inodes")) << after;
}

// The writable union (upperdir=): threads change files of their own (copy-ups on first write,
// removals that leave whiteouts, creations over them) in random spellings while others read and
// list; every answer is the one a model of each thread's files predicts, and at the end every
// tree lookup is given back. Under ThreadSanitizer this is the union's write paths' race check.
// Changes another process makes directly in any tree are taken in by the very next lookup (the
// union polls every tree's queue of outside changes at once, UnionFilesystem::
// take_in_outside_changes): a file made in a higher tree overrides at once, its removal shows the
// lower one again, a name made in the lowest tree is found at once after a miss.
TEST_F(UnionFsTest, OutsideChangesInAnyTreeAreTakenInByTheNextLookup) {
  fs_->start_services();
  EntryOut data, textures;
  ASSERT_EQ(Lookup(Operations::kRootId, "data", &data), 0);
  ASSERT_EQ(Lookup(data.ino, "textures", &textures), 0);
  auto read = [&](const std::string& name) {
    EntryOut e;
    if (int err = Lookup(textures.ino, name, &e); err != 0) return std::string(std::strerror(err));
    std::string text = ReadAll(e.ino);
    fs_->forget(e.ino, 1);
    return text;
  };
  const std::string mod = mod_.path() + "/DATA/textures/";
  const std::string game = game_.path() + "/Data/Textures/";
  for (int round = 0; round < 20; ++round) {
    ASSERT_EQ(read("tex4.dds"), "game");
    test_support::in_other_process(
        [&] { Write(mod + "TEX4.DDS", "mod " + std::to_string(round)); });
    ASSERT_EQ(read("tex4.dds"), "mod " + std::to_string(round)) << round;
    test_support::in_other_process([&] { ::unlink((mod + "TEX4.DDS").c_str()); });
    ASSERT_EQ(read("Tex4.dds"), "game") << round;
    const std::string made = "made" + std::to_string(round) + ".dds";
    ASSERT_EQ(read(made), std::strerror(ENOENT));
    test_support::in_other_process([&] { Write(game + made, "new"); });
    ASSERT_EQ(read(made), "new") << round;
  }
  fs_->forget(textures.ino, 1);
  fs_->forget(data.ino, 1);
  fs_->stop_services();
}

// A directory large enough to be read a thread per tree (UnionFilesystem::read_parts), listed
// from several threads at once: each name once, in the spelling of the tree that decides it, and
// nothing a whiteout hides.
TEST_F(UnionFsTest, ALargeDirectoryIsReadTreeBesideTreeAndListsEachNameOnce) {
  ASSERT_EQ(::mkdir((game_.path() + "/Data/Meshes").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((mod_.path() + "/DATA/MESHES").c_str(), 0755), 0);
  std::map<std::string, std::string> expected;  // folded -> the spelling listed
  for (int i = 0; i < 3000; ++i) {
    const std::string n = "mesh_" + std::to_string(i) + ".nif";
    std::string upper = n;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    Write(game_.path() + "/Data/Meshes/" + n, "game");
    if (i % 3 == 0) {
      Write(mod_.path() + "/DATA/MESHES/" + upper, "mod");
      expected[n] = upper;
    } else if (i % 3 == 1 && i % 2 == 0) {
      ASSERT_EQ(
          ::mknod((mod_.path() + "/DATA/MESHES/" + upper).c_str(), S_IFCHR | 0600, makedev(0, 0)),
          0);  // a whiteout: not listed, and hides the game's
    } else {
      expected[n] = n;
    }
  }
  EntryOut data, meshes;
  ASSERT_EQ(Lookup(Operations::kRootId, "data", &data), 0);
  ASSERT_EQ(Lookup(data.ino, "meshes", &meshes), 0);
  const uint64_t before = Stat(fs_->stats_text(), "union_listings_read_aside");
  std::vector<std::vector<std::string>> seen(3);
  std::vector<std::thread> threads;
  for (auto& listing : seen) threads.emplace_back([&] { listing = List(meshes.ino); });
  for (auto& th : threads) th.join();
  EXPECT_EQ(Stat(fs_->stats_text(), "union_listings_read_aside"), before + seen.size());
  std::vector<std::string> want;
  for (const auto& [folded, listed] : expected) want.push_back(listed);
  std::sort(want.begin(), want.end());
  for (std::vector<std::string>& listing : seen) {
    std::sort(listing.begin(), listing.end());
    EXPECT_EQ(listing, want);
  }
  fs_->forget(meshes.ino, 1);
  fs_->forget(data.ino, 1);
}

// More trees than helper threads (a mod list): every part of a large merged directory is read,
// by whichever thread takes it, and the listing is each tree's names above the lower spellings.
TEST(UnionFsManyTrees, EveryPartOfALargeDirectoryIsReadAndListedOnce) {
  constexpr int kTrees = 12;
  std::vector<std::unique_ptr<ScratchDir>> trees;
  std::vector<std::string> paths;
  std::map<std::string, std::string> expected;  // lowercase name -> listed spelling
  for (int t = 0; t < kTrees; ++t) {
    trees.push_back(std::make_unique<ScratchDir>("foldfs-tree"));
    ASSERT_TRUE(trees.back()->ok());
    paths.push_back(trees.back()->path());
    const std::string dir = paths.back() + (t % 2 ? "/MESHES" : "/meshes");
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    for (int i = 0; i < 400; ++i) {
      const int n = t * 300 + i;  // the last 100 of each tree are hidden by the tree above
      const std::string name = (t % 2 ? "MESH_" : "mesh_") + std::to_string(n) + ".nif";
      Write(dir + "/" + name, std::to_string(t));
      expected.emplace("mesh_" + std::to_string(n) + ".nif", name);  // the highest tree's
    }
  }
  std::string error;
  auto fs = UnionFilesystem::open(paths, Options{}, &error);
  ASSERT_TRUE(fs) << error;
  EntryOut meshes;
  ASSERT_EQ(fs->lookup(Context{}, Operations::kRootId, "Meshes", &meshes), 0);
  std::vector<std::string> listed;
  fs->readdir(
      meshes.ino, 0,
      [&](std::string_view name, uint64_t, mode_t, off_t) {
        if (name != "." && name != "..") listed.emplace_back(name);
        return true;
      },
      1 << 20);
  EXPECT_EQ(Stat(fs->stats_text(), "union_listings_read_aside"), 1u);
  std::vector<std::string> want;
  for (const auto& [lower, spelling] : expected) want.push_back(spelling);
  std::sort(want.begin(), want.end());
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed.size(), want.size());
  EXPECT_EQ(listed, want);
  fs->forget(meshes.ino, 1);
}

class UnionFsWritesTest : public UnionFsTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(upper_.ok());
    UnionFsTest::SetUp();
    fs_.reset();
    Options options;
    options.upper_tree = upper_.path();
    std::string error;
    fs_ = UnionFilesystem::open({upper_.path(), mod_.path(), game_.path()}, options, &error);
    ASSERT_TRUE(fs_) << error;
    fs_->set_notifier(&kernel_);
  }
  // Writes `text` as the whole file `name` of `dir` (made if missing): 0 or an errno.
  int Put(uint64_t dir, const std::string& name, const std::string& text) {
    EntryOut e;
    uint64_t fh = 0;
    int err = fs_->create(Context{}, dir, name, 0644, O_WRONLY | O_CREAT | O_TRUNC, &e, &fh);
    if (err != 0) return err;
    if (::pwrite(fs_->file_fd(fh), text.data(), text.size(), 0) !=
        static_cast<ssize_t>(text.size())) {
      err = errno;
    }
    fs_->release(fh);
    fs_->forget(e.ino, 1);
    return err;
  }
  ScratchDir upper_{"foldfs-upper"};
};

TEST_F(UnionFsWritesTest, ConcurrentChangesInRandomSpellingsMatchAModel) {
  const std::string before = fs_->stats_text();
  std::atomic<int> failures{0};
  std::atomic<bool> done{false};
  std::mutex said_mutex;
  std::vector<std::string> said;  // the first failures, for the message
  auto fail = [&](const std::string& what) {
    failures++;
    std::lock_guard<std::mutex> lock(said_mutex);
    if (said.size() < 10) said.push_back(what);
  };
  auto spell = [](std::mt19937& rng, int n) {
    std::string name = "tex" + std::to_string(n) + ".dds";
    for (char& c : name) c = rng() % 2 ? static_cast<char>(std::toupper(c)) : c;
    return name;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(100 + t));
      std::map<int, std::string> model;  // this thread's textures: n % 4 == t
      for (int n = t; n < 20; n += 4) model[n] = n % 2 ? "mod" : "game";
      EntryOut data, textures;
      if (Lookup(Operations::kRootId, "data", &data) != 0 ||
          Lookup(data.ino, "TEXTURES", &textures) != 0) {
        fail("lookup of the directories");
        return;
      }
      for (int i = 0; i < 150; ++i) {
        const int n = t + 4 * static_cast<int>(rng() % 5);
        const std::string name = spell(rng, n);
        const bool exists = model.count(n) > 0;
        switch (rng() % 3) {
          case 0: {  // write the whole file (a copy-up first where a lower tree has it)
            const std::string text = "t" + std::to_string(t) + "." + std::to_string(i);
            if (int err = Put(textures.ino, name, text); err != 0) {
              fail("write " + name + ": " + std::strerror(err));
            }
            model[n] = text;
            break;
          }
          case 1:  // remove it (a whiteout where a lower tree shows it)
            if (int err = fs_->unlink(Context{}, textures.ino, name);
                err != (exists ? 0 : ENOENT)) {
              fail("unlink " + name + ": " + std::strerror(err));
            }
            model.erase(n);
            break;
          default: {  // read it
            EntryOut file;
            const int err = Lookup(textures.ino, name, &file);
            if (err != (exists ? 0 : ENOENT)) {
              fail("lookup " + name + ": " + std::strerror(err));
            } else if (err == 0) {
              if (const std::string got = ReadAll(file.ino); got != model[n]) {
                fail("read " + name + ": " + got + " instead of " + model[n]);
              }
              fs_->forget(file.ino, 1);
            }
          }
        }
      }
      fs_->forget(textures.ino, 1);
      fs_->forget(data.ino, 1);
    });
  }
  std::thread reader([&] {  // listings while names come and go: never more than there can be
    while (!done.load()) {
      EntryOut data, textures;
      if (Lookup(Operations::kRootId, "Data", &data) != 0) continue;
      if (Lookup(data.ino, "textures", &textures) == 0) {
        if (List(textures.ino).size() > 20) fail("listing");
        fs_->forget(textures.ino, 1);
      }
      fs_->forget(data.ino, 1);
    }
  });
  for (auto& th : threads) th.join();
  done = true;
  reader.join();
  EXPECT_EQ(failures.load(), 0) << ::testing::PrintToString(said);
  const std::string after = fs_->stats_text();
  EXPECT_EQ(Stat(after, "union_nodes"), 1u) << after;
  for (const char* tree : {"tree1_inodes", "tree2_inodes"}) {
    EXPECT_EQ(Stat(after, tree), Stat(before, tree)) << tree << "\n" << after;
  }
  // The lower trees are untouched.
  std::ifstream game(game_.path() + "/Data/Textures/tex0.dds");
  std::string text((std::istreambuf_iterator<char>(game)), {});
  EXPECT_EQ(text, "game");
}

}  // namespace
}  // namespace foldfs::fs
