// `foldfs mount` command line: daemonizing, -f/-d, unmounting, every option, every error,
// `mount -t fuse.foldfs` and /etc/fstab through the installed helper.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "harness.h"

namespace foldfs::itest {
namespace {

// ---- mounting and unmounting ----------------------------------------------------------------

TEST(MountCli, MountReturnsZeroWithTheMountReady) {
  Mount m;
  ASSERT_TRUE(m.start());  // exit 0, then MNT immediately has its own st_dev
  EXPECT_EQ(m.start_result().exit_code, 0);
  EXPECT_TRUE(m.mounted());
}

TEST(MountCli, MountShowsTheBackingTreeBothWays) {
  Mount m;
  ASSERT_EQ(write_file(m.bpath("before.txt"), "from backing"), Errno(0));
  ASSERT_EQ(::mkdir(m.bpath("dir").c_str(), 0755), 0);
  ASSERT_TRUE(m.start());
  EXPECT_EQ(read_file(m.path("before.txt")), "from backing");
  EXPECT_TRUE(IsDirectory(m.path("dir")));
  ASSERT_EQ(write_file(m.path("dir/after.txt"), "through mount"), Errno(0));
  EXPECT_EQ(read_file(m.bpath("dir/after.txt")), "through mount");
  EXPECT_EQ(list_dir(m.path("")), (std::vector<std::string>{"before.txt", "dir"}));
}

TEST(MountCli, MountDaemonizesAndTheDaemonExitsAfterFusermountUnmount) {
  Mount m;
  ASSERT_TRUE(m.start());
  EXPECT_FALSE(m.daemon_pids().empty())
      << "no running foldfs process names " << m.mnt() << " after `foldfs mount` returned";
  ASSERT_TRUE(m.unmount(UnmountHow::kFusermount));
  EXPECT_FALSE(m.mounted());
}

TEST(MountCli, TheDaemonExitsAfterUmount) {
  Mount m;
  ASSERT_TRUE(m.start());
  EXPECT_FALSE(m.daemon_pids().empty());
  ASSERT_TRUE(m.unmount(UnmountHow::kUmount));
  EXPECT_FALSE(m.mounted());
}

TEST(MountCli, RemountAfterUnmountSeesTheSameData) {
  Mount m;
  ASSERT_TRUE(m.start());
  ASSERT_EQ(write_file(m.path("keep.txt"), "kept"), Errno(0));
  ASSERT_TRUE(m.unmount());
  EXPECT_TRUE(DoesNotExist(m.path("keep.txt")));  // the bare mount point dir again
  ASSERT_TRUE(m.start());
  EXPECT_EQ(read_file(m.path("keep.txt")), "kept");
}

TEST(MountCli, ForegroundFlagStaysAttachedUntilUnmountThenExitsZero) {
  Mount m;
  ASSERT_TRUE(m.start_foreground({"-f"}));
  ASSERT_EQ(write_file(m.path("f.txt"), "x"), Errno(0));
  EXPECT_FALSE(m.foreground()->wait(300ms).has_value())
      << "`foldfs mount -f` returned while mounted";
  ASSERT_TRUE(m.unmount());
  auto r = m.foreground()->wait(10s);
  ASSERT_TRUE(r.has_value()) << "`foldfs mount -f` still running after unmount";
  EXPECT_EQ(r->exit_code, 0) << *r;
}

TEST(MountCli, DebugFlagLogsRequestsToStderrAndStaysInForeground) {
  Mount m;
  ASSERT_TRUE(m.start_foreground({"-d"}));
  const size_t before = m.foreground()->err().size();
  ASSERT_EQ(write_file(m.path("logged.txt"), "x"), Errno(0));
  EXPECT_EQ(list_dir(m.path("")), std::vector<std::string>{"logged.txt"});
  EXPECT_TRUE(IsRegularFile(m.path("logged.txt")));
  EXPECT_GE(seconds_until([&] { return m.foreground()->err().size() > before; }, 5s), 0)
      << "nothing was logged to stderr for create/readdir/getattr requests";
  EXPECT_TRUE(m.foreground()->running()) << "`foldfs mount -d` did not stay in the foreground";
  ASSERT_TRUE(m.unmount());
  auto r = m.foreground()->wait(10s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->exit_code, 0) << *r;
}

// ---- accepted options -----------------------------------------------------------------------

class AcceptedOption : public ::testing::TestWithParam<std::string> {};

TEST_P(AcceptedOption, MountsAndWorks) {
  Mount m;
  ASSERT_TRUE(m.start(GetParam()));
  EXPECT_TRUE(IsDirectory(m.path("")));
  if (GetParam() != "ro") {
    EXPECT_EQ(touch(m.path("file")), Errno(0));
  }
  EXPECT_TRUE(m.unmount());
}

INSTANTIATE_TEST_SUITE_P(FoldfsOptions, AcceptedOption,
                         ::testing::Values("casefold=flag", "casefold=all", "strict", "allow_other",
                                           "ro", "entry_timeout=1.5", "attr_timeout=0",
                                           "negative_timeout=2",
                                           "entry_timeout=0,attr_timeout=0.25,negative_timeout=10"),
                         [](const auto& info) { return "Option" + std::to_string(info.index); });

INSTANTIATE_TEST_SUITE_P(GenericMountOptions, AcceptedOption,
                         ::testing::Values("rw", "defaults", "dev", "nodev", "suid", "nosuid",
                                           "exec", "noexec", "auto", "noauto", "user", "nouser",
                                           "nofail", "_netdev", "atime", "noatime", "relatime",
                                           "strictatime", "diratime", "nodiratime", "symfollow",
                                           "nosymfollow", "sync", "async", "dirsync",
                                           "x-systemd.automount", "x-gvfs-show",
                                           "x-systemd.device-timeout=10"),
                         [](const auto& info) { return "Option" + std::to_string(info.index); });

// The mount's own flags, as mount(8) users pass them: each is what the kernel applies to the
// mount (mountinfo), and does what it says: setuid bits, device nodes, execution, symlinks.
std::string mount_options_of(const std::string& mnt) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, devno, root, point, options;
    f >> id >> parent >> devno >> root >> point >> options;
    if (point == mnt) return options;
  }
  return "<not mounted>";
}

