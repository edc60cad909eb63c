// Reliability §4: crashes and restarts of the daemon.
//
// - kill -9 of the daemon in the middle of a write- and rename-heavy workload, then the dead
//   mount is detached (umount -l / fusermount3 -uz) and foldfs mounted again, FOLDFS_CRASH_ROUNDS
//   times (default 8) over the same tree. The workload keeps a journal (outside the mount) of
//   what returned: fsync'ed files and their content hash, writes that returned, renames
//   (intent before, completion after), RENAME_EXCHANGEs, directories made in casefolded
//   directories. After each restart: every file whose write returned has its content (the
//   daemon's death loses nothing the backing filesystem was given; fsync'ed or not — a power cut
//   is §3's test); no rename is half applied; exchanges are both-or-neither; new directories of
//   casefolded directories are casefolded; no two equivalent names exist; handles taken through
//   the mount before the crash open the same directories and files afterwards.
// - Unmounting with open files: umount/fusermount3 -u fail with EBUSY, umount -l detaches at
//   once, the open files keep working, and the daemon exits when they are closed.
// - A daemon that dies while requests are in flight: the waiting processes get an error
//   (ENOTCONN/ECONNABORTED/EIO, or ECANCELED over the io_uring transport) promptly, never hang.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "reliability_util.h"

namespace foldfs::itest {
namespace {

constexpr const char* kOpts = "casefold=flag,entry_timeout=30,negative_timeout=30";

std::string content_for(int worker, int round, int i, int version) {
  std::string s = "w" + std::to_string(worker) + " r" + std::to_string(round) + " i" +
                  std::to_string(i) + " v" + std::to_string(version) + " ";
  // Sizes from a few bytes to ~200 KiB: several FUSE write requests for the big ones.
  const size_t size = static_cast<size_t>((i * 7919 + version * 104729) % 200000) + s.size();
  while (s.size() < size) s += static_cast<char>('a' + (s.size() * 31 + i) % 26);
  return s;
}

std::string HashOf(const std::string& path) {
  auto c = read_file(path);
  return c ? content_hash(*c) : "<" + errno_text(errno) + ">";
}

// Another spelling of the last component (top-level names are in the case-sensitive root).
std::string other(const std::string& rel) {
  if (rel.find('/') == std::string::npos) return rel;
  std::string o = rel;
  for (size_t i = rel.rfind('/') + 1; i < o.size(); ++i) {
    char& c = o[i];
    if (c >= 'a' && c <= 'z')
      c = static_cast<char>(c - 'a' + 'A');
    else if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  }
  return o;
}

// ---- the workload (runs in a child process; stops at the first error) ----------------------

class Workload {
 public:
  Workload(const Mount& m, int worker, int round, int journal_fd, unsigned seed)
      : m_(m), w_(worker), r_(round), fd_(journal_fd), rng_(seed) {}

  int run() {
    for (int i = 0;; ++i) {
      if (!step(i)) return 0;
    }
  }

