// Copy-up (src/backing/copy_up.h) on every kind of backing filesystem the promise suites run over
// (FOLDFS_IT_BACKING, scripts/test.sh): the lower and upper trees, and the work directory, live on
// that filesystem. Where it has no unnamed files (O_TMPFILE: not on a FUSE filesystem), a copy
// without a work directory is refused with EOPNOTSUPP and leaves nothing, and one with a work
// directory takes that way, with the same promises. No foldfs mount here: what is tested is the
// backing layer that the union mount will use.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "backing/copy_up.h"
#include "backing/dir_reader.h"
#include "backing/unique_fd.h"
#include "harness.h"
#include "support/kill_at.h"

namespace foldfs::itest {
namespace {

using backing::UniqueFd;

std::vector<std::string> Names(const std::string& dir) {
  const UniqueFd fd(::open(dir.c_str(), O_PATH | O_DIRECTORY));
  std::vector<backing::DirEntry> entries;
  EXPECT_EQ(backing::read_directory(fd.get(), &entries), 0) << dir;
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.name);
  return out;
}

class UnionCopyUp : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* d : {"lower", "upper", "work"}) {
      ASSERT_EQ(::mkdir(m.bpath(d).c_str(), 0755), 0) << m.bpath(d) << ": " << std::strerror(errno);
    }
    lower_.reset(::open(m.bpath("lower").c_str(), O_PATH | O_DIRECTORY));
    upper_.reset(::open(m.bpath("upper").c_str(), O_PATH | O_DIRECTORY));
    work_.reset(::open(m.bpath("work").c_str(), O_PATH | O_DIRECTORY));
    const UniqueFd probe(::openat(upper_.get(), ".", O_TMPFILE | O_RDWR, 0600));
    unnamed_files_ = probe.valid();
    RecordProperty("unnamed_files", unnamed_files_ ? "yes" : "no");
  }
  std::string L(const std::string& n) const { return m.bpath("lower/" + n); }
  std::string U(const std::string& n) const { return m.bpath("upper/" + n); }
  int CopyUp(const std::string& name, bool with_work_dir = true) {
    return backing::copy_up(lower_.get(), name, upper_.get(), name, nullptr, {},
                            with_work_dir ? work_.get() : -1);
  }

  Mount m;  // not started: only its backing filesystem is used
  UniqueFd lower_, upper_, work_;
  bool unnamed_files_ = false;
};

