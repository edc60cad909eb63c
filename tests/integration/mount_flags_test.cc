// The casefold flag through the mount: chattr/lsattr, FS_IOC_GETFLAGS/SETFLAGS (Wine's probe),
// inheritance, persistence in the backing xattr trusted.foldfs.casefold (invisible through the
// mount), and casefold=all.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

namespace foldfs::itest {
namespace {

const std::string kFlagXattr = "trusted.foldfs.casefold";

using FlagTest = MountedTest;

// Wine's probe, verbatim: open the directory, FS_IOC_GETFLAGS, test FS_CASEFOLD_FL.
// Returns 1 / 0 for the flag, or -errno.
int WineProbe(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return -errno;
  int flags = 0;
  int r = ::ioctl(fd, FS_IOC_GETFLAGS, &flags);
  int e = errno;
  ::close(fd);
  if (r < 0) return -e;
  return (flags & FS_CASEFOLD_FL) ? 1 : 0;
}

// ---- casefold=flag (default) ------------------------------------------------------------------

using CasefoldFlag = FlagTest;

TEST_F(CasefoldFlag, LsattrShowsFOnlyOnCasefoldedDirectories) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("plain"));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "cf"));
  ASSERT_EQ(touch(P("cf/file")), Errno(0));
  EXPECT_TRUE(LsattrShowsCasefold(P("cf")));
  EXPECT_TRUE(LsattrShowsNoCasefold(P("plain")));
  EXPECT_TRUE(LsattrShowsNoCasefold(P("")));
  EXPECT_TRUE(LsattrShowsNoCasefold(P("cf/file")));
}

TEST_F(CasefoldFlag, NewDirectoriesInheritTheFlagButFilesNeverHaveIt) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf"));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "cf"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf/sub"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf/SUB/deeper"));
  ASSERT_EQ(touch(P("cf/file")), Errno(0));
  ASSERT_NO_FATAL_FAILURE(Mkdir("plain"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("plain/sub"));
  EXPECT_TRUE(LsattrShowsCasefold(P("cf/sub")));
  EXPECT_TRUE(LsattrShowsCasefold(P("cf/sub/deeper")));
  EXPECT_TRUE(LsattrShowsNoCasefold(P("plain/sub")));
  FlagsResult f = get_inode_flags(P("cf/file"));
  EXPECT_EQ(f.error, Errno(0));
  EXPECT_EQ(f.flags & kCasefoldFl, 0u);
  // Inherited, so the subdirectory folds too.
  ASSERT_EQ(touch(P("cf/sub/deeper/Inner")), Errno(0));
  EXPECT_TRUE(IsRegularFile(P("cf/SUB/DEEPER/INNER")));  // "cf" itself: the root is sensitive
}

TEST_F(CasefoldFlag, WineIoctlProbeSeesTheFlag) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("plain"));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "cf"));
  EXPECT_EQ(WineProbe(P("cf")), 1);
  EXPECT_EQ(WineProbe(P("plain")), 0);
  EXPECT_EQ(WineProbe(P("")), 0);
}

TEST_F(CasefoldFlag, IoctlSetsAndClearsTheFlagOnAnEmptyDirectory) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("d"));
  FlagsResult f = get_inode_flags(P("d"));
  ASSERT_EQ(f.error, Errno(0));
  EXPECT_EQ(f.flags & kCasefoldFl, 0u);
  ASSERT_EQ(set_inode_flags(P("d"), f.flags | kCasefoldFl), Errno(0));
  FlagsResult g = get_inode_flags(P("d"));
  EXPECT_EQ(g.error, Errno(0));
  EXPECT_NE(g.flags & kCasefoldFl, 0u);
  ASSERT_EQ(touch(P("d/a")), Errno(0));
  EXPECT_TRUE(IsRegularFile(P("d/A")));
  ASSERT_EQ(errno_of(::unlink(P("d/A").c_str())), Errno(0));
  ASSERT_EQ(set_inode_flags(P("d"), g.flags & ~kCasefoldFl), Errno(0));
  EXPECT_EQ(get_inode_flags(P("d")).flags & kCasefoldFl, 0u);
  ASSERT_EQ(touch(P("d/a")), Errno(0));
  EXPECT_TRUE(DoesNotExist(P("d/A")));
}