 private:
  void log(const std::string& line) {
    const std::string l = line + "\n";
    (void)!::write(fd_, l.data(), l.size());  // O_APPEND: one record per write
  }
  std::string P(const std::string& rel) const { return m_.path(rel); }
  std::string name(const char* dir, const char* kind, int i) const {
    return std::string(dir) + "/W" + std::to_string(w_) + "R" + std::to_string(r_) + kind +
           std::to_string(i);
  }
  bool write_synced(const std::string& rel, const std::string& content, bool sync) {
    const int fd = ::open(P(rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
    if (ok && sync) ok = ::fsync(fd) == 0;
    ok = ::close(fd) == 0 && ok;
    return ok;
  }
  bool fsync_dir(const std::string& rel) {
    const int fd = ::open(P(rel).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
  }

  bool step(int i) {
    const char* dirs[] = {"cf", "cf2", "plain"};
    const char* dir = dirs[rng_() % 3];
    switch (rng_() % 6) {
      case 0:
      case 1: {  // a new file, fsync'ed with its directory
        const std::string n = name(dir, "F", i), c = content_for(w_, r_, i, 0);
        if (!write_synced(n, c, true) || !fsync_dir(dir)) return false;
        log("F " + n + " " + content_hash(c));
        files_.push_back(n);
        return true;
      }
      case 2: {  // a file written, not fsync'ed
        const std::string n = name(dir, "U", i), c = content_for(w_, r_, i, 1);
        if (!write_synced(n, c, false)) return false;
        log("F " + n + " " + content_hash(c));
        files_.push_back(n);
        return true;
      }
      case 3: {  // atomic replace: write a temp, fsync, rename over a file (another spelling)
        if (files_.empty()) return true;
        const std::string target = files_[rng_() % files_.size()];
        const std::string tdir = target.substr(0, target.find('/'));
        const std::string tmp = name(tdir.c_str(), "T", i), c = content_for(w_, r_, i, 2);
        if (!write_synced(tmp, c, true)) return false;
        log("F " + tmp + " " + content_hash(c));
        const std::string to = tdir == "plain" ? target : other(target);
        log("R " + tmp + " " + target);
        if (::rename(P(tmp).c_str(), P(to).c_str()) != 0) return false;
        log("r " + tmp + " " + target);
        return true;
      }
      case 4: {  // move a file to another directory
        if (files_.empty()) return true;
        const size_t k = rng_() % files_.size();
        const std::string from = files_[k];
        const char* to_dir = dirs[rng_() % 3];
        const std::string to = name(to_dir, "M", i);
        log("R " + from + " " + to);
        const std::string spelled = to.rfind("plain", 0) == 0 ? to : other(to);
        if (::rename(P(from).c_str(), P(spelled).c_str()) != 0) return false;
        log("r " + from + " " + to);
        files_[k] = to;
        return true;
      }
      default: {
        if (rng_() % 2 == 0 && files_.size() >= 2) {  // exchange two files
          const size_t a = rng_() % files_.size(), b = rng_() % files_.size();
          if (a == b) return true;
          log("X " + files_[a] + " " + files_[b]);
          if (::renameat2(AT_FDCWD, P(files_[a]).c_str(), AT_FDCWD, P(files_[b]).c_str(),
                          RENAME_EXCHANGE) != 0)
            return false;
          log("x " + files_[a] + " " + files_[b]);
          return true;
        }
        // A directory in a casefolded directory, then a file in it.
        const char* cdir = (rng_() & 1) ? "cf" : "cf2";
        const std::string d = name(cdir, "D", i);
        if (::mkdir(P(d).c_str(), 0755) != 0) return false;
        log("D " + d);
        return true;
      }
    }
  }

  const Mount& m_;
  int w_, r_, fd_;
  std::mt19937 rng_;
  std::vector<std::string> files_;
};

// ---- checking the tree against the journal ---------------------------------------------------

struct Verdict {
  long files = 0, renames = 0, renames_in_flight = 0, exchanges = 0, dirs = 0;
  std::vector<std::string> problems;
};

// Replays the journal: `state` maps each path to the set of hashes it may hold (empty set: must
// not exist), in-flight operations allowing either outcome.
Verdict check_journal(const Mount& m, const std::vector<std::string>& journal,
                      std::map<std::string, std::string>* files_out,
                      std::set<std::string>* dirs_out) {
  Verdict v;
  std::map<std::string, std::string>& files = *files_out;  // path -> hash (settled)
  struct Pending {
    char kind;
    std::string a, b;
  };
  std::map<std::string, Pending> pending;  // by "kind a b"
  for (const auto& line : journal) {
    std::istringstream in(line);
    std::string k, a, b;
    in >> k >> a >> b;
    if (k == "F") {
      files[a] = b;
      ++v.files;
    } else if (k == "D") {
      dirs_out->insert(a);
      ++v.dirs;
    } else if (k == "R" || k == "X") {
      pending[k + " " + a + " " + b] = Pending{k[0], a, b};
    } else if (k == "r") {
      pending.erase("R " + a + " " + b);
      files[b] = files[a];
      files.erase(a);
      ++v.renames;
    } else if (k == "x") {
      pending.erase("X " + a + " " + b);
      std::swap(files[a], files[b]);
      ++v.exchanges;
    }
  }
  // Settle in-flight operations by looking at the tree (at most one per worker).
  for (const auto& [key, p] : pending) {
    if (p.kind == 'R') {
      ++v.renames_in_flight;
      const bool src = lstat_of(m.path(p.a)).has_value();
      const bool dst_was = files.count(p.b) > 0;
      if (src) {
        // Not applied: both names as before.
        if (!dst_was && lstat_of(m.path(p.b)))
          v.problems.push_back("rename " + p.a + " -> " + p.b + " half applied: both exist");
      } else {
        files[p.b] = files[p.a];
        files.erase(p.a);
      }
    } else {
      // An exchange: either order, but both names exist and hold the two contents.
      const std::string ha = HashOf(m.path(p.a)), hb = HashOf(m.path(p.b));
      if (ha == files[p.b] && hb == files[p.a]) std::swap(files[p.a], files[p.b]);
    }
  }
  for (const auto& [path, hash] : files) {
    const std::string got = HashOf(m.path(path));
    if (got != hash) v.problems.push_back(path + ": expected content " + hash + ", found " + got);
    if (path.rfind("plain/", 0) != 0) {
      const std::string spelled = HashOf(m.path(other(path)));
      if (spelled != hash)
        v.problems.push_back(other(path) + " (another spelling) gives " + spelled);
    }
  }
  for (const auto& d : *dirs_out) {
    if (!IsDirectory(m.path(other(d)))) {
      v.problems.push_back(d + ": directory is gone");
      continue;
    }
    if ((get_inode_flags(m.path(d)).flags & kCasefoldFl) == 0)
      v.problems.push_back(d + ": made in a casefolded directory but not casefolded");
  }
  return v;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream f(path);
  std::string l;
  while (std::getline(f, l))
    if (!l.empty()) lines.push_back(l);
  return lines;
}

// Kills and reaps the workers still running when a test ends early.
struct Children {
  std::vector<pid_t> pids;
  ~Children() {
    for (pid_t p : pids) {
      if (::waitpid(p, nullptr, WNOHANG) == 0) {
        ::kill(p, SIGKILL);
        ::waitpid(p, nullptr, 0);
      }
    }
  }
};

TEST(Crash, KillDuringWritesAndRenamesLosesNothingAndHalfAppliesNothing) {
  const long rounds = env_long("FOLDFS_CRASH_ROUNDS", 8);
  const unsigned seed = static_cast<unsigned>(env_long("FOLDFS_CRASH_SEED", 20240611));
  std::printf("crash: seed %u, %ld rounds (FOLDFS_CRASH_SEED, FOLDFS_CRASH_ROUNDS)\n", seed,
              rounds);
  std::mt19937 rng(seed);
  Mount m;
  ASSERT_TRUE(m.start(kOpts));
  for (const char* d : {"cf", "cf2", "plain"})
    ASSERT_EQ(errno_of(::mkdir(m.path(d).c_str(), 0755)), Errno(0));
  ASSERT_EQ(set_inode_flags(m.path("cf"), kCasefoldFl), Errno(0));
  ASSERT_EQ(set_inode_flags(m.path("cf2"), kCasefoldFl), Errno(0));
  ASSERT_EQ(errno_of(::mkdir(m.path("cf/Deep").c_str(), 0755)), Errno(0));
  ASSERT_EQ(errno_of(::mkdir(m.path("cf/Deep/Deeper").c_str(), 0755)), Errno(0));
  ASSERT_EQ(write_file(m.path("cf/Deep/Deeper/Stable"), "stable"), Errno(0));

  const std::string journal_path = m.tpath("journal");
  std::vector<std::string> journal;
  long kills = 0, total_ops = 0, handles_dirs = 0, handles_files = 0;
  Verdict last;
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // Handles taken through the mount before the crash.
    std::vector<std::pair<std::string, Handle>> dir_handles, file_handles;
    for (const char* d : {"cf", "cf2", "plain", "cf/Deep", "cf/Deep/Deeper"})
      dir_handles.emplace_back(d, handle_of(m.path(other(d))));
    file_handles.emplace_back("cf/Deep/Deeper/Stable", handle_of(m.path("cf/deep/deeper/STABLE")));

    const int jfd = ::open(journal_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ASSERT_GE(jfd, 0);
    Children guard;
    std::vector<pid_t>& workers = guard.pids;
    for (int w = 0; w < 2; ++w) {
      const unsigned wseed = static_cast<unsigned>(rng());
      const pid_t pid = ::fork();
      if (pid == 0) {
        Workload wl(m, w, static_cast<int>(round), jfd, wseed);
        ::_exit(wl.run());
      }
      ASSERT_GT(pid, 0);
      workers.push_back(pid);
    }
    ::close(jfd);
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 900));
    ASSERT_TRUE(signal_daemons(m, SIGKILL));
    ++kills;
    // The workers' next calls fail (ENOTCONN): they stop on their own, promptly.
    for (pid_t p : workers) {
      bool done = false;
      for (int i = 0; i < 1000 && !done; ++i) {
        done = ::waitpid(p, nullptr, WNOHANG) == p;
        if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      EXPECT_TRUE(done) << "a process using the mount hung after the daemon was killed";
      if (!done) {
        ::kill(p, SIGKILL);
        ::waitpid(p, nullptr, 0);
      }
    }
    workers.clear();
    // The dead mount: every request fails with ENOTCONN (what the kernel still has cached,
    // e.g. attributes within attr_timeout, may still be answered; over io_uring, ECANCELED
    // while the kernel is still taking the rings down); detach it, mount again.
    const Errno after = create_excl(m.path("cf/AfterTheKill" + std::to_string(round)));
    EXPECT_TRUE(after == Errno(ENOTCONN) || after == Errno(ECONNABORTED) ||
                after == Errno(ECANCELED))
        << after;
    if (round % 2 == 0) {
      ASSERT_TRUE(lazy_unmount(m.mnt()));
    } else {
      RunResult r = run({"fusermount3", "-uz", m.mnt()});
      ASSERT_TRUE(r.ok()) << r;
    }
    ASSERT_FALSE(m.mounted());
    ASSERT_TRUE(m.start(kOpts));
    if (round % 2 == 1) {
      ASSERT_TRUE(drop_caches());
    }

    journal = read_lines(journal_path);
    std::map<std::string, std::string> files;
    std::set<std::string> dirs;
    last = check_journal(m, journal, &files, &dirs);
    for (const auto& p : last.problems) ADD_FAILURE() << p;
    total_ops = static_cast<long>(journal.size());

    for (auto& [d, h] : dir_handles) {
      ASSERT_FALSE(h.empty()) << d;
      const int fd = open_handle(m.mnt(), h, O_RDONLY | O_DIRECTORY);
      EXPECT_GE(fd, 0) << "directory handle of " << d
                       << " after the restart: " << std::strerror(-fd);
      if (fd >= 0) {
        struct stat a;
        EXPECT_EQ(::fstat(fd, &a), 0);
        EXPECT_EQ(a.st_ino, must_lstat(m.bpath(d)).st_ino) << d << ": another directory";
        ::close(fd);
        ++handles_dirs;
      }
    }
    for (auto& [f, h] : file_handles) {
      const int fd = open_handle(m.mnt(), h, O_RDONLY);
      // Files too come back by handle after a restart and dropped caches (docs/design.md,
      // "Node ids and file handles").
      EXPECT_GE(fd, 0) << "file handle of " << f << " after the restart: " << std::strerror(-fd);
      if (fd >= 0) {
        char buf[16] = {};
        EXPECT_EQ(::read(fd, buf, sizeof buf), 6);
        EXPECT_STREQ(buf, "stable") << f << ": the handle opened another file";
        ::close(fd);
        ++handles_files;
      }
    }
    RunResult check = run({foldfs_binary(), "check", m.backing()});
    EXPECT_TRUE(check.ok()) << "equivalent names after the crash: " << check;
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_GT(last.files, 10) << "the workload did too little to mean anything";
  report_figure("crash: daemons killed with -9 mid-workload", kills);
  report_figure("crash: journaled operations (writes, renames, exchanges, mkdirs)", total_ops);
  report_figure("crash: files verified intact after restarts", last.files);
  report_figure("crash: renames verified (completed)", last.renames);
  report_figure("crash: renames in flight at the kill, found all-or-nothing",
                last.renames_in_flight);
  report_figure("crash: exchanges verified", last.exchanges);
  report_figure("crash: directories made in casefolded dirs, flag intact", last.dirs);
  report_figure("crash: directory handles reopened after restart", handles_dirs);
  report_figure("crash: file handles reopened after restart", std::to_string(handles_files));
}

TEST(Crash, UnmountWithOpenFilesIsBusyAndLazyUnmountWaitsForThem) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=all"));
  const int fd = ::open(m.path("Open").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "before", 6), 6);
  const std::vector<pid_t> daemons = find_daemons(m.mnt());
  ASSERT_FALSE(daemons.empty());

  RunResult u = run({"umount", m.mnt()});
  EXPECT_FALSE(u.ok());
  EXPECT_NE(u.err.find("busy"), std::string::npos) << u;
  RunResult f = run({"fusermount3", "-u", m.mnt()});
  EXPECT_FALSE(f.ok());
  EXPECT_NE(f.err.find("busy"), std::string::npos) << f;
  EXPECT_TRUE(m.mounted());

  ASSERT_TRUE(lazy_unmount(m.mnt()));
  EXPECT_FALSE(m.mounted());
  EXPECT_TRUE(std::all_of(daemons.begin(), daemons.end(), alive))
      << "the daemon exited while a file was still open";
  // The open file keeps working.
  EXPECT_EQ(::pwrite(fd, " after", 6, 6), 6);
  EXPECT_EQ(::fsync(fd), 0);
  char buf[32] = {};
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), 12);
  EXPECT_STREQ(buf, "before after");
  EXPECT_EQ(read_file(m.bpath("Open")), "before after");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(std::all_of(daemons.begin(), daemons.end(), alive));
  // Closing the last file lets the daemon go.
  ::close(fd);
  bool gone = false;
  for (int i = 0; i < 1000 && !gone; ++i) {
    gone = std::none_of(daemons.begin(), daemons.end(), alive);
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "the daemon did not exit within 10 s of the last file being closed";
  // The mount point is free for a new mount.
  ASSERT_TRUE(m.start("casefold=all"));
  EXPECT_EQ(read_file(m.path("OPEN")), "before after");
}

TEST(Crash, ACurrentDirectoryInsideKeepsALazilyUnmountedMountAlive) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=all"));
  ASSERT_EQ(errno_of(::mkdir(m.path("Dir").c_str(), 0755)), Errno(0));
  const std::vector<pid_t> daemons = find_daemons(m.mnt());
  int ready[2], go[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(go), 0);
  const std::string dir = m.path("DIR");
  const pid_t child = ::fork();
  if (child == 0) {
    if (::chdir(dir.c_str()) != 0) ::_exit(1);
    (void)!::write(ready[1], "r", 1);
    char c;
    (void)!::read(go[0], &c, 1);
    // Relative names still reach the (detached) mount.
    const int e = write_file("Made", "in cwd").value;
    ::_exit(e == 0 && read_file("MADE") == "in cwd" ? 0 : 2);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  EXPECT_FALSE(run({"umount", m.mnt()}).ok()) << "unmounted although a cwd is inside";
  ASSERT_TRUE(lazy_unmount(m.mnt()));
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  bool gone = false;
  for (int i = 0; i < 1000 && !gone; ++i) {
    gone = std::none_of(daemons.begin(), daemons.end(), alive);
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "the daemon did not exit after the last user left";
  EXPECT_EQ(read_file(m.bpath("Dir/Made")), "in cwd");
  for (int f : {ready[0], ready[1], go[0], go[1]}) ::close(f);
}

// Requests in flight when the daemon dies: the daemon is stopped (SIGSTOP) so that a read of an
// uncached file, a lookup, a readdir, a create and an fsync are all waiting for it; then it is
// killed. Every waiting process returns an error within a few seconds.
TEST(Crash, RequestsInFlightWhenTheDaemonDiesFailPromptly) {
  Mount m;
  const std::string big(32 << 20, 'b');
  ASSERT_EQ(write_file(m.bpath("Big"), big), Errno(0));
  ASSERT_EQ(::mkdir(m.bpath("Dir").c_str(), 0755), 0);
  // Without passthrough, so that the read waits for the daemon: with it the kernel reads the
  // backing file itself and the read succeeds whatever the daemon's state (mount_passthrough_test).
  ASSERT_TRUE(m.start("casefold=all,passthrough=off"));
  const int big_fd = ::open(m.path("BIG").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(big_fd, 0);
  const int dir_fd = ::open(m.path("dir").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir_fd, 0);
  const int w_fd = ::open(m.path("Written").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(w_fd, 0);
  ASSERT_EQ(::write(w_fd, "x", 1), 1);
  ASSERT_TRUE(signal_daemons(m, SIGSTOP));

  struct Waiter {
    std::string what;
    std::function<int()> fn;
    pid_t pid = -1;
  };
  std::vector<Waiter> waiters = {
      {"read of an uncached file",
       [&] {
         std::string buf(1 << 20, '\0');
         ssize_t total = 0, n;
         while ((n = ::read(big_fd, buf.data(), buf.size())) > 0) total += n;
         return n < 0 ? errno : 0;
       }},
      {"lookup",
       [&] {
         struct stat st;
         return errno_of(::stat(m.path("NotCachedYet").c_str(), &st)).value;
       }},
      {"readdir", [&] { return list_dir(m.path("DIR")).empty() ? 0 : EIO; }},
      {"create", [&] { return create_excl(m.path("New")).value; }},
      {"fsync", [&] { return errno_of(::fsync(w_fd)).value; }},
  };
  for (auto& w : waiters) {
    w.pid = ::fork();
    if (w.pid == 0) ::_exit(w.fn());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (auto& w : waiters) {
    EXPECT_EQ(::waitpid(w.pid, nullptr, WNOHANG), 0) << w.what << " did not wait";
  }
  ASSERT_TRUE(signal_daemons(m, SIGKILL));
  std::map<std::string, int> seen;
  for (auto& w : waiters) {
    int status = 0;
    bool done = false;
    for (int i = 0; i < 500 && !done; ++i) {
      done = ::waitpid(w.pid, &status, WNOHANG) == w.pid;
      if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(done) << w.what << " still hangs 5 s after the daemon was killed";
    if (!done) {
      ::kill(w.pid, SIGKILL);
      ::waitpid(w.pid, &status, 0);
      continue;
    }
    const int e = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    // ECANCELED: the kernel's io_uring transport ends a request caught on its way to a ring
    // whose daemon thread died with it.
    EXPECT_TRUE(e == ENOTCONN || e == ECONNABORTED || e == EIO || e == ECANCELED)
        << w.what << " ended with " << errno_text(e);
    std::printf("in flight at the kill: %s -> %s\n", w.what.c_str(), errno_text(e).c_str());
  }
  // New calls on the dead mount: ENOTCONN at once (ECANCELED while io_uring's rings go down).
  struct stat st;
  const Errno new_call = errno_of(::stat(m.path("Dir").c_str(), &st));
  EXPECT_TRUE(new_call == Errno(ENOTCONN) || new_call == Errno(ECANCELED)) << new_call;
  ::close(big_fd);
  ::close(dir_fd);
  ::close(w_fd);
  ASSERT_TRUE(lazy_unmount(m.mnt()));
  ASSERT_TRUE(m.start("casefold=all"));
  EXPECT_EQ(HashOf(m.path("big")), content_hash(big));
  report_figure("in-flight requests failed promptly at a daemon kill",
                static_cast<long long>(waiters.size()));
}

// The same without stopping first: readers in four threads stream a big file (dropping the page
// cache each pass so every read goes to the daemon) when the daemon is killed at a random moment.
TEST(Crash, ReadersOfABigFileGetAnErrorWhenTheDaemonIsKilledMidRead) {
  Mount m;
  const std::string big(64 << 20, 'r');
  ASSERT_EQ(write_file(m.bpath("big"), big), Errno(0));
  ASSERT_TRUE(m.start());
  const pid_t child = ::fork();
  if (child == 0) {
    std::atomic<int> first_error{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 4; ++t) {
      readers.emplace_back([&] {
        std::string buf(128 << 10, '\0');
        for (;;) {
          const int fd = ::open(m.path("big").c_str(), O_RDONLY | O_CLOEXEC);
          if (fd < 0) {
            int expected = 0;
            first_error.compare_exchange_strong(expected, errno);
            return;
          }
          ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
          ssize_t n;
          while ((n = ::read(fd, buf.data(), buf.size())) > 0) {
          }
          const int e = n < 0 ? errno : 0;
          ::close(fd);
          if (e) {
            int expected = 0;
            first_error.compare_exchange_strong(expected, e);
            return;
          }
        }
      });
    }
    for (auto& r : readers) r.join();
    ::_exit(first_error.load());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  ASSERT_TRUE(signal_daemons(m, SIGKILL));
  int status = 0;
  bool done = false;
  for (int i = 0; i < 1000 && !done; ++i) {
    done = ::waitpid(child, &status, WNOHANG) == child;
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(done) << "readers hang 10 s after the daemon was killed";
  if (!done) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
  } else {
    const int e = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    EXPECT_TRUE(e == ENOTCONN || e == ECONNABORTED || e == EIO || e == ECANCELED) << errno_text(e);
    std::printf("readers mid-read at the kill: %s\n", errno_text(e).c_str());
  }
  ASSERT_TRUE(lazy_unmount(m.mnt()));
}

}  // namespace
}  // namespace foldfs::itest
