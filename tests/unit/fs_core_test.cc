// Drives the filesystem core directly (no FUSE): names, casefold rules, collisions, flags and
// the kernel-invalidation decisions, against a real backing directory.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "fs/filesystem.h"
#include "support/fake_kernel.h"
#include "support/other_process.h"
#include "support/scratch_dir.h"

namespace foldfs::fs {
namespace {

constexpr uint32_t kCasefoldFlag = FS_CASEFOLD_FL;

class FsCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(scratch_.ok());
    root_ = scratch_.path();
  }

  void open_fs(Options options = {}) {
    int err = 0;
    fs_ = Filesystem::open(root_, options, &err);
    ASSERT_TRUE(fs_) << "errno " << err;
    fs_->set_notifier(&notifier_);
  }
  void open_all() {
    Options o;
    o.casefold = CasefoldMode::kAll;
    open_fs(o);
  }

  // Helpers that return errno and the entry's node id.
  int lookup(uint64_t parent, const std::string& name, uint64_t* ino = nullptr) {
    EntryOut out;
    const int err = fs_->lookup(ctx_, parent, name, &out);
    if (ino) *ino = err == 0 ? out.ino : 0;
    return err;
  }
  int create(uint64_t parent, const std::string& name, int flags = O_WRONLY | O_EXCL,
             uint64_t* ino = nullptr) {
    EntryOut out;
    uint64_t fh = 0;
    const int err = fs_->create(ctx_, parent, name, 0644, flags | O_CREAT, &out, &fh);
    if (err == 0) {
      fs_->release(fh);
      if (ino) *ino = out.ino;
    }
    return err;
  }
  int mkdir(uint64_t parent, const std::string& name, uint64_t* ino = nullptr) {
    EntryOut out;
    const int err = fs_->mkdir(ctx_, parent, name, 0755, &out);
    if (ino) *ino = err == 0 ? out.ino : 0;
    return err;
  }
  void backing_touch(const std::string& rel) { std::ofstream(root_ + "/" + rel) << "x"; }
  bool backing_exists(const std::string& rel) {
    struct stat st;
    return ::lstat((root_ + "/" + rel).c_str(), &st) == 0;
  }
  std::vector<std::string> list(uint64_t dir) {
    uint64_t fh = 0;
    EXPECT_EQ(fs_->opendir(ctx_, dir, &fh), 0);
    std::vector<std::string> names;
    fs_->readdir(dir, 0, [&](std::string_view n, uint64_t, mode_t, off_t) {
      if (n != "." && n != "..") names.emplace_back(n);
      return true;
    });
    fs_->releasedir(fh);
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string root_;
  std::unique_ptr<Filesystem> fs_;
  test_support::ScratchDir scratch_{"foldfs-core"};
  test_support::FakeKernel notifier_;
  Context ctx_;  // root, umask 0
  static constexpr uint64_t kRoot = Filesystem::kRootId;
};

TEST_F(FsCoreTest, FlagModeDirectoriesAreCaseSensitive) {
  open_fs();
  ASSERT_EQ(create(kRoot, "a"), 0);
  ASSERT_EQ(create(kRoot, "A"), 0);
  uint64_t lower = 0, upper = 0;
  ASSERT_EQ(lookup(kRoot, "a", &lower), 0);
  ASSERT_EQ(lookup(kRoot, "A", &upper), 0);
  EXPECT_NE(lower, upper);
  EXPECT_EQ(lookup(kRoot, "b"), ENOENT);
}

TEST_F(FsCoreTest, AnySpellingFindsTheStoredName) {
  open_all();
  uint64_t created = 0, found = 0;
  ASSERT_EQ(create(kRoot, "Straße.TXT", O_WRONLY | O_EXCL, &created), 0);
  ASSERT_EQ(lookup(kRoot, "STRASSE.txt", &found), 0);
  EXPECT_EQ(found, created);
  EXPECT_EQ(list(kRoot), std::vector<std::string>{"Straße.TXT"});  // case-preserving
}

TEST_F(FsCoreTest, CreatingAnEquivalentActsOnTheExistingEntry) {
  open_all();
  uint64_t first = 0, again = 0;
  ASSERT_EQ(create(kRoot, "Readme", O_WRONLY | O_EXCL, &first), 0);
  EXPECT_EQ(create(kRoot, "README", O_WRONLY | O_EXCL), EEXIST);
  ASSERT_EQ(create(kRoot, "readme", O_WRONLY, &again), 0);  // O_CREAT opens it
  EXPECT_EQ(again, first);
  EXPECT_EQ(mkdir(kRoot, "READme"), EEXIST);
  EXPECT_EQ(list(kRoot), std::vector<std::string>{"Readme"});
}

TEST_F(FsCoreTest, RenameBetweenSpellingsChangesNothing) {
  open_all();
  ASSERT_EQ(create(kRoot, "name"), 0);
  EXPECT_EQ(fs_->rename(ctx_, kRoot, "name", kRoot, "NAME", 0), 0);
  EXPECT_EQ(list(kRoot), std::vector<std::string>{"name"});
  EXPECT_EQ(fs_->rename(ctx_, kRoot, "name", kRoot, "NAME", RENAME_NOREPLACE), EEXIST);
}

TEST_F(FsCoreTest, RenameOntoAnEquivalentReplacesItAndKeepsItsSpelling) {
  open_all();
  ASSERT_EQ(create(kRoot, "source"), 0);
  ASSERT_EQ(create(kRoot, "Target"), 0);
  ASSERT_EQ(fs_->rename(ctx_, kRoot, "SOURCE", kRoot, "TARGET", 0), 0);
  EXPECT_EQ(list(kRoot), std::vector<std::string>{"Target"});
}

TEST_F(FsCoreTest, UnlinkAndRmdirThroughAnotherSpelling) {
  open_all();
  ASSERT_EQ(create(kRoot, "File"), 0);
  ASSERT_EQ(mkdir(kRoot, "Dir"), 0);
  EXPECT_EQ(fs_->unlink(ctx_, kRoot, "FILE"), 0);
  EXPECT_EQ(fs_->rmdir(ctx_, kRoot, "dIR"), 0);
  EXPECT_TRUE(list(kRoot).empty());
  EXPECT_EQ(lookup(kRoot, "file"), ENOENT);
}

TEST_F(FsCoreTest, CollisionsKeepEveryEntryReachable) {
  backing_touch("FOO");
  backing_touch("foo");
  open_all();
  uint64_t upper = 0, lower = 0, other = 0;
  ASSERT_EQ(lookup(kRoot, "FOO", &upper), 0);
  ASSERT_EQ(lookup(kRoot, "foo", &lower), 0);
  ASSERT_EQ(lookup(kRoot, "Foo", &other), 0);
  EXPECT_NE(upper, lower);
  EXPECT_EQ(other, upper) << "another spelling picks the bytewise smallest name";
  EXPECT_EQ(list(kRoot), (std::vector<std::string>{"FOO", "foo"}));
}

TEST_F(FsCoreTest, DotLookalikesAreOrdinaryNames) {
  open_all();
  uint64_t dir = 0;
  ASSERT_EQ(mkdir(kRoot, "d", &dir), 0);
  EXPECT_EQ(lookup(dir, "\u200b.."), ENOENT);
  EXPECT_EQ(lookup(dir, ".\u200d"), ENOENT);
  uint64_t made = 0, found = 0;
  ASSERT_EQ(create(dir, "\u200b..", O_WRONLY | O_EXCL, &made), 0);
  ASSERT_EQ(lookup(dir, "..\u200c", &found), 0);
  EXPECT_EQ(found, made);
  EXPECT_NE(found, dir);
  EXPECT_NE(found, kRoot);
}

TEST_F(FsCoreTest, NameErrors) {
  Options o;
  o.casefold = CasefoldMode::kAll;
  o.strict = true;
  open_fs(o);
  EXPECT_EQ(lookup(kRoot, std::string(256, 'a')), ENAMETOOLONG);
  EXPECT_EQ(create(kRoot, std::string(256, 'a')), ENAMETOOLONG);
  EXPECT_EQ(create(kRoot, std::string(255, 'a')), 0);
  EXPECT_EQ(create(kRoot, "bad\xff"), EINVAL);
  EXPECT_EQ(lookup(kRoot, "bad\xff"), ENOENT);  // looking up is not making (as on ext4)
  EXPECT_EQ(lookup(kRoot, "a/b"), EINVAL);
}

TEST_F(FsCoreTest, LenientInvalidNamesMatchOnlyThemselves) {
  open_all();
  ASSERT_EQ(create(kRoot, "corac\xcc\xa7\xc3"), 0);
  EXPECT_EQ(lookup(kRoot, "cora\xc3\xa7\xc3"), ENOENT);
  EXPECT_EQ(lookup(kRoot, "corac\xcc\xa7\xc3"), 0);
}

TEST_F(FsCoreTest, CasefoldFlagRules) {
  open_fs();
  uint64_t dir = 0, file = 0;
  ASSERT_EQ(mkdir(kRoot, "d", &dir), 0);
  ASSERT_EQ(create(kRoot, "f", O_WRONLY | O_EXCL, &file), 0);
  uint32_t flags = 0;
  ASSERT_EQ(fs_->get_flags(dir, &flags), 0);
  EXPECT_FALSE(flags & kCasefoldFlag);
  EXPECT_EQ(fs_->set_flags(ctx_, file, kCasefoldFlag), EOPNOTSUPP);
  ASSERT_EQ(fs_->set_flags(ctx_, dir, flags | kCasefoldFlag), 0);
  ASSERT_EQ(fs_->get_flags(dir, &flags), 0);
  EXPECT_TRUE(flags & kCasefoldFlag);
  EXPECT_TRUE(fs_->casefolded(dir));

  uint64_t sub = 0;
  ASSERT_EQ(mkdir(dir, "Sub", &sub), 0);
  EXPECT_TRUE(fs_->casefolded(sub)) << "new subdirectories inherit the flag";
  EXPECT_EQ(fs_->set_flags(ctx_, dir, flags & ~kCasefoldFlag), ENOTEMPTY);
  ASSERT_EQ(fs_->get_flags(file, &flags), 0);
  EXPECT_FALSE(flags & kCasefoldFlag) << "files never show the flag";

  // The flag lives in the backing tree and survives a new instance.
  fs_.reset();
  open_fs();
  uint64_t again = 0;
  ASSERT_EQ(lookup(kRoot, "d", &again), 0);
  EXPECT_TRUE(fs_->casefolded(again));
  EXPECT_EQ(lookup(again, "SUB"), 0);
}

TEST_F(FsCoreTest, FlagStorageIsInvisible) {
  open_fs();
  uint64_t dir = 0;
  ASSERT_EQ(mkdir(kRoot, "d", &dir), 0);
  ASSERT_EQ(fs_->set_flags(ctx_, dir, kCasefoldFlag), 0);
  std::string list, value;
  size_t needed = 0;
  ASSERT_EQ(fs_->listxattr(dir, 4096, &list, &needed), 0);
  EXPECT_EQ(list.find("foldfs"), std::string::npos);
  EXPECT_EQ(fs_->getxattr(dir, "trusted.foldfs.casefold", 64, &value, &needed), ENODATA);
  EXPECT_EQ(fs_->setxattr(dir, "trusted.foldfs.casefold", "0", 0), EPERM);
  EXPECT_EQ(fs_->removexattr(dir, "trusted.foldfs.casefold"), EPERM);
  EXPECT_TRUE(fs_->casefolded(dir));
}

// A request that carries only the casefold bit, or only a user flag, leaves the flags that belong
// to the backing filesystem's layout (ext4's FS_EXTENT_FL on every directory and file) as they
// are: ext4 refuses to clear them without CAP_SYS_RESOURCE, and converts the block map with it.
TEST_F(FsCoreTest, LayoutFlagsOfTheBackingFilesystemAreNeverAskedToChange) {
  open_fs();
  uint64_t dir = 0, file = 0;
  ASSERT_EQ(mkdir(kRoot, "d", &dir), 0);
  ASSERT_EQ(create(kRoot, "f", O_WRONLY | O_EXCL, &file), 0);
  auto backing_flags = [&](const char* name) {
    const int fd = ::open((root_ + "/" + name).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    int flags = -1;
    if (fd >= 0 && ::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) flags = -1;
    if (fd >= 0) ::close(fd);
    return flags;
  };
  const int dir_before = backing_flags("d"), file_before = backing_flags("f");
  if (dir_before < 0 || !(dir_before & FS_EXTENT_FL) || !(file_before & FS_EXTENT_FL)) {
    GTEST_SKIP() << "the backing filesystem of /tmp shows no extents flag (not ext4)";
  }
  EXPECT_EQ(fs_->set_flags(ctx_, dir, kCasefoldFlag), 0);
  EXPECT_TRUE(fs_->casefolded(dir));
  EXPECT_EQ(backing_flags("d"), dir_before) << "the directory's own flags changed";
  EXPECT_EQ(fs_->set_flags(ctx_, file, FS_NODUMP_FL), 0);
  EXPECT_EQ(backing_flags("f"), file_before | FS_NODUMP_FL);
  EXPECT_EQ(fs_->set_flags(ctx_, file, 0), 0);
  EXPECT_EQ(backing_flags("f"), file_before);
}

TEST_F(FsCoreTest, FlagIsFixedInAllMode) {
  open_all();
  uint64_t dir = 0;
  ASSERT_EQ(mkdir(kRoot, "d", &dir), 0);
  uint32_t flags = 0;
  ASSERT_EQ(fs_->get_flags(dir, &flags), 0);
  EXPECT_TRUE(flags & kCasefoldFlag);
  EXPECT_EQ(fs_->set_flags(ctx_, dir, flags & ~kCasefoldFlag), EPERM);
  EXPECT_EQ(fs_->set_flags(ctx_, dir, flags), 0);
}

TEST_F(FsCoreTest, RevalidateModeSeesBackingChangesByChangeTime) {
  Options o;
  o.casefold = CasefoldMode::kAll;
  o.outside = OutsideChanges::kRevalidate;
  open_fs(o);
  fs_->start_services();
  EXPECT_FALSE(fs_->watching());
  EXPECT_EQ(lookup(kRoot, "OUTSIDE"), ENOENT);  // loads the index
  backing_touch("outside");
  EXPECT_EQ(lookup(kRoot, "OUTSIDE"), 0);
  std::filesystem::remove(root_ + "/outside");
  EXPECT_EQ(lookup(kRoot, "OUTSIDE"), ENOENT);
}

using test_support::in_other_process;  // the watcher ignores this process's own changes

TEST_F(FsCoreTest, WatchModeSeesOtherProcessesChanges) {
  open_all();
  fs_->start_services();
  ASSERT_TRUE(fs_->watching());
  EXPECT_EQ(lookup(kRoot, "OUTSIDE"), ENOENT);  // loads the index
  const int before = notifier_.invalidations();
  // A change that returned before the lookup is seen by it: no waiting for the watcher thread.
  in_other_process([&] { backing_touch("outside"); });
  EXPECT_EQ(lookup(kRoot, "OUTSIDE"), 0);
  EXPECT_GT(notifier_.invalidations(), before) << "the kernel must forget what it cached";
  in_other_process([&] { std::filesystem::remove(root_ + "/outside"); });
  EXPECT_EQ(lookup(kRoot, "OUTSIDE"), ENOENT);
  in_other_process([&] { backing_touch("Outside"); });
  EXPECT_EQ(create(kRoot, "OUTSIDE"), EEXIST) << "changes check the index too";
}

TEST_F(FsCoreTest, IndexesStayWithinTheBudget) {
  Options o;
  o.casefold = CasefoldMode::kAll;
  o.outside = OutsideChanges::kRevalidate;
  o.index_budget = 12;
  open_fs(o);
  uint64_t a = 0, b = 0;
  ASSERT_EQ(mkdir(kRoot, "a", &a), 0);
  ASSERT_EQ(mkdir(kRoot, "b", &b), 0);
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(create(a, "Name" + std::to_string(i)), 0);
    ASSERT_EQ(create(b, "Name" + std::to_string(i)), 0);
  }
  EXPECT_EQ(lookup(a, "NAME1"), 0);  // loads a's index
  EXPECT_EQ(lookup(b, "NAME1"), 0);  // loads b's: over budget, a's goes
  EXPECT_GE(fs_->counter("index_evictions"), 1u);
  EXPECT_EQ(lookup(a, "NAME7"), 0);  // reloads on demand
  EXPECT_EQ(lookup(a, "NAME9"), ENOENT);
}

TEST_F(FsCoreTest, ReaddirResumesAtTheKernelsOffset) {
  open_all();
  for (int i = 0; i < 300; ++i) ASSERT_EQ(create(kRoot, "F" + std::to_string(i)), 0);
  std::vector<std::string> seen;
  off_t offset = 0;
  for (int calls = 0; calls < 1000; ++calls) {
    int taken = 0;
    off_t next_offset = offset;
    ASSERT_EQ(fs_->readdir(kRoot, offset,
                           [&](std::string_view n, uint64_t, mode_t, off_t next) {
                             if (taken == 7) return false;  // a small buffer: 7 entries per call
                             ++taken;
                             if (n != "." && n != "..") seen.emplace_back(n);
                             next_offset = next;
                             return true;
                           }),
              0);
    if (taken == 0) break;
    offset = next_offset;
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen.size(), 300u);
  EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end());
}

