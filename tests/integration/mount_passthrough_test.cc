// FUSE passthrough (src/fuse/passthrough.h): where the kernel offers it, regular files opened
// through the mount are read and written by the kernel from the backing file. What the mount
// promises must not change: data by every spelling, attributes after writes, truncates and
// outside writes, setuid and setgid bits cleared by a user's write as on a local filesystem,
// shared mappings, and the same behaviour with passthrough=off.
//
// Setuid/setgid: foldfs takes on dropping them (FUSE_HANDLE_KILLPRIV_V2, so that the kernel need
// not ask for security.capability before every write). SetidBitsGoAsOnTheBackingFilesystem
// compares, change by change and caller by caller, what a local filesystem leaves.
#include <fcntl.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

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

// --- setuid, setgid and file capabilities after a change of data -------------------------------

// Drops CAP_FSETID from this (forked) process's effective set: root that may not keep the bits.
int drop_cap_fsetid() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return errno;
  data[0].effective &= ~(1u << CAP_FSETID);
  return ::syscall(SYS_capset, &header, data) == 0 ? 0 : errno;
}

// A version 2 security.capability value granting cap_net_raw (what `setcap cap_net_raw+ep`
// stores): removed by any write, whoever writes.
std::string file_capability() {
  vfs_cap_data cap = {};
  cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
  cap.data[0].permitted = 1u << CAP_NET_RAW;
  return std::string(reinterpret_cast<const char*>(&cap), XATTR_CAPS_SZ_2);
}

bool has_file_capability(const std::string& path) {
  return ::getxattr(path.c_str(), "security.capability", nullptr, 0) > 0;
}

int write_one_byte(const std::string& file) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND);
  if (fd < 0) return errno;
  const int err = ::write(fd, "x", 1) == 1 ? 0 : errno;
  ::close(fd);
  return err;
}

struct DataChange {
  const char* name;
  std::function<int(const std::string&)> apply;
};

const std::vector<DataChange>& data_changes() {
  static const std::vector<DataChange> changes = {
      {"write", write_one_byte},
      {"truncate", [](const std::string& f) { return ::truncate(f.c_str(), 1) == 0 ? 0 : errno; }},
      {"ftruncate",
       [](const std::string& f) {
         const int fd = ::open(f.c_str(), O_WRONLY);
         if (fd < 0) return errno;
         const int err = ::ftruncate(fd, 2) == 0 ? 0 : errno;
         ::close(fd);
         return err;
       }},
      {"open O_TRUNC",
       [](const std::string& f) {
         const int fd = ::open(f.c_str(), O_WRONLY | O_TRUNC);
         if (fd < 0) return errno;
         ::close(fd);
         return 0;
       }},
      {"fallocate",
       [](const std::string& f) {
         const int fd = ::open(f.c_str(), O_WRONLY);
         if (fd < 0) return errno;
         const int err = ::fallocate(fd, 0, 0, 8192) == 0 ? 0 : errno;
         ::close(fd);
         return err;
       }},
  };
  return changes;
}

struct Writer {
  const char* name;
  gid_t file_group;  // the group the file gets: whether the writer is in it
  std::function<int(const std::function<int()>&)> run;
};

const std::vector<Writer>& writers() {
  constexpr uid_t kOtherUser = 1;  // daemon, in kGroup only by a supplementary group
  static const std::vector<Writer> all = {
      {"a user outside the file's group", 0, [](auto fn) { return run_as(kUser, kGroup, fn); }},
      {"a user in the file's group", kGroup, [](auto fn) { return run_as(kUser, kGroup, fn); }},
      {"a user in it by a supplementary group", kGroup,
       [](auto fn) {
         return run_as_caller(Caller{"other", kOtherUser, kOtherUser, {kGroup}}, fn);
       }},
      {"root", 0, [](auto fn) { return run_bounded(fn, 60s); }},
      {"root without CAP_FSETID", 0,
       [](auto fn) { return run_bounded([&] { return drop_cap_fsetid() ?: fn(); }, 60s); }},
  };
  return all;
}

