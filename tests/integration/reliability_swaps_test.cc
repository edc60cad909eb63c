// Issue 17: names swapped under the root daemon by an unprivileged user who owns a backing
// directory. The attacker works in two places at once: directly in the backing directory it owns,
// where one thread exchanges a name ("f") with a decoy over and over (renameat2 RENAME_EXCHANGE),
// and through the mount (allow_other), where another thread makes or changes "f". A daemon that
// reaches a node it made by name a second time (to chown it, to chmod it, to open it again) acts
// on the decoy instead, as root:
//   - a symlink to a root-owned file or directory outside the backing tree (chmod follows it);
//   - a hard link to a root-owned file outside the tree (root made it earlier: protected_hardlinks
//     stops the attacker from making one; chown and open-with-O_TRUNC act on it);
//   - a root-owned directory in the attacker's directory (chown gives it away).
// After every case the canaries must be exactly as they were: owner, mode, size and content
// hash, and for those outside the tree the change time too (the decoys inside the tree are
// renamed by the attacker, which legitimately moves their change time).
//
// Rounds per case: FOLDFS_SWAP_ROUNDS (default 1,500), bounded by FOLDFS_SWAP_SECONDS per case
// (default 4). Each round is one operation through the mount while the name is being swapped;
// the figures give the rounds run and how often the swapper won the window (the name held the
// decoy when the round ended). The exploit of issue 17 won on the first round against 9c0fe71.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "reliability_util.h"