// What the kernel sends where a change of data must drop setuid/setgid (an empty SETATTR, or a
// truncate's kill flag) drops them by the local rule: setuid always, setgid when the group may
// execute or the caller is not in the file's group; nothing for a caller with CAP_FSETID.
TEST_F(FsCoreTest, DataChangesDropSetidBitsByTheLocalRule) {
  open_all();
  uint64_t ino = 0;
  ASSERT_EQ(create(kRoot, "Tool", O_WRONLY | O_EXCL, &ino), 0);
  const std::string backing = root_ + "/Tool";
  auto mode_after = [&](mode_t mode, gid_t group, const Context& who, int to_set) -> mode_t {
    EXPECT_EQ(::chown(backing.c_str(), 0, group), 0);
    EXPECT_EQ(::chmod(backing.c_str(), mode), 0);
    struct stat attr = {};
    attr.st_size = 0;
    struct stat out;
    EXPECT_EQ(fs_->setattr(who, ino, attr, to_set, nullptr, &out), 0);
    return out.st_mode & 07777;
  };
  Context user;
  user.uid = 65534;
  user.gid = 65534;
  Context member = user;
  member.gid = 1;
  member.supplementary_groups = [](std::vector<gid_t>* g) {
    *g = {65534};
    return true;
  };
  Context capable = user;
  capable.holds_cap_fsetid = [] { return true; };
  const int kWrite = 0;  // the empty SETATTR before a write
  const int kTruncate = kSetAttrSize | kSetAttrKillSuidgid;
  for (int change : {kWrite, kTruncate}) {
    SCOPED_TRACE(change);
    EXPECT_EQ(mode_after(06767, 0, user, change), 0767u);
    EXPECT_EQ(mode_after(06767, 65534, user, change), 02767u) << "in the group by its own gid";
    EXPECT_EQ(mode_after(06767, 65534, member, change), 02767u) << "by a supplementary group";
    EXPECT_EQ(mode_after(06777, 65534, user, change), 0777u) << "the group may execute";
    EXPECT_EQ(mode_after(06777, 0, ctx_, change), 0777u) << "root without CAP_FSETID";
  }
  EXPECT_EQ(mode_after(06777, 0, capable, kWrite), 06777u) << "CAP_FSETID keeps both";
  EXPECT_EQ(mode_after(06777, 0, capable, kSetAttrSize), 06777u) << "no kill flag, no drop";
}

