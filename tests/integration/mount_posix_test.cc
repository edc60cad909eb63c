// Ordinary POSIX behaviour through the mount: operations and their errors, case-sensitivity of
// directories without the flag, ENAMETOOLONG, errors of the backing fs, ro, symlink
// confinement (the daemon never follows a symlink of the backing tree) and allow_other.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include "harness.h"

namespace foldfs::itest {
namespace {

using PosixTest = MountedTest;

// ---- operations in directories without the flag ------------------------------------------------

using PosixOps = PosixTest;

TEST_F(PosixOps, DirectoriesWithoutTheFlagAreCaseSensitive) {
  ASSERT_EQ(write_file(P("a"), "lower"), Errno(0));
  ASSERT_EQ(write_file(P("A"), "upper"), Errno(0));
  EXPECT_EQ(read_file(P("a")), "lower");
  EXPECT_EQ(read_file(P("A")), "upper");
  EXPECT_FALSE(SameInode(P("a"), P("A")));
  EXPECT_EQ(list_dir(P("")), (std::vector<std::string>{"A", "a"}));
  EXPECT_EQ(create_excl(P("b")), Errno(0));
  EXPECT_TRUE(DoesNotExist(P("B")));
  ASSERT_EQ(errno_of(::unlink(P("a").c_str())), Errno(0));
  EXPECT_TRUE(DoesNotExist(P("a")));
  EXPECT_EQ(read_file(P("A")), "upper");
  ASSERT_NO_FATAL_FAILURE(Mkdir("sub"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("SUB"));
  EXPECT_EQ(list_dir(P("")), (std::vector<std::string>{"A", "SUB", "b", "sub"}));
}

TEST_F(PosixOps, ReadWriteAppendTruncate) {
  ASSERT_EQ(write_file(P("f"), "hello"), Errno(0));
  ASSERT_EQ(append_file(P("f"), " world"), Errno(0));
  EXPECT_EQ(read_file(P("f")), "hello world");
  ASSERT_EQ(errno_of(::truncate(P("f").c_str(), 5)), Errno(0));
  EXPECT_EQ(read_file(P("f")), "hello");
  int fd = ::open(P("f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::pwrite(fd, "J", 1, 0), 1);
  EXPECT_EQ(::ftruncate(fd, 8), 0);
  EXPECT_EQ(::fsync(fd), 0);
  EXPECT_EQ(::fdatasync(fd), 0);
  ::close(fd);
  EXPECT_EQ(read_file(P("f")), std::string("Jello\0\0\0", 8));
  EXPECT_EQ(read_file(m.bpath("f")), std::string("Jello\0\0\0", 8));
  auto st = lstat_of(P("f"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_size, 8);
}

TEST_F(PosixOps, LargeFileRoundTrips) {
  std::string data(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 131) ^ (i >> 9));
  ASSERT_EQ(write_file(P("big"), data), Errno(0));
  auto back = read_file(P("big"));
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(*back == data) << "content differs (size " << back->size() << ")";
  EXPECT_TRUE(read_file(m.bpath("big")) == data);
}

TEST_F(PosixOps, MmapSeesFileContent) {
  ASSERT_EQ(write_file(P("m"), "mapped content"), Errno(0));
  int fd = ::open(P("m").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  void* p = ::mmap(nullptr, 14, PROT_READ, MAP_PRIVATE, fd, 0);
  ASSERT_NE(p, MAP_FAILED) << Errno(errno);
  EXPECT_EQ(std::string(static_cast<char*>(p), 14), "mapped content");
  ::munmap(p, 14);
  ::close(fd);
}

TEST_F(PosixOps, CreationAndRemovalErrors) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("d"));
  ASSERT_EQ(touch(P("d/f")), Errno(0));
  EXPECT_EQ(errno_of(::mkdir(P("d").c_str(), 0755)), Errno(EEXIST));
  EXPECT_EQ(create_excl(P("d/f")), Errno(EEXIST));
  EXPECT_EQ(errno_of(::rmdir(P("d").c_str())), Errno(ENOTEMPTY));
  EXPECT_EQ(errno_of(::rmdir(P("d/f").c_str())), Errno(ENOTDIR));
  EXPECT_EQ(errno_of(::unlink(P("d").c_str())), Errno(EISDIR));
  EXPECT_EQ(errno_of(::unlink(P("missing").c_str())), Errno(ENOENT));
  EXPECT_EQ(errno_of(::open(P("missing").c_str(), O_RDONLY)), Errno(ENOENT));
  EXPECT_EQ(errno_of(::open(P("d").c_str(), O_WRONLY)), Errno(EISDIR));
  EXPECT_EQ(errno_of(::mkdir(P("d/f/sub").c_str(), 0755)), Errno(ENOTDIR));
  EXPECT_EQ(errno_of(::open(P("d/f/x").c_str(), O_RDONLY)), Errno(ENOTDIR));
  ASSERT_EQ(errno_of(::unlink(P("d/f").c_str())), Errno(0));
  EXPECT_EQ(errno_of(::rmdir(P("d").c_str())), Errno(0));
  EXPECT_EQ(list_dir(P("")), std::vector<std::string>{});
  EXPECT_EQ(list_dir(m.bpath("")), std::vector<std::string>{});
}

TEST_F(PosixOps, RenameFilesAndDirectories) {
  ASSERT_EQ(write_file(P("a"), "A"), Errno(0));
  ASSERT_EQ(write_file(P("b"), "B"), Errno(0));
  ASSERT_NO_FATAL_FAILURE(Mkdir("d1"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("d2"));
  ASSERT_EQ(touch(P("d2/x")), Errno(0));
  ASSERT_NO_FATAL_FAILURE(Mkdir("empty"));

  EXPECT_EQ(errno_of(::rename(P("a").c_str(), P("d1/a2").c_str())), Errno(0));
  EXPECT_EQ(read_file(P("d1/a2")), "A");
  EXPECT_TRUE(DoesNotExist(P("a")));
  EXPECT_EQ(errno_of(::rename(P("b").c_str(), P("d1/a2").c_str())), Errno(0));  // replaces
  EXPECT_EQ(read_file(P("d1/a2")), "B");
  EXPECT_EQ(errno_of(::rename(P("d1").c_str(), P("d2/d1").c_str())), Errno(0));
  EXPECT_EQ(read_file(P("d2/d1/a2")), "B");
  // POSIX allows both; ext4 says ENOTEMPTY, xfs EEXIST, and foldfs passes on what it is told.
  const Errno onto_full = errno_of(::rename(P("empty").c_str(), P("d2").c_str()));
  EXPECT_TRUE(onto_full == Errno(ENOTEMPTY) || onto_full == Errno(EEXIST)) << onto_full;
  EXPECT_EQ(errno_of(::rename(P("empty").c_str(), P("d2/x").c_str())), Errno(ENOTDIR));
  EXPECT_EQ(errno_of(::rename(P("d2/x").c_str(), P("empty").c_str())), Errno(EISDIR));
  EXPECT_EQ(errno_of(::rename(P("missing").c_str(), P("y").c_str())), Errno(ENOENT));
  EXPECT_EQ(list_dir(m.bpath("d2")), (std::vector<std::string>{"d1", "x"}));
  EXPECT_EQ(list_dir(m.bpath("d2/d1")), std::vector<std::string>{"a2"});
}

TEST_F(PosixOps, HardLinksShareContentAndCountLinks) {
  ASSERT_EQ(write_file(P("orig"), "shared"), Errno(0));
  ASSERT_EQ(errno_of(::link(P("orig").c_str(), P("alias").c_str())), Errno(0));
  EXPECT_TRUE(SameInode(P("orig"), P("alias")));
  EXPECT_EQ(must_lstat(P("orig")).st_nlink, 2u);
  ASSERT_EQ(append_file(P("alias"), "!"), Errno(0));
  EXPECT_EQ(read_file(P("orig")), "shared!");
  EXPECT_EQ(errno_of(::link(P("orig").c_str(), P("alias").c_str())), Errno(EEXIST));
  ASSERT_EQ(errno_of(::unlink(P("orig").c_str())), Errno(0));
  EXPECT_EQ(must_lstat(P("alias")).st_nlink, 1u);
  EXPECT_EQ(read_file(P("alias")), "shared!");
  EXPECT_EQ(must_lstat(m.bpath("alias")).st_nlink, 1u);
}

TEST_F(PosixOps, SymlinksReadlinkAndFollowing) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("dir"));
  ASSERT_EQ(write_file(P("dir/target"), "t"), Errno(0));
  ASSERT_EQ(errno_of(::symlink("dir/target", P("rel").c_str())), Errno(0));
  ASSERT_EQ(errno_of(::symlink("dir", P("dirlink").c_str())), Errno(0));
  ASSERT_EQ(errno_of(::symlink("nowhere", P("dangling").c_str())), Errno(0));
  EXPECT_TRUE(IsSymlink(P("rel")));
  EXPECT_EQ(readlink_of(P("rel")), "dir/target");
  EXPECT_EQ(readlink_of(m.bpath("rel")), "dir/target");
  EXPECT_EQ(read_file(P("rel")), "t");
  EXPECT_EQ(read_file(P("dirlink/target")), "t");
  EXPECT_TRUE(IsSymlink(P("dangling")));
  EXPECT_EQ(errno_of(::open(P("dangling").c_str(), O_RDONLY)), Errno(ENOENT));
  EXPECT_EQ(errno_of(::open(P("rel").c_str(), O_RDONLY | O_NOFOLLOW)), Errno(ELOOP));
  EXPECT_EQ(must_lstat(P("rel")).st_size, 10);
  EXPECT_EQ(errno_of(::symlink("x", P("rel").c_str())), Errno(EEXIST));
}

TEST_F(PosixOps, ChmodChownAndTimes) {
  ASSERT_EQ(touch(P("f"), 0644), Errno(0));
  ASSERT_EQ(errno_of(::chmod(P("f").c_str(), 0600)), Errno(0));
  EXPECT_EQ(must_lstat(P("f")).st_mode & 07777, 0600u);
  EXPECT_EQ(must_lstat(m.bpath("f")).st_mode & 07777, 0600u);
  ASSERT_EQ(errno_of(::chown(P("f").c_str(), 1234, 5678)), Errno(0));
  EXPECT_EQ(must_lstat(P("f")).st_uid, 1234u);
  EXPECT_EQ(must_lstat(m.bpath("f")).st_uid, 1234u);
  EXPECT_EQ(must_lstat(m.bpath("f")).st_gid, 5678u);
  struct timespec ts[2] = {{1000000000, 5}, {1100000000, 0}};
  ASSERT_EQ(errno_of(::utimensat(AT_FDCWD, P("f").c_str(), ts, 0)), Errno(0));
  EXPECT_EQ(must_lstat(P("f")).st_mtim.tv_sec, 1100000000);
  EXPECT_EQ(must_lstat(P("f")).st_atim.tv_sec, 1000000000);
  EXPECT_EQ(must_lstat(m.bpath("f")).st_mtim.tv_sec, 1100000000);
}

TEST_F(PosixOps, FifoAndEmptyDirectoryListing) {
  ASSERT_EQ(errno_of(::mkfifo(P("fifo").c_str(), 0644)), Errno(0));
  EXPECT_TRUE(S_ISFIFO(must_lstat(P("fifo")).st_mode));
  EXPECT_TRUE(S_ISFIFO(must_lstat(m.bpath("fifo")).st_mode));
  ASSERT_NO_FATAL_FAILURE(Mkdir("empty"));
  EXPECT_EQ(list_dir(P("empty")), std::vector<std::string>{});
}

TEST_F(PosixOps, ReaddirListsManyEntriesExactlyOnce) {
  std::vector<std::string> want;
  for (int i = 0; i < 600; ++i) {
    std::string n = "entry-" + std::to_string(i) + std::string(i % 50, 'x');
    ASSERT_EQ(touch(P(n)), Errno(0));
    want.push_back(n);
  }
  std::sort(want.begin(), want.end());
  EXPECT_EQ(list_dir(P("")), want);
}

TEST_F(PosixOps, UserXattrsOnFiles) {
  ASSERT_EQ(touch(P("f")), Errno(0));
  EXPECT_EQ(get_xattr(P("f"), "user.none").error, Errno(ENODATA));
  EXPECT_EQ(set_xattr(P("f"), "user.k", "v1"), Errno(0));
  EXPECT_EQ(set_xattr(P("f"), "user.k", "v2", XATTR_CREATE), Errno(EEXIST));
  EXPECT_EQ(set_xattr(P("f"), "user.other", "v", XATTR_REPLACE), Errno(ENODATA));
  EXPECT_EQ(get_xattr(P("f"), "user.k").value, "v1");
  EXPECT_EQ(get_xattr(m.bpath("f"), "user.k").value, "v1");
  EXPECT_EQ(list_xattrs(P("f")), std::vector<std::string>{"user.k"});
  EXPECT_EQ(remove_xattr(P("f"), "user.k"), Errno(0));
  EXPECT_EQ(remove_xattr(P("f"), "user.k"), Errno(ENODATA));
  EXPECT_EQ(list_xattrs(P("f")), std::vector<std::string>{});
}

TEST_F(PosixOps, StatvfsWorks) {
  struct statvfs sv;
  ASSERT_EQ(errno_of(::statvfs(P("").c_str(), &sv)), Errno(0));
  EXPECT_GT(sv.f_blocks, 0u);
  EXPECT_GT(sv.f_bsize, 0u);
}

// ---- name length ------------------------------------------------------------------------------

class NameLength : public PosixTest {
 protected:
  void SetUp() override {
    PosixTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(Mkdir("plain"));
    ASSERT_NO_FATAL_FAILURE(Mkdir("cf"));
    RunResult r = chattr("+F", P("cf"));
    ASSERT_TRUE(r.ok()) << r;
  }
};

TEST_F(NameLength, NamesOver255BytesFailWithEnametoolong) {
  for (const std::string dir : {"plain", "cf"}) {
    SCOPED_TRACE(dir);
    const std::string ok(255, 'n'), bad(256, 'n');
    EXPECT_EQ(touch(P(dir + "/" + ok)), Errno(0));
    EXPECT_EQ(touch(P(dir + "/" + bad)), Errno(ENAMETOOLONG));
    EXPECT_EQ(errno_of(::mkdir(P(dir + "/" + bad).c_str(), 0755)), Errno(ENAMETOOLONG));
    EXPECT_EQ(errno_of(::symlink("t", P(dir + "/" + bad).c_str())), Errno(ENAMETOOLONG));
    EXPECT_EQ(errno_of(::link(P(dir + "/" + ok).c_str(), P(dir + "/" + bad).c_str())),
              Errno(ENAMETOOLONG));
    EXPECT_EQ(errno_of(::rename(P(dir + "/" + ok).c_str(), P(dir + "/" + bad).c_str())),
              Errno(ENAMETOOLONG));
    struct stat st;
    EXPECT_EQ(errno_of(::lstat(P(dir + "/" + bad).c_str(), &st)), Errno(ENAMETOOLONG));
    EXPECT_EQ(list_dir(P(dir)), std::vector<std::string>{ok});
  }
}

TEST_F(NameLength, MultiByteNameOf255BytesWorksInCasefoldedDir) {
  // 127 x U+00DF (sharp s, 2 bytes) + "a": 255 bytes; its key is 255 bytes ("ss" x 127 + "a").
  std::string sharp;
  for (int i = 0; i < 127; ++i) sharp += "\u00df";
  ASSERT_EQ(write_file(P("cf/" + sharp + "a"), "s"), Errno(0));
  EXPECT_EQ(read_file(P("cf/" + sharp + "A")), "s");
  // 127 x U+0390 (2 bytes, folds to 6 bytes) + "a": 255 bytes, key 763 bytes.
  std::string iota;
  for (int i = 0; i < 127; ++i) iota += "\u0390";
  ASSERT_EQ(write_file(P("cf/" + iota + "a"), "i"), Errno(0));
  EXPECT_EQ(read_file(P("cf/" + iota + "A")), "i");
  EXPECT_EQ(create_excl(P("cf/" + iota + "A")), Errno(EEXIST));
  EXPECT_EQ(list_dir(P("cf")).size(), 2u);
  // 256 bytes of multi-byte characters are too long even though they are 128 characters.
  EXPECT_EQ(touch(P("cf/" + sharp + "\u00df")), Errno(ENAMETOOLONG));
}

// ---- errors of the backing filesystem -----------------------------------------------------------

// Mounts something on the backing dir (before foldfs); on destruction unmounts foldfs first.
class BackingMount {
 public:
  BackingMount(Mount& m, const std::vector<std::vector<std::string>>& cmds) : m_(m) {
    for (const auto& c : cmds) {
      RunResult r = run(c);
      if (!r.ok()) {
        error_ = r.describe();
        return;
      }
    }
    ok_ = true;
  }
  ~BackingMount() {
    if (m_.mounted()) {
      EXPECT_TRUE(m_.unmount());
    }
    while (is_mount_point(m_.backing())) {
      RunResult r = run({"umount", m_.backing()});
      if (!r.ok()) {
        ADD_FAILURE() << r;
        run({"umount", "-l", m_.backing()});
        break;
      }
    }
  }
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }

 private:
  Mount& m_;
  bool ok_ = false;
  std::string error_;
};

TEST(BackingErrors, FullBackingFilesystemGivesEnospc) {
  Mount m;
  BackingMount tmpfs(m,
                     {{"mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", m.backing()}});
  ASSERT_TRUE(tmpfs.ok()) << tmpfs.error();
  ASSERT_TRUE(m.start());
  int fd = ::open(m.path("big").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << Errno(errno);
  std::string chunk(64 * 1024, 'z');
  Errno first(0);
  for (int i = 0; i < 32 && first == Errno(0); ++i)
    if (::write(fd, chunk.data(), chunk.size()) < 0) first = Errno(errno);
  if (first == Errno(0) && ::fsync(fd) != 0) first = Errno(errno);
  if (::close(fd) != 0 && first == Errno(0)) first = Errno(errno);
  EXPECT_EQ(first, Errno(ENOSPC));
}

TEST(BackingErrors, ReadOnlyBackingGivesErofs) {
  Mount m;
  ASSERT_EQ(write_file(m.bpath("existing"), "old"), Errno(0));
  BackingMount ro(m, {{"mount", "--bind", m.backing(), m.backing()},
                      {"mount", "-o", "remount,bind,ro", m.backing()}});
  ASSERT_TRUE(ro.ok()) << ro.error();
  ASSERT_TRUE(m.start());
  EXPECT_EQ(read_file(m.path("existing")), "old");
  EXPECT_EQ(touch(m.path("new")), Errno(EROFS));
  EXPECT_EQ(write_file(m.path("existing"), "new"), Errno(EROFS));
  EXPECT_EQ(errno_of(::mkdir(m.path("dir").c_str(), 0755)), Errno(EROFS));
  EXPECT_EQ(errno_of(::unlink(m.path("existing").c_str())), Errno(EROFS));
  EXPECT_EQ(read_file(m.bpath("existing")), "old");
}

// ---- ro -----------------------------------------------------------------------------------------

TEST(ReadOnlyMount, WritesFailWithErofsAndReadsWork) {
  Mount m;
  ASSERT_EQ(write_file(m.bpath("file"), "content"), Errno(0));
  ASSERT_EQ(::mkdir(m.bpath("dir").c_str(), 0755), 0);
  ASSERT_TRUE(m.start("ro"));
  EXPECT_EQ(read_file(m.path("file")), "content");
  EXPECT_EQ(list_dir(m.path("")), (std::vector<std::string>{"dir", "file"}));
  EXPECT_EQ(write_file(m.path("file"), "x"), Errno(EROFS));
  EXPECT_EQ(touch(m.path("new")), Errno(EROFS));
  EXPECT_EQ(errno_of(::mkdir(m.path("newdir").c_str(), 0755)), Errno(EROFS));
  EXPECT_EQ(errno_of(::unlink(m.path("file").c_str())), Errno(EROFS));
  EXPECT_EQ(errno_of(::rmdir(m.path("dir").c_str())), Errno(EROFS));
  EXPECT_EQ(errno_of(::rename(m.path("file").c_str(), m.path("moved").c_str())), Errno(EROFS));
  EXPECT_EQ(errno_of(::symlink("file", m.path("link").c_str())), Errno(EROFS));
  EXPECT_EQ(errno_of(::link(m.path("file").c_str(), m.path("hard").c_str())), Errno(EROFS));
  EXPECT_EQ(errno_of(::chmod(m.path("file").c_str(), 0600)), Errno(EROFS));
  EXPECT_EQ(set_xattr(m.path("file"), "user.k", "v"), Errno(EROFS));
  EXPECT_EQ(read_file(m.bpath("file")), "content");
  EXPECT_EQ(list_dir(m.bpath("")), (std::vector<std::string>{"dir", "file"}));
}

// ---- symlink confinement ----------------------------------------------------------------------

class SymlinkConfinement : public ::testing::Test {
 protected:
  void SetUp() override {
    outside = m.tpath("outside.txt");
    ASSERT_EQ(write_file(outside, "secret"), Errno(0));
    ASSERT_EQ(::chmod(outside.c_str(), 0644), 0);
    struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, outside.c_str(), ts, 0), 0);
    ASSERT_TRUE(m.start());
  }
  // The outside file still has its owner, mode, times, content and no xattr. (Reading it
  // through a symlink legitimately updates its atime: pass was_read.)
  void ExpectOutsideUntouched(bool was_read = false) {
    auto st = lstat_of(outside);
    ASSERT_TRUE(st.has_value()) << "the outside file is gone";
    EXPECT_EQ(st->st_uid, 0u);
    EXPECT_EQ(st->st_gid, 0u);
    EXPECT_EQ(st->st_mode & 07777, 0644u);
    EXPECT_EQ(st->st_mtim.tv_sec, 1000000000);
    if (!was_read) {
      EXPECT_EQ(st->st_atim.tv_sec, 1000000000);
    }
    EXPECT_EQ(read_file(outside), "secret");
    EXPECT_EQ(get_xattr(outside, "trusted.itest").error, Errno(ENODATA));
  }
  Mount m;
  std::string outside;
};

TEST_F(SymlinkConfinement, LchownActsOnTheLink) {
  ASSERT_EQ(errno_of(::symlink(outside.c_str(), m.path("link").c_str())), Errno(0));
  EXPECT_EQ(errno_of(::lchown(m.path("link").c_str(), 12345, 12345)), Errno(0));
  EXPECT_EQ(must_lstat(m.bpath("link")).st_uid, 12345u);
  EXPECT_EQ(must_lstat(m.bpath("link")).st_gid, 12345u);
  EXPECT_EQ(must_lstat(m.path("link")).st_uid, 12345u);
  ASSERT_NO_FATAL_FAILURE(ExpectOutsideUntouched());
}

TEST_F(SymlinkConfinement, UtimensatNoFollowActsOnTheLink) {
  ASSERT_EQ(errno_of(::symlink(outside.c_str(), m.path("link").c_str())), Errno(0));
  struct timespec ts[2] = {{1500000000, 0}, {1600000000, 0}};
  EXPECT_EQ(errno_of(::utimensat(AT_FDCWD, m.path("link").c_str(), ts, AT_SYMLINK_NOFOLLOW)),
            Errno(0));
  EXPECT_EQ(must_lstat(m.bpath("link")).st_mtim.tv_sec, 1600000000);
  ASSERT_NO_FATAL_FAILURE(ExpectOutsideUntouched());
}

TEST_F(SymlinkConfinement, LsetxattrActsOnTheLink) {
  ASSERT_EQ(errno_of(::symlink(outside.c_str(), m.path("link").c_str())), Errno(0));
  EXPECT_EQ(set_xattr(m.path("link"), "trusted.itest", "on-link"), Errno(0));
  EXPECT_EQ(get_xattr(m.bpath("link"), "trusted.itest").value, "on-link");
  EXPECT_EQ(get_xattr(m.path("link"), "trusted.itest").value, "on-link");
  ASSERT_NO_FATAL_FAILURE(ExpectOutsideUntouched());
}

TEST_F(SymlinkConfinement, RenameAndUnlinkActOnTheLink) {
  ASSERT_EQ(errno_of(::symlink(outside.c_str(), m.path("link").c_str())), Errno(0));
  EXPECT_EQ(errno_of(::rename(m.path("link").c_str(), m.path("moved").c_str())), Errno(0));
  EXPECT_EQ(readlink_of(m.path("moved")), outside);
  EXPECT_EQ(errno_of(::unlink(m.path("moved").c_str())), Errno(0));
  EXPECT_EQ(list_dir(m.bpath("")), std::vector<std::string>{});
  ASSERT_NO_FATAL_FAILURE(ExpectOutsideUntouched());
}

TEST_F(SymlinkConfinement, LinkOperationsThroughOtherSpellingsInACasefoldedDir) {
  ASSERT_EQ(errno_of(::mkdir(m.path("cf").c_str(), 0755)), Errno(0));
  RunResult r = chattr("+F", m.path("cf"));
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_EQ(errno_of(::symlink(outside.c_str(), m.path("cf/Link").c_str())), Errno(0));
  EXPECT_EQ(errno_of(::lchown(m.path("cf/LINK").c_str(), 12345, 12345)), Errno(0));
  struct timespec ts[2] = {{1500000000, 0}, {1600000000, 0}};
  EXPECT_EQ(errno_of(::utimensat(AT_FDCWD, m.path("cf/link").c_str(), ts, AT_SYMLINK_NOFOLLOW)),
            Errno(0));
  EXPECT_EQ(set_xattr(m.path("cf/lINK"), "trusted.itest", "on-link"), Errno(0));
  auto st = lstat_of(m.bpath("cf/Link"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_uid, 12345u);
  EXPECT_EQ(st->st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(get_xattr(m.bpath("cf/Link"), "trusted.itest").value, "on-link");
  EXPECT_EQ(readlink_of(m.path("cf/LINK")), outside);
  ASSERT_NO_FATAL_FAILURE(ExpectOutsideUntouched());
}

TEST_F(SymlinkConfinement, OpeningThroughASymlinkFollowsItLikeTheKernelDoes) {
  // Not a breach: the kernel resolves symlinks; the daemon only hands out the link.
  ASSERT_EQ(errno_of(::symlink(outside.c_str(), m.path("link").c_str())), Errno(0));
  EXPECT_EQ(read_file(m.path("link")), "secret");
  ASSERT_NO_FATAL_FAILURE(ExpectOutsideUntouched(/*was_read=*/true));
}

TEST_F(SymlinkConfinement, BackingDirectorySwappedForASymlinkDoesNotRedirectOperations) {
  // A directory the kernel already knows is replaced, directly in the backing tree, by a
  // symlink to a directory outside. Operations relative to the already-open directory must not
  // reach the outside directory.
  const std::string outdir = m.tpath("outdir");
  ASSERT_EQ(::mkdir(outdir.c_str(), 0755), 0);
  ASSERT_EQ(write_file(outdir + "/f", "outside"), Errno(0));
  ASSERT_EQ(::chmod((outdir + "/f").c_str(), 0644), 0);
  ASSERT_EQ(errno_of(::mkdir(m.path("d").c_str(), 0755)), Errno(0));
  ASSERT_EQ(write_file(m.path("d/f"), "inside"), Errno(0));
  int dfd = ::open(m.path("d").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dfd, 0);
  ASSERT_EQ(::rename(m.bpath("d").c_str(), m.bpath("d.real").c_str()), 0);
  ASSERT_EQ(::symlink(outdir.c_str(), m.bpath("d").c_str()), 0);

  (void)::fchmodat(dfd, "f", 0600, 0);
  int fd = ::openat(dfd, "f", O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd >= 0) {
    (void)!::write(fd, "pwned", 5);
    ::close(fd);
  }
  fd = ::openat(dfd, "created", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
  (void)::mkdirat(dfd, "newdir", 0755);
  (void)::symlinkat("x", dfd, "newlink");
  (void)::unlinkat(dfd, "f", 0);
  ::close(dfd);

  EXPECT_EQ(list_dir(outdir), std::vector<std::string>{"f"});
  EXPECT_EQ(read_file(outdir + "/f"), "outside");
  auto st = lstat_of(outdir + "/f");
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_mode & 07777, 0644u);
}

// ---- allow_other
// ----------------------------------------------------------------------------------

constexpr uid_t kUid = 12345;
constexpr gid_t kGid = 12345;

class AllowOther : public PosixTest {
  std::string MountOptions() const override { return "casefold=all,allow_other"; }
};

TEST_F(AllowOther, ObjectsCreatedByAnotherUserAreOwnedByThem) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("pub"));
  ASSERT_EQ(::chmod(P("pub").c_str(), 01777), 0);
  const std::string pub = P("pub");
  EXPECT_EQ(run_as(kUid, kGid, [&] { return touch(pub + "/file").value; }), 0);
  EXPECT_EQ(
      run_as(kUid, kGid, [&] { return errno_of(::mkdir((pub + "/dir").c_str(), 0755)).value; }), 0);
  EXPECT_EQ(run_as(kUid, kGid,
                   [&] { return errno_of(::symlink("file", (pub + "/link").c_str())).value; }),
            0);
  EXPECT_EQ(
      run_as(kUid, kGid, [&] { return errno_of(::mkfifo((pub + "/fifo").c_str(), 0644)).value; }),
      0);
  for (const char* n : {"file", "dir", "link", "fifo"}) {
    SCOPED_TRACE(n);
    auto b = lstat_of(m.bpath(std::string("pub/") + n));
    ASSERT_TRUE(b.has_value()) << "missing in the backing tree";
    EXPECT_EQ(b->st_uid, kUid);
    EXPECT_EQ(b->st_gid, kGid);
    auto v = lstat_of(P(std::string("PUB/") + n));
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->st_uid, kUid);
    EXPECT_EQ(v->st_gid, kGid);
  }
  // The other user can use the casefolded names too.
  EXPECT_EQ(run_as(kUid, kGid, [&] { return write_file(pub + "/FILE", "mine").value; }), 0);
  EXPECT_EQ(read_file(m.bpath("pub/file")), "mine");
}