namespace foldfs::itest {
namespace {

enum class Decoy { kSymlinkToFile, kSymlinkToDir, kHardLink, kRootDirectory };

const char* decoy_name(Decoy d) {
  switch (d) {
    case Decoy::kSymlinkToFile:
      return "symlink-to-outside-file";
    case Decoy::kSymlinkToDir:
      return "symlink-to-outside-dir";
    case Decoy::kHardLink:
      return "hard-link-to-outside-file";
    case Decoy::kRootDirectory:
      return "root-owned-directory";
  }
  return "?";
}

// What "f" must be before the operation runs.
enum class Before { kAbsent, kAttackerFile, kAttackerPrivilegedFile };

struct Operation {
  const char* name;
  Before before;
  // Runs through the mount as the attacker, on `dir` (the attacker's directory, through the
  // mount) and the spelling `f` of the swapped name. Returns whether the operation succeeded,
  // for the figures only: the decoy may legitimately make it fail.
  std::function<bool(int dir, const char* f)> run;
  // Mount options beyond allow_other and the casefold mode.
  const char* extra_options = "";
  // The kernel is to hold a negative entry for the name when the attacker makes the file
  // directly (so that O_CREAT reaches the daemon as CREATE of a name that exists).
  bool negative_entry_first = false;
};

void close_if(int fd) {
  if (fd >= 0) ::close(fd);
}

bool made(int fd) {
  close_if(fd);
  return fd >= 0;
}

std::vector<Operation> operations() {
  return {
      {"create O_EXCL 06777", Before::kAbsent,
       [](int dir, const char* f) {
         return made(::openat(dir, f, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 06777));
       }},
      {"create 04755", Before::kAbsent,
       [](int dir, const char* f) {
         return made(::openat(dir, f, O_CREAT | O_WRONLY | O_CLOEXEC, 04755));
       }},
      // The kernel holds a negative entry for the name (outside=revalidate keeps it), the
      // attacker makes the file directly, and O_CREAT|O_TRUNC through the mount reaches the
      // daemon as CREATE of a name that exists: the daemon must open it with the caller's rights
      // and must never open (and truncate, and chmod) whatever the name holds a moment later.
      {"create over an outside file O_TRUNC", Before::kAttackerPrivilegedFile,
       [](int dir, const char* f) {
         return made(::openat(dir, f, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0666));
       },
       "outside=revalidate,negative_timeout=60,entry_timeout=0,attr_timeout=0", true},
      {"mknod fifo 06777", Before::kAbsent,
       [](int dir, const char* f) { return ::mknodat(dir, f, S_IFIFO | 06777, 0) == 0; }},
      {"mknod file 06777", Before::kAbsent,
       [](int dir, const char* f) { return ::mknodat(dir, f, S_IFREG | 06777, 0) == 0; }},
      {"mkdir 07777", Before::kAbsent,
       [](int dir, const char* f) { return ::mkdirat(dir, f, 07777) == 0; }},
      {"symlink", Before::kAbsent,
       [](int dir, const char* f) { return ::symlinkat("target", dir, f) == 0; }},
      {"link", Before::kAbsent,
       [](int dir, const char* f) { return ::linkat(dir, "src", dir, f, 0) == 0; }},
      {"rename onto", Before::kAttackerFile,
       [](int dir, const char* f) {
         // A fresh source each round: a file made through the mount, renamed onto the name.
         close_if(::openat(dir, "src2", O_CREAT | O_WRONLY | O_CLOEXEC, 06755));
         return ::renameat(dir, "src2", dir, f) == 0;
       }},
      {"rename away", Before::kAttackerFile,
       [](int dir, const char* f) {
         if (::renameat(dir, f, dir, "moved") != 0) return false;
         return ::renameat(dir, "moved", dir, f) == 0;
       }},
      {"chmod 06777", Before::kAttackerFile,
       [](int dir, const char* f) { return ::fchmodat(dir, f, 06777, 0) == 0; }},
      {"chown to self", Before::kAttackerFile,
       [](int dir, const char* f) { return ::fchownat(dir, f, ::getuid(), ::getgid(), 0) == 0; }},
      {"truncate", Before::kAttackerFile,
       [](int dir, const char* f) {
         const int fd = ::openat(dir, f, O_WRONLY | O_CLOEXEC);
         const bool ok = fd >= 0 && ::ftruncate(fd, 0) == 0;
         close_if(fd);
         return ok;
       }},
      {"utimes", Before::kAttackerFile,
       [](int dir, const char* f) {
         const struct timespec t[2] = {{1000, 0}, {2000, 0}};
         return ::utimensat(dir, f, t, 0) == 0;
       }},
      {"xattrs", Before::kAttackerFile,
       [](int dir, const char* f) {
         const std::string p = "/proc/self/fd/" + std::to_string(dir) + "/" + f;
         return ::setxattr(p.c_str(), "user.swap", "1", 1, 0) == 0 &&
                ::removexattr(p.c_str(), "user.swap") == 0;
       }},
      {"inode flags", Before::kAttackerFile,
       [](int dir, const char* f) {
         const int fd = ::openat(dir, f, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
         int flags = 0;
         bool ok = false;
         if (fd >= 0 && ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
           flags ^= FS_NODUMP_FL;
           ok = ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
         }
         close_if(fd);
         return ok;
       }},
      {"unlink", Before::kAttackerFile,
       [](int dir, const char* f) { return ::unlinkat(dir, f, 0) == 0; }},
  };
}

// A root-owned thing that must not change: owner, mode, size, content (files), and the change
// time where nothing legitimate touches it.
struct Canary {
  Canary(std::string p, bool ctime = true) : path(std::move(p)), check_ctime(ctime) {}
  std::string path;
  bool check_ctime;
  struct stat st {};
  std::string content;

  void take() {
    st = must_lstat(path);
    content = S_ISREG(st.st_mode) ? read_file(path).value_or("<unreadable>") : "";
  }
  ::testing::AssertionResult Unchanged() const {
    const auto now = lstat_of(path);
    if (!now) return ::testing::AssertionFailure() << path << " is gone";
    std::ostringstream diff;
    if (now->st_uid != st.st_uid || now->st_gid != st.st_gid)
      diff << " owner " << st.st_uid << ":" << st.st_gid << " -> " << now->st_uid << ":"
           << now->st_gid;
    if (now->st_mode != st.st_mode)
      diff << " mode 0" << std::oct << st.st_mode << " -> 0" << now->st_mode << std::dec;
    if (now->st_size != st.st_size) diff << " size " << st.st_size << " -> " << now->st_size;
    if (S_ISREG(st.st_mode) && read_file(path).value_or("<unreadable>") != content)
      diff << " content changed";
    if (check_ctime &&
        (now->st_ctim.tv_sec != st.st_ctim.tv_sec || now->st_ctim.tv_nsec != st.st_ctim.tv_nsec))
      diff << " ctime changed";
    if (diff.str().empty()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << path << ":" << diff.str();
  }
};

struct Outcome {
  long rounds = 0;
  long succeeded = 0;  // rounds whose operation succeeded
  long decoy_won = 0;  // rounds that ended with the decoy under the name
  std::string error;
};

// Inside the attacker's process: one thread swaps, this one operates and tidies up between
// rounds (with the swapper paused, so that the tidy-up itself is never raced).
class Attack {
 public:
  Attack(const std::string& home, const std::string& mnt_home, const Operation& op, Decoy decoy,
         const std::string& decoy_target, bool other_spelling)
      : op_(op), decoy_(decoy), target_(decoy_target), other_spelling_(other_spelling) {
    home_ = ::open(home.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    mnt_ = ::open(mnt_home.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  }
  ~Attack() {
    close_if(home_);
    close_if(mnt_);
  }

  Outcome run(long max_rounds, std::chrono::seconds max_time) {
    Outcome out;
    if (home_ < 0 || mnt_ < 0) {
      out.error = "cannot open the directories";
      return out;
    }
    if (decoy_is_symlink() && ::symlinkat(target_.c_str(), home_, decoy()) != 0) {
      out.error = std::string("symlink: ") + std::strerror(errno);
      return out;
    }
    struct stat st;
    if (::fstatat(home_, decoy(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      out.error = std::string("no decoy: ") + std::strerror(errno);
      return out;
    }
    decoy_ino_ = st.st_ino;
    if (int fd = ::openat(home_, "src", O_CREAT | O_WRONLY | O_CLOEXEC, 0644); fd >= 0) {
      ::close(fd);
    }
    std::thread swapper([this] { swap_loop(); });
    // tidy() fails only when no decoy is left (the pool of hard links ran out): the case ends.
    const auto deadline = std::chrono::steady_clock::now() + max_time;
    while (out.rounds < max_rounds && std::chrono::steady_clock::now() < deadline) {
      const char* name = spelling(out.rounds);
      if (!prepare(name, &out.error)) break;
      paused_ = false;
      if (op_.run(mnt_, name)) out.succeeded++;
      pause();
      if (decoy_under_name()) out.decoy_won++;
      out.rounds++;
      if (!tidy()) break;
    }
    stop_ = true;
    paused_ = false;
    swapper.join();
    return out;
  }

 private:
  bool decoy_is_symlink() const {
    return decoy_ == Decoy::kSymlinkToFile || decoy_ == Decoy::kSymlinkToDir;
  }
  const char* decoy() const {
    switch (decoy_) {
      case Decoy::kHardLink:
        return "h";
      case Decoy::kRootDirectory:
        return "rootdir";
      default:
        return "s";
    }
  }
  // The name through the mount: "f", or in a casefolded directory every other round its other
  // spelling (for operations on an existing "f": a new node keeps the spelling it is made with).
  const char* spelling(long round) const {
    return other_spelling_ && op_.before != Before::kAbsent && (round & 1) ? "F" : "f";
  }

  void swap_loop() {
    while (!stop_) {
      if (paused_) {
        parked_ = true;
        while (paused_ && !stop_) std::this_thread::yield();
        parked_ = false;
        continue;
      }
      ::renameat2(home_, "f", home_, decoy(), RENAME_EXCHANGE);
    }
  }
  void pause() {
    paused_ = true;
    while (!parked_ && !stop_) std::this_thread::yield();
  }

  bool decoy_under_name() const {
    struct stat st;
    return ::fstatat(home_, "f", &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == decoy_ino_;
  }

  // Where the decoy is now: its own name, or a name an operation through the mount moved it to
  // (the attacker may legitimately rename or remove what it swapped into its own directory).
  const char* find_decoy() const {
    for (const char* n : {decoy(), "f", "F", "moved", "src2"}) {
      struct stat st;
      if (::fstatat(home_, n, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == decoy_ino_) return n;
    }
    return nullptr;
  }

  // Puts the decoy back under its own name (from the pool, or as a new symlink, when an
  // operation removed it) and removes whatever the operation made. False when no decoy is left.
  bool tidy() {
    const char* at = find_decoy();
    if (at && std::strcmp(at, decoy()) != 0 &&
        ::renameat2(home_, at, home_, decoy(), RENAME_EXCHANGE) != 0 &&
        ::renameat2(home_, at, home_, decoy(), RENAME_NOREPLACE) != 0) {
      return false;
    }
    // Through the mount first, so that the kernel knows at once; then directly, for what the
    // kernel did not know about.
    for (int fd : {mnt_, home_}) {
      for (const char* n : {"f", "F", "moved", "src2"}) {
        if (::unlinkat(fd, n, 0) != 0 && errno == EISDIR) ::unlinkat(fd, n, AT_REMOVEDIR);
      }
    }
    if (!at) return replace_decoy();
    return true;
  }

  // A decoy removed by an operation through the mount comes back: a symlink is made again, a
  // hard link is taken from the pool root made beforehand (the attacker cannot make one).
  bool replace_decoy() {
    ::unlinkat(home_, decoy(), 0);  // whatever an exchange left under the decoy's name
    if (decoy_is_symlink()) {
      if (::symlinkat(target_.c_str(), home_, decoy()) != 0) return false;
    } else if (decoy_ == Decoy::kHardLink) {
      const std::string spare = "pool/" + std::to_string(pool_used_++);
      if (::renameat(home_, spare.c_str(), home_, decoy()) != 0) return false;
    } else {
      return false;
    }
    struct stat st;
    if (::fstatat(home_, decoy(), &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
    decoy_ino_ = st.st_ino;
    return true;
  }

  // Waits (bounded) until the mount shows `name` present or absent: the attacker changed the
  // backing directory directly, which the mount shows once the daemon's watcher has seen it.
  void await_through_mount(const char* name, bool present) const {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    struct stat st;
    while ((::fstatat(mnt_, name, &st, AT_SYMLINK_NOFOLLOW) == 0) != present &&
           std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  bool prepare(const char* name, std::string* error) {
    if (op_.before == Before::kAbsent || op_.negative_entry_first) {
      await_through_mount(name, false);
      if (op_.before == Before::kAbsent) return true;
    }
    const mode_t mode = op_.before == Before::kAttackerPrivilegedFile ? 06777 : 0644;
    // Directly in the backing directory when the kernel is to go on believing the name absent;
    // else through the mount, which the kernel then knows at once.
    const int at = op_.negative_entry_first ? home_ : mnt_;
    const int fd = ::openat(at, "f", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
    if (fd < 0) {
      *error = std::string("cannot make f: ") + std::strerror(errno);
      return false;
    }
    (void)!::write(fd, "attacker", 8);
    ::fchmod(fd, mode);
    ::close(fd);
    return true;
  }

  const Operation& op_;
  const Decoy decoy_;
  const std::string target_;
  const bool other_spelling_;
  int home_ = -1;
  int mnt_ = -1;
  ino_t decoy_ino_ = 0;
  long pool_used_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> paused_{true};
  std::atomic<bool> parked_{false};
};

constexpr int kHardLinkPool = 400;

struct SwapCase {
  bool casefold_all;
  size_t operation;  // index into operations()
};

class NameSwaps : public ::testing::TestWithParam<SwapCase> {};

TEST_P(NameSwaps, TheDaemonNeverActsOnWhatTheAttackerSwapsIn) {
  const bool casefold = GetParam().casefold_all;
  const Operation op = operations()[GetParam().operation];
  const long max_rounds = env_long("FOLDFS_SWAP_ROUNDS", 1500);
  const std::chrono::seconds max_time(env_long("FOLDFS_SWAP_SECONDS", 4));
  UnusedIds ids;
  const Caller attacker{"attacker", ids.uid(), ids.gid(), {}};

  {
    for (Decoy decoy :
         {Decoy::kSymlinkToFile, Decoy::kSymlinkToDir, Decoy::kHardLink, Decoy::kRootDirectory}) {
      SCOPED_TRACE(std::string(op.name) + " / " + decoy_name(decoy));
      Mount m;
      // Canaries: root-owned, outside the backing tree, one of them also hard-linked (by root)
      // into the attacker's directory; and a root-owned directory inside it.
      const std::string canaries = m.tpath("canaries");
      ASSERT_EQ(::mkdir(canaries.c_str(), 0755), 0);
      ASSERT_EQ(write_file(canaries + "/file", "root file\n", 0600), Errno(0));
      ASSERT_EQ(::mkdir((canaries + "/dir").c_str(), 0700), 0);
      ASSERT_EQ(write_file(canaries + "/dir/inner", "root inner\n", 0600), Errno(0));
      ASSERT_EQ(write_file(canaries + "/linked", "root linked\n", 0600), Errno(0));
      const std::string home = m.bpath("home");
      ASSERT_EQ(::mkdir(home.c_str(), 0755), 0);
      ASSERT_EQ(::link((canaries + "/linked").c_str(), (home + "/h").c_str()), 0);
      ASSERT_EQ(::mkdir((home + "/rootdir").c_str(), 0700), 0);
      ASSERT_EQ(write_file(home + "/rootdir/inner", "root dir inner\n", 0600), Errno(0));
      // Spare hard links, for when an operation through the mount removes the decoy.
      ASSERT_EQ(::mkdir((home + "/pool").c_str(), 0755), 0);
      for (int i = 0; decoy == Decoy::kHardLink && i < kHardLinkPool; ++i) {
        const std::string spare = home + "/pool/" + std::to_string(i);
        ASSERT_EQ(::link((canaries + "/linked").c_str(), spare.c_str()), 0);
      }
      ASSERT_EQ(::chown((home + "/pool").c_str(), attacker.uid, attacker.gid), 0);
      ASSERT_EQ(::chown(home.c_str(), attacker.uid, attacker.gid), 0);
      std::string opts = std::string(casefold ? "casefold=all" : "casefold=flag") + ",allow_other";
      if (*op.extra_options) opts += std::string(",") + op.extra_options;
      ASSERT_TRUE(m.start(opts));

      // The root-owned directory in the attacker's directory is watched through a descriptor:
      // the attacker may legitimately rename it.
      const int rootdir = ::open((home + "/rootdir").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      ASSERT_GE(rootdir, 0);
      const std::string rootdir_path = "/proc/self/fd/" + std::to_string(rootdir);
      std::vector<Canary> watched = {
          {canaries + "/file"},         {canaries + "/dir"},
          {canaries + "/dir/inner"},    {canaries + "/linked", /*check_ctime=*/false},
          {rootdir_path + "/.", false}, {rootdir_path + "/inner"}};
      for (auto& c : watched) c.take();

      const std::string target =
          decoy == Decoy::kSymlinkToDir ? canaries + "/dir" : canaries + "/file";
      const std::string report = run_as_text(
          attacker,
          [&] {
            Attack attack(home, m.path("home"), op, decoy, target, casefold);
            const Outcome o = attack.run(max_rounds, max_time);
            return std::to_string(o.rounds) + " " + std::to_string(o.succeeded) + " " +
                   std::to_string(o.decoy_won) + " " + o.error;
          },
          0);
      long rounds = 0, succeeded = 0, won = 0;
      std::istringstream in(report);
      in >> rounds >> succeeded >> won;
      std::string error;
      std::getline(in, error);
      EXPECT_TRUE(error.find_first_not_of(' ') == std::string::npos) << error;
      EXPECT_GT(rounds, 0) << report;
      for (const auto& c : watched) EXPECT_TRUE(c.Unchanged());
      report_figure(std::string("swap race ") + (casefold ? "casefold=all" : "casefold=flag") +
                        " / " + op.name + " / " + decoy_name(decoy),
                    std::to_string(rounds) + " rounds, " + std::to_string(succeeded) +
                        " succeeded, decoy under the name after " + std::to_string(won));
      ::close(rootdir);
      // The daemon still serves.
      EXPECT_TRUE(IsDirectory(m.path("home")));
    }
  }
}

std::vector<SwapCase> all_cases() {
  std::vector<SwapCase> cases;
  for (bool casefold : {true, false})
    for (size_t i = 0; i < operations().size(); ++i) cases.push_back({casefold, i});
  return cases;
}

std::string case_name(const ::testing::TestParamInfo<SwapCase>& info) {
  std::string name = info.param.casefold_all ? "CasefoldAll_" : "PlainDirectory_";
  for (const char* c = operations()[info.param.operation].name; *c; ++c)
    name += std::isalnum(static_cast<unsigned char>(*c)) ? *c : '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Operations, NameSwaps, ::testing::ValuesIn(all_cases()), case_name);

}  // namespace
}  // namespace foldfs::itest