TEST_F(FsCoreTest, ReaddirplusCountsLookupsAndMarksTheListing) {
  backing_touch("foo");  // not created through the core: only the listing tells the kernel
  std::filesystem::create_directory(root_ + "/Sub");
  open_all();
  std::map<std::string, uint64_t> listed;
  ASSERT_EQ(fs_->readdirplus(kRoot, 0,
                             [&](std::string_view n, const EntryOut& e, off_t) {
                               listed[std::string(n)] = e.ino;
                               return true;
                             }),
            0);
  ASSERT_EQ(listed.count("foo"), 1u);
  ASSERT_EQ(listed.count("Sub"), 1u);
  EXPECT_NE(listed["Sub"], 0u) << "subdirectories always come with attributes";
  // The kernel now holds "Sub" (and "foo" if it came with attributes): removing it through
  // another spelling must invalidate.
  const int before = notifier_.invalidations();
  ASSERT_EQ(fs_->unlink(ctx_, kRoot, "FOO"), 0);
  EXPECT_GT(notifier_.invalidations(), before);
}

// Files come with attributes only while programs show they use them: a fresh daemon lists
// lean (find wants names), a LOOKUP after a lean listing (ls -l, opening each file) turns
// attributes on, and lean listings without lookups turn them off again.
TEST_F(FsCoreTest, ListingsGiveFileAttributesWhileProgramsUseThem) {
  for (int i = 0; i < 4; ++i) backing_touch("f" + std::to_string(i));
  open_all();
  auto files_with_attributes = [&] {
    int n = 0;
    EXPECT_EQ(fs_->readdirplus(kRoot, 0,
                               [&](std::string_view name, const EntryOut& e, off_t) {
                                 if (name.substr(0, 1) == "f" && e.ino != 0) ++n;
                                 return true;
                               }),
              0);
    return n;
  };
  EXPECT_EQ(files_with_attributes(), 0) << "a fresh daemon lists lean";
  EXPECT_EQ(files_with_attributes(), 0) << "no lookup followed: still lean";
  // A program that stats what it lists (ls -l): the kernel asks for the files only after a
  // listing that did not give them.
  int full = 0;
  for (int i = 0; i < 32; ++i) {
    if (files_with_attributes() == 4) {
      ++full;
    } else {
      ASSERT_EQ(lookup(kRoot, "f1"), 0);
    }
  }
  EXPECT_GE(full, 24) << "lookups after listings must turn attributes on (but for samples)";
  EXPECT_LT(full, 32) << "some listings stay lean, to notice when programs stop using them";
  // Nothing looks anything up any more: within a few samples the listings are lean again.
  int lean_in_a_row = 0;
  for (int i = 0; i < 200 && lean_in_a_row < 20; ++i) {
    lean_in_a_row = files_with_attributes() == 0 ? lean_in_a_row + 1 : 0;
  }
  EXPECT_EQ(lean_in_a_row, 20);
}

