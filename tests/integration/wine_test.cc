// Windows name rules through real Wine (issue 14): bench/wine/winbench.c, built with mingw-w64,
// runs under Wine 8 on a foldfs mount. Its check mode creates, opens, renames and deletes by
// other spellings, makes two processes create the same names in different cases at once, and
// exits non-zero on any violation of Windows' rules; its bench mode, with tiny sizes, checks
// every lookup it times. Labels "integration" and "wine".
//
// Wine keeps one prefix (its C: drive and registry) per test build, made once under the build
// directory; a lock serialises the tests that use it, and each test stops the prefix's
// wineserver and every process of it when it ends, passed or failed, before the mount goes.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace foldfs::itest {
namespace {

const std::string kWine = FOLDFS_WINE;
const std::string kWineserver = FOLDFS_WINESERVER;
const std::string kWinbench = FOLDFS_WINBENCH_EXE;
const std::string kPrefix = FOLDFS_WINE_PREFIX;

// Z:\ is / in every Wine prefix.
std::string windows_path(const std::string& linux_path) {
  std::string w = "Z:" + linux_path;
  std::replace(w.begin(), w.end(), '/', '\\');
  return w;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Processes whose environment names our prefix (wineserver, wine64, services, winedevice...).
std::vector<pid_t> prefix_processes() {
  std::vector<pid_t> pids;
  const std::string needle = "WINEPREFIX=" + kPrefix + '\0';
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return pids;
  while (struct dirent* e = ::readdir(d)) {
    if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
    pid_t pid = std::stoi(e->d_name);
    if (pid == ::getpid()) continue;
    if (read_text(std::string("/proc/") + e->d_name + "/environ").find(needle) != std::string::npos)
      pids.push_back(pid);
  }
  ::closedir(d);
  return pids;
}

// The prefix, locked for one test: made on first use, and everything running in it stopped
// when the test ends.
class WinePrefix {
 public:
  WinePrefix() {
    ::mkdir(kPrefix.substr(0, kPrefix.rfind('/')).c_str(), 0755);
    lock_fd_ = ::open((kPrefix + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX) != 0) {
      error_ = "cannot lock " + kPrefix + ".lock";
      return;
    }
    struct stat st;
    if (::stat((kPrefix + "/.made").c_str(), &st) == 0) return;
    remove_tree(kPrefix);
    RunResult r = wine({"wineboot", "--init"}, 300s);
    RunResult w = run({"env", "WINEPREFIX=" + kPrefix, kWineserver, "-w"}, 60s);
    if (!r.ok() || !w.ok())
      error_ = "wineboot --init failed: " + r.describe();
    else
      write_file(kPrefix + "/.made", "");
  }
  ~WinePrefix() {
    run({"env", "WINEPREFIX=" + kPrefix, kWineserver, "-k"}, 20s);
    bool gone = seconds_until([] { return prefix_processes().empty(); }, 10s) >= 0;
    if (!gone) {
      for (pid_t p : prefix_processes()) ::kill(p, SIGKILL);
      ADD_FAILURE() << "Wine processes still ran 10 s after wineserver -k (killed)";
    }
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }
  WinePrefix(const WinePrefix&) = delete;
  WinePrefix& operator=(const WinePrefix&) = delete;

  const std::string& error() const { return error_; }

  // wine64 ARGS... in the prefix, headless, with extra environment entries.
  RunResult wine(const std::vector<std::string>& args, std::chrono::milliseconds timeout,
                 const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv = {"env",
                                     "-u",
                                     "DISPLAY",
                                     "WINEPREFIX=" + kPrefix,
                                     "WINEDEBUG=-all",
                                     "WINEDLLOVERRIDES=mscoree,mshtml,winemenubuilder.exe=d"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.push_back(kWine);
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, timeout);
  }

 private:
  int lock_fd_ = -1;
  std::string error_;
};

// Names of the regular files directly in `dir`.
std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& n : list_dir(dir)) {
    auto st = lstat_of(dir + "/" + n);
    if (st && S_ISREG(st->st_mode)) names.push_back(n);
  }
  return names;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// What the check mode reports, and what the folder holds afterwards.
void expect_windows_rules_hold(WinePrefix& wine, const Mount& m, const std::string& rel) {
  RunResult r = wine.wine({kWinbench, "check", windows_path(m.path(rel)), "400"}, 240s);
  EXPECT_TRUE(r.ok()) << r.describe();
  EXPECT_NE(r.out.find("OK: 0 violation(s)"), std::string::npos) << r.out;
  // Two processes raced to create 400 names, in upper and lower case: 400 files in the
  // backing directory, no two of them the same name.
  auto race = files_in(m.bpath(rel + "/Race"));
  EXPECT_EQ(race.size(), 400u) << join(race);
  std::set<std::string> keys;
  for (const auto& n : race) keys.insert(lower(n));
  EXPECT_EQ(keys.size(), race.size()) << "case duplicates in " << join(race);
  // Linux's casefold, not Windows' upper-casing: as on ext4 with +F.
  EXPECT_NE(r.out.find("differs sharp s and SS: \"Straße.txt\" finds"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("differs composed and decomposed e-acute: \"Café.txt\" finds"),
            std::string::npos)
      << r.out;
  // Unicode 12.1's tables: a pair added in Unicode 14 stays two names.
  EXPECT_NE(r.out.find("Glagolitic caudate chri (Unicode 14): \"Ⱟ.txt\" does not find"),
            std::string::npos)
      << r.out;
}

TEST(Wine, WindowsNameRulesHoldOnACasefoldAllMount) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=all"));
  WinePrefix wine;
  ASSERT_EQ(wine.error(), "");
  ASSERT_EQ(errno_of(::mkdir(m.path("check").c_str(), 0755)), Errno(0));
  expect_windows_rules_hold(wine, m, "check");
}

TEST(Wine, WindowsNameRulesHoldInADirectoryWithTheCasefoldFlag) {
  Mount m;
  ASSERT_TRUE(m.start());  // casefold=flag
  WinePrefix wine;
  ASSERT_EQ(wine.error(), "");
  ASSERT_EQ(errno_of(::mkdir(m.path("win").c_str(), 0755)), Errno(0));
  ASSERT_TRUE(chattr("+F", m.path("win")).ok());
  expect_windows_rules_hold(wine, m, "win");
}

// Files made on Linux, found by a Windows program under every spelling: winbench's rows, with
// tiny sizes, check each lookup, open, create and listing they time.
TEST(Wine, AWindowsProgramFindsLinuxFilesByAnySpelling) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=all"));
  const std::string deep = "Data/Textures/Level_One/Sub_Two/Part_Three/Group_Four";
  ASSERT_TRUE(run({"mkdir", "-p", m.bpath("Files"), m.bpath("ShaderCache"), m.bpath(deep)}).ok());
  for (int i = 0; i < 40; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "Files/Texture_%05d_Diffuse.dds", i);
    ASSERT_EQ(write_file(m.bpath(name), std::string(4096, 'x')), Errno(0));
    std::snprintf(name, sizeof name, "Files/TX%06d.DDS", i);
    ASSERT_EQ(write_file(m.bpath(name), std::string(4096, 'y')), Errno(0));
  }
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(write_file(m.bpath(deep + "/Item_00" + std::to_string(i) + ".dds"), "z"), Errno(0));
  WinePrefix wine;
  ASSERT_EQ(wine.error(), "");
  RunResult r = wine.wine({kWinbench, "bench", windows_path(m.path("")), "0.05"}, 240s,
                          {"WINBENCH_NLONG=40", "WINBENCH_NSHORT=40", "WINBENCH_NDEEP=5"});
  EXPECT_TRUE(r.ok()) << r.describe();
  for (const char* row : {"attr_exact", "attr_other", "attr_missing_long", "attr_missing_83",
                          "create_long", "create_83", "open_deep", "list", "startup"})
    EXPECT_NE(r.out.find(std::string("row ") + row + " "), std::string::npos) << row << r.out;
  // Nothing left behind: the rows delete what they create.
  EXPECT_EQ(files_in(m.bpath("Files")).size(), 80u);
  EXPECT_EQ(list_dir(m.bpath("ShaderCache")), std::vector<std::string>{});
}

