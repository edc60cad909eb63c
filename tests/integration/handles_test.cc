// File handles through the mount (issue 4 §5): name_to_handle_at/open_by_handle_at work for
// files and directories, survive unmount + remount + drop_caches (the kernel then reconnects
// the inode through LOOKUP "." and ".."), entries reached that way obey the casefold rules and
// the coherence contract, and a handle naming something outside the backing tree is refused.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "harness.h"

namespace foldfs::itest {
namespace {

std::string read_at(int dirfd, const char* name) {
  const int fd = ::openat(dirfd, name, O_RDONLY);
  if (fd < 0) return std::string("<openat: ") + std::strerror(errno) + ">";
  char buf[256];
  const ssize_t n = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  return n < 0 ? "<read error>" : std::string(buf, static_cast<size_t>(n));
}

bool exists_at(int dirfd, const char* name) {
  struct stat st;
  return ::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

TEST(FileHandles, OpenFilesAndDirectoriesByHandle) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=all"));
  ASSERT_EQ(errno_of(::mkdir(m.path("Game").c_str(), 0755)), Errno(0));
  ASSERT_EQ(write_file(m.path("Game/Data.pak"), "payload"), Errno(0));
  Handle dir = handle_of(m.path("game"));
  Handle file = handle_of(m.path("GAME/data.PAK"));
  ASSERT_FALSE(dir.storage.empty());
  ASSERT_FALSE(file.storage.empty());
  const int dfd = open_handle(m.mnt(), dir, O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0) << std::strerror(-dfd);
  EXPECT_EQ(read_at(dfd, "DATA.PAK"), "payload");
  ::close(dfd);
  const int ffd = open_handle(m.mnt(), file, O_RDONLY);
  ASSERT_GE(ffd, 0) << std::strerror(-ffd);
  ::close(ffd);
}

TEST(FileHandles, SurviveRemountAndDroppedCaches) {
  SKIP_WHERE_THE_BACKING_LACKS(kPersistentHandles);
  Mount m;
  ASSERT_TRUE(m.start("casefold=all,entry_timeout=60,negative_timeout=60"));
  ASSERT_EQ(errno_of(::mkdir(m.path("A").c_str(), 0755)), Errno(0));
  ASSERT_EQ(errno_of(::mkdir(m.path("A/Deep").c_str(), 0755)), Errno(0));
  ASSERT_EQ(errno_of(::mkdir(m.path("A/Deep/Dir").c_str(), 0755)), Errno(0));
  ASSERT_EQ(write_file(m.path("A/Deep/Dir/File.txt"), "kept"), Errno(0));
  Handle dir = handle_of(m.path("a/deep/dir"));
  Handle file = handle_of(m.path("a/deep/dir/file.txt"));
  ASSERT_FALSE(dir.storage.empty());
  ASSERT_FALSE(file.storage.empty());

  ASSERT_TRUE(m.unmount());
  ASSERT_TRUE(m.start("casefold=all,entry_timeout=60,negative_timeout=60"));
  ASSERT_TRUE(drop_caches());

  const int dfd = open_handle(m.mnt(), dir, O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0) << "directory handle after remount: " << std::strerror(-dfd);
  EXPECT_EQ(read_at(dfd, "FILE.TXT"), "kept") << "another spelling through a reconnected dir";
  // The coherence contract holds for entries of a directory reached this way.
  EXPECT_FALSE(exists_at(dfd, "NEW"));
  const int nfd = ::openat(dfd, "new", O_CREAT | O_EXCL | O_WRONLY, 0644);
  ASSERT_GE(nfd, 0);
  ::close(nfd);
  EXPECT_TRUE(exists_at(dfd, "NEW"));
  ASSERT_EQ(errno_of(::unlinkat(dfd, "New", 0)), Errno(0));
  EXPECT_FALSE(exists_at(dfd, "new"));
  EXPECT_FALSE(exists_at(dfd, "NEW"));
  ::close(dfd);

  // A file (unlike a directory) cannot be walked up to the backing root: its handle is accepted
  // while the backing filesystem still knows a path for it inside the tree (it does here: the
  // lookup above reached it), see docs/coherence.md "File handles".
  const int ffd = open_handle(m.mnt(), file, O_RDONLY);
  ASSERT_GE(ffd, 0) << "file handle after remount: " << std::strerror(-ffd);
  char buf[16] = {};
  EXPECT_EQ(::read(ffd, buf, sizeof(buf)), 4);
  EXPECT_STREQ(buf, "kept");
  ::close(ffd);
}

TEST(FileHandles, AHandleOutsideTheBackingTreeIsRefused) {
  SKIP_WHERE_THE_BACKING_LACKS(kPersistentHandles);  // no node id can be forged there
  Mount m;
  ASSERT_TRUE(m.start("casefold=all"));
  // Inside: a forged handle for a backing directory works (so the forging is right)...
  ASSERT_EQ(errno_of(::mkdir(m.bpath("inside").c_str(), 0755)), Errno(0));
  Handle inside = forge_fuse_handle(m.bpath("inside"), m.backing());
  ASSERT_FALSE(inside.empty()) << "the backing handle does not fit a node id";
  const int ok = open_handle(m.mnt(), inside, O_RDONLY | O_DIRECTORY);
  EXPECT_GE(ok, 0) << std::strerror(-ok);
  if (ok >= 0) ::close(ok);
  // ...and the same for a directory and a file next to the backing tree does not.
  ASSERT_EQ(errno_of(::mkdir(m.tpath("outside").c_str(), 0755)), Errno(0));
  ASSERT_EQ(write_file(m.tpath("outside/secret"), "no"), Errno(0));
  Handle out_dir = forge_fuse_handle(m.tpath("outside"), m.backing());
  Handle out_file = forge_fuse_handle(m.tpath("outside/secret"), m.backing());
  if (out_dir.empty() || out_file.empty()) {
    // Node ids name files of the backing filesystem only: one that lives on another filesystem
    // (FOLDFS_IT_BACKING) has no node id to forge.
    EXPECT_NE(must_lstat(m.tpath("outside")).st_dev, must_lstat(m.backing()).st_dev);
    return;
  }
  EXPECT_LT(open_handle(m.mnt(), out_dir, O_RDONLY | O_DIRECTORY), 0);
  EXPECT_LT(open_handle(m.mnt(), out_file, O_RDONLY), 0);
}

}  // namespace
}  // namespace foldfs::itest
