// Copy-up and the upper tree's marks (src/backing/copy_up.h, src/backing/union_format.h): what a
// lower file's copy keeps, on one filesystem (the temp directory's) and across two (a tmpfs lower,
// the temp directory's upper: no copy_file_range between them), what it never follows or
// replaces, what a killed copy leaves, and that a copy the upper filesystem cannot hold leaves
// nothing behind.
#include "backing/copy_up.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "backing/dir_reader.h"
#include "backing/union_format.h"
#include "backing/unique_fd.h"
#include "support/kill_at.h"
#include "support/scratch_dir.h"

namespace foldfs::backing {
namespace {

using test_support::ScratchDir;

constexpr uid_t kOwner = 1234;
constexpr gid_t kGroup = 2345;

UniqueFd OpenDir(const std::string& path) {
  return UniqueFd(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
}

void WriteAt(const std::string& path, off_t offset, const std::string& data) {
  const UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(fd.valid()) << path << ": " << std::strerror(errno);
  ASSERT_EQ(::pwrite(fd.get(), data.data(), data.size(), offset),
            static_cast<ssize_t>(data.size()));
}

std::string ReadAll(const std::string& path) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  std::string out;
  char buf[1 << 16];
  for (ssize_t n; fd.valid() && (n = ::read(fd.get(), buf, sizeof(buf))) > 0;) out.append(buf, n);
  return out;
}

struct stat Lstat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st;
}

std::map<std::string, std::string> Xattrs(const std::string& path) {
  std::map<std::string, std::string> out;
  char names[4096];
  const ssize_t n = ::llistxattr(path.c_str(), names, sizeof(names));
  for (ssize_t at = 0; at < n; at += static_cast<ssize_t>(std::strlen(names + at)) + 1) {
    char value[512];
    const ssize_t v = ::lgetxattr(path.c_str(), names + at, value, sizeof(value));
    if (v >= 0) out[names + at] = std::string(value, static_cast<size_t>(v));
  }
  return out;
}

void SetTimes(const std::string& path, time_t atime, time_t mtime) {
  const struct timespec times[2] = {{atime, 123456789}, {mtime, 987654321}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0)
      << std::strerror(errno);
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<DirEntry> entries;
  const UniqueFd fd = OpenDir(dir);
  EXPECT_EQ(read_directory(fd.get(), &entries), 0);
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.name);
  return out;
}

// A version 2 file capability (cap_net_bind_service=ep), as setcap writes it.
std::string FileCapability() {
  const uint32_t words[5] = {0x02000001, 1u << 10, 0, 0, 0};
  return std::string(reinterpret_cast<const char*>(words), sizeof(words));
}

// The lower and upper directories of one union, with the lower on `lower_base`.
class CopyUpTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(lower_.ok() && upper_.ok());
    lower_fd_ = OpenDir(lower_.path());
    upper_fd_ = OpenDir(upper_.path());
    ASSERT_TRUE(lower_fd_.valid() && upper_fd_.valid());
  }
  std::string L(const std::string& name) const { return lower_.path() + "/" + name; }
  std::string U(const std::string& name) const { return upper_.path() + "/" + name; }
  int CopyUp(const std::string& lower, const std::string& upper, struct stat* out = nullptr) {
    return copy_up(lower_fd_.get(), lower, upper_fd_.get(), upper, out);
  }

  ScratchDir lower_{"foldfs-lower", GetParam()};
  ScratchDir upper_{"foldfs-upper", "/tmp"};
  UniqueFd lower_fd_;
  UniqueFd upper_fd_;
};

INSTANTIATE_TEST_SUITE_P(LowerOn, CopyUpTest, ::testing::Values("/tmp", "/dev/shm"),
                         [](const auto& info) {
                           return std::string(info.param) == "/tmp" ? "SameFilesystem"
                                                                    : "TmpfsLowerOtherUpper";
                         });