// A game and two mods through a writable union (issue 16, docs/union.md), as a mod manager sets
// it up: Wine's own cmd.exe reads the files the mods override, by spellings of its own, lists each
// name once, then writes like a game does — saves in a new folder, a patched texture, a deleted
// mesh — and everything it wrote lands in the overwrite folder, the game and the mods untouched.
TEST(Wine, AGameAndTwoModsThroughAUnionReadOverridesAndWriteSaves) {
  Mount m;
  ASSERT_TRUE(run({"mkdir", "-p", m.bpath("game/Data/Textures"), m.bpath("game/Data/Meshes"),
                   m.bpath("mod1/data/textures"), m.bpath("mod2/DATA/meshes"), m.bpath("overwrite"),
                   m.bpath("work")})
                  .ok());
  ASSERT_EQ(write_file(m.bpath("game/Data/Textures/sky.DDS"), "game sky"), Errno(0));
  ASSERT_EQ(write_file(m.bpath("game/Data/Textures/cloud.dds"), "game cloud"), Errno(0));
  ASSERT_EQ(write_file(m.bpath("game/Data/Meshes/rock.nif"), "game rock"), Errno(0));
  ASSERT_EQ(write_file(m.bpath("mod1/data/textures/Sky.dds"), "mod1 sky"), Errno(0));
  ASSERT_EQ(write_file(m.bpath("mod2/DATA/meshes/Rock.NIF"), "mod2 rock"), Errno(0));
  ASSERT_TRUE(m.start("lowerdir=" + m.bpath("mod2") + ":" + m.bpath("mod1") + ":" +
                      m.bpath("game") + ",upperdir=" + m.bpath("overwrite") +
                      ",workdir=" + m.bpath("work")));
  WinePrefix wine;
  ASSERT_EQ(wine.error(), "");
  const std::string root = windows_path(m.mnt());
  const struct {
    const char* path;
    const char* content;
  } reads[] = {{"\\DATA\\TEXTURES\\SKY.DDS", "mod1 sky"},
               {"\\data\\meshes\\rock.nif", "mod2 rock"},
               {"\\Data\\Textures\\Cloud.DDS", "game cloud"}};
  for (const auto& r : reads) {
    RunResult type = wine.wine({"cmd", "/c", "type", root + r.path}, 120s);
    EXPECT_TRUE(type.ok()) << type.describe();
    EXPECT_NE(type.out.find(r.content), std::string::npos) << r.path << ": " << type.out;
  }
  RunResult dir = wine.wine({"cmd", "/c", "dir", "/b", root + "\\data\\TEXTURES"}, 120s);
  EXPECT_TRUE(dir.ok()) << dir.describe();
  std::vector<std::string> names;
  std::string line;
  for (char c : dir.out) {
    if (c == '\n') {
      if (!line.empty()) names.push_back(line);
      line.clear();
    } else if (c != '\r') {
      line.push_back(c);
    }
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"Sky.dds", "cloud.dds"})) << dir.out;

  // The game writes: its saves, a texture it patches, a mesh it deletes; in spellings of its own.
  RunResult w =
      wine.wine({"cmd", "/c",
                 "mkdir " + root + "\\Saves && echo slot one> " + root +
                     "\\SAVES\\Slot1.sav && echo patched> " + root +
                     "\\data\\TEXTURES\\SKY.DDS && del " + root + "\\DATA\\Meshes\\ROCK.nif"},
                120s);
  EXPECT_TRUE(w.ok()) << w.describe();
  RunResult back = wine.wine({"cmd", "/c", "type", root + "\\saves\\SLOT1.SAV"}, 120s);
  EXPECT_NE(back.out.find("slot one"), std::string::npos) << back.describe();
  RunResult sky = wine.wine({"cmd", "/c", "type", root + "\\Data\\Textures\\sky.dds"}, 120s);
  EXPECT_NE(sky.out.find("patched"), std::string::npos) << sky.describe();
  // Everything written is in the overwrite folder; the game and the mods are as they were.
  EXPECT_NE(read_file(m.bpath("overwrite/Saves/Slot1.sav")).value_or("").find("slot one"),
            std::string::npos);
  EXPECT_NE(read_file(m.bpath("overwrite/DATA/textures/Sky.dds")).value_or("").find("patched"),
            std::string::npos);
  EXPECT_EQ(read_file(m.bpath("mod1/data/textures/Sky.dds")), "mod1 sky");
  EXPECT_EQ(read_file(m.bpath("mod2/DATA/meshes/Rock.NIF")), "mod2 rock");
  EXPECT_EQ(read_file(m.bpath("game/Data/Meshes/rock.nif")), "game rock");
  // The deleted mesh is gone in every tree's spelling (the game's own too).
  struct stat st;
  EXPECT_EQ(errno_of(::stat((m.mnt() + "/Data/Meshes/rock.nif").c_str(), &st)), Errno(ENOENT));
  EXPECT_EQ(errno_of(::stat((m.mnt() + "/DATA/meshes/Rock.NIF").c_str(), &st)), Errno(ENOENT));
}

}  // namespace
}  // namespace foldfs::itest