// --- kernel coherence decisions -------------------------------------------------------------

TEST_F(FsCoreTest, MissThenCreateOfAnotherSpellingInvalidates) {
  open_all();
  EXPECT_EQ(lookup(kRoot, "FOO"), ENOENT);  // the kernel may now cache a miss for "FOO"
  const int before = notifier_.invalidations();
  ASSERT_EQ(create(kRoot, "foo"), 0);
  EXPECT_GT(notifier_.invalidations(), before);
  EXPECT_EQ(lookup(kRoot, "FOO"), 0);
}

TEST_F(FsCoreTest, SameSpellingNeedsNoInvalidation) {
  open_all();
  EXPECT_EQ(lookup(kRoot, "foo"), ENOENT);
  ASSERT_EQ(create(kRoot, "foo"), 0);
  ASSERT_EQ(lookup(kRoot, "foo"), 0);
  const int before = notifier_.invalidations();
  ASSERT_EQ(fs_->unlink(ctx_, kRoot, "foo"), 0);
  EXPECT_EQ(notifier_.invalidations(), before) << "the kernel updates the dentry it operated on";
}

TEST_F(FsCoreTest, UnlinkThroughAnotherSpellingInvalidates) {
  open_all();
  ASSERT_EQ(create(kRoot, "foo"), 0);
  ASSERT_EQ(lookup(kRoot, "Foo"), 0);  // the kernel may now hold "Foo" (and "foo")
  const int before = notifier_.invalidations();
  ASSERT_EQ(fs_->unlink(ctx_, kRoot, "FOO"), 0);
  EXPECT_GT(notifier_.invalidations(), before);
  EXPECT_EQ(lookup(kRoot, "Foo"), ENOENT);
}