TEST_P(CopyUpTest, ARegularFileKeepsItsDataHolesModeOwnerTimesAndAttributes) {
  const std::string file = L("Sky.DDS");
  std::string head(3 << 20, 'x');
  for (size_t i = 0; i < head.size(); i += 4093) head[i] = static_cast<char>('a' + i % 26);
  WriteAt(file, 0, head);
  WriteAt(file, 40 << 20, "tail of the data");
  ASSERT_EQ(::truncate(file.c_str(), 64 << 20), 0);  // and a hole at the end
  ASSERT_EQ(::chown(file.c_str(), kOwner, kGroup), 0);
  ASSERT_EQ(::chmod(file.c_str(), 06751), 0);
  ASSERT_EQ(::setxattr(file.c_str(), "user.DOSATTRIB", "0x20", 4, 0), 0);
  ASSERT_EQ(::setxattr(file.c_str(), "trusted.note", "kept", 4, 0), 0);
  ASSERT_EQ(::setxattr(file.c_str(), "trusted.overlay.origin", "lower", 5, 0), 0);
  const std::string cap = FileCapability();
  ASSERT_EQ(::setxattr(file.c_str(), "security.capability", cap.data(), cap.size(), 0), 0);
  SetTimes(file, 1000000000, 1200000000);

  const struct stat before = Lstat(file);
  struct stat out {};
  ASSERT_EQ(CopyUp("Sky.DDS", "sky.dds", &out), 0);

  const struct stat lower = Lstat(file);
  EXPECT_EQ(lower.st_atim.tv_sec, before.st_atim.tv_sec) << "the copy counted as an access";
  EXPECT_EQ(lower.st_atim.tv_sec, 1000000000);
  const struct stat upper = Lstat(U("sky.dds"));
  EXPECT_EQ(out.st_ino, upper.st_ino);
  EXPECT_EQ(ReadAll(U("sky.dds")), ReadAll(file));
  EXPECT_EQ(upper.st_size, 64 << 20);
  EXPECT_LT(upper.st_blocks * 512, 8 << 20) << "the holes were filled";
  EXPECT_EQ(upper.st_mode, lower.st_mode);  // 06751: chown's clearing undone
  EXPECT_EQ(upper.st_uid, kOwner);
  EXPECT_EQ(upper.st_gid, kGroup);
  EXPECT_EQ(upper.st_atim.tv_sec, lower.st_atim.tv_sec);
  EXPECT_EQ(upper.st_atim.tv_nsec, lower.st_atim.tv_nsec);
  EXPECT_EQ(upper.st_mtim.tv_sec, lower.st_mtim.tv_sec);
  EXPECT_EQ(upper.st_mtim.tv_nsec, lower.st_mtim.tv_nsec);
  auto want = Xattrs(file);
  want.erase("trusted.overlay.origin");
  want[kOriginXattr] = std::to_string(lower.st_ino);  // the union shows the copy by this number
  EXPECT_EQ(Xattrs(U("sky.dds")), want);
  EXPECT_EQ(Xattrs(U("sky.dds")).count("security.capability"), 1u);
  EXPECT_EQ(Names(upper_.path()), std::vector<std::string>{"sky.dds"});
  EXPECT_EQ(ReadAll(file).size(), size_t{64} << 20) << "the lower file changed";
}

