// Integration-test harness: drives the real `foldfs` binary through a real FUSE mount.
//
//   Mount m;                                   // fresh /tmp/foldfs-it.XXXXXX/{backing,mnt}
//   ASSERT_TRUE(m.start("casefold=all"));      // foldfs mount -o casefold=all backing mnt
//   EXPECT_EQ(write_file(m.path("a"), "x"), Errno(0));
//   // ~Mount: always unmounts, waits for the daemon to exit, removes the temp dir.
//
// Every helper reports failures as values (Errno, AssertionResult, RunResult) so tests can
// assert on exactly what a user would observe. A watchdog kills the daemons of a test that runs
// longer than FOLDFS_IT_WATCHDOG_SECONDS (default 240) so a hung request fails the test with
// ENOTCONN instead of wedging ctest.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "support/scratch_dir.h"

namespace foldfs::itest {

using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// errno values that print by name in assertion messages.

struct Errno {
  int value = 0;
  constexpr Errno() = default;
  constexpr explicit Errno(int v) : value(v) {}
  friend constexpr bool operator==(Errno a, Errno b) { return a.value == b.value; }
};
void PrintTo(Errno e, std::ostream* os);
std::ostream& operator<<(std::ostream& os, Errno e);

// Errno(0) if rc >= 0, else Errno(errno). Use as errno_of(::mkdir(...)).
Errno errno_of(long rc);

// ---------------------------------------------------------------------------------------------
// Processes.

// The foldfs binary under test: $FOLDFS_BINARY if set, else the build's (compile definition).
const std::string& foldfs_binary();

struct RunResult {
  std::vector<std::string> argv;
  int exit_code = -1;   // exit status; -1 when killed by a signal or timed out
  int term_signal = 0;  // signal that ended it, if any
  bool timed_out = false;
  std::string out;
  std::string err;
  bool ok() const { return exit_code == 0; }
  std::string describe() const;  // argv, status, stdout and stderr: for failure messages
};
std::ostream& operator<<(std::ostream& os, const RunResult& r);

// Runs argv (argv[0] looked up in PATH; no shell) with stdin from /dev/null, capturing stdout
// and stderr. Returns once the process exits (processes it leaves behind, e.g. a daemon, are
// not waited for). Killed with SIGKILL after `timeout`.
RunResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 60s);

// A process running in the background; output goes to memory files readable at any time.
class Process {
 public:
  explicit Process(const std::vector<std::string>& argv);
  ~Process();  // SIGKILLs and reaps it if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Waits up to `timeout` for the exit; std::nullopt if still running then.
  std::optional<RunResult> wait(std::chrono::milliseconds timeout);
  std::string out() const;
  std::string err() const;
  void kill();

 private:
  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::optional<RunResult> result_;
};

