// FUSE passthrough (src/fuse/passthrough.h): where the kernel offers it, regular files opened
// through the mount are read and written by the kernel from the backing file. What the mount
// promises must not change: data by every spelling, attributes after writes, truncates and
// outside writes, setuid and setgid bits cleared by a user's write as on a local filesystem,
// shared mappings, and the same behaviour with passthrough=off.
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "harness.h"

namespace foldfs::itest {
namespace {

constexpr uid_t kUser = 65534;  // nobody
constexpr gid_t kGroup = 65534;

// Whether the mount hands files to the kernel's passthrough (stats "passthrough 1").
bool passthrough_in_use(const Mount& m) {
  auto stats = stats_of(m);
  return stats.count("passthrough") && stats.at("passthrough") == 1;
}

std::string pattern(size_t size) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + (i * 7919 + i / 4096) % 26);
  return s;
}

TEST(Passthrough, DataByEverySpellingWithoutTheDaemonWhereTheKernelAllowsIt) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=all"));
  if (!passthrough_in_use(m)) GTEST_SKIP() << "this kernel offers no FUSE passthrough";
  const std::string data = pattern(3 * 1024 * 1024 + 17);
  ASSERT_EQ(write_file(m.path("Assets.pak"), data), Errno(0));
  EXPECT_EQ(read_file(m.path("ASSETS.PAK")), data);
  EXPECT_EQ(read_file(m.bpath("Assets.pak")), data) << "the backing file has every byte";
  auto stats = stats_of(m);
  EXPECT_GE(stats["passthrough_opens"], 2u);
  EXPECT_EQ(stats["passthrough_refused"], 0u);

  // Unaligned reads and writes at offsets, through two open files of one inode at once.
  const int w = ::open(m.path("assets.PAK").c_str(), O_WRONLY);
  const int r = ::open(m.path("ASSETS.pak").c_str(), O_RDONLY);
  ASSERT_GE(w, 0);
  ASSERT_GE(r, 0);
  ASSERT_EQ(::pwrite(w, "XYZ", 3, 4095), 3);
  char buf[5] = {};
  ASSERT_EQ(::pread(r, buf, 5, 4094), 5);
  EXPECT_EQ(std::string(buf, 5), data.substr(4094, 1) + "XYZ" + data.substr(4098, 1));
  ::close(w);
  ::close(r);
}

TEST(Passthrough, AttributesFollowWritesTruncatesAndOutsideWrites) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=all"));
  if (!passthrough_in_use(m)) GTEST_SKIP() << "this kernel offers no FUSE passthrough";
  const int fd = ::open(m.path("Save.dat").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "0123456789", 10), 10);
  EXPECT_EQ(must_lstat(m.path("SAVE.DAT")).st_size, 10) << "size right after a write";
  const struct stat before = must_lstat(m.path("save.dat"));
  ::usleep(20 * 1000);
  ASSERT_EQ(::pwrite(fd, "ab", 2, 20), 2);
  const struct stat after = must_lstat(m.path("save.dat"));
  EXPECT_EQ(after.st_size, 22) << "a write past the end";
  EXPECT_TRUE(after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
              after.st_mtim.tv_nsec != before.st_mtim.tv_nsec)
      << "the write moved mtime";
  ASSERT_EQ(::ftruncate(fd, 4), 0);
  EXPECT_EQ(must_lstat(m.path("Save.dat")).st_size, 4) << "after ftruncate";
  ASSERT_EQ(::truncate(m.path("SAVE.dat").c_str(), 6), 0);
  EXPECT_EQ(must_lstat(m.path("Save.dat")).st_size, 6) << "after truncate by another spelling";
  EXPECT_EQ(read_file(m.path("save.dat")), std::string("0123\0\0", 6));
  ::close(fd);

  // Written directly in the backing tree: the data at once (the kernel reads the backing
  // file), the size as soon as the outside change reaches the kernel.
  ASSERT_EQ(write_file(m.bpath("Save.dat"), "outside, longer"), Errno(0));
  EXPECT_EQ(read_file(m.path("SAVE.DAT")), "outside, longer");
  const double seen =
      seconds_until([&] { return must_lstat(m.path("save.DAT")).st_size == 15; }, 5s);
  EXPECT_GE(seen, 0) << "the size of an outside write never reached the mount";
}