TEST_P(CopyUpTest, EveryOtherKindKeepsItsOwnerModeTimesAndAttributes) {
  ASSERT_EQ(::symlink("../Textures/sky.dds", L("link").c_str()), 0);
  ASSERT_EQ(::lchown(L("link").c_str(), kOwner, kGroup), 0);
  SetTimes(L("link"), 1100000000, 1300000000);
  ASSERT_EQ(::mkdir(L("Data").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(L("Data/inside").c_str(), 0755), 0);
  ASSERT_EQ(::chown(L("Data").c_str(), kOwner, kGroup), 0);
  ASSERT_EQ(::chmod(L("Data").c_str(), 03770), 0);
  ASSERT_EQ(::setxattr(L("Data").c_str(), "user.note", "dir", 3, 0), 0);
  ASSERT_EQ(::setxattr(L("Data").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  SetTimes(L("Data"), 1000000001, 1000000002);
  ASSERT_EQ(::mkfifo(L("pipe").c_str(), 0620), 0);
  ASSERT_EQ(::chown(L("pipe").c_str(), kOwner, kGroup), 0);
  ASSERT_EQ(::mknod(L("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(::mknod(L("sock").c_str(), S_IFSOCK | 0700, 0), 0);

  for (const char* name : {"link", "Data", "pipe", "null", "sock"}) {
    SCOPED_TRACE(name);
    struct stat out {};
    ASSERT_EQ(CopyUp(name, name, &out), 0);
    const struct stat lower = Lstat(L(name));
    const struct stat upper = Lstat(U(name));
    EXPECT_EQ(out.st_ino, upper.st_ino);
    EXPECT_EQ(upper.st_mode, lower.st_mode);
    EXPECT_EQ(upper.st_uid, lower.st_uid);
    EXPECT_EQ(upper.st_gid, lower.st_gid);
    EXPECT_EQ(upper.st_rdev, lower.st_rdev);
    EXPECT_EQ(upper.st_mtim.tv_sec, lower.st_mtim.tv_sec);
    EXPECT_EQ(upper.st_mtim.tv_nsec, lower.st_mtim.tv_nsec);
  }
  char target[64] = {};
  ASSERT_GT(::readlink(U("link").c_str(), target, sizeof(target) - 1), 0);
  EXPECT_STREQ(target, "../Textures/sky.dds");
  EXPECT_EQ(Names(U("Data")), std::vector<std::string>{}) << "a directory comes without entries";
  EXPECT_EQ(Xattrs(U("Data")),
            (std::map<std::string, std::string>{
                {"user.note", "dir"}, {kOriginXattr, std::to_string(Lstat(L("Data")).st_ino)}}));
  EXPECT_FALSE(is_opaque(OpenDir(U("Data")).get())) << "the lower tree's marks are not copied";
}

TEST_P(CopyUpTest, NeverFollowsNorReplacesWhatIsThere) {
  const ScratchDir outside("foldfs-outside");
  const std::string secret = outside.path() + "/secret";
  WriteAt(secret, 0, "outside the trees");
  ASSERT_EQ(::chmod(secret.c_str(), 0600), 0);
  ASSERT_EQ(::symlink(secret.c_str(), L("save.dat").c_str()), 0);
  WriteAt(L("config.ini"), 0, "[lower]");
  ASSERT_EQ(::symlink(secret.c_str(), U("config.ini").c_str()), 0);  // planted in the upper tree
  WriteAt(L("mods.txt"), 0, "lower");
  WriteAt(U("mods.txt"), 0, "upper");

  // A lower symlink is copied as a symlink: the file it points at is never read.
  ASSERT_EQ(CopyUp("save.dat", "save.dat"), 0);
  EXPECT_TRUE(S_ISLNK(Lstat(U("save.dat")).st_mode));
  // An existing upper name is never written through nor replaced, whatever it is.
  EXPECT_EQ(CopyUp("config.ini", "config.ini"), EEXIST);
  EXPECT_EQ(CopyUp("mods.txt", "mods.txt"), EEXIST);
  EXPECT_TRUE(S_ISLNK(Lstat(U("config.ini")).st_mode));
  EXPECT_EQ(ReadAll(secret), "outside the trees");
  EXPECT_EQ(Lstat(secret).st_mode & 07777, 0600u);
  EXPECT_EQ(ReadAll(U("mods.txt")), "upper");
  // Names are single components.
  EXPECT_EQ(CopyUp("../x", "x"), EINVAL);
  EXPECT_EQ(CopyUp("mods.txt", "a/b"), EINVAL);
  EXPECT_EQ(CopyUp("..", "x"), EINVAL);
  EXPECT_EQ(CopyUp("missing", "missing"), ENOENT);
  EXPECT_EQ(Names(upper_.path()).size(), 3u);
}

// A copy killed at each of its steps: before the name is linked nothing is left in the upper
// directory (the unnamed file goes with the process), after it the whole file is there.
TEST_P(CopyUpTest, AKilledCopyLeavesNoNameOrTheWholeFile) {
  std::string data(8 << 20, 'd');
  for (size_t i = 0; i < data.size(); i += 511) data[i] = static_cast<char>(i % 251);
  WriteAt(L("save"), 0, data);
  ASSERT_EQ(::chmod(L("save").c_str(), 0640), 0);
  for (const char* point : {"data-copied", "metadata-set", "synced", "linked"}) {
    SCOPED_TRACE(point);
    const bool reached = test_support::kill_at(point, [&](const test_support::StopHook& hook) {
      copy_up(lower_fd_.get(), "save", upper_fd_.get(), "save", nullptr, hook);
    });
    ASSERT_TRUE(reached) << "the copy never got there";
    if (std::strcmp(point, "linked") != 0) {
      EXPECT_EQ(Names(upper_.path()), std::vector<std::string>{});
      continue;
    }
    EXPECT_EQ(Names(upper_.path()), std::vector<std::string>{"save"});
    EXPECT_EQ(ReadAll(U("save")), data);
    EXPECT_EQ(Lstat(U("save")).st_mode & 07777, 0640u);
  }
}

// ramfs holds no extended attributes: a copy that would lose them fails and leaves nothing.
class RamfsUpper : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(lower_.ok() && upper_.ok());
    if (::mount("ramfs", upper_.path().c_str(), "ramfs", 0, nullptr) != 0) {
      GTEST_SKIP() << "cannot mount a ramfs here: " << std::strerror(errno);
    }
    mounted_ = true;
    lower_fd_ = OpenDir(lower_.path());
    upper_fd_ = OpenDir(upper_.path());
  }
  void TearDown() override {
    upper_fd_.reset();
    if (mounted_) ::umount2(upper_.path().c_str(), MNT_DETACH);
  }
  ScratchDir lower_{"foldfs-lower"};
  ScratchDir upper_{"foldfs-ramfs"};
  UniqueFd lower_fd_;
  UniqueFd upper_fd_;
  bool mounted_ = false;
};

TEST_F(RamfsUpper, ACopyThatWouldLoseAttributesFailsAndLeavesNothing) {
  const std::string file = lower_.path() + "/Game.ini";
  WriteAt(file, 0, "[game]");
  ASSERT_EQ(::setxattr(file.c_str(), "user.DOSATTRIB", "0x21", 4, 0), 0);
  ASSERT_EQ(::mkdir((lower_.path() + "/Saves").c_str(), 0755), 0);
  ASSERT_EQ(::setxattr((lower_.path() + "/Saves").c_str(), "user.x", "1", 1, 0), 0);
  WriteAt(lower_.path() + "/plain", 0, "no attributes");

  EXPECT_EQ(copy_up(lower_fd_.get(), "Game.ini", upper_fd_.get(), "Game.ini"), EOPNOTSUPP);
  EXPECT_EQ(copy_up(lower_fd_.get(), "Saves", upper_fd_.get(), "Saves"), EOPNOTSUPP);
  EXPECT_EQ(Names(upper_.path()), std::vector<std::string>{});
  EXPECT_EQ(copy_up(lower_fd_.get(), "plain", upper_fd_.get(), "plain"), 0);
  EXPECT_EQ(ReadAll(upper_.path() + "/plain"), "no attributes");
}

TEST(UnionFormat, WhiteoutsAndOpaqueDirectoriesAreOverlayfsOwn) {
  const ScratchDir dir("foldfs-upper");
  const UniqueFd fd = OpenDir(dir.path());
  ASSERT_EQ(make_whiteout(fd.get(), "Sky.dds"), 0);
  const struct stat st = Lstat(dir.path() + "/Sky.dds");
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_TRUE(is_whiteout(st));
  // Never over an existing name, not even a dangling symlink.
  ASSERT_EQ(::symlink("/nonexistent/target", (dir.path() + "/dangling").c_str()), 0);
  EXPECT_EQ(make_whiteout(fd.get(), "dangling"), EEXIST);
  EXPECT_EQ(make_whiteout(fd.get(), "Sky.dds"), EEXIST);
  EXPECT_FALSE(is_whiteout(Lstat(dir.path() + "/dangling")));
  ASSERT_EQ(::mknod((dir.path() + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  EXPECT_FALSE(is_whiteout(Lstat(dir.path() + "/null")));

  ASSERT_EQ(::mkdir((dir.path() + "/Data").c_str(), 0755), 0);
  const UniqueFd data = OpenDir(dir.path() + "/Data");
  EXPECT_FALSE(is_opaque(data.get()));
  ASSERT_EQ(make_opaque(data.get()), 0);
  EXPECT_TRUE(is_opaque(data.get()));
  char value[4] = {};
  EXPECT_EQ(::getxattr((dir.path() + "/Data").c_str(), "trusted.overlay.opaque", value, 4), 1);
  EXPECT_STREQ(value, "y");
}

}  // namespace
}  // namespace foldfs::backing