TEST_F(FsCoreTest, CasefoldFlipAlwaysInvalidates) {
  open_fs();
  uint64_t dir = 0;
  ASSERT_EQ(mkdir(kRoot, "d", &dir), 0);
  EXPECT_EQ(lookup(dir, "FOO"), ENOENT);  // a miss under case-sensitive rules
  const int before = notifier_.invalidations();
  ASSERT_EQ(fs_->set_flags(ctx_, dir, kCasefoldFlag), 0);
  EXPECT_GT(notifier_.invalidations(), before);
  ASSERT_EQ(create(dir, "foo"), 0);
  EXPECT_EQ(lookup(dir, "FOO"), 0);
}

TEST_F(FsCoreTest, WithoutInvalidationCasefoldedAnswersAreNotCached) {
  test_support::FakeKernel none(/*has_epochs=*/false);
  open_all();
  fs_->set_notifier(&none);
  ASSERT_EQ(create(kRoot, "foo"), 0);
  EntryOut out;
  ASSERT_EQ(fs_->lookup(ctx_, kRoot, "FOO", &out), 0);
  EXPECT_EQ(out.entry_timeout, 0);
  ASSERT_EQ(fs_->lookup(ctx_, kRoot, "BAR", &out), ENOENT);
  EXPECT_EQ(out.entry_timeout, 0);
}

