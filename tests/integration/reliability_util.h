// Helpers for the reliability suite (issue 6): callers with supplementary groups, unused ids,
// snapshots of files outside the backing tree, backing filesystems that can fail (tmpfs with
// limits, loop-mounted ext4 images), file handles, killing a daemon, and the figures the tests
// print for docs/guarantees.md. Everything that changes the machine is RAII and undone also when
// a test fails.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "harness.h"

namespace foldfs::itest {

// ---------------------------------------------------------------------------------------------
// Configuration and figures.

// Integer environment variable, or `fallback` when unset or not a number.
long env_long(const char* name, long fallback);

// Prints one line "figure: <name> = <value>" (stdout, flushed) for docs/guarantees.md; the
// suite's figures are collected with `ctest -L reliability -V | grep figure:`.
void report_figure(const std::string& name, const std::string& value);
void report_figure(const std::string& name, long long value);

// 64-bit FNV-1a of some bytes, as 16 hex digits (content journal of the crash tests).
std::string content_hash(std::string_view bytes);

// ---------------------------------------------------------------------------------------------
// Callers.

// "OK" or the errno's name ("EACCES"): the vocabulary of the permission transcripts.
std::string errno_text(int e);

// uids and gids unused on this machine (no passwd/group entry, no file in the temp dirs we
// create), taken from a high range. Plain numbers: nothing to remove afterwards.
class UnusedIds {
 public:
  UnusedIds();
  uid_t uid();  // a fresh one each call
  gid_t gid();

 private:
  unsigned next_uid_;
  unsigned next_gid_;
};

// ---------------------------------------------------------------------------------------------
// Things outside the backing tree that must never change.

// A snapshot of a file tree (not following symlinks): type, mode, owner, size, mtime, ctime,
// content hash, symlink target and xattr names/values of every entry. ctime changes on any
// metadata or content change, so comparing snapshots catches chmod, chown, xattr writes,
// writes, truncation, renames into and out of directories, creations and removals.
class TreeSnapshot {
 public:
  TreeSnapshot() = default;
  // recursive=false: only `root` itself (e.g. "/" or a directory holding the backing tree).
  explicit TreeSnapshot(const std::string& root, bool recursive = true);
  // Success if `root` now looks exactly as when the snapshot was taken; else a diff.
  ::testing::AssertionResult Unchanged() const;
  size_t entries() const { return entries_.size(); }

 private:
  static std::map<std::string, std::string> take(const std::string& root, bool recursive);
  std::string root_;
  bool recursive_ = true;
  std::map<std::string, std::string> entries_;
};

// ---------------------------------------------------------------------------------------------
// Backing filesystems.

// Mounts a filesystem on m.backing() before foldfs is started. The destructor unmounts foldfs
// first (if mounted), then the backing filesystem (lazily if it is busy), and loop devices go
// with it (mount -o loop sets autoclear).
class BackingFs {
 public:
  // tmpfs with `opts` (e.g. "size=1m,nr_inodes=64").
  static std::unique_ptr<BackingFs> Tmpfs(Mount& m, const std::string& opts);
  // Whatever `argv` mounts on m.backing() (e.g. another FUSE filesystem).
  static std::unique_ptr<BackingFs> Command(Mount& m, const std::vector<std::string>& argv);
  // A fresh ext4 image of `megabytes` (mkfs.ext4 -F -q plus `mkfs_args`) at m.tpath(image),
  // loop-mounted with `mount_opts` (may be empty).
  static std::unique_ptr<BackingFs> Ext4(Mount& m, int megabytes,
                                         const std::vector<std::string>& mkfs_args = {},
                                         const std::string& mount_opts = "");
  ~BackingFs();
  BackingFs(const BackingFs&) = delete;
  BackingFs& operator=(const BackingFs&) = delete;

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  // `mount -o remount,OPTS m.backing()`.
  ::testing::AssertionResult Remount(const std::string& opts);
  // Unmounts foldfs (if mounted) and the backing fs, runs e2fsck -fy on the image (ext4 only;
  // its output lands in *fsck_report), and mounts the image again. foldfs is left unmounted.
  ::testing::AssertionResult CycleImage(std::string* fsck_report);
  const std::string& image() const { return image_; }

 private:
  explicit BackingFs(Mount& m) : m_(m) {}
  void teardown();
  Mount& m_;
  bool ok_ = false;
  std::string error_;
  std::string image_;
  std::string mount_opts_;
};

// Clears the immutable and append-only flags (chattr -i -a) of the registered paths on
// destruction, so that the temp dir can be removed whatever the test did.
class InodeFlagsGuard {
 public:
  void add(const std::string& path) { paths_.push_back(path); }
  ~InodeFlagsGuard();

 private:
  std::vector<std::string> paths_;
};

// ---------------------------------------------------------------------------------------------
// Daemons and mounts.

// Sends `sig` to every foldfs daemon serving `m` and, for SIGKILL, waits (up to 10 s) until
// they are gone. Fails if there was none.
::testing::AssertionResult signal_daemons(Mount& m, int sig);
// `umount -l PATH`.
::testing::AssertionResult lazy_unmount(const std::string& path);
// Whether a process is alive (not a zombie).
bool alive(pid_t pid);

}  // namespace foldfs::itest