// A caller identity: uid, primary gid, supplementary groups.
struct Caller {
  std::string name;  // for messages
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

// Runs fn in a forked child with exactly these credentials (setgroups, setresgid, setresuid;
// capabilities are dropped by the uid change) and umask, and returns fn's value (0..255), or -1
// if the child died or hung for `timeout` (then it is killed). fn returns 0 or an errno value.
int run_as_caller(const Caller& c, const std::function<int()>& fn, mode_t umask = 022,
                  std::chrono::milliseconds timeout = 60s);
// The same as uid/gid without supplementary groups, keeping the umask.
int run_as(uid_t uid, gid_t gid, const std::function<int()>& fn);
// fn in a forked child as root, bounded: its value (0..255), -1 if it died, kTimedOut if it had
// to be killed after `timeout` (a call that hung).
inline constexpr int kTimedOut = -2;
int run_bounded(const std::function<int()>& fn, std::chrono::milliseconds timeout);
// As run_as_caller, returning the text fn produced in the child (through a pipe), or
// "<child failed ...>".
std::string run_as_text(const Caller& c, const std::function<std::string()>& fn,
                        mode_t umask = 022);

// How long until `holds()` is true, polling every 5 ms; -1 after `limit`. For what the mount
// shows a moment later by design (outside changes reach the kernel once the watcher processed
// them).
double seconds_until(const std::function<bool()>& holds, std::chrono::milliseconds limit);

// ---------------------------------------------------------------------------------------------
// Files.

Errno write_file(const std::string& path, std::string_view content, mode_t mode = 0644);
Errno append_file(const std::string& path, std::string_view content);
// Creates (O_CREAT without O_EXCL) and closes, like touch without the times.
Errno touch(const std::string& path, mode_t mode = 0644);
// Creates with O_CREAT|O_EXCL.
Errno create_excl(const std::string& path, mode_t mode = 0644);
// Content, or std::nullopt (errno left set) if it can't be read.
std::optional<std::string> read_file(const std::string& path);
// Sorted (bytewise) entry names without "." and "..". On error returns a single entry
// "<opendir PATH: ENOENT>" so that comparisons fail with a readable message.
std::vector<std::string> list_dir(const std::string& path);

std::optional<struct stat> lstat_of(const std::string& path);
std::optional<struct stat> stat_of(const std::string& path);  // follows symlinks
// lstat that records a test failure and returns a zeroed struct when it fails.
struct stat must_lstat(const std::string& path);

// Predicates with explanatory failure messages (lstat, not following symlinks, except
// ResolvesToRegularFile which follows).
::testing::AssertionResult IsRegularFile(const std::string& path);
::testing::AssertionResult IsDirectory(const std::string& path);
::testing::AssertionResult IsSymlink(const std::string& path);
::testing::AssertionResult DoesNotExist(const std::string& path);  // lstat -> ENOENT
::testing::AssertionResult SameInode(const std::string& a, const std::string& b);

// Symlink target text, or "<readlink PATH: ENOENT ...>" on error.
std::string readlink_of(const std::string& path);

// Extended attributes, never following a final symlink (l*xattr).
struct XattrResult {
  Errno error;
  std::string value;
};
XattrResult get_xattr(const std::string& path, const std::string& name);
Errno set_xattr(const std::string& path, const std::string& name, std::string_view value,
                int flags = 0);
Errno remove_xattr(const std::string& path, const std::string& name);
// Sorted names; on error a single "<llistxattr PATH: ...>" entry.
std::vector<std::string> list_xattrs(const std::string& path);

// Flushes dentries and inodes: sync; echo 2 > /proc/sys/vm/drop_caches.
::testing::AssertionResult drop_caches();
// How many times anyone on this machine has dropped the dentry caches (drop_slab in
// /proc/vmstat). Tests that count what the kernel kept compare it across their window: ctest
// runs other tests at the same time, and their drop_caches empties every mount's dentries.
uint64_t machine_cache_drops();

// The casefold inode flag, through the ioctls (FS_IOC_GETFLAGS / FS_IOC_SETFLAGS).
inline constexpr unsigned kCasefoldFl = FS_CASEFOLD_FL;
// Flags of `path` (opened O_RDONLY, O_DIRECTORY if it's a dir); errno on failure.
struct FlagsResult {
  Errno error;
  unsigned flags = 0;
};
FlagsResult get_inode_flags(const std::string& path);
Errno set_inode_flags(const std::string& path, unsigned flags);

// `lsattr -d PATH`: the flags column ("" and a failure message if lsattr fails).
::testing::AssertionResult LsattrShowsCasefold(const std::string& path);
::testing::AssertionResult LsattrShowsNoCasefold(const std::string& path);
RunResult chattr(const std::string& flag, const std::string& path);  // chattr +F path

// Deletes a tree without following symlinks or crossing mount points.
using test_support::remove_tree;

// A temp dir /tmp/foldfs-it.XXXXXX (mode 0755) removed with everything in it on destruction.
class TempDir : public test_support::ScratchDir {
 public:
  TempDir() : ScratchDir("foldfs-it") {
    if (!ok()) ADD_FAILURE() << "mkdtemp under /tmp failed";
  }
};

// ---------------------------------------------------------------------------------------------
// Mounts.

// Whether `path` is a mount point according to /proc/self/mountinfo (never touches the fs,
// so it can't hang on a stuck daemon).
bool is_mount_point(const std::string& path);
// Its fstype field in mountinfo ("fuse.foldfs"...), "" if not mounted.
std::string mount_fstype(const std::string& path);
// Live processes running a foldfs binary whose command line names `mountpoint`.
std::vector<pid_t> find_daemons(const std::string& mountpoint);

enum class UnmountHow { kFusermount, kUmount };

// The filesystem every Mount's backing tree lives on, from the environment variable
// FOLDFS_IT_BACKING (scripts/test.sh runs the suites that carry the promises once per kind):
//   (unset)   the temp directory itself (on this machine: ext4)
//   ext4, xfs, btrfs   a fresh image of that filesystem on a loop device
//   tmpfs     a tmpfs
//   nested    the temp directory, whose subdirectory "nest" is a tmpfs mounted inside the
//             tree: the tests work in it (path() and bpath() lead there)
//   overlay   an overlayfs (upper and work directories on the temp directory's filesystem)
//   fuse      another FUSE filesystem (bindfs of a directory)
// Returns the kind ("" when unset).
const std::string& backing_kind();

// Things some backing filesystems cannot do, whatever foldfs does. A test of such a thing skips
// on those, saying why: the matrix then shows every promise foldfs keeps on each filesystem, and
// the README lists what each filesystem gives up.
enum class BackingFeature {
  kRenameFlags,             // renameat2 with RENAME_NOREPLACE or RENAME_EXCHANGE: not on bindfs
  kOpenFilesSurviveUnlink,  // an open file stays usable after its last name goes: not on a
                            // FUSE filesystem without .fuse_hidden files (hard_remove)
  kPersistentHandles,       // node ids that survive a restart: not where the backing has no
                            // file handles (overlayfs, FUSE) nor on a filesystem mounted inside
  kDirectoryLinkCounts,     // a directory's st_nlink counts its subdirectories: not on btrfs
};
std::optional<std::string> backing_lacks(BackingFeature feature);
#define SKIP_WHERE_THE_BACKING_LACKS(feature)                                                \
  do {                                                                                       \
    if (auto why = ::foldfs::itest::backing_lacks(::foldfs::itest::BackingFeature::feature)) \
      GTEST_SKIP() << *why;                                                                  \
  } while (0)

// A FUSE mount of foldfs over <temp>/backing at <temp>/mnt. The temp dir is created (0755,
// backing and mnt 0755) on construction, so a test can prepare the backing tree (bpath) before
// start(); the backing filesystem of backing_kind() is mounted there first. The destructor
// always unmounts (fusermount3 -u, then umount, then umount -l), waits for the daemon to exit
// (killing it after 10 s, recorded as a test failure), unmounts the backing filesystem and
// removes the temp dir, also when the test failed.
class Mount {
 public:
  Mount();
  ~Mount();
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;

