// Stress through a real mount (issue 4 §3 and §6): threads run mixed create / unlink / rename /
// link / mkdir / rmdir / stat over case variants in a few casefolded directories for a bounded
// time, while other threads flip the casefold flag of scratch directories and probe spellings,
// and another changes names, modes and contents directly in the backing tree.
// Each worker owns its keys, so every one of its observations is checked exactly against its
// own model: after an operation returns, any spelling must show what the model says. The daemon
// runs in the foreground so that, in the ThreadSanitizer build, its reports are caught.
//
// FOLDFS_STRESS_SECONDS sets the duration (default 20); see docs/testing.md for long runs.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace foldfs::itest {
namespace {

int stress_seconds() {
  const char* s = std::getenv("FOLDFS_STRESS_SECONDS");
  return s ? std::max(1, std::atoi(s)) : 20;
}

// A random spelling of `key` (ASCII letters flipped at random, sometimes with an ignorable).
std::string spelling(const std::string& key, std::mt19937& rng) {
  std::string out;
  for (char c : key) {
    if (c >= 'a' && c <= 'z' && (rng() & 1)) c = static_cast<char>(c - 'a' + 'A');
    out.push_back(c);
  }
  if (rng() % 8 == 0) out += "\u200d";  // ZERO WIDTH JOINER: ignored by folding
  return out;
}

struct Observed {
  std::atomic<uint64_t> ops{0};
  std::atomic<uint64_t> checks{0};
};

class Worker {
 public:
  Worker(const Mount& m, int id, const std::vector<std::string>& dirs, Observed* stats)
      : m_(m), dirs_(dirs), rng_(static_cast<unsigned>(id * 7919 + 1)), stats_(stats) {
    for (const auto& d : dirs_) {
      for (int k = 0; k < 4; ++k)
        keys_.push_back(d + "/w" + std::to_string(id) + "key" + std::to_string(k));
    }
  }

  // Runs until `stop`; returns the first discrepancy, or "" if none.
  std::string run(const std::atomic<bool>& stop) {
    while (!stop) {
      std::string problem = step();
      stats_->ops++;
      if (!problem.empty()) return problem;
    }
    return {};
  }

 private:
  struct State {
    bool exists = false;
    bool is_dir = false;
    int group = 0;  // entries with equal group are hard links of one file
  };

  std::string path_of(const std::string& key) {
    const size_t slash = key.rfind('/');
    return m_.path(key.substr(0, slash + 1) + spelling(key.substr(slash + 1), rng_));
  }
  const std::string& pick() { return keys_[rng_() % keys_.size()]; }
  int links_of(int group) {
    int n = 0;
    for (auto& [k, s] : model_) n += s.exists && !s.is_dir && s.group == group;
    return n;
  }

  std::string expect(bool ok, const std::string& what) { return ok ? "" : what; }

  std::string verify(const std::string& key) {
    stats_->checks++;
    const State& s = model_[key];
    const std::string p = path_of(key);
    struct stat st;
    const int r = ::lstat(p.c_str(), &st);
    if (!s.exists) return expect(r != 0 && errno == ENOENT, "should not exist: " + printable(p));
    if (r != 0) return "should exist: " + printable(p) + ": " + std::strerror(errno);
    if (S_ISDIR(st.st_mode) != s.is_dir) return "wrong type: " + printable(p);
    if (!s.is_dir && st.st_nlink != static_cast<nlink_t>(links_of(s.group))) {
      return "wrong link count " + std::to_string(st.st_nlink) + ": " + printable(p);
    }
    return {};
  }