TEST(Passthrough, AUsersWriteClearsSetuidAndSetgidAsOnTheBackingFilesystem) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=all,allow_other"));
  if (!passthrough_in_use(m)) GTEST_SKIP() << "this kernel offers no FUSE passthrough";
  ASSERT_EQ(errno_of(::mkdir(m.path("Shared").c_str(), 0777)), Errno(0));
  ASSERT_EQ(errno_of(::chmod(m.path("Shared").c_str(), 0777)), Errno(0));
  ASSERT_EQ(errno_of(::mkdir(m.tpath("native").c_str(), 0777)), Errno(0));
  ASSERT_EQ(errno_of(::chmod(m.tpath("native").c_str(), 0777)), Errno(0));
  // The same steps through the mount and on the backing filesystem itself: the modes after
  // must agree (a user's write clears both bits; root's keeps them).
  for (const std::string& dir : {m.path("shared"), m.tpath("native")}) {
    SCOPED_TRACE(dir);
    const std::string file = dir + "/Tool.bin";
    EXPECT_EQ(run_as(kUser, kGroup, [&] {
                const int fd = ::open(file.c_str(), O_CREAT | O_WRONLY, 0755);
                if (fd < 0) return errno;
                ::close(fd);
                return ::chmod(file.c_str(), 06755) == 0 ? 0 : errno;
              }),
              0);
    EXPECT_EQ(must_lstat(file).st_mode & 07777, 06755u);
    EXPECT_EQ(run_as(kUser, kGroup, [&] {
                const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND);
                if (fd < 0) return errno;
                const bool ok = ::write(fd, "x", 1) == 1;
                ::close(fd);
                return ok ? 0 : EIO;
              }),
              0);
    EXPECT_EQ(must_lstat(file).st_mode & 07777, 0755u) << "a user's write clears both bits";
    ASSERT_EQ(errno_of(::chmod(file.c_str(), 06755)), Errno(0));
    const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "y", 1), 1);
    ::close(fd);
    EXPECT_EQ(must_lstat(file).st_mode & 07777, 06755u) << "root's write keeps them";
  }
  EXPECT_EQ(read_file(m.bpath("Shared/Tool.bin")), "xy");
}

TEST(Passthrough, SharedMappingsReachTheBackingFile) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=all"));
  if (!passthrough_in_use(m)) GTEST_SKIP() << "this kernel offers no FUSE passthrough";
  ASSERT_EQ(write_file(m.path("Map.bin"), std::string(8192, '.')), Errno(0));
  const int fd = ::open(m.path("MAP.BIN").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  void* p = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED) << strerror(errno);
  memcpy(static_cast<char*>(p) + 4096, "mapped", 6);
  ASSERT_EQ(::msync(p, 8192, MS_SYNC), 0);
  ::munmap(p, 8192);
  ::close(fd);
  const auto backing = read_file(m.bpath("Map.bin"));
  ASSERT_TRUE(backing);
  EXPECT_EQ(backing->substr(4096, 6), "mapped");
}

TEST(Passthrough, OffServesTheSameThroughTheDaemon) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=all,passthrough=off"));
  EXPECT_FALSE(passthrough_in_use(m));
  const std::string data = pattern(1024 * 1024 + 3);
  ASSERT_EQ(write_file(m.path("Assets.pak"), data), Errno(0));
  EXPECT_EQ(read_file(m.path("ASSETS.PAK")), data);
  EXPECT_EQ(stats_of(m)["passthrough_opens"], 0u);
}

}  // namespace
}  // namespace foldfs::itest