TEST_F(UnionCopyUp, AFileKeepsItsDataModeOwnerTimesAndAttributes) {
  std::string data(3 << 20, 'x');
  for (size_t i = 0; i < data.size(); i += 4093) data[i] = static_cast<char>('a' + i % 26);
  ASSERT_EQ(write_file(L("Sky.DDS"), data), Errno(0));
  {
    const UniqueFd fd(::open(L("Sky.DDS").c_str(), O_WRONLY));
    ASSERT_EQ(::pwrite(fd.get(), "tail", 4, 40 << 20), 4);  // a hole before it
  }
  ASSERT_EQ(::chown(L("Sky.DDS").c_str(), 1234, 2345), 0);
  ASSERT_EQ(::chmod(L("Sky.DDS").c_str(), 06751), 0);
  const bool xattrs = ::setxattr(L("Sky.DDS").c_str(), "user.DOSATTRIB", "0x20", 4, 0) == 0;
  const struct timespec times[2] = {{1000000000, 0}, {1200000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, L("Sky.DDS").c_str(), times, 0), 0);

  if (!unnamed_files_) {
    EXPECT_EQ(CopyUp("Sky.DDS", false), EOPNOTSUPP);
    EXPECT_EQ(Names(m.bpath("upper")), std::vector<std::string>{});
  }
  ASSERT_EQ(CopyUp("Sky.DDS"), 0);
  const struct stat lower = must_lstat(L("Sky.DDS"));
  const struct stat upper = must_lstat(U("Sky.DDS"));
  EXPECT_EQ(read_file(U("Sky.DDS")), read_file(L("Sky.DDS")));
  EXPECT_EQ(upper.st_size, lower.st_size);
  EXPECT_EQ(upper.st_mode, lower.st_mode);
  EXPECT_EQ(upper.st_uid, 1234u);
  EXPECT_EQ(upper.st_gid, 2345u);
  EXPECT_EQ(upper.st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(upper.st_atim.tv_sec, 1000000000);
  if (xattrs) {
    char value[16] = {};
    EXPECT_EQ(::getxattr(U("Sky.DDS").c_str(), "user.DOSATTRIB", value, sizeof(value)), 4);
    EXPECT_STREQ(value, "0x20");
  }
  // Holes stay holes where the filesystem shows them.
  const UniqueFd lower_fd(::open(L("Sky.DDS").c_str(), O_RDONLY));
  const UniqueFd upper_fd(::open(U("Sky.DDS").c_str(), O_RDONLY));
  if (::lseek(lower_fd.get(), 0, SEEK_HOLE) < lower.st_size) {
    EXPECT_LT(::lseek(upper_fd.get(), 0, SEEK_HOLE), upper.st_size) << "the hole was filled";
  }
  EXPECT_EQ(Names(m.bpath("upper")), std::vector<std::string>{"Sky.DDS"});
  EXPECT_EQ(Names(m.bpath("work")), std::vector<std::string>{}) << "a leftover in the work dir";
}

TEST_F(UnionCopyUp, OtherKindsKeepTheirOwnerModeAndTimes) {
  ASSERT_EQ(::symlink("Textures/sky.dds", L("link").c_str()), 0);
  ASSERT_EQ(::mkdir(L("Data").c_str(), 02750), 0);
  ASSERT_EQ(::chmod(L("Data").c_str(), 02750), 0);
  ASSERT_EQ(::chown(L("Data").c_str(), 1234, 2345), 0);
  ASSERT_EQ(::mkfifo(L("pipe").c_str(), 0640), 0);
  for (const char* name : {"link", "Data", "pipe"}) {
    SCOPED_TRACE(name);
    const struct timespec times[2] = {{1000000000, 0}, {1100000000, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, L(name).c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
    ASSERT_EQ(CopyUp(name), 0);
    const struct stat lower = must_lstat(L(name));
    const struct stat upper = must_lstat(U(name));
    EXPECT_EQ(upper.st_mode, lower.st_mode);
    EXPECT_EQ(upper.st_uid, lower.st_uid);
    EXPECT_EQ(upper.st_gid, lower.st_gid);
    EXPECT_EQ(upper.st_mtim.tv_sec, 1100000000);
  }
  EXPECT_EQ(CopyUp("Data"), EEXIST);
}

// A copy killed at each step: before the name is placed the upper directory has nothing new (a
// file built in the work directory may be left there), after it the whole file.
TEST_F(UnionCopyUp, AKilledCopyLeavesNoNameOrTheWholeFile) {
  std::string data(4 << 20, 'd');
  for (size_t i = 0; i < data.size(); i += 511) data[i] = static_cast<char>(i % 251);
  ASSERT_EQ(write_file(L("save"), data), Errno(0));
  for (const char* point : {"data-copied", "synced", "linked"}) {
    SCOPED_TRACE(point);
    const bool reached = test_support::kill_at(point, [&](const test_support::StopHook& hook) {
      backing::copy_up(lower_.get(), "save", upper_.get(), "save", nullptr, hook, work_.get());
    });
    ASSERT_TRUE(reached) << "the copy never got there";
    if (std::strcmp(point, "linked") != 0) {
      EXPECT_EQ(Names(m.bpath("upper")), std::vector<std::string>{});
      continue;
    }
    EXPECT_EQ(Names(m.bpath("upper")), std::vector<std::string>{"save"});
    EXPECT_EQ(read_file(U("save")), data);
  }
}

}  // namespace
}  // namespace foldfs::itest