  std::string step() {
    const std::string& key = pick();
    State& s = model_[key];
    const std::string p = path_of(key);
    std::string problem;
    switch (rng_() % 7) {
      case 0: {  // create
        const int fd = ::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
        const int e = fd < 0 ? errno : 0;
        if (fd >= 0) ::close(fd);
        if (s.exists)
          problem = expect(e == EEXIST, "create over existing: " + printable(p));
        else if (e != 0)
          problem = "create failed: " + printable(p) + ": " + std::strerror(e);
        else
          s = State{true, false, next_group_++};
        break;
      }
      case 1: {  // unlink or rmdir
        const int r = s.is_dir ? ::rmdir(p.c_str()) : ::unlink(p.c_str());
        const int e = r != 0 ? errno : 0;
        if (!s.exists)
          problem = expect(e == ENOENT, "remove of missing: " + printable(p));
        else if (e != 0)
          problem = "remove failed: " + printable(p) + ": " + std::strerror(e);
        else
          s.exists = false;
        break;
      }
      case 2: {  // mkdir
        const int e = ::mkdir(p.c_str(), 0755) != 0 ? errno : 0;
        if (s.exists)
          problem = expect(e == EEXIST, "mkdir over existing: " + printable(p));
        else if (e != 0)
          problem = "mkdir failed: " + printable(p) + ": " + std::strerror(e);
        else
          s = State{true, true, 0};
        break;
      }
      case 3: {  // rename to another key (files only, onto a missing or file key)
        const std::string& to = pick();
        State& t = model_[to];
        if (!s.exists || s.is_dir || (t.exists && t.is_dir) || to == key) break;
        const std::string q = path_of(to);
        if (::rename(p.c_str(), q.c_str()) != 0) {
          problem = "rename failed: " + printable(p) + " -> " + printable(q) + ": " +
                    std::strerror(errno);
          break;
        }
        // POSIX: renaming a name onto another link of the same file changes nothing.
        if (!(t.exists && t.group == s.group)) {
          t = s;
          s.exists = false;
        }
        problem = verify(to);
        break;
      }
      case 4: {  // hard link to a missing key
        const std::string& to = pick();
        State& t = model_[to];
        if (!s.exists || s.is_dir || t.exists) break;
        const std::string q = path_of(to);
        if (::link(p.c_str(), q.c_str()) != 0) {
          problem =
              "link failed: " + printable(p) + " -> " + printable(q) + ": " + std::strerror(errno);
          break;
        }
        t = State{true, false, s.group};
        problem = verify(to);
        break;
      }
      default:
        break;
    }
    if (problem.empty()) problem = verify(key);
    if (problem.empty()) problem = verify(pick());
    return problem;
  }

