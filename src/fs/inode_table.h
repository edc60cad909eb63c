// The inodes the kernel knows about, by FUSE node id.
//
// Node ids come from the backing file's identity (its handle where it fits: fs/node_ids.h), never
// from memory addresses, so they mean the same file after a restart.
// An inode lives while the kernel holds lookups on it (nlookup, released only by FORGET); the
// root lives forever. Each inode keeps the backing file handle, not a file descriptor; open
// descriptors are cached separately and bounded (backing/fd_cache.h).
//
// Lock order: DirState::ns_lock before DirState::index_lock; InodeTable::mutex_ is a leaf lock,
// never held while a DirState lock is taken.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "backing/file_handle.h"
#include "backing/unique_fd.h"
#include "base/thread_safety.h"
#include "names/dir_index.h"
#include "names/kernel_dentries.h"

namespace foldfs::fs {

// State of a directory's namespace.
struct DirState {
  explicit DirState(names::FoldRules rules) : index(rules) {}

  // Shared by lookups, exclusive for every change of the directory's names and for flips of
  // its casefold flag: an answer computed under the shared lock is never mixed with a change.
  SharedMutex ns_lock ACQUIRED_BEFORE(index_lock);
  std::atomic<bool> casefold{false};  // written only under exclusive ns_lock

  Mutex index_lock;  // lookups may load the index concurrently
  names::DirIndex index GUARDED_BY(index_lock);
  struct timespec index_mtime GUARDED_BY(index_lock) {};  // backing mtime at the last load
  struct timespec index_ctime GUARDED_BY(index_lock) {};
  std::chrono::steady_clock::time_point index_loaded_at GUARDED_BY(index_lock){};
  // Outside changes are reported by the watcher, so the index needs no change-time check and
  // the kernel may keep answers for the long timeouts. Written under index_lock.
  std::atomic<bool> watched{false};

  names::KernelDentries kernel;  // dentries the kernel may hold, per key
  // The epoch at which readdirplus last gave the kernel every stored name (~0: never).
  std::atomic<uint64_t> listed_epoch{~0ull};
  // The last listing gave files without attributes (Filesystem::attribute_demand_).
  std::atomic<bool> listed_lean{false};
};

struct Inode {
  uint64_t id = 0;
  uint64_t backing_ino = 0;
  dev_t backing_dev = 0;
  mode_t type = 0;                // S_IFMT bits
  backing::FileHandle handle;     // how to reopen the file; immutable once in the table
  uint64_t generation = 0;        // FUSE generation: digest of the handle; immutable
  backing::UniqueFd pinned_fd;    // only when the backing fs has no file handles
  uint64_t nlookup = 0;           // guarded by InodeTable::mutex_
  std::unique_ptr<DirState> dir;  // directories only; set at creation, never replaced

  bool is_dir() const { return dir != nullptr; }
};

class InodeTable {
 public:
  std::shared_ptr<Inode> get(uint64_t id) const EXCLUDES(mutex_);

  // Finds the inode `id` or inserts `fresh` under it, then adds one lookup. When an inode with
  // that id exists but names another file (a different handle: the inode number was reused),
  // `fresh` replaces it. Returns the inode in the table, whether its identity changed (the
  // caller drops cached descriptors) and whether it was not in the table before (new, or an
  // inode object brought back after a concurrent FORGET removed it).
  std::shared_ptr<Inode> acquire(std::shared_ptr<Inode> fresh, bool* identity_changed,
                                 bool* inserted) EXCLUDES(mutex_);

  // Drops `n` lookups; removes the inode when none remain and returns it then (else nullptr).
  std::shared_ptr<Inode> release(uint64_t id, uint64_t n) EXCLUDES(mutex_);

  void insert_root(std::shared_ptr<Inode> root) EXCLUDES(mutex_);
  // Every directory inode in the table.
  std::vector<std::shared_ptr<Inode>> directories() const EXCLUDES(mutex_);
  std::vector<uint64_t> ids() const EXCLUDES(mutex_);  // of every inode in the table
  size_t size() const EXCLUDES(mutex_);

 private:
  mutable Mutex mutex_;
  std::unordered_map<uint64_t, std::shared_ptr<Inode>> by_id_ GUARDED_BY(mutex_);
};

}  // namespace foldfs::fs