// Makes `file` anew with `mode`, `group` and, with `capability`, a file capability; then applies
// `change` as `writer` and returns the mode and capability left ("06777 cap", "0777 -"), or why
// it could not.
std::string setid_after(const std::string& file, mode_t mode, bool capability, const Writer& writer,
                        const DataChange& change) {
  ::unlink(file.c_str());
  if (write_file(file, "data") != Errno(0) || ::chown(file.c_str(), 0, writer.file_group) != 0 ||
      ::chmod(file.c_str(), mode) != 0) {
    return std::string("setup failed: ") + strerror(errno);
  }
  const std::string cap = file_capability();
  if (capability && ::setxattr(file.c_str(), "security.capability", cap.data(), cap.size(), 0)) {
    return std::string("setcap failed: ") + strerror(errno);
  }
  if (int err = writer.run([&] { return change.apply(file); }); err != 0) {
    return std::string(change.name) + " failed: " + strerror(err);
  }
  char out[32];
  snprintf(out, sizeof(out), "%04o %s", must_lstat(file).st_mode & 07777,
           has_file_capability(file) ? "cap" : "-");
  return out;
}

// Every change of data by every kind of writer, through the mount and on the backing filesystem
// itself, leaves the same setuid/setgid bits and file capability.
void expect_setid_bits_as_on_the_backing_filesystem(const std::string& options) {
  Mount m;
  ASSERT_TRUE(m.start(options));
  ASSERT_EQ(errno_of(::mkdir(m.path("Shared").c_str(), 0777)), Errno(0));
  ASSERT_EQ(errno_of(::chmod(m.path("Shared").c_str(), 0777)), Errno(0));
  ASSERT_EQ(errno_of(::mkdir(m.tpath("native").c_str(), 0777)), Errno(0));
  ASSERT_EQ(errno_of(::chmod(m.tpath("native").c_str(), 0777)), Errno(0));
  int dropped = 0;
  int kept = 0;
  for (mode_t mode : {06777, 04777, 02777, 02767, 06767, 0777}) {
    for (bool capability : {false, true}) {
      for (const Writer& writer : writers()) {
        for (const DataChange& change : data_changes()) {
          SCOPED_TRACE(testing::Message() << change.name << " by " << writer.name << ", mode 0"
                                          << std::oct << mode << (capability ? ", with cap" : ""));
          const std::string native =
              setid_after(m.tpath("native/Tool"), mode, capability, writer, change);
          EXPECT_EQ(setid_after(m.path("shared/TOOL"), mode, capability, writer, change), native);
          const mode_t left = static_cast<mode_t>(std::stoul(native.substr(0, 5), nullptr, 8));
          (left == (mode & 07777) ? kept : dropped)++;
        }
      }
    }
  }
  // The table must show both outcomes, or it compares nothing that matters.
  EXPECT_GT(dropped, 0);
  EXPECT_GT(kept, 0);
}

TEST(Passthrough, SetidBitsGoAsOnTheBackingFilesystem) {
  expect_setid_bits_as_on_the_backing_filesystem("casefold=all,allow_other");
}

TEST(Passthrough, SetidBitsGoAsOnTheBackingFilesystemWithPassthroughOff) {
  expect_setid_bits_as_on_the_backing_filesystem("casefold=all,allow_other,passthrough=off");
}

// A bit set again after a write that found none (the kernel then stops asking, until the
// inode's attributes change) still goes with the next user's write.
TEST(Passthrough, SetidBitsSetAgainAfterAWriteStillGo) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=all,allow_other"));
  if (passthrough_in_use(m)) {
    EXPECT_EQ(stats_of(m)["killpriv"], 1u) << "passthrough without FUSE_HANDLE_KILLPRIV_V2";
  }
  const std::string file = m.path("Tool.bin");
  ASSERT_EQ(write_file(file, "data"), Errno(0));
  ASSERT_EQ(errno_of(::chmod(file.c_str(), 0777)), Errno(0));
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    EXPECT_EQ(run_as(kUser, kGroup, [&] { return write_one_byte(file); }), 0);
    EXPECT_EQ(must_lstat(file).st_mode & 07777, 0777u);
    ASSERT_EQ(errno_of(::chmod(m.path("TOOL.BIN").c_str(), 06777)), Errno(0));
    EXPECT_EQ(run_as(kUser, kGroup, [&] { return write_one_byte(file); }), 0);
    EXPECT_EQ(must_lstat(file).st_mode & 07777, 0777u) << "the user's write keeps a setid bit";
  }
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