  const Mount& m_;
  std::vector<std::string> dirs_;
  std::vector<std::string> keys_;
  std::map<std::string, State> model_;
  std::mt19937 rng_;
  int next_group_ = 1;
  Observed* stats_;
};

// The stress itself, over the transport `transport` names (a uring= option).
void mixed_operations_against_a_model(const std::string& transport) {
  Mount m;
  ASSERT_TRUE(m.start_foreground(
      {"-f"}, "casefold=flag,entry_timeout=30,negative_timeout=30," + transport));
  const std::vector<std::string> dirs = {"One", "Two", "Three"};
  for (const auto& d : dirs) {
    ASSERT_EQ(errno_of(::mkdir(m.path(d).c_str(), 0755)), Errno(0));
    ASSERT_EQ(set_inode_flags(m.path(d), kCasefoldFl), Errno(0));
  }
  ASSERT_EQ(errno_of(::mkdir(m.path("flips").c_str(), 0755)), Errno(0));
  ASSERT_EQ(errno_of(::mkdir(m.path("Outside").c_str(), 0755)), Errno(0));
  ASSERT_EQ(set_inode_flags(m.path("Outside"), kCasefoldFl), Errno(0));

  std::atomic<bool> stop{false};
  Observed stats;
  std::vector<std::string> problems(4);
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      Worker worker(m, w, dirs, &stats);
      problems[w] = worker.run(stop);
      if (!problems[w].empty()) stop = true;
    });
  }
  // A flipper: scratch directories go casefolded and back while a prober looks them up.
  std::atomic<uint64_t> flips{0};
  std::string flip_problem;
  threads.emplace_back([&] {
    for (int i = 0; !stop; i = (i + 1) % 8) {
      const std::string d = m.path("flips/d" + std::to_string(i));
      ::mkdir(d.c_str(), 0755);
      struct stat st;
      ::lstat((d + "/NAME").c_str(), &st);  // a case-sensitive miss
      if (set_inode_flags(d, kCasefoldFl) != Errno(0)) {
        flip_problem = "flip on";
        stop = true;
      }
      if (write_file(d + "/name", "x") != Errno(0)) {
        flip_problem = "create";
        stop = true;
      }
      if (::lstat((d + "/NAME").c_str(), &st) != 0) {
        flip_problem = "miss survived a flip: " + d;
        stop = true;
      }
      ::unlink((d + "/name").c_str());
      if (set_inode_flags(d, 0) != Errno(0)) {
        flip_problem = "flip off";
        stop = true;
      }
      ::rmdir(d.c_str());
      flips++;
    }
  });
  threads.emplace_back([&] {
    std::mt19937 rng(99);
    struct stat st;
    while (!stop) {
      const std::string d =
          m.path("flips/d" + std::to_string(rng() % 8) + (rng() & 1 ? "/name" : "/NAME"));
      ::lstat(d.c_str(), &st);
    }
  });

  // Another program changes names, modes and contents directly in the backing tree while the
  // mount reads them: the watcher's events, index updates and kernel invalidations race with
  // requests.
  std::atomic<uint64_t> outside_ops{0};
  threads.emplace_back([&] {
    for (int i = 0; !stop; i = (i + 1) % 16) {
      const std::string name = "File" + std::to_string(i);
      const std::string backing = m.bpath("Outside/" + name);
      write_file(backing, "v" + std::to_string(outside_ops.load()));
      ::chmod(backing.c_str(), (i & 1) ? 0600 : 0644);
      read_file(m.path("Outside/" + name));
      struct stat st;
      ::lstat(m.path("Outside/FILE" + std::to_string(i)).c_str(), &st);
      if (i % 4 == 0) ::unlink(backing.c_str());
      outside_ops++;
    }
  });

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(stress_seconds());
  while (!stop && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop = true;
  for (auto& t : threads) t.join();
  for (int w = 0; w < 4; ++w) EXPECT_EQ(problems[w], "") << "worker " << w;
  EXPECT_EQ(flip_problem, "");
  // Once quiet, the mount shows what the outside program left.
  ASSERT_EQ(write_file(m.bpath("Outside/File1"), "final"), Errno(0));
  const double seen = seconds_until(
      [&] { return read_file(m.path("Outside/file1")) == std::optional<std::string>("final"); },
      std::chrono::seconds(2));
  EXPECT_GE(seen, 0) << "an outside write was not seen through the mount within 2 s";
  EXPECT_GT(outside_ops.load(), 10u);
  std::printf("stress: %llu operations, %llu checks, %llu flips, %llu outside changes in %d s\n",
              static_cast<unsigned long long>(stats.ops.load()),
              static_cast<unsigned long long>(stats.checks.load()),
              static_cast<unsigned long long>(flips.load()),
              static_cast<unsigned long long>(outside_ops.load()), stress_seconds());
  EXPECT_GT(stats.ops.load(), 100u);
  if (transport == "uring=on") {
    EXPECT_GT(stats_of(m)["uring_requests"], stats.ops.load());
  }
  ASSERT_TRUE(m.unmount());
  const std::string daemon_log = m.foreground()->err();
  EXPECT_EQ(daemon_log.find("ThreadSanitizer"), std::string::npos) << daemon_log;
  EXPECT_EQ(daemon_log.find("AddressSanitizer"), std::string::npos) << daemon_log;
}

TEST(MountStress, MixedOperationsOverCaseVariantsAgainstAModel) {
  mixed_operations_against_a_model("uring=off");
}

// The same over FUSE's io_uring transport: the ring's threads take the requests (two per CPU
// queue and entry), the /dev/fuse threads still take FORGET and INTERRUPT.
TEST(MountStress, MixedOperationsOverTheIoUringTransport) {
  KernelUringSwitch sw(true);
  if (!sw.available()) GTEST_SKIP() << "this kernel has no FUSE over io_uring";
  mixed_operations_against_a_model("uring=on");
}

}  // namespace
}  // namespace foldfs::itest
