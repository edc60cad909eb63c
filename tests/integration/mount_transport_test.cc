// The io_uring transport (src/fuse/uring_transport.h) through real mounts: the ring carries the
// requests when the kernel offers it, every kind of request gives the same answers over it,
// data of any size and offset arrives intact, all CPUs' queues serve at once, and the options
// behave as documented (uring=on refused with a clear message when the kernel's switch is off,
// uring=off keeps /dev/fuse). Each test sets the kernel's switch itself and puts it back.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace foldfs::itest {
namespace {

#define SKIP_WITHOUT_KERNEL_URING(sw) \
  if (!(sw).available()) GTEST_SKIP() << "this kernel has no FUSE over io_uring"

uint64_t ring_requests(const Mount& m) {
  return stats_of(m)["uring_requests"];
}

// Mounts `m` with casefold=all plus `opts`, writes a file and reads it back by another spelling
// (the mount serves, whatever the transport), and returns the transport's counters then:
// uring_requests and uring_threads, absent when no transport was hooked in (uring=off).
std::map<std::string, uint64_t> mount_and_serve_a_file(Mount& m, const std::string& opts) {
  EXPECT_TRUE(m.start("casefold=all" + opts));
  EXPECT_EQ(write_file(m.path("Readme.TXT"), "hello"), Errno(0));
  EXPECT_EQ(read_file(m.path("README.txt")), std::optional<std::string>("hello"));
  EXPECT_TRUE(DoesNotExist(m.path("missing")));
  return stats_of(m);
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(Transport, TheRingCarriesRequestsWhenTheKernelOffersIt) {
  KernelUringSwitch sw(true);
  SKIP_WITHOUT_KERNEL_URING(sw);
  Mount m;
  const auto stats = mount_and_serve_a_file(m, "");  // uring=auto: the kernel's switch decides
  EXPECT_EQ(stats.at("uring_threads"), 2u * std::thread::hardware_concurrency());
  EXPECT_GE(stats.at("uring_requests"), 3u);
  ASSERT_TRUE(m.unmount());
}

TEST(Transport, UringOffKeepsDevFuseWhenTheKernelOffersTheRing) {
  KernelUringSwitch sw(true);
  SKIP_WITHOUT_KERNEL_URING(sw);
  Mount m;
  const auto stats = mount_and_serve_a_file(m, ",uring=off");
  EXPECT_EQ(stats.count("uring_requests"), 0u) << "no transport hooked in with uring=off";
  ASSERT_TRUE(m.unmount());
}

TEST(Transport, AutoUsesDevFuseWhenTheKernelSwitchIsOff) {
  KernelUringSwitch sw(false);
  SKIP_WITHOUT_KERNEL_URING(sw);
  Mount m;
  const auto stats = mount_and_serve_a_file(m, "");
  EXPECT_EQ(stats.count("uring_requests"), 0u) << "no transport hooked in when the kernel's is off";
  ASSERT_TRUE(m.unmount());
}

// With the kernel's switch on but no io_uring to be had (kernel.io_uring_disabled=2, a common
// hardening setting), the INIT reply must not ask for the ring: once asked, the kernel would
// hold every request until each CPU's queue had an entry, which would never come.
TEST(Transport, WhenNoRingCanBeMadeTheMountServesOverDevFuse) {
  KernelUringSwitch sw(true);
  SKIP_WITHOUT_KERNEL_URING(sw);
  const char* sysctl = "/proc/sys/kernel/io_uring_disabled";
  const std::optional<std::string> was = read_file(sysctl);
  if (!was) GTEST_SKIP() << "this kernel has no " << sysctl;
  ASSERT_EQ(write_file(sysctl, "2\n"), Errno(0));
  struct Restore {
    const char* path;
    std::string value;
    ~Restore() { EXPECT_EQ(write_file(path, value), Errno(0)); }
  } restore{sysctl, *was};
  Mount m;
  const auto stats = mount_and_serve_a_file(m, "");
  EXPECT_EQ(stats.at("uring_threads"), 0u);
  EXPECT_EQ(stats.at("uring_requests"), 0u);
  ASSERT_TRUE(m.unmount());
}

TEST(Transport, UringOnIsRefusedWithTheWayToTurnItOnWhenTheKernelSwitchIsOff) {
  KernelUringSwitch sw(false);
  SKIP_WITHOUT_KERNEL_URING(sw);
  TempDir t;
  ASSERT_EQ(errno_of(::mkdir(t.path("b").c_str(), 0755)), Errno(0));
  ASSERT_EQ(errno_of(::mkdir(t.path("m").c_str(), 0755)), Errno(0));
  const RunResult r =
      run({foldfs_binary(), "mount", "-o", "uring=on", t.path("b"), t.path("m")}, 20s);
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_NE(r.err.find("enable_uring"), std::string::npos) << r;
  EXPECT_FALSE(is_mount_point(t.path("m")));
}

// Every kind of request, over the ring, answers as the mount's POSIX tests expect over
// /dev/fuse (mount_posix_test.cc covers each in depth; here each must merely work).
TEST(Transport, EveryKindOfRequestWorksOverTheRing) {
  KernelUringSwitch sw(true);
  SKIP_WITHOUT_KERNEL_URING(sw);
  Mount m;
  ASSERT_TRUE(m.start("uring=on"));
  const uint64_t before = ring_requests(m);
  // Directories, the casefold flag, lookups by other spellings.
  ASSERT_EQ(errno_of(::mkdir(m.path("Data").c_str(), 0755)), Errno(0));
  ASSERT_TRUE(chattr("+F", m.path("Data")).ok());
  EXPECT_TRUE(LsattrShowsCasefold(m.path("Data")));
  ASSERT_EQ(write_file(m.path("Data/Textures.DDS"), "tex"), Errno(0));
  EXPECT_EQ(read_file(m.path("Data/textures.dds")).value_or("?"), "tex");
  EXPECT_EQ(create_excl(m.path("Data/TEXTURES.dds")), Errno(EEXIST));
  // Renames (between spellings of the same name too), links, symlinks.
  ASSERT_EQ(
      errno_of(::rename(m.path("Data/textures.dds").c_str(), m.path("Data/TEXTURES.DDS").c_str())),
      Errno(0));
  EXPECT_EQ(list_dir(m.path("Data")), std::vector<std::string>{"Textures.DDS"})
      << "a rename between spellings of one entry changes nothing (docs/design.md)";
  ASSERT_EQ(errno_of(::link(m.path("Data/textures.dds").c_str(), m.path("hard").c_str())),
            Errno(0));
  EXPECT_TRUE(SameInode(m.path("hard"), m.path("Data/TEXTURES.DDS")));
  ASSERT_EQ(errno_of(::symlink("Data/textures.dds", m.path("sym").c_str())), Errno(0));
  EXPECT_EQ(readlink_of(m.path("sym")), "Data/textures.dds");
  EXPECT_EQ(read_file(m.path("sym")).value_or("?"), "tex");
  // Attributes: mode, times, size, extended attributes.
  ASSERT_EQ(errno_of(::chmod(m.path("hard").c_str(), 0600)), Errno(0));
  EXPECT_EQ(must_lstat(m.path("hard")).st_mode & 07777, 0600u);
  ASSERT_EQ(errno_of(::truncate(m.path("hard").c_str(), 10000)), Errno(0));
  EXPECT_EQ(must_lstat(m.path("Data/Textures.dds")).st_size, 10000);
  const struct timespec times[2] = {{1000, 0}, {2000, 0}};
  ASSERT_EQ(errno_of(::utimensat(AT_FDCWD, m.path("hard").c_str(), times, 0)), Errno(0));
  EXPECT_EQ(must_lstat(m.path("hard")).st_mtime, 2000);
  ASSERT_EQ(set_xattr(m.path("hard"), "user.color", "blue"), Errno(0));
  EXPECT_EQ(get_xattr(m.path("hard"), "user.color").value, "blue");
  EXPECT_EQ(list_xattrs(m.path("hard")), std::vector<std::string>{"user.color"});
  EXPECT_EQ(remove_xattr(m.path("hard"), "user.color"), Errno(0));
  // Special files, statfs, fsync, access.
  ASSERT_EQ(errno_of(::mkfifo(m.path("fifo").c_str(), 0644)), Errno(0));
  EXPECT_TRUE(S_ISFIFO(must_lstat(m.path("fifo")).st_mode));
  struct statvfs sv;
  EXPECT_EQ(errno_of(::statvfs(m.path("").c_str(), &sv)), Errno(0));
  const int fd = ::open(m.path("hard").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(errno_of(::fsync(fd)), Errno(0));
  EXPECT_EQ(errno_of(::fallocate(fd, 0, 0, 20000)), Errno(0));
  ::close(fd);
  EXPECT_EQ(errno_of(::access(m.path("hard").c_str(), R_OK | W_OK)), Errno(0));
  // A directory big enough to take many READDIRPLUS replies.
  ASSERT_EQ(errno_of(::mkdir(m.path("big").c_str(), 0755)), Errno(0));
  std::vector<std::string> names;
  for (int i = 0; i < 3000; ++i) {
    names.push_back("entry_with_a_longish_name_" + std::to_string(i));
    ASSERT_EQ(touch(m.path("big/" + names.back())), Errno(0));
  }
  std::sort(names.begin(), names.end());
  ASSERT_TRUE(drop_caches());
  EXPECT_EQ(list_dir(m.path("big")), names);
  // Removal.
  for (const auto& n : names) ASSERT_EQ(errno_of(::unlink(m.path("big/" + n).c_str())), Errno(0));
  EXPECT_EQ(errno_of(::rmdir(m.path("big").c_str())), Errno(0));
  EXPECT_EQ(errno_of(::unlink(m.path("Data/textures.dds").c_str())), Errno(0));
  EXPECT_EQ(errno_of(::rmdir(m.path("Data").c_str())), Errno(0));
  EXPECT_TRUE(DoesNotExist(m.bpath("Data")));
  EXPECT_GT(ring_requests(m) - before, 6000u);
  ASSERT_TRUE(m.unmount());
}

// Writes and reads of every size from 1 byte to past max_write, at unaligned offsets, arrive
// intact: in the backing file, through the mount with a cold page cache, and after remount.
TEST(Transport, DataOfAnySizeAndOffsetArrivesIntactOverTheRing) {
  KernelUringSwitch sw(true);
  SKIP_WITHOUT_KERNEL_URING(sw);
  Mount m;
  ASSERT_TRUE(m.start("uring=on"));
  const std::string content = random_bytes(3 * 1024 * 1024 + 12345, 7);
  const int wfd = ::open(m.path("blob").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(wfd, 0);
  const size_t sizes[] = {1, 4095, 4096, 4097, 65537, 1 << 20, (1 << 20) + 3, 131072};
  size_t off = 0;
  for (int i = 0; off < content.size(); ++i) {
    const size_t n = std::min(sizes[i % std::size(sizes)], content.size() - off);
    ASSERT_EQ(::pwrite(wfd, content.data() + off, n, static_cast<off_t>(off)),
              static_cast<ssize_t>(n));
    off += n;
  }
  ASSERT_EQ(errno_of(::fsync(wfd)), Errno(0));
  ::close(wfd);
  EXPECT_TRUE(read_file(m.bpath("blob")) == content) << "backing file differs";
  ASSERT_TRUE(drop_caches());
  const int rfd = ::open(m.path("blob").c_str(), O_RDONLY | O_DIRECT);
  ASSERT_GE(rfd, 0) << "direct reads go to the daemon every time, whatever is cached";
  std::string back;
  alignas(4096) static char buf[2 << 20];
  for (size_t pos = 0; pos < content.size();) {
    const ssize_t n = ::pread(rfd, buf, sizeof(buf), static_cast<off_t>(pos));
    ASSERT_GT(n, 0);
    back.append(buf, static_cast<size_t>(n));
    pos += static_cast<size_t>(n);
  }
  ::close(rfd);
  EXPECT_TRUE(back == content) << "direct read differs";
  EXPECT_TRUE(read_file(m.path("blob")) == content) << "buffered read differs";
  ASSERT_TRUE(m.unmount());
}

// Workers pinned to every CPU, so every queue of the ring serves at once, each checking its
// own files by other spellings.
TEST(Transport, AllCpusQueuesServeAtOnce) {
  KernelUringSwitch sw(true);
  SKIP_WITHOUT_KERNEL_URING(sw);
  Mount m;
  ASSERT_TRUE(m.start("casefold=all,uring=on"));
  const unsigned cpus = std::thread::hardware_concurrency();
  std::vector<std::string> problems(2 * cpus);
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < 2 * cpus; ++w) {
    threads.emplace_back([&, w] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(w % cpus, &set);
      sched_setaffinity(0, sizeof(set), &set);
      for (int i = 0; i < 300 && problems[w].empty(); ++i) {
        const std::string name = "W" + std::to_string(w) + "_File" + std::to_string(i);
        std::string lower = name;
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (write_file(m.path(name), name) != Errno(0)) problems[w] = "create " + name;
        if (read_file(m.path(lower)) != std::optional<std::string>(name))
          problems[w] = "read " + lower;
        if (i % 2 && ::unlink(m.path(lower).c_str()) != 0) problems[w] = "unlink " + lower;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& p : problems) EXPECT_EQ(p, "");
  EXPECT_EQ(list_dir(m.path("")).size(), 2 * cpus * 150);
  ASSERT_TRUE(m.unmount());
}

// A daemon killed while the ring holds entries: callers get ENOTCONN, nothing hangs, and the
// mount point can be unmounted.
TEST(Transport, ADaemonKilledWithTheRingActiveLeavesErrorsNotHangs) {
  KernelUringSwitch sw(true);
  SKIP_WITHOUT_KERNEL_URING(sw);
  Mount m;
  ASSERT_TRUE(m.start("uring=on"));
  ASSERT_EQ(write_file(m.path("a"), "x"), Errno(0));
  ASSERT_FALSE(m.daemon_pids().empty());
  for (pid_t pid : m.daemon_pids()) ::kill(pid, SIGKILL);
  // The daemons are gone once /proc no longer shows them running.
  auto gone = [&] {
    for (pid_t pid : m.daemon_pids()) {
      std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
      std::string line;
      if (std::getline(stat, line) && line.find(") Z") == std::string::npos) return false;
    }
    return true;
  };
  ASSERT_GE(seconds_until(gone, 10s), 0) << "the killed daemon is still running";
  const int child = ::fork();
  if (child == 0) {
    struct stat st;
    const int rc = ::lstat(m.path("b").c_str(), &st);
    // ECANCELED or ECONNABORTED while the kernel tears the ring and the connection down,
    // ENOTCONN once it is gone (docs/guarantees.md).
    const bool documented = errno == ENOTCONN || errno == ECONNABORTED || errno == ECANCELED;
    _exit(rc == 0 ? 255 : documented ? 0 : errno);
  }
  int status = 0;
  bool done = false;
  for (int i = 0; i < 100 && !done; ++i) {
    done = ::waitpid(child, &status, WNOHANG) == child;
    if (!done) std::this_thread::sleep_for(50ms);
  }
  if (!done) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
  }
  EXPECT_TRUE(done) << "a lookup on the dead mount hung";
  EXPECT_TRUE(done && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "not one of the documented errors but " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

}  // namespace
}  // namespace foldfs::itest