TEST_F(FsCoreTest, HardLinksThroughOtherSpellings) {
  open_all();
  uint64_t file = 0, dir = 0;
  ASSERT_EQ(create(kRoot, "file", O_WRONLY | O_EXCL, &file), 0);
  ASSERT_EQ(mkdir(kRoot, "Dir", &dir), 0);
  EntryOut out;
  ASSERT_EQ(fs_->link(ctx_, file, dir, "Link", &out), 0);
  EXPECT_EQ(out.ino, file);
  EXPECT_EQ(out.attr.st_nlink, 2u);
  EXPECT_EQ(fs_->link(ctx_, file, dir, "LINK", &out), EEXIST);
  EXPECT_TRUE(backing_exists("Dir/Link"));
}

}  // namespace
}  // namespace foldfs::fs

namespace foldfs::fs {
namespace {

// A backing filesystem without file handles (overlayfs without nfs_export): each inode keeps a
// descriptor of its own, which other threads read as soon as the inode is in the table. Two
// spellings of one name looked up at once (the kernel serializes lookups of one name, not of
// two) enter the same inode from two threads; under ThreadSanitizer a descriptor written after
// the inode became visible is a data race.
TEST(FsNoHandles, InodesAreEnteredWholeBeforeOtherThreadsSeeThem) {
  test_support::ScratchDir scratch("foldfs-overlay");
  ASSERT_TRUE(scratch.ok());
  const std::string& base = scratch.path();
  for (const char* d : {"/lower", "/upper", "/work", "/mnt"})
    ASSERT_EQ(::mkdir((base + d).c_str(), 0755), 0);
  const std::string options =
      "lowerdir=" + base + "/lower,upperdir=" + base + "/upper,workdir=" + base + "/work";
  if (::mount("overlay", (base + "/mnt").c_str(), "overlay", 0, options.c_str()) != 0) {
    GTEST_SKIP() << "cannot mount an overlay here: " << std::strerror(errno);
  }
  {
    Options o;
    o.casefold = CasefoldMode::kAll;
    int err = 0;
    auto fs = Filesystem::open(base + "/mnt", o, &err);
    ASSERT_TRUE(fs) << err;
    EntryOut out;
    uint64_t fh = 0;
    ASSERT_EQ(
        fs->create(Context{}, Filesystem::kRootId, "File", 0644, O_CREAT | O_WRONLY, &out, &fh), 0);
    fs->release(fh);
    fs->forget(out.ino, 1);
    std::atomic<int> failures{0};
    auto look = [&](const char* spelling) {
      for (int i = 0; i < 3000; ++i) {
        EntryOut e;
        if (fs->lookup(Context{}, Filesystem::kRootId, spelling, &e) != 0) {
          ++failures;
          continue;
        }
        struct stat st;
        if (fs->getattr(e.ino, &st) != 0) ++failures;
        fs->forget(e.ino, 1);
      }
    };
    std::thread a(look, "file"), b(look, "FILE");
    a.join();
    b.join();
    EXPECT_EQ(failures, 0);
  }
  ::umount2((base + "/mnt").c_str(), MNT_DETACH);
}

}  // namespace
}  // namespace foldfs::fs