bool has_option(const std::string& options, const std::string& o) {
  return ("," + options + ",").find("," + o + ",") != std::string::npos;
}

TEST(MountFlags, DefaultIsNosuidNodevAndEveryFlagAskedForIsApplied) {
  {
    Mount m;
    ASSERT_TRUE(m.start());
    const std::string o = mount_options_of(m.mnt());
    EXPECT_TRUE(has_option(o, "nosuid") && has_option(o, "nodev")) << o;
  }
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"suid,dev", {}},
      {"noexec", {"noexec"}},
      {"noatime", {"noatime"}},
      {"strictatime", {}},
      {"nodiratime", {"nodiratime"}},
      {"nosymfollow", {"nosymfollow"}},
      {"noatime,atime", {"relatime"}},
      {"nosuid,suid,nodev", {"nodev"}}};
  for (const auto& [flags, expected] : cases) {
    SCOPED_TRACE(flags);
    Mount m;
    ASSERT_TRUE(m.start(flags));
    const std::string o = mount_options_of(m.mnt());
    for (const auto& e : expected) EXPECT_TRUE(has_option(o, e)) << o;
    if (flags == "suid,dev") {
      EXPECT_FALSE(has_option(o, "nosuid") || has_option(o, "nodev")) << o;
    } else if (flags == "strictatime") {
      EXPECT_FALSE(has_option(o, "relatime") || has_option(o, "noatime")) << o;
    } else if (flags == "nosuid,suid,nodev") {
      EXPECT_FALSE(has_option(o, "nosuid")) << o;
    }
  }
  // Superblock flags go with the filesystem's options (second field set of mountinfo).
  Mount m;
  ASSERT_TRUE(m.start("sync,dirsync"));
  std::ifstream in("/proc/self/mountinfo");
  std::string line, found;
  while (std::getline(in, line))
    if (line.find(" " + m.mnt() + " ") != std::string::npos) found = line;
  EXPECT_NE(found.find("sync"), std::string::npos) << found;
  EXPECT_NE(found.find("dirsync"), std::string::npos) << found;
}