  // `foldfs mount [-o OPTS] BACKING MNT` (no -o when opts is empty): must exit 0 and leave MNT
  // mounted (different st_dev from its parent).
  ::testing::AssertionResult start(const std::string& opts = "");
  // `foldfs mount FLAGS... [-o OPTS] BACKING MNT` run in the background (flags: -f or -d); waits
  // up to 10 s for the mount to appear. The process must keep running while mounted.
  ::testing::AssertionResult start_foreground(const std::vector<std::string>& flags,
                                              const std::string& opts = "");
  // Runs an arbitrary command that must exit 0 and mount MNT (mount -t ..., mount MNT).
  ::testing::AssertionResult start_command(const std::vector<std::string>& argv);

  // Unmounts now and waits up to 10 s for the daemon to exit. Fails if either doesn't happen.
  ::testing::AssertionResult unmount(UnmountHow how = UnmountHow::kFusermount);
  bool mounted() const;

  const std::string& root() const { return tmp_.path(); }  // the temp dir
  const std::string& backing() const { return backing_; }
  const std::string& mnt() const { return mnt_; }
  // Where tests work: MNT/rel and BACKING/rel (rel "" -> MNT, BACKING), or below the nested
  // filesystem's directory for FOLDFS_IT_BACKING=nested.
  std::string path(std::string_view rel) const;
  std::string bpath(std::string_view rel) const;
  std::string tpath(std::string_view rel) const;  // TEMP/rel: outside the backing tree

