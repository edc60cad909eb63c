// Reliability §3: faults of the backing filesystem. A backing filesystem that fills up (blocks,
// inodes, and the space for the casefold flag itself), one that becomes read-only under the
// mount, immutable and append-only files (EPERM), a directory the caller may not enter
// (EACCES), a backing disk that dies (ext4 shutdown, as a power cut), and a backing filesystem
// whose own server vanishes (a FUSE backing whose daemon is killed).
//
// Each time: the caller gets the backing filesystem's errno; the daemon keeps serving; the name
// index and the casefold flags stay consistent with the backing tree (a name whose creation
// failed is not found by any spelling, and can be created once the fault is gone, exactly once);
// and nothing that was fsync'ed is lost.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "reliability_util.h"

namespace foldfs::itest {
namespace {

int err(long rc) {
  return rc < 0 ? errno : 0;
}
int open_close(const std::string& p, int flags) {
  const int fd = ::open(p.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

// Writes, fsyncs the file and its directory (POSIX durability of the content and the name).
Errno write_durably(const std::string& path, const std::string& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(errno);
  int e = 0;
  if (::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size()))
    e = errno ? errno : EIO;
  if (e == 0 && ::fsync(fd) != 0) e = errno;
  if (::close(fd) != 0 && e == 0) e = errno;
  if (e) return Errno(e);
  const std::string dir = path.substr(0, path.rfind('/'));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Errno(errno);
  e = ::fsync(dfd) != 0 ? errno : 0;
  ::close(dfd);
  return Errno(e);
}

Errno fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(errno);
  const int e = ::fsync(fd) != 0 ? errno : 0;
  ::close(fd);
  return Errno(e);
}

// Content hash, or "<errno name>": never print file contents in failure messages.
std::string HashOf(const std::string& path) {
  auto c = read_file(path);
  return c ? content_hash(*c) : "<" + errno_text(errno) + ">";
}

// Another spelling of the last component of a path ("cf/Name" -> "cf/nAME"): directories above
// may be case-sensitive (casefold=flag).
std::string flip_case(const std::string& s) {
  std::string o = s;
  for (size_t i = s.rfind('/') == std::string::npos ? 0 : s.rfind('/') + 1; i < o.size(); ++i) {
    char& c = o[i];
    if (c >= 'a' && c <= 'z')
      c = static_cast<char>(c - 'a' + 'A');
    else if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  }
  return o;
}

// The mount shows exactly the backing directory: same names; each name found by another
// spelling, as the same inode; no two equivalent names (foldfs check).
::testing::AssertionResult Consistent(const Mount& m, const std::string& rel) {
  const auto through = list_dir(m.path(rel));
  const auto backing = list_dir(m.bpath(rel));
  if (through != backing)
    return ::testing::AssertionFailure()
           << rel << ": the mount lists [" << join(through, ",") << "] but the backing dir holds ["
           << join(backing, ",") << "]";
  for (const auto& n : backing) {
    auto b = lstat_of(m.bpath(rel + "/" + n));
    auto v = lstat_of(m.path(rel + "/" + flip_case(n)));
    if (!b || !v || b->st_ino != v->st_ino)
      return ::testing::AssertionFailure()
             << rel << "/" << n << " is not found as the same file by the spelling " << flip_case(n)
             << (v ? "" : std::string(": ") + std::strerror(errno));
  }
  RunResult c = run({foldfs_binary(), "check", m.backing()});
  if (!c.ok()) return ::testing::AssertionFailure() << "foldfs check: " << c;
  return ::testing::AssertionSuccess();
}

// ---- full ------------------------------------------------------------------------------------

TEST(BackingFull, OutOfBlocksGivesEnospcKeepsFsyncedDataAndRecovers) {
  Mount m;
  auto fs = BackingFs::Tmpfs(m, "size=2m,nr_inodes=1000");
  ASSERT_TRUE(fs->ok()) << fs->error();
  ASSERT_TRUE(m.start());
  ASSERT_EQ(errno_of(::mkdir(m.path("cf").c_str(), 0755)), Errno(0));
  ASSERT_EQ(set_inode_flags(m.path("cf"), kCasefoldFl), Errno(0));
  const std::string keep(300 * 1024, 'k');
  ASSERT_EQ(write_durably(m.path("cf/Keep.bin"), keep), Errno(0));

  // Fill it up: the error is ENOSPC, at write, fsync or close.
  const int fd = ::open(m.path("cf/Big.bin").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  const std::string chunk(64 * 1024, 'z');
  int first = 0;
  for (int i = 0; i < 64 && first == 0; ++i)
    if (::write(fd, chunk.data(), chunk.size()) < 0) first = errno;
  if (first == 0 && ::fsync(fd) != 0) first = errno;
  if (::close(fd) != 0 && first == 0) first = errno;
  EXPECT_EQ(Errno(first), Errno(ENOSPC));

  // A new file is created (an inode is free) but its data does not fit: as on the backing fs.
  const int nfd =
      ::open(m.path("cf/New.bin").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  ASSERT_GE(nfd, 0) << Errno(errno);
  EXPECT_EQ(errno_of(::write(nfd, chunk.data(), chunk.size())), Errno(ENOSPC));
  ::close(nfd);
  EXPECT_EQ(must_lstat(m.path("cf/NEW.BIN")).st_size, must_lstat(m.bpath("cf/New.bin")).st_size);

  // Still serving; fsync'ed data intact; reads by other spellings.
  EXPECT_EQ(HashOf(m.path("cf/KEEP.BIN")), content_hash(keep));
  EXPECT_TRUE(Consistent(m, "cf"));

  // Free space (through another spelling) and everything works again.
  ASSERT_EQ(errno_of(::unlink(m.path("cf/big.BIN").c_str())), Errno(0));
  EXPECT_EQ(write_durably(m.path("cf/new.BIN"), chunk), Errno(0));
  EXPECT_EQ(HashOf(m.path("cf/New.bin")), content_hash(chunk));
  EXPECT_EQ(list_dir(m.bpath("cf")), (std::vector<std::string>{"Keep.bin", "New.bin"}));
  EXPECT_TRUE(Consistent(m, "cf"));
}

TEST(BackingFull, OutOfInodesGivesEnospcAndTheFailedNameIsFoundByNoSpelling) {
  Mount m;
  auto fs = BackingFs::Tmpfs(m, "size=4m,nr_inodes=40");
  ASSERT_TRUE(fs->ok()) << fs->error();
  ASSERT_TRUE(m.start());
  ASSERT_EQ(errno_of(::mkdir(m.path("cf").c_str(), 0755)), Errno(0));
  ASSERT_EQ(set_inode_flags(m.path("cf"), kCasefoldFl), Errno(0));
  ASSERT_EQ(write_durably(m.path("cf/Keep"), "kept"), Errno(0));
  int made = 0;
  Errno e(0);
  for (; made < 100; ++made) {
    e = create_excl(m.path("cf/f" + std::to_string(made)));
    if (e != Errno(0)) break;
  }
  ASSERT_EQ(e, Errno(ENOSPC)) << "after " << made << " files";
  // Every way of making a name fails the same way, and leaves no trace.
  EXPECT_EQ(create_excl(m.path("cf/Failed")), Errno(ENOSPC));
  EXPECT_EQ(errno_of(::mkdir(m.path("cf/FailedDir").c_str(), 0755)), Errno(ENOSPC));
  EXPECT_EQ(errno_of(::symlink("x", m.path("cf/FailedLink").c_str())), Errno(ENOSPC));
  EXPECT_EQ(errno_of(::mkfifo(m.path("cf/FailedFifo").c_str(), 0644)), Errno(ENOSPC));
  EXPECT_EQ(errno_of(::link(m.path("cf/keep").c_str(), m.path("cf/FailedLink2").c_str())),
            Errno(ENOSPC));
  for (const char* n :
       {"Failed", "FAILED", "failed", "faileddir", "FAILEDLINK", "failedfifo", "failedlink2"})
    EXPECT_TRUE(DoesNotExist(m.path(std::string("cf/") + n)));
  EXPECT_TRUE(Consistent(m, "cf"));
  EXPECT_EQ(read_file(m.path("cf/KEEP")), "kept");

  // Free one inode: the name can be created by another spelling, exactly once.
  ASSERT_EQ(errno_of(::unlink(m.path("cf/F0").c_str())), Errno(0));
  EXPECT_EQ(create_excl(m.path("cf/fAILED")), Errno(0));
  EXPECT_EQ(create_excl(m.path("cf/FAILED")), Errno(EEXIST));
  EXPECT_TRUE(IsRegularFile(m.path("cf/failed")));
  auto names = list_dir(m.bpath("cf"));
  EXPECT_EQ(std::count(names.begin(), names.end(), "fAILED"), 1);
  EXPECT_TRUE(Consistent(m, "cf"));
  report_figure("ENOSPC faults injected (out of inodes)", 6);
}

// tmpfs charges extended attributes to its inode space: with room for exactly one more inode,
// mkdir in a casefolded directory can create the directory but not store its casefold flag.
// ext4's mkdir is atomic; through foldfs the caller must see either a casefolded directory or
// ENOSPC with no directory left behind, and the name index must agree with the backing tree.
TEST(BackingFull, MkdirWhoseCasefoldFlagDoesNotFitLeavesNothingBehind) {
  Mount m;
  auto fs = BackingFs::Tmpfs(m, "size=4m,nr_inodes=32");
  ASSERT_TRUE(fs->ok()) << fs->error();
  ASSERT_TRUE(m.start());
  ASSERT_EQ(errno_of(::mkdir(m.path("cf").c_str(), 0755)), Errno(0));
  ASSERT_EQ(set_inode_flags(m.path("cf"), kCasefoldFl), Errno(0));
  ASSERT_EQ(list_dir(m.path("cf")), std::vector<std::string>{});  // index loaded
  // Fill the inode space directly in the backing tree (the fault), then eat the slack with
  // user xattrs, then free exactly one inode.
  const std::string fill = m.bpath("fill");
  ASSERT_EQ(::mkdir(fill.c_str(), 0755), 0);
  int n = 0;
  while (touch(fill + "/" + std::to_string(n)) == Errno(0)) ++n;
  ASSERT_GT(n, 2);
  const std::string pad = fill + "/0";
  int k = 0;
  for (int size : {512, 256, 128, 64, 32, 16, 8, 4, 2, 1, 1, 1, 1})
    if (::setxattr(pad.c_str(), ("user.pad" + std::to_string(k++)).c_str(),
                   std::string(size, 'p').data(), size, 0) != 0 &&
        errno != ENOSPC)
      FAIL() << "setxattr: " << std::strerror(errno);
  ASSERT_EQ(::unlink((fill + "/1").c_str()), 0);
  struct statvfs sv;
  ASSERT_EQ(::statvfs(m.backing().c_str(), &sv), 0);
  ASSERT_EQ(sv.f_ffree, 1u) << "the fault could not be set up";

  const Errno e = errno_of(::mkdir(m.path("cf/NewDir").c_str(), 0755));
  if (e == Errno(0)) {
    EXPECT_EQ(get_inode_flags(m.path("cf/newdir")).flags & kCasefoldFl, kCasefoldFl)
        << "mkdir succeeded but the new directory is not casefolded";
  } else {
    EXPECT_EQ(e, Errno(ENOSPC));
    EXPECT_EQ(list_dir(m.bpath("cf")), std::vector<std::string>{})
        << "mkdir failed with ENOSPC but left a directory (without its casefold flag) behind";
    EXPECT_TRUE(DoesNotExist(m.path("cf/newdir")));
  }
  EXPECT_TRUE(Consistent(m, "cf"));
  // Space back: the name can be made by another spelling, and there is exactly one of it.
  remove_tree(fill);
  const Errno again = errno_of(::mkdir(m.path("cf/NEWDIR").c_str(), 0755));
  EXPECT_TRUE(again == Errno(0) || (e == Errno(0) && again == Errno(EEXIST))) << again;
  EXPECT_EQ(list_dir(m.bpath("cf")).size(), 1u) << join(list_dir(m.bpath("cf")), ",");
  EXPECT_EQ(get_inode_flags(m.path("cf/newdir")).flags & kCasefoldFl, kCasefoldFl);
  EXPECT_TRUE(Consistent(m, "cf"));
}

TEST(BackingFull, FullExt4ImageKeepsFsyncedFilesAndChecksClean) {
  Mount m;
  auto fs = BackingFs::Ext4(m, 16, {"-m", "0"});
  ASSERT_TRUE(fs->ok()) << fs->error();
  ASSERT_TRUE(m.start());
  ASSERT_EQ(errno_of(::mkdir(m.path("cf").c_str(), 0755)), Errno(0));
  ASSERT_EQ(set_inode_flags(m.path("cf"), kCasefoldFl), Errno(0));
  std::map<std::string, std::string> synced;
  for (int i = 0; i < 20; ++i) {
    const std::string name = "cf/Synced" + std::to_string(i);
    synced[name] = std::string(20000 + i, static_cast<char>('a' + i));
    ASSERT_EQ(write_durably(m.path(name), synced[name]), Errno(0));
  }
  const int fd = ::open(m.path("cf/Filler").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  const std::string chunk(1 << 20, 'f');
  int first = 0;
  for (int i = 0; i < 64 && first == 0; ++i)
    if (::write(fd, chunk.data(), chunk.size()) < 0) first = errno;
  if (first == 0 && ::fsync(fd) != 0) first = errno;
  ::close(fd);
  EXPECT_EQ(Errno(first), Errno(ENOSPC));
  // ext4 may still have a block for a directory: either way, all or nothing.
  if (errno_of(::mkdir(m.path("cf/SubDir").c_str(), 0755)) == Errno(0)) {
    EXPECT_EQ(get_inode_flags(m.path("cf/subdir")).flags & kCasefoldFl, kCasefoldFl);
    ASSERT_EQ(errno_of(::rmdir(m.path("cf/SUBDIR").c_str())), Errno(0));
  }
  EXPECT_TRUE(DoesNotExist(m.path("cf/subdir")));
  EXPECT_TRUE(Consistent(m, "cf"));

  std::string fsck;
  ASSERT_TRUE(fs->CycleImage(&fsck));
  EXPECT_NE(fsck.find("exited 0"), std::string::npos) << fsck;
  ASSERT_TRUE(m.start());
  for (const auto& [name, content] : synced)
    EXPECT_EQ(HashOf(m.path(flip_case(name))), content_hash(content)) << name;
  EXPECT_EQ(get_inode_flags(m.path("cf")).flags & kCasefoldFl, kCasefoldFl);
  ASSERT_EQ(errno_of(::unlink(m.path("cf/FILLER").c_str())), Errno(0));
  EXPECT_EQ(errno_of(::mkdir(m.path("cf/subDIR").c_str(), 0755)), Errno(0));
  EXPECT_EQ(get_inode_flags(m.path("cf/SUBDIR")).flags & kCasefoldFl, kCasefoldFl);
  EXPECT_TRUE(Consistent(m, "cf"));
}

// ---- read-only -------------------------------------------------------------------------------

TEST(BackingReadOnly, RemountedReadOnlyUnderTheMountGivesErofsAndRecovers) {
  Mount m;
  auto fs = BackingFs::Ext4(m, 16);
  ASSERT_TRUE(fs->ok()) << fs->error();
  ASSERT_TRUE(m.start());
  ASSERT_EQ(errno_of(::mkdir(m.path("cf").c_str(), 0755)), Errno(0));
  ASSERT_EQ(set_inode_flags(m.path("cf"), kCasefoldFl), Errno(0));
  ASSERT_EQ(errno_of(::mkdir(m.path("cf/Empty").c_str(), 0755)), Errno(0));
  ASSERT_EQ(errno_of(::mkdir(m.path("plain").c_str(), 0755)), Errno(0));
  ASSERT_EQ(write_durably(m.path("cf/File"), "durable"), Errno(0));
  ASSERT_TRUE(fs->Remount("ro"));

  const std::string f = m.path("cf/FILE");
  EXPECT_EQ(read_file(f), "durable");
  EXPECT_EQ(list_dir(m.path("cf")), (std::vector<std::string>{"Empty", "File"}));
  EXPECT_EQ(create_excl(m.path("cf/New")), Errno(EROFS));
  EXPECT_EQ(errno_of(::open(f.c_str(), O_WRONLY | O_CLOEXEC)), Errno(EROFS));
  EXPECT_EQ(errno_of(::mkdir(m.path("cf/NewDir").c_str(), 0755)), Errno(EROFS));
  EXPECT_EQ(errno_of(::unlink(f.c_str())), Errno(EROFS));
  EXPECT_EQ(errno_of(::rename(f.c_str(), m.path("cf/Moved").c_str())), Errno(EROFS));
  EXPECT_EQ(errno_of(::symlink("x", m.path("cf/Link").c_str())), Errno(EROFS));
  EXPECT_EQ(errno_of(::chmod(f.c_str(), 0600)), Errno(EROFS));
  EXPECT_EQ(errno_of(::truncate(f.c_str(), 0)), Errno(EROFS));
  EXPECT_EQ(set_xattr(f, "user.k", "v"), Errno(EROFS));
  EXPECT_EQ(set_inode_flags(m.path("plain"), kCasefoldFl), Errno(EROFS));
  EXPECT_EQ(set_inode_flags(m.path("cf/empty"), 0), Errno(EROFS));
  for (const char* n : {"new", "NEW", "newdir", "MOVED", "link"})
    EXPECT_TRUE(DoesNotExist(m.path(std::string("cf/") + n)));
  EXPECT_EQ(get_inode_flags(m.path("plain")).flags & kCasefoldFl, 0u);
  EXPECT_EQ(get_inode_flags(m.path("cf/EMPTY")).flags & kCasefoldFl, kCasefoldFl);

  ASSERT_TRUE(fs->Remount("rw"));
  EXPECT_EQ(create_excl(m.path("cf/nEW")), Errno(0));
  EXPECT_EQ(create_excl(m.path("cf/New")), Errno(EEXIST));
  EXPECT_EQ(errno_of(::rename(f.c_str(), m.path("cf/Moved").c_str())), Errno(0));
  EXPECT_EQ(read_file(m.path("cf/moved")), "durable");
  EXPECT_TRUE(Consistent(m, "cf"));
  report_figure("EROFS faults injected (backing remounted read-only)", 13);
}

// ---- EPERM: immutable and append-only ---------------------------------------------------------

// The same operations on immutable / append-only files natively (ext4 /tmp) and through the
// mount (another spelling, casefold=all): identical errnos; the casefold index stays right.
TEST(BackingPermissions, ImmutableAndAppendOnlyGiveTheSameEpermAsTheBackingFs) {
  Mount m;
  InodeFlagsGuard guard;
  ASSERT_TRUE(m.start("casefold=all"));
  const std::string native = m.tpath("native");
  ASSERT_EQ(::mkdir(native.c_str(), 0755), 0);
  struct Where {
    std::string setup_root;  // where root sets flags (backing or native)
    std::string root;        // where the operations go
    bool spelled;
  };
  const Where worlds[] = {{native, native, false}, {m.backing(), m.mnt(), true}};
  std::vector<std::string> transcripts[2];
  for (int w = 0; w < 2; ++w) {
    const Where& W = worlds[w];
    auto S = [&](const std::string& rel) {
      return W.root + "/" + (W.spelled ? flip_case(rel) : rel);
    };
    auto B = [&](const std::string& rel) { return W.setup_root + "/" + rel; };
    ASSERT_EQ(::mkdir(B("idir").c_str(), 0755), 0);
    ASSERT_EQ(write_file(B("idir/inner"), "inner"), Errno(0));
    ASSERT_EQ(write_file(B("immutable"), "frozen"), Errno(0));
    ASSERT_EQ(write_file(B("appendonly"), "log:"), Errno(0));
    ASSERT_EQ(write_file(B("other"), "other"), Errno(0));
    for (const char* p : {"idir", "immutable", "appendonly"}) guard.add(B(p));
    ASSERT_TRUE(chattr("+i", B("idir")).ok());
    ASSERT_TRUE(chattr("+i", B("immutable")).ok());
    ASSERT_TRUE(chattr("+a", B("appendonly")).ok());
    auto& t = transcripts[w];
    auto rec = [&](const std::string& what, int e) { t.push_back(what + " = " + errno_text(e)); };
    for (const char* f : {"immutable", "appendonly"}) {
      const std::string F = f;
      rec(F + " open O_WRONLY", open_close(S(F), O_WRONLY));
      rec(F + " open O_WRONLY|O_TRUNC", open_close(S(F), O_WRONLY | O_TRUNC));
      {
        const int fd = ::open(S(F).c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
        rec(F + " open O_APPEND", fd < 0 ? errno : 0);
        if (fd >= 0) {
          rec(F + " append", err(::write(fd, "+", 1)));
          ::close(fd);
        }
      }
      rec(F + " truncate", err(::truncate(S(F).c_str(), 1)));
      rec(F + " unlink", err(::unlink(S(F).c_str())));
      rec(F + " rename", err(::rename(S(F).c_str(), S("renamed").c_str())));
      rec(F + " rename over", err(::rename(S("other").c_str(), S(F).c_str())));
      rec(F + " link", err(::link(S(F).c_str(), S("hard").c_str())));
      rec(F + " chmod", err(::chmod(S(F).c_str(), 0600)));
      rec(F + " chown", err(::chown(S(F).c_str(), 1, 1)));
      rec(F + " utimes", err(::utimensat(AT_FDCWD, S(F).c_str(), nullptr, 0)));
      rec(F + " setxattr", set_xattr(S(F), "user.k", "v").value);
      rec(F + " content " + read_file(S(F)).value_or("<unreadable>"), 0);
    }
    rec("idir create", create_excl(S("idir/new")).value);
    rec("idir mkdir", err(::mkdir(S("idir/newdir").c_str(), 0755)));
    rec("idir unlink", err(::unlink(S("idir/inner").c_str())));
    rec("idir rename", err(::rename(S("idir/inner").c_str(), S("idir/x").c_str())));
    rec("idir write inner", write_file(S("idir/inner"), "changed").value);
    rec("idir lookup new", lstat_of(S("idir/new")) ? 0 : errno);
    rec("idir lookup NEW", lstat_of(S("idir/NEW")) ? 0 : errno);
    rec("idir listing " + join(list_dir(S("idir")), ","), 0);
    // Root may lift the flags (CAP_LINUX_IMMUTABLE), through the mount as well.
    rec("chattr -i", chattr("-i", S("immutable")).ok() ? 0 : EPERM);
    rec("unlink after -i", err(::unlink(S("immutable").c_str())));
    rec("chattr -i dir", chattr("-i", S("idir")).ok() ? 0 : EPERM);
    rec("idir create after -i", create_excl(S("idir/new")).value);
  }
  EXPECT_EQ(transcripts[0], transcripts[1]);
  EXPECT_TRUE(Consistent(m, "idir"));
  EXPECT_NE(std::find(transcripts[0].begin(), transcripts[0].end(), "immutable unlink = EPERM"),
            transcripts[0].end());
  EXPECT_NE(std::find(transcripts[0].begin(), transcripts[0].end(), "appendonly append = OK"),
            transcripts[0].end());
  report_figure("EPERM faults compared (immutable, append-only)",
                static_cast<long long>(transcripts[0].size()));
}

// ---- EACCES -----------------------------------------------------------------------------------

TEST(BackingPermissions, ADirectoryLockedInTheBackingTreeGivesEaccesToUsersNotToRoot) {
  Mount m;
  UnusedIds ids;
  const Caller bob{"bob", ids.uid(), ids.gid(), {}};
  ASSERT_EQ(::mkdir(m.bpath("Locked").c_str(), 0777), 0);
  ASSERT_EQ(::chmod(m.bpath("Locked").c_str(), 0777), 0);
  ASSERT_EQ(write_file(m.bpath("Locked/Inside"), "in", 0644), Errno(0));
  ASSERT_EQ(::chmod(m.bpath("Locked/Inside").c_str(), 0666), 0);
  ASSERT_TRUE(m.start("casefold=all,allow_other,attr_timeout=0"));
  const std::string locked = m.path("LOCKED"), inside = m.path("locked/INSIDE");
  ASSERT_EQ(run_as_caller(bob, [&] { return read_file(inside) == "in" ? 0 : errno; }), 0);
  ASSERT_EQ(list_dir(m.path("locked")), std::vector<std::string>{"Inside"});  // index loaded

  ASSERT_EQ(::chmod(m.bpath("Locked").c_str(), 0), 0);  // the fault, directly in the backing
  EXPECT_EQ(run_as_caller(bob,
                          [&] {
                            struct stat st;
                            return err(::stat((locked + "/inside2").c_str(), &st));
                          }),
            EACCES);
  EXPECT_EQ(run_as_caller(bob, [&] { return err(::open(locked.c_str(), O_RDONLY | O_DIRECTORY)); }),
            EACCES);
  EXPECT_EQ(run_as_caller(bob, [&] { return create_excl(locked + "/Mine").value; }), EACCES);
  EXPECT_EQ(run_as_caller(bob, [&] { return err(::unlink(inside.c_str())); }), EACCES);
  // Root is not bound by the mode, as on the backing fs.
  EXPECT_EQ(read_file(m.path("locked/inside")), "in");
  EXPECT_EQ(create_excl(m.path("locked/RootsFile")), Errno(0));
  EXPECT_TRUE(DoesNotExist(m.path("locked/mine")));

  ASSERT_EQ(::chmod(m.bpath("Locked").c_str(), 0777), 0);
  EXPECT_EQ(run_as_caller(bob, [&] { return create_excl(locked + "/Mine").value; }), 0);
  EXPECT_EQ(list_dir(m.path("locked")), (std::vector<std::string>{"Inside", "Mine", "RootsFile"}));
  EXPECT_TRUE(Consistent(m, "Locked"));
}

// ---- EIO: the backing disk dies ----------------------------------------------------------------

// ext4's shutdown ioctl without flushing the journal is the standard stand-in for a power cut
// (fstests "godown"): everything fails with EIO from then on, and what was not committed is
// gone after the next mount. Files fsync'ed (with their directory) through foldfs, renames
// followed by an fsync of the directory, and directories made in a casefolded directory and
// fsync'ed keep their content, names and casefold flag.
TEST(BackingDies, PowerCutsOfTheBackingExt4KeepEverythingFsynced) {
#ifndef EXT4_IOC_SHUTDOWN
#define EXT4_IOC_SHUTDOWN _IOR('X', 125, __u32)
#endif
  const long rounds = env_long("FOLDFS_POWERCUT_ROUNDS", 3);
  Mount m;
  auto fs = BackingFs::Ext4(m, 64);
  ASSERT_TRUE(fs->ok()) << fs->error();
  ASSERT_TRUE(m.start());
  ASSERT_EQ(errno_of(::mkdir(m.path("cf").c_str(), 0755)), Errno(0));
  ASSERT_EQ(set_inode_flags(m.path("cf"), kCasefoldFl), Errno(0));
  ASSERT_EQ(fsync_path(m.path("cf")), Errno(0));

  // Everything fsync'ed in any round must survive every later power cut.
  std::map<std::string, std::string> durable;  // name -> content hash
  std::vector<std::string> durable_dirs;
  long unsynced_total = 0, unsynced_kept = 0, checked = 0;
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE("power cut " + std::to_string(round));
    const std::string r = "_r" + std::to_string(round);
    std::map<std::string, std::string> unsynced;
    for (int i = 0; i < 60; ++i) {
      const std::string name = "cf/File" + std::to_string(i) + r;
      const std::string content(1000 + 37 * i + 5 * static_cast<int>(round),
                                static_cast<char>('A' + (i + round) % 26));
      if (i % 3 == 0) {
        ASSERT_EQ(write_file(m.path(name), content), Errno(0));
        unsynced[name] = content_hash(content);
        continue;
      }
      ASSERT_EQ(write_durably(m.path(name), content), Errno(0));
      durable[name] = content_hash(content);
      if (i % 3 == 2) {  // renamed (to another spelling and name) and the directory fsync'ed
        const std::string to = "cf/RENAMED" + std::to_string(i) + r;
        ASSERT_EQ(errno_of(::rename(m.path(flip_case(name)).c_str(), m.path(to).c_str())),
                  Errno(0));
        ASSERT_EQ(fsync_path(m.path("cf")), Errno(0));
        durable.erase(name);
        durable[to] = content_hash(content);
      }
      if (i % 10 == 1) {
        const std::string dir = "cf/Dir" + std::to_string(i) + r;
        ASSERT_EQ(errno_of(::mkdir(m.path(dir).c_str(), 0755)), Errno(0));
        ASSERT_EQ(fsync_path(m.path(dir)), Errno(0));
        ASSERT_EQ(fsync_path(m.path("cf")), Errno(0));
        durable_dirs.push_back(dir);
      }
    }
    // A durable file of an earlier round replaced atomically (temp file, fsync, rename, fsync
    // of the directory), and another overwritten in place and fsync'ed.
    if (round > 0) {
      const std::string old_name = "cf/File1_r" + std::to_string(round - 1);
      const std::string fresh = "replaced in round " + std::to_string(round);
      ASSERT_EQ(write_durably(m.path("cf/Tmp" + r), fresh), Errno(0));
      ASSERT_EQ(
          errno_of(::rename(m.path("cf/tmp" + r).c_str(), m.path(flip_case(old_name)).c_str())),
          Errno(0));
      ASSERT_EQ(fsync_path(m.path("cf")), Errno(0));
      durable[old_name] = content_hash(fresh);
      const std::string in_place = "cf/File4_r" + std::to_string(round - 1);
      ASSERT_EQ(write_durably(m.path(in_place), "overwritten" + r), Errno(0));
      durable[in_place] = content_hash("overwritten" + r);
    }
    // Changes after the last fsync: may be lost, must not corrupt what was fsync'ed.
    for (int i = 0; i < 20; ++i)
      ASSERT_EQ(write_file(m.path("cf/Late" + std::to_string(i) + r), "late"), Errno(0));

    {
      const int fd = ::open(m.backing().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      ASSERT_GE(fd, 0);
      uint32_t flags = 2;  // EXT4_GOING_FLAGS_NOLOGFLUSH: nothing more reaches the disk
      ASSERT_EQ(::ioctl(fd, EXT4_IOC_SHUTDOWN, &flags), 0) << std::strerror(errno);
      ::close(fd);
    }
    // The dead disk: errors, promptly, and the daemon keeps answering.
    const std::string probe = m.path("cf/FILE1" + r);
    const int read_result = run_bounded(
        [&] {
          auto c = read_file(probe);
          return c ? 0 : errno;
        },
        std::chrono::seconds(20));
    EXPECT_NE(read_result, kTimedOut) << "a read hung after the backing disk died";
    const int create_result = run_bounded(
        [&] { return create_excl(m.path("cf/AfterDeath" + r)).value; }, std::chrono::seconds(20));
    EXPECT_EQ(create_result, EIO);
    const int list_result = run_bounded(
        [&] {
          auto l = list_dir(m.path("cf"));
          return l.size() == 1 && l[0].rfind("<", 0) == 0 ? 1 : 0;
        },
        std::chrono::seconds(20));
    EXPECT_NE(list_result, kTimedOut);
    EXPECT_FALSE(find_daemons(m.mnt()).empty()) << "the daemon died with its backing disk";

    // Power back: fsck, mount, foldfs again.
    std::string fsck;
    ASSERT_TRUE(fs->CycleImage(&fsck)) << fsck;
    ASSERT_TRUE(m.start());
    for (const auto& [name, hash] : durable) {
      const std::string got = HashOf(m.path(flip_case(name)));
      EXPECT_EQ(got, hash) << name << " was fsync'ed and is gone or has other content";
      ++checked;
    }
    for (const auto& dir : durable_dirs) {
      EXPECT_TRUE(IsDirectory(m.path(flip_case(dir))));
      EXPECT_EQ(get_inode_flags(m.path(dir)).flags & kCasefoldFl, kCasefoldFl)
          << dir << " lost its casefold flag";
    }
    for (const auto& [name, hash] : unsynced) {
      unsynced_kept += HashOf(m.path(name)) == hash;
      ++unsynced_total;
    }
    EXPECT_TRUE(Consistent(m, "cf"));
    if (::testing::Test::HasFailure()) break;
  }
  report_figure("power cuts (ext4 shutdown without journal flush)", rounds);
  report_figure("power cut: fsync'ed files checked intact after the cuts", checked);
  report_figure("power cut: fsync'ed casefolded directories intact",
                static_cast<long long>(durable_dirs.size()));
  report_figure("power cut: unsynced files that survived anyway",
                std::to_string(unsynced_kept) + " of " + std::to_string(unsynced_total));
}

// The backing filesystem is itself a FUSE filesystem (here: another foldfs) whose daemon dies:
// every operation fails promptly with the backing's error, nothing hangs, and the mount can be
// unmounted.
TEST(BackingDies, ABackingFuseFilesystemWhoseDaemonDiesGivesErrorsNotHangs) {
  Mount m;
  TempDir inner;
  ASSERT_EQ(::mkdir(inner.path("cf").c_str(), 0755), 0);
  ASSERT_EQ(write_file(inner.path("cf/File"), "x"), Errno(0));
  auto fs = BackingFs::Command(
      m, {foldfs_binary(), "mount", "-o", "casefold=all", inner.path(), m.backing()});
  ASSERT_TRUE(fs->ok()) << fs->error();
  const std::vector<pid_t> inner_daemons = find_daemons(m.backing());
  ASSERT_FALSE(inner_daemons.empty());
  ASSERT_TRUE(m.start("casefold=all"));
  ASSERT_EQ(read_file(m.path("CF/FILE")), "x");
  ASSERT_EQ(write_file(m.path("cf/Second"), "y"), Errno(0));

  for (pid_t p : inner_daemons) ::kill(p, SIGKILL);
  for (int i = 0; i < 500 && std::any_of(inner_daemons.begin(), inner_daemons.end(), alive); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));

  int failed_promptly = 0;
  const std::vector<std::function<int()>> ops = {
      [&] { return read_file(m.path("cf/file")) ? 0 : errno; },
      [&] { return create_excl(m.path("cf/Third")).value; },
      [&] { return errno_of(::mkdir(m.path("NewDir").c_str(), 0755)).value; },
      [&] { return errno_of(::unlink(m.path("cf/SECOND").c_str())).value; },
      [&] { return list_dir(m.path("cf")).at(0).rfind("<", 0) == 0 ? EIO : 0; },
      [&] {
        struct statvfs sv;
        return errno_of(::statvfs(m.mnt().c_str(), &sv)).value;
      },
  };
  for (const auto& op : ops) {
    const int r = run_bounded(op, std::chrono::seconds(20));
    EXPECT_NE(r, kTimedOut) << "an operation hung on a dead backing filesystem";
    failed_promptly += r != kTimedOut && r != 0;
  }
  EXPECT_GE(failed_promptly, 4);
  EXPECT_FALSE(find_daemons(m.mnt()).empty()) << "foldfs died with its backing filesystem";
  EXPECT_TRUE(m.unmount());
  report_figure("dead FUSE backing: operations that failed promptly", failed_promptly);
}

}  // namespace
}  // namespace foldfs::itest
