// File handles through the mount (issue 4 §5): name_to_handle_at/open_by_handle_at work for
// files and directories, survive unmount + remount + drop_caches (the kernel then reconnects
// the inode through LOOKUP "." and ".."), entries reached that way obey the casefold rules and
// the coherence contract, and a handle naming something outside the backing tree is refused.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

// Issue 13 §1: every kind of inode opens by its handle after any cache loss, after a daemon
// restart, and after both, and the same inode comes back: the kernel drops its inodes and the
// backing filesystem its dentries (drop_caches), so a file reached by handle is "disconnected"
// and foldfs must place it inside the tree without a path (fs/confinement.h). Lookups by other
// spellings around it follow its directory's rules.
TEST(FileHandles, EveryKindOfInodeOpensByHandleAfterCacheLossAndRestarts) {
  SKIP_WHERE_THE_BACKING_LACKS(kPersistentHandles);
  Mount m;
  ASSERT_EQ(::mkdir(m.bpath("Dir").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(m.bpath("Dir/Sub").c_str(), 0755), 0);
  ASSERT_EQ(write_file(m.bpath("Dir/Sub/Regular.txt"), "regular"), Errno(0));
  ASSERT_EQ(write_file(m.bpath("Dir/Linked.txt"), "linked"), Errno(0));
  ASSERT_EQ(::link(m.bpath("Dir/Linked.txt").c_str(), m.bpath("Dir/Sub/Link2.txt").c_str()), 0);
  ASSERT_EQ(::symlink("Sub/Regular.txt", m.bpath("Dir/Symlink").c_str()), 0);
  ASSERT_EQ(::mkfifo(m.bpath("Dir/Fifo").c_str(), 0644), 0);
  ASSERT_EQ(::mknod(m.bpath("Dir/Socket").c_str(), S_IFSOCK | 0644, 0), 0);
  ASSERT_EQ(::mknod(m.bpath("Dir/Null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  const std::vector<std::string> kinds = {
      "dir/sub/regular.TXT", "DIR/linked.txt", "dir/SYMLINK", "dir/FIFO",
      "dir/socket",          "DIR/NULL",       "DIR/SUB"};
  ASSERT_TRUE(m.start("casefold=all"));
  std::vector<Handle> handles;
  std::vector<ino_t> inodes;
  for (const auto& k : kinds) {
    handles.push_back(handle_of(m.path(k)));
    ASSERT_FALSE(handles.back().empty()) << k;
    inodes.push_back(must_lstat(m.path(k)).st_ino);
  }
  auto check_all = [&](const char* when) {
    ASSERT_TRUE(drop_caches());
    for (size_t i = 0; i < kinds.size(); ++i) {
      SCOPED_TRACE(std::string(when) + ": " + kinds[i]);
      const int fd = open_handle(m.mnt(), handles[i], O_PATH);
      ASSERT_GE(fd, 0) << std::strerror(-fd);
      struct stat st;
      ASSERT_EQ(::fstat(fd, &st), 0);
      EXPECT_EQ(st.st_ino, inodes[i]) << "another inode came back";
      ::close(fd);
    }
    // The regular file reads, and its directory folds other spellings.
    const int f = open_handle(m.mnt(), handles[0], O_RDONLY);
    ASSERT_GE(f, 0) << std::strerror(-f);
    char buf[16] = {};
    EXPECT_EQ(::read(f, buf, sizeof buf), 7);
    EXPECT_STREQ(buf, "regular");
    ::close(f);
    const int d = open_handle(m.mnt(), handles.back(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(d, 0) << std::strerror(-d);
    EXPECT_TRUE(exists_at(d, "REGULAR.txt"));
    EXPECT_TRUE(exists_at(d, "link2.TXT"));
    ::close(d);
  };
  check_all("after cache loss");
  ASSERT_TRUE(m.unmount());
  ASSERT_TRUE(m.start("casefold=all"));
  check_all("after a restart and cache loss");
  // A forged handle of a file next to the backing tree, on the same filesystem, stays refused
  // after cache loss: no name inside the tree holds it.
  ASSERT_EQ(write_file(m.tpath("secret"), "no"), Errno(0));
  Handle forged = forge_fuse_handle(m.tpath("secret"), m.backing());
  if (forged.empty()) return;  // another filesystem: nothing to forge
  ASSERT_TRUE(drop_caches());
  const int fd = open_handle(m.mnt(), forged, O_RDONLY);
  EXPECT_LT(fd, 0) << "a file outside the tree was opened by a forged handle";
  if (fd >= 0) ::close(fd);
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