  const std::vector<pid_t>& daemon_pids() const { return daemons_; }
  // The result of start()'s or start_command()'s command.
  const RunResult& start_result() const { return start_result_; }
  // For start_foreground(): the process (exit status and output available after unmount()).
  Process* foreground() { return fg_.get(); }

 private:
  ::testing::AssertionResult after_mount(const std::string& what);
  void mount_backing();  // the filesystem of backing_kind() on backing_
  void unmount_backing();
  void register_pids();
  ::testing::AssertionResult wait_daemons_exit(std::chrono::milliseconds timeout);

  TempDir tmp_;
  std::string backing_;
  std::string mnt_;
  std::string work_;                         // "" or "/nest": where path()/bpath() lead
  std::vector<std::string> backing_mounts_;  // mounted for the backing tree, innermost last
  std::vector<pid_t> daemons_;
  std::unique_ptr<Process> fg_;
  RunResult start_result_;
  bool started_ = false;
};

std::string printable(std::string_view s);

// A test with a foldfs mount started before it runs (MountOptions() may say how) and the
// helpers the mount suites share.
class MountedTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(m.start(MountOptions())); }
  virtual std::string MountOptions() const { return ""; }
  std::string P(const std::string& rel) const { return m.path(rel); }
  void Mkdir(const std::string& rel) {
    ASSERT_EQ(errno_of(::mkdir(P(rel).c_str(), 0755)), Errno(0)) << printable(rel);
  }
  void Chattr(const std::string& flag, const std::string& rel) {
    RunResult r = chattr(flag, P(rel));
    ASSERT_TRUE(r.ok()) << r;
  }
  // mkdir MNT/rel and `chattr +F` it.
  void MakeCasefoldedDir(const std::string& rel) {
    Mkdir(rel);
    Chattr("+F", rel);
  }
  Mount m;
};

// `foldfs stats MNT` as name -> value (the daemon's counters: lookups, invalidations_sent, ...).
std::map<std::string, uint64_t> stats_of(const Mount& m);

// Whether changes made directly in the backing tree where the test works (bpath("")) are pushed
// to the kernel as they happen (the daemon watches that filesystem), rather than seen within
// the timeouts: what a test of outside changes may promise.
bool outside_changes_pushed(const Mount& m);

// The kernel's switch for FUSE over io_uring (/sys/module/fuse/parameters/enable_uring), set
// for the lifetime of this object and put back as it was on destruction. A kernel without the
// switch leaves available() false (tests then skip: there is nothing to test).
class KernelUringSwitch {
 public:
  explicit KernelUringSwitch(bool on);
  ~KernelUringSwitch();
  KernelUringSwitch(const KernelUringSwitch&) = delete;
  KernelUringSwitch& operator=(const KernelUringSwitch&) = delete;
  bool available() const { return !old_.empty(); }

 private:
  std::string old_;
};

// Appends a line to /etc/fstab and removes exactly that line again on destruction.
class FstabEntry {
 public:
  explicit FstabEntry(std::string line);
  ~FstabEntry();
  FstabEntry(const FstabEntry&) = delete;
  FstabEntry& operator=(const FstabEntry&) = delete;
  bool ok() const { return ok_; }

 private:
  std::string line_;
  bool ok_ = false;
};

// ---------------------------------------------------------------------------------------------
// File handles (name_to_handle_at / open_by_handle_at).

struct Handle {
  std::vector<unsigned char> storage;
  bool empty() const { return storage.empty(); }
  ::file_handle* get();
};
// The handle of `path` (not following a final symlink); empty on failure (errno set).
Handle handle_of(const std::string& path);
// Opens `h` on the filesystem `mnt` is on: fd, or -errno.
int open_handle(const std::string& mnt, Handle& h, int flags);
// The FUSE export handle foldfs would give the backing file `backing_path` of a mount over
// `backing_root`: node id and generation derived from the backing handle exactly as foldfs does
// (src/backing/node_id_codec.h); empty when that handle does not fit a node id.
Handle forge_fuse_handle(const std::string& backing_path, const std::string& backing_root);

// Joins strings with a separator (for messages).
std::string join(const std::vector<std::string>& parts, std::string_view sep = " ");
// Escapes non-printable bytes as \xNN (for messages about names).
std::string printable(std::string_view s);

}  // namespace foldfs::itest