TEST_F(CasefoldFlag, SettingTheFlagOnANonEmptyDirectoryFailsWithEnotempty) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("d"));
  ASSERT_EQ(touch(P("d/file")), Errno(0));
  RunResult r = chattr("+F", P("d"));
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_NE(r.err.find("Directory not empty"), std::string::npos) << r;
  FlagsResult f = get_inode_flags(P("d"));
  ASSERT_EQ(f.error, Errno(0));
  EXPECT_EQ(set_inode_flags(P("d"), f.flags | kCasefoldFl), Errno(ENOTEMPTY));
  EXPECT_TRUE(LsattrShowsNoCasefold(P("d")));
  EXPECT_TRUE(DoesNotExist(P("d/FILE")));
  // A subdirectory alone makes it non-empty too.
  ASSERT_NO_FATAL_FAILURE(Mkdir("e"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("e/sub"));
  EXPECT_EQ(set_inode_flags(P("e"), f.flags | kCasefoldFl), Errno(ENOTEMPTY));
}

TEST_F(CasefoldFlag, ClearingTheFlagOnANonEmptyDirectoryFailsWithEnotempty) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("d"));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "d"));
  ASSERT_EQ(touch(P("d/file")), Errno(0));
  FlagsResult f = get_inode_flags(P("d"));
  ASSERT_EQ(f.error, Errno(0));
  EXPECT_EQ(set_inode_flags(P("d"), f.flags & ~kCasefoldFl), Errno(ENOTEMPTY));
  RunResult r = chattr("-F", P("d"));
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_NE(r.err.find("Directory not empty"), std::string::npos) << r;
  EXPECT_TRUE(LsattrShowsCasefold(P("d")));
}

TEST_F(CasefoldFlag, SettingTheFlagAgainOnANonEmptyCasefoldedDirectoryIsANoOp) {
  // ext4 only checks emptiness when the flag changes.
  ASSERT_NO_FATAL_FAILURE(Mkdir("d"));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "d"));
  ASSERT_EQ(touch(P("d/file")), Errno(0));
  RunResult r = chattr("+F", P("d"));
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_TRUE(LsattrShowsCasefold(P("d")));
}

TEST_F(CasefoldFlag, SettingTheFlagOnARegularFileFailsWithEopnotsupp) {
  // As ext4 on Linux 6.1 answers (the observation): ext4_fileattr_set refuses flags
  // that ext4_mask_flags() drops for the inode type (CASEFOLD is a directory-only flag) with
  // EOPNOTSUPP before its own ENOTDIR check in ext4_ioctl_setflags is reached.
  ASSERT_EQ(touch(P("file")), Errno(0));
  FlagsResult f = get_inode_flags(P("file"));
  ASSERT_EQ(f.error, Errno(0));
  EXPECT_EQ(set_inode_flags(P("file"), f.flags | kCasefoldFl), Errno(EOPNOTSUPP));
  RunResult r = chattr("+F", P("file"));
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_TRUE(LsattrShowsNoCasefold(P("file")));
}

TEST_F(CasefoldFlag, FlagIsStoredAsTrustedXattrOfTheBackingDirectory) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("d"));
  EXPECT_EQ(get_xattr(m.bpath("d"), kFlagXattr).error, Errno(ENODATA));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "d"));
  EXPECT_EQ(get_xattr(m.bpath("d"), kFlagXattr).error, Errno(0));
  ASSERT_NO_FATAL_FAILURE(Chattr("-F", "d"));
  EXPECT_EQ(get_xattr(m.bpath("d"), kFlagXattr).error, Errno(ENODATA));
  ASSERT_NO_FATAL_FAILURE(Mkdir("e"));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "e"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("e/inherited"));
  EXPECT_EQ(get_xattr(m.bpath("e/inherited"), kFlagXattr).error, Errno(0));
}

TEST_F(CasefoldFlag, FlagSurvivesUnmountAndRemount) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("plain"));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "cf"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf/sub"));
  ASSERT_EQ(write_file(P("cf/File.txt"), "persisted"), Errno(0));
  ASSERT_EQ(touch(P("plain/a")), Errno(0));
  ASSERT_TRUE(m.unmount());
  ASSERT_TRUE(m.start());
  EXPECT_TRUE(LsattrShowsCasefold(P("cf")));
  EXPECT_TRUE(LsattrShowsCasefold(P("cf/sub")));
  EXPECT_TRUE(LsattrShowsNoCasefold(P("plain")));
  EXPECT_EQ(WineProbe(P("cf")), 1);
  EXPECT_EQ(read_file(P("cf/FILE.TXT")), "persisted");
  EXPECT_TRUE(IsDirectory(P("cf/SUB")));
  EXPECT_TRUE(DoesNotExist(P("plain/A")));
}