TEST_F(AllowOther, AnotherUserCannotReadARootOnlyFile) {
  ASSERT_EQ(write_file(P("secret"), "root only", 0600), Errno(0));
  ASSERT_EQ(::chmod(P("secret").c_str(), 0600), 0);
  ASSERT_EQ(write_file(P("public"), "everyone", 0644), Errno(0));
  const std::string secret = P("secret"), upper = P("SECRET"), pub = P("public");
  EXPECT_EQ(run_as(kUid, kGid, [&] { return errno_of(::open(secret.c_str(), O_RDONLY)).value; }),
            EACCES);
  EXPECT_EQ(run_as(kUid, kGid, [&] { return errno_of(::open(upper.c_str(), O_RDONLY)).value; }),
            EACCES);
  EXPECT_EQ(run_as(kUid, kGid, [&] { return read_file(pub) == "everyone" ? 0 : 1; }), 0);
  EXPECT_EQ(run_as(kUid, kGid, [&] { return touch(secret + "2").value; }), EACCES)
      << "the mount root (0755 root) must not be writable by another user";
}

TEST(AllowOtherAbsent, OtherUsersAreDeniedWithoutAllowOther) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=all"));
  ASSERT_EQ(write_file(m.path("public"), "everyone", 0644), Errno(0));
  const std::string mnt = m.mnt(), pub = m.path("public");
  EXPECT_EQ(run_as(kUid, kGid,
                   [&] {
                     struct stat st;
                     return errno_of(::stat(mnt.c_str(), &st)).value;
                   }),
            EACCES);
  EXPECT_EQ(run_as(kUid, kGid, [&] { return errno_of(::open(pub.c_str(), O_RDONLY)).value; }),
            EACCES);
}

}  // namespace
}  // namespace foldfs::itest