TEST(MountFlags, SuidDevExecAndSymfollowDoWhatTheySay) {
  const uid_t user = 65534;  // nobody
  for (const std::string flags : {"", "suid,dev", "noexec", "nosymfollow"}) {
    SCOPED_TRACE("-o " + flags);
    Mount m;
    // A setuid-root copy of id(1), a null device, a symlink.
    ASSERT_TRUE(run({"cp", "/usr/bin/id", m.bpath("id")}).ok());
    ASSERT_EQ(::chmod(m.bpath("id").c_str(), 04755), 0);
    ASSERT_EQ(::mknod(m.bpath("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    ASSERT_EQ(write_file(m.bpath("target"), "t"), Errno(0));
    ASSERT_EQ(::symlink("target", m.bpath("link").c_str()), 0);
    ASSERT_TRUE(m.start(flags.empty() ? "allow_other" : flags + ",allow_other"));
    const std::string id = m.path("id");
    const int as_user = run_as(user, user, [&] {
      const int out = ::open("/dev/null", O_WRONLY);
      ::dup2(out, 1);
      ::execl(id.c_str(), "id", static_cast<char*>(nullptr));
      return errno;  // exec refused
    });
    if (flags == "noexec") {
      EXPECT_EQ(as_user, EACCES) << "noexec: executing a program must fail";
    } else {
      EXPECT_EQ(as_user, 0);
      RunResult r = run({"setpriv", "--reuid=" + std::to_string(user),
                         "--regid=" + std::to_string(user), "--clear-groups", id});
      EXPECT_EQ(r.out.find("euid=0") != std::string::npos, flags == "suid,dev") << r;
    }
    const int null_fd = ::open(m.path("null").c_str(), O_WRONLY | O_CLOEXEC);
    EXPECT_EQ(null_fd >= 0, flags == "suid,dev") << "a device node opened under -o " << flags;
    if (null_fd >= 0) ::close(null_fd);
    EXPECT_EQ(read_file(m.path("link")).has_value(), flags != "nosymfollow");
  }
}

// xattr=nosys: the first extended-attribute request of each kind answers ENOSYS, the kernel
// asks no more (programs see EOPNOTSUPP), and what foldfs keeps in the backing tree's extended
// attributes (the casefold flag) and its stats still work. Without it, each call is a request.
TEST(XattrOption, NosysIsAnsweredOnceAndTheFlagAndStatsStillWork) {
  for (const std::string xattr : {"passthrough", "nosys"}) {
    SCOPED_TRACE("xattr=" + xattr);
    Mount m;
    ASSERT_TRUE(m.start("xattr=" + xattr));
    ASSERT_EQ(write_file(m.path("file"), "x"), Errno(0));
    const uint64_t before = stats_of(m)["xattr_requests"];
    constexpr int kCalls = 50;
    for (int i = 0; i < kCalls; ++i) {
      const XattrResult got = get_xattr(m.path("file"), "user.DOSATTRIB");
      const Errno set = set_xattr(m.path("file"), "user.DOSATTRIB", "0x20", 0);
      if (xattr == "nosys") {
        ASSERT_EQ(got.error, Errno(EOPNOTSUPP));
        ASSERT_EQ(set, Errno(EOPNOTSUPP));
      } else {
        ASSERT_EQ(set, Errno(0));
      }
    }
    const uint64_t requests = stats_of(m)["xattr_requests"] - before;
    if (xattr == "nosys") {
      EXPECT_LE(requests, 2u) << "the kernel kept asking";
    } else {
      EXPECT_GE(requests, 2u * kCalls - 1);
    }
    ASSERT_EQ(errno_of(::mkdir(m.path("d").c_str(), 0755)), Errno(0));
    ASSERT_EQ(set_inode_flags(m.path("d"), kCasefoldFl), Errno(0));
    ASSERT_EQ(write_file(m.path("d/Foo"), "x"), Errno(0));
    ASSERT_TRUE(m.unmount());
    ASSERT_TRUE(m.start("xattr=" + xattr));
    EXPECT_EQ(get_inode_flags(m.path("d")).flags & kCasefoldFl, kCasefoldFl) << "kept";
    EXPECT_EQ(read_file(m.path("d/FOO")), "x");
  }
}

TEST(MountCli, CombinedOptionListAppliesTheFoldfsOptions) {
  Mount m;
  ASSERT_TRUE(
      m.start("rw,nosuid,nodev,relatime,casefold=all,strict,entry_timeout=0.5,"
              "attr_timeout=0.5,negative_timeout=0,noauto,_netdev,x-foo=bar"));
  ASSERT_EQ(write_file(m.path("MixedCase.txt"), "v"), Errno(0));
  EXPECT_EQ(read_file(m.path("mixedcase.TXT")), "v") << "casefold=all was not applied";
}

TEST(MountCli, CasefoldFlagOptionBehavesLikeTheDefault) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=flag"));
  ASSERT_EQ(write_file(m.path("a"), "lower"), Errno(0));
  EXPECT_TRUE(DoesNotExist(m.path("A")));  // the root is case-sensitive
  ASSERT_EQ(errno_of(::mkdir(m.path("cf").c_str(), 0755)), Errno(0));
  RunResult r = chattr("+F", m.path("cf"));
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_EQ(write_file(m.path("cf/a"), "folded"), Errno(0));
  EXPECT_EQ(read_file(m.path("cf/A")), "folded");
}

// ---- refused invocations --------------------------------------------------------------------

// The command must exit `code`, print a "foldfs: " message on stderr (for code 1), and leave
// nothing mounted at `mountpoint` and no daemon behind.
void ExpectRefused(const std::vector<std::string>& argv, const std::string& mountpoint,
                   int code = 1) {
  RunResult r = run(argv, 30s);
  EXPECT_EQ(r.exit_code, code) << r;
  if (code == 1) {
    EXPECT_TRUE(r.err.rfind("foldfs: ", 0) == 0) << "stderr should start with \"foldfs: \": " << r;
  }
  EXPECT_FALSE(r.err.empty()) << "no message on stderr: " << r;
  if (!mountpoint.empty()) {
    // A daemon that went on in the background would mount within moments.
    const bool mounted = seconds_until([&] { return is_mount_point(mountpoint); }, 100ms) >= 0;
    EXPECT_FALSE(mounted) << "something was mounted at " << mountpoint << " by " << r;
    EXPECT_TRUE(find_daemons(mountpoint).empty()) << "a daemon is running for " << mountpoint;
    if (mounted) run({"umount", "-l", mountpoint});
  }
}

std::vector<std::string> mount_argv(const std::string& opts, const std::string& backing,
                                    const std::string& mnt) {
  std::vector<std::string> a = {foldfs_binary(), "mount"};
  if (!opts.empty()) {
    a.push_back("-o");
    a.push_back(opts);
  }
  a.push_back(backing);
  a.push_back(mnt);
  return a;
}

class RefusedOption : public ::testing::TestWithParam<std::string> {};

TEST_P(RefusedOption, ExitsOneWithMessageAndMountsNothing) {
  Mount m;
  ExpectRefused(mount_argv(GetParam(), m.backing(), m.mnt()), m.mnt());
}

INSTANTIATE_TEST_SUITE_P(BadOptions, RefusedOption,
                         ::testing::Values("bogus", "casefold=bogus", "casefold=", "casefold",
                                           "entry_timeout=abc",
                                           "entry_timeout=", "entry_timeout=-1", "attr_timeout=1x",
                                           "attr_timeout=-0.5", "negative_timeout=abc",
                                           "casefold=flag,bogus", "ro,nosuchoption=1", "lazytime",
                                           "mand", "nosuid=1", "lowerdir=", "lowerdir=/a::/b",
                                           "upperdir=/a", "workdir=/w"),
                         [](const auto& info) { return "Option" + std::to_string(info.index); });

TEST(MountCliErrors, MissingBackingDir) {
  Mount m;
  ExpectRefused(mount_argv("", m.tpath("no-such-dir"), m.mnt()), m.mnt());
}

TEST(MountCliErrors, BackingIsARegularFile) {
  Mount m;
  ASSERT_EQ(write_file(m.tpath("plain-file"), "x"), Errno(0));
  ExpectRefused(mount_argv("", m.tpath("plain-file"), m.mnt()), m.mnt());
}

TEST(MountCliErrors, MissingMountPoint) {
  Mount m;
  ExpectRefused(mount_argv("", m.backing(), m.tpath("no-such-mnt")), m.tpath("no-such-mnt"));
}

TEST(MountCliErrors, MountPointInsideBacking) {
  Mount m;
  ASSERT_EQ(::mkdir(m.bpath("sub").c_str(), 0755), 0);
  ExpectRefused(mount_argv("", m.backing(), m.bpath("sub")), m.bpath("sub"));
}

TEST(MountCliErrors, MountPointDeepInsideBacking) {
  Mount m;
  ASSERT_EQ(::mkdir(m.bpath("a").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(m.bpath("a/b").c_str(), 0755), 0);
  ExpectRefused(mount_argv("casefold=all", m.backing(), m.bpath("a/b")), m.bpath("a/b"));
}

TEST(MountCliErrors, MountPointInsideBackingReachedThroughASymlink) {
  Mount m;
  ASSERT_EQ(::mkdir(m.bpath("sub").c_str(), 0755), 0);
  ASSERT_EQ(::symlink(m.backing().c_str(), m.tpath("alias").c_str()), 0);
  ExpectRefused(mount_argv("", m.backing(), m.tpath("alias/sub")), m.bpath("sub"));
}

TEST(MountCliErrors, MountPointEqualToBacking) {
  Mount m;
  ExpectRefused(mount_argv("", m.backing(), m.backing()), m.backing());
}

TEST(MountCliErrors, MountPointEqualToBackingSpelledDifferently) {
  Mount m;
  ExpectRefused(mount_argv("", m.backing(), m.backing() + "/."), m.backing());
}

TEST(MountCli, MountPointBesideBackingWithACommonPrefixIsAccepted) {
  // BACKING=<tmp>/mn and MNT=<tmp>/mnt: a string-prefix check would wrongly refuse this.
  Mount m;
  ASSERT_EQ(::mkdir(m.tpath("mn").c_str(), 0755), 0);
  ASSERT_TRUE(m.start_command({foldfs_binary(), "mount", m.tpath("mn"), m.mnt()}));
  ASSERT_EQ(write_file(m.path("x"), "y"), Errno(0));
  EXPECT_EQ(read_file(m.tpath("mn/x")), "y");
}

TEST(MountCliErrors, NoArgumentsIsAUsageError) {
  ExpectRefused({foldfs_binary()}, "", 2);
}

TEST(MountCliErrors, MountWithoutArgumentsIsAUsageError) {
  ExpectRefused({foldfs_binary(), "mount"}, "", 2);
}

TEST(MountCliErrors, MountWithoutMountPointIsAUsageError) {
  Mount m;
  ExpectRefused({foldfs_binary(), "mount", m.backing()}, "", 2);
  EXPECT_FALSE(m.mounted());
}

TEST(MountCliErrors, OptionFlagWithoutValueIsAUsageError) {
  ExpectRefused({foldfs_binary(), "mount", "-o"}, "", 2);
}

// ---- mount(8) and /etc/fstab through /sbin/mount.fuse.foldfs ---------------------------------

::testing::AssertionResult HelperInstalled() {
  if (::access("/sbin/mount.fuse.foldfs", X_OK) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "/sbin/mount.fuse.foldfs is not installed: run `cmake --install <build dir>` before "
            "the integration tests";
}

// casefold=all is in effect at the root of the mount.
void ExpectCasefoldAll(const Mount& m) {
  ASSERT_EQ(write_file(m.path("Hello.txt"), "hi"), Errno(0));
  EXPECT_EQ(read_file(m.path("HELLO.TXT")), "hi");
  EXPECT_TRUE(SameInode(m.path("hello.txt"), m.path("Hello.txt")));
  EXPECT_EQ(list_dir(m.path("")), std::vector<std::string>{"Hello.txt"});
  EXPECT_TRUE(LsattrShowsCasefold(m.path("")));
}

TEST(MountHelper, MountTypeFuseFoldfs) {
  ASSERT_TRUE(HelperInstalled());
  Mount m;
  ASSERT_TRUE(
      m.start_command({"mount", "-t", "fuse.foldfs", m.backing(), m.mnt(), "-o", "casefold=all"}));
  ExpectCasefoldAll(m);
  EXPECT_EQ(read_file(m.bpath("Hello.txt")), "hi");
  EXPECT_TRUE(m.unmount(UnmountHow::kUmount));
}

TEST(MountHelper, FstabLineAndMountMountPoint) {
  ASSERT_TRUE(HelperInstalled());
  Mount m;
  FstabEntry fstab(m.backing() + " " + m.mnt() + " fuse.foldfs casefold=all,noauto 0 0");
  ASSERT_TRUE(fstab.ok());
  ASSERT_TRUE(m.start_command({"mount", m.mnt()}));
  ExpectCasefoldAll(m);
  EXPECT_TRUE(m.unmount(UnmountHow::kUmount));
}

}  // namespace
}  // namespace foldfs::itest