TEST_F(CasefoldFlag, FlagXattrIsInvisibleAndProtectedThroughTheMount) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf"));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "cf"));
  ASSERT_EQ(set_xattr(P("cf"), "user.visible", "yes"), Errno(0));
  auto names = list_xattrs(P("cf"));
  EXPECT_NE(std::find(names.begin(), names.end(), "user.visible"), names.end()) << join(names);
  EXPECT_EQ(std::find(names.begin(), names.end(), kFlagXattr), names.end()) << join(names);
  RunResult r = run({"getfattr", "-d", "-m", "-", P("cf")});
  EXPECT_NE(r.out.find("user.visible"), std::string::npos) << r;
  EXPECT_EQ(r.out.find("trusted."), std::string::npos) << r;
  EXPECT_EQ(get_xattr(P("cf"), kFlagXattr).error, Errno(ENODATA));
  EXPECT_EQ(set_xattr(P("cf"), kFlagXattr, "1"), Errno(EPERM));
  EXPECT_TRUE(LsattrShowsCasefold(P("cf")));
}

TEST_F(CasefoldFlag, FlagXattrCannotBeSetThroughTheMountOnAPlainDirectory) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("plain"));
  EXPECT_EQ(set_xattr(P("plain"), kFlagXattr, "1"), Errno(EPERM));
  EXPECT_EQ(get_xattr(m.bpath("plain"), kFlagXattr).error, Errno(ENODATA));
  EXPECT_TRUE(LsattrShowsNoCasefold(P("plain")));
  ASSERT_EQ(touch(P("plain/a")), Errno(0));
  EXPECT_TRUE(DoesNotExist(P("plain/A")));
}

TEST_F(CasefoldFlag, ChattrOnAReadOnlyMountFailsWithErofs) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("d"));
  ASSERT_TRUE(m.unmount());
  ASSERT_TRUE(m.start("ro"));
  FlagsResult f = get_inode_flags(P("d"));
  ASSERT_EQ(f.error, Errno(0));
  EXPECT_EQ(set_inode_flags(P("d"), f.flags | kCasefoldFl), Errno(EROFS));
  EXPECT_TRUE(LsattrShowsNoCasefold(P("d")));
}

// ---- casefold=all -----------------------------------------------------------------------------

class CasefoldAllFlag : public FlagTest {
  std::string MountOptions() const override { return "casefold=all"; }
};

TEST_F(CasefoldAllFlag, EveryDirectoryReportsTheFlag) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("new"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("new/nested"));
  ASSERT_EQ(touch(P("file")), Errno(0));
  EXPECT_TRUE(LsattrShowsCasefold(P("")));
  EXPECT_TRUE(LsattrShowsCasefold(P("new")));
  EXPECT_TRUE(LsattrShowsCasefold(P("NEW/NESTED")));
  EXPECT_EQ(WineProbe(P("")), 1);
  EXPECT_EQ(WineProbe(P("new/nested")), 1);
  FlagsResult f = get_inode_flags(P("file"));
  EXPECT_EQ(f.error, Errno(0));
  EXPECT_EQ(f.flags & kCasefoldFl, 0u);
}

TEST_F(CasefoldAllFlag, DirectoriesThatExistedBeforeMountingReportTheFlag) {
  ASSERT_TRUE(m.unmount());
  ASSERT_EQ(::mkdir(m.bpath("old").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(m.bpath("old/Deep").c_str(), 0755), 0);
  ASSERT_EQ(write_file(m.bpath("old/Deep/File"), "f"), Errno(0));
  ASSERT_TRUE(m.start("casefold=all"));
  EXPECT_TRUE(LsattrShowsCasefold(P("old")));
  EXPECT_TRUE(LsattrShowsCasefold(P("old/Deep")));
  EXPECT_EQ(read_file(P("OLD/deep/file")), "f");
}

TEST_F(CasefoldAllFlag, ClearingTheFlagFailsWithEperm) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("empty"));
  RunResult r = chattr("-F", P("empty"));
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_NE(r.err.find("Operation not permitted"), std::string::npos) << r;
  FlagsResult f = get_inode_flags(P("empty"));
  ASSERT_EQ(f.error, Errno(0));
  EXPECT_EQ(set_inode_flags(P("empty"), f.flags & ~kCasefoldFl), Errno(EPERM));
  EXPECT_EQ(set_inode_flags(P(""), f.flags & ~kCasefoldFl), Errno(EPERM));
  EXPECT_TRUE(LsattrShowsCasefold(P("empty")));
  ASSERT_EQ(touch(P("empty/a")), Errno(0));
  EXPECT_TRUE(IsRegularFile(P("empty/A")));
}

TEST_F(CasefoldAllFlag, SettingTheFlagIsAHarmlessNoOpEvenOnNonEmptyDirectories) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("d"));
  ASSERT_EQ(touch(P("d/file")), Errno(0));
  RunResult r = chattr("+F", P("d"));
  EXPECT_TRUE(r.ok()) << r;
  r = chattr("+F", P(""));
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_TRUE(LsattrShowsCasefold(P("d")));
  EXPECT_TRUE(IsRegularFile(P("D/FILE")));
}

}  // namespace
}  // namespace foldfs::itest
