// The foldfs filesystem: operations shaped like FUSE's lowlevel ops, free of libfuse types.
//
// Every operation returns 0 or a positive errno and fills its out-parameters on success. No
// exception leaves this class (allocation failures become ENOMEM at the adapter edge).
//
// Casefolded directories (flag set with chattr +F, or every directory with casefold=all):
//  - case-preserving: a name keeps the spelling it was created with;
//  - any equivalent spelling (unicode/fold.h) resolves to the stored name; when the backing
//    directory holds several equivalent names, the exact spelling finds its own entry and any
//    other spelling finds the bytewise smallest one;
//  - creating an equivalent of an existing name acts on the existing entry as ext4 does.
//
// Kernel dentry coherence (the contract; see docs/coherence.md): once an operation has
// returned, no later lookup through the mount, with any spelling, sees an answer that
// contradicts it. The kernel updates the dentry an operation names by itself; every other
// dentry it may hold for the same key (another spelling, a negative entry, anything cached
// under the rules before a casefold flip) is invalidated before the reply is sent, through
// KernelNotifier::invalidate_all_dentries() (FUSE_NOTIFY_INC_EPOCH: takes no lock, so it is safe
// inside a request handler, and every lookup that started earlier is tagged with the old epoch
// by the kernel, which closes the lookup-vs-change race). Without that notification, nothing
// in a casefolded directory is cached by the kernel (timeouts 0).
//
// Lock order (each acquired before the ones below it):
//   1. DirState::ns_lock of directories, by increasing node id when two are needed (rename)
//   2. DirWatcher::read_mutex_ (catch_up(); its callback takes 4), or marks_mutex_
//   3. budget_mutex_ (other directories' index_lock only try-locked under it)
//   4. DirState::index_lock
//   5. InodeTable::mutex_, FdCache, KernelDentries, devices_mutex_ and pending_mutex_ (leaf locks)
#pragma once

#include <errno.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backing/acting_as.h"
#include "backing/dir_watcher.h"
#include "backing/fd_cache.h"
#include "backing/node_id_codec.h"
#include "backing/unique_fd.h"
#include "fs/inode_table.h"
#include "fs/options.h"

namespace foldfs::fs {

// Who is calling: from the FUSE request.
struct Context {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  mode_t umask = 0;  // applied by foldfs (the kernel leaves it to us: POSIX ACLs)
  // Fills the caller's supplementary groups; false when they cannot be had. Asked only where an
  // operation needs them (they come from /proc: two opens and reads); null means none.
  std::function<bool(std::vector<gid_t>*)> supplementary_groups;
};

struct EntryOut {
  uint64_t ino = 0;  // 0 with ENOENT-free reply means "negative entry"
  uint64_t generation = 0;
  struct stat attr {};
  double entry_timeout = 0;
  double attr_timeout = 0;
};

// How the filesystem asks the kernel to drop cached dentries. Implemented by src/fuse.
class KernelNotifier {
 public:
  virtual ~KernelNotifier() = default;
  // Whether invalidate_all_dentries() works on this kernel.
  virtual bool can_invalidate_all() const = 0;
  // Makes the kernel revalidate every dentry it holds for this mount. Safe to call inside a
  // request handler. Returns false when it could not be sent.
  virtual bool invalidate_all_dentries() = 0;
  // Makes the kernel drop the attributes and cached data of `ino`. It may wait for requests on
  // that inode to finish: never call it from a request handler (the watcher's thread does).
  virtual void invalidate_inode(uint64_t ino) { (void)ino; }
};

struct Counters {
  std::atomic<uint64_t> lookups{0};
  std::atomic<uint64_t> exact_hits{0};
  std::atomic<uint64_t> folded_hits{0};
  std::atomic<uint64_t> negative_answers{0};
  std::atomic<uint64_t> index_loads{0};
  std::atomic<uint64_t> invalidations_sent{0};
  std::atomic<uint64_t> changes_checked{0};  // changes in casefolded dirs
  std::atomic<uint64_t> outside_changes{0};  // reported by the watcher
  std::atomic<uint64_t> index_evictions{0};
};

// The counters are readable through the mount as the extended attribute kStatsXattr of the
// root directory (root only: it is in the trusted namespace); `foldfs stats MNT` prints them.
inline constexpr const char* kStatsXattr = "trusted.foldfs.stats";

class Filesystem {
 public:
  // Opens the backing root. Returns nullptr and sets *error on failure.
  static std::unique_ptr<Filesystem> open(const std::string& backing, const Options& options,
                                          int* error);
  ~Filesystem();

  void set_notifier(KernelNotifier* notifier) { notifier_ = notifier; }
  // More "name value" lines for stats_text(), from the layer that carries requests (set before
  // requests are served).
  void set_transport_stats(std::function<std::string()> lines) {
    transport_stats_ = std::move(lines);
  }
  // Starts the threads the filesystem runs (the outside-change watcher). Call it in the process
  // that serves requests: after daemonizing, since fork() keeps only the calling thread.
  void start_services();
  // Stops them: call it before the session the notifier writes to goes away.
  void stop_services();
  // Whether outside changes are watched (outside=watch and fanotify available).
  bool watching() const { return watcher_ != nullptr; }
  const Options& options() const { return options_; }
  // The attribute timeout replies carry (the option, or the automatic choice, see Options): the
  // longest, and that of one inode.
  double attr_timeout() const;
  double attr_timeout_of(uint64_t ino) const;
  const Counters& counters() const { return counters_; }
  std::string stats_text() const;  // "name value" lines
  static constexpr uint64_t kRootId = 1;

  // Namespace.
  int lookup(const Context& ctx, uint64_t parent, std::string_view name, EntryOut* out);
  void forget(uint64_t ino, uint64_t nlookup);
  int mknod(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
            EntryOut* out);
  int mkdir(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode, EntryOut* out);
  int symlink(const Context& ctx, std::string_view target, uint64_t parent, std::string_view name,
              EntryOut* out);
  int link(const Context& ctx, uint64_t ino, uint64_t newparent, std::string_view newname,
           EntryOut* out);
  int unlink(const Context& ctx, uint64_t parent, std::string_view name);
  int rmdir(const Context& ctx, uint64_t parent, std::string_view name);
  int rename(const Context& ctx, uint64_t parent, std::string_view name, uint64_t newparent,
             std::string_view newname, unsigned int flags);

  // Attributes.
  int getattr(uint64_t ino, struct stat* out);
  // `to_set` uses the FUSE_SET_ATTR_* bit values (declared in fs/options.h as kSetAttr*).
  int setattr(const Context& ctx, uint64_t ino, const struct stat& attr, int to_set,
              const uint64_t* fh, struct stat* out);
  int readlink(uint64_t ino, std::string* out);
  int access(const Context& ctx, uint64_t ino, int mask);
  int statfs(uint64_t ino, struct statvfs* out);

  // Extended attributes. For get/list, size 0 asks for the needed size (*needed).
  int setxattr(uint64_t ino, std::string_view name, std::string_view value, int flags);
  int getxattr(uint64_t ino, std::string_view name, size_t size, std::string* value,
               size_t* needed);
  int listxattr(uint64_t ino, size_t size, std::string* list, size_t* needed);
  int removexattr(uint64_t ino, std::string_view name);

  // Files. `fh` identifies an open backing descriptor.
  int open(const Context& ctx, uint64_t ino, int flags, uint64_t* fh);
  int create(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode, int flags,
             EntryOut* out, uint64_t* fh);
  int file_fd(uint64_t fh) const;  // the backing descriptor of an open file
  // ENOSYS where closing a backing descriptor reports nothing (local filesystems): the kernel
  // then stops sending FLUSH, one round trip less for every close.
  int flush(uint64_t fh);
  int release(uint64_t fh);
  int fsync(uint64_t fh, bool datasync);
  int fallocate(uint64_t fh, int mode, off_t offset, off_t length);
  int lseek(uint64_t fh, off_t offset, int whence, off_t* result);
  int copy_file_range(uint64_t fh_in, off_t off_in, uint64_t fh_out, off_t off_out, size_t len,
                      int flags, size_t* copied);

  // Directories. Reading keeps no per-open state (see file_ops.cc): opendir and releasedir do
  // nothing but check, and readdir takes the directory's node id.
  int opendir(const Context& ctx, uint64_t ino, uint64_t* fh);
  // Calls `emit(name, ino, type, next_offset)` for entries from `offset` on until it returns
  // false (buffer full) or the directory ends.
  using DirEmit =
      std::function<bool(std::string_view name, uint64_t ino, mode_t type, off_t next_offset)>;
  // `reply_bytes`: the size of the kernel's buffer, so that about that much is read.
  int readdir(uint64_t ino, off_t offset, const DirEmit& emit, size_t reply_bytes = 32768);
  // Same with each entry's attributes; an entry with ino != 0 counts as one lookup.
  using DirPlusEmit =
      std::function<bool(std::string_view name, const EntryOut& entry, off_t next_offset)>;
  int readdirplus(uint64_t ino, off_t offset, const DirPlusEmit& emit, size_t reply_bytes = 32768);
  int releasedir(uint64_t fh);
  int fsyncdir(uint64_t ino, bool datasync);

  // Inode flags (FS_IOC_GETFLAGS / FS_IOC_SETFLAGS) and fsxattr (FS_IOC_FSGETXATTR/FSSETXATTR).
  int get_flags(uint64_t ino, uint32_t* flags);
  int set_flags(const Context& ctx, uint64_t ino, uint32_t flags);
  int get_fsxattr(uint64_t ino, void* fsxattr_out);  // struct fsxattr
  int set_fsxattr(uint64_t ino, const void* fsxattr_in);

  // The casefold rules of a directory (for tests and tools).
  bool is_casefolded(uint64_t ino);

  // Test hook: called at named points of an operation, with the operation's locks held
  // ("lookup:answered", "flip:written"), so that tests can force interleavings.
  using TestHook = std::function<void(const char* point)>;
  void set_test_hook(TestHook hook) { test_hook_ = std::move(hook); }

 private:
  Filesystem(const Options& options, backing::UniqueFd root, backing::UniqueFd mount_fd);
  names::FoldRules rules() const;

  struct NodeSpec;

  // Inode plumbing.
  std::shared_ptr<Inode> inode(uint64_t ino) const;
  int dir_inode(uint64_t ino, std::shared_ptr<Inode>* out) const;
  // The inode `ino` and a descriptor for it. 0 or an errno.
  int inode_and_fd(uint64_t ino, std::shared_ptr<Inode>* node, backing::SharedFd* fd);
  // The start of every change of a directory's names: refused on a read-only mount, outside
  // changes taken in, the directory `parent` and a descriptor for it. 0 or an errno.
  int begin_change(uint64_t parent, std::shared_ptr<Inode>* dir, backing::SharedFd* dirfd);
  backing::SharedFd path_fd(const std::shared_ptr<Inode>& inode, int* error);
  int open_inode(const std::shared_ptr<Inode>& inode, int flags);  // fd, or -errno
  // `known`: a stat of `stored` taken earlier in the same request, if any.
  int make_entry(Inode& parent, int dirfd, const std::string& stored, EntryOut* out,
                 const std::optional<struct stat>& known = std::nullopt);
  int entry_from_fd(backing::UniqueFd fd, EntryOut* out);
  // The entry of a file this request opened or created (any descriptor, read or write): the
  // node is never reached by name again.
  int entry_from_open_file(Inode& parent, int fd, const struct stat& st, EntryOut* out);
  bool entry_without_fd(int dirfd, const std::string& name, const std::optional<struct stat>& known,
                        EntryOut* out, int* err);
  int entry_from(backing::UniqueFd fd, const struct stat& st, const backing::FileHandle& handle,
                 EntryOut* out);
  bool casefolded(const Inode& dir) const;
  void node_identity(const struct stat& st, const backing::FileHandle& handle, uint64_t* id,
                     uint64_t* generation);
  int reconnect(uint64_t id, EntryOut* out);
  void start_watching(const std::string& backing);
  void watch_directory(Inode& dir, int fd);
  void on_outside_change(const backing::DirWatcher::Event& event);
  std::shared_ptr<Inode> known_inode(const backing::FileHandle& handle);
  double attr_timeout_for(const Inode& inode) const;
  // Devices other than the root's (filesystems mounted inside the tree; the root's own too when
  // node ids are not handles): the index in node ids, and a descriptor to open handles with.
  size_t device_index(dev_t dev);
  void note_device(dev_t dev, int fd, bool is_dir);
  int handle_fd_for(dev_t dev) const;  // -1 when no descriptor on `dev` was seen yet
  void note_outside_attribute_change(const Inode& dir, int dirfd, const std::string& name);
  void queue_inode_invalidations(const std::vector<uint64_t>& ids);
  void send_inode_invalidations();  // on the watcher's thread
  bool changes_pushed() const;      // whether outside changes reach the kernel as they happen
  double timeout_or_auto(double option, bool pushed) const;
  // Applies every outside change queued so far, where a request may answer from an index that
  // has not seen them: in a directory whose index is loaded (watched indexes answer hits and
  // misses without asking the backing directory). Everywhere else answers come from the backing
  // directory itself, which already shows every change that returned; the watcher's thread
  // applies the queued events to the kernel's caches meanwhile.
  void catch_up_for(const Inode& dir);
  void catch_up_for(const Inode& a, const Inode& b);
  bool within_backing(int fd, bool is_dir);
  static uint64_t fd_cache_key(const Inode& inode);

  // Names.
  int check_name(std::string_view name, bool casefold) const;
  // *exact_stat (if given) gets the exact name's stat when resolving had to take it.
  int resolve_locked(const std::shared_ptr<Inode>& dir, int dirfd, std::string_view name,
                     std::string* stored, std::optional<struct stat>* exact_stat = nullptr);
  // Requires dir.index_lock. *loaded: whether it (re)loaded the index; *delta: the change in
  // the number of names it holds.
  int ensure_index_locked(DirState& dir, int dirfd, bool* loaded, long* delta);
  void index_change(Inode& dir, int dirfd, std::string_view added, std::string_view removed);
  void refresh_index_stamp(DirState& state, int dirfd);
  uint64_t key_hash_of(std::string_view name) const;
  // `key_hash`: key_hash_of(asked), when the caller has it.
  void note_kernel_entry(Inode& dir, std::string_view asked, bool negative,
                         std::optional<uint64_t> key_hash = std::nullopt);
  // `stored`: the name the operation found in the directory for `asked` (empty if none).
  void invalidate_if_other_spelling(Inode& dir, std::string_view asked,
                                    std::string_view stored = {},
                                    std::optional<uint64_t> key_hash = std::nullopt);
  // Both, after a change of `asked` in `dir` that leaves the kernel a dentry for it
  // (`negative`: a negative one).
  void note_change(Inode& dir, std::string_view asked, std::string_view stored, bool negative);
  void invalidate_kernel_dentries();
  double entry_timeout_for(const Inode& dir, bool negative) const;

  // Changes of the backing tree's names, made with the caller's ids (backing/acting_as.h says
  // why). Runs `op` (0 or an errno) as the caller: first without supplementary groups (fetching
  // them costs two /proc reads), and when the backing filesystem refuses (EACCES, EPERM: a
  // refused call changed nothing) again with them. `groups_first`: the groups decide more than
  // access (whether a new file keeps its setgid bit), so fetch them before the first try.
  template <typename Op>
  int as_caller(const Context& ctx, bool groups_first, Op&& op);
  // Whether creating `mode` in `dirfd` keeps or drops the setgid bit by the caller's groups.
  static bool groups_decide_setgid(int dirfd, const Context& ctx, mode_t mode);

  // Creation helpers.
  mode_t creation_mode(const Context& ctx, int dirfd, mode_t mode) const;
  // Gives a directory made by `ctx` in a casefolded directory the casefold flag.
  int inherit_casefold_flag(const Context& ctx, int dirfd, const std::string& name);
  int create_node(const Context& ctx, uint64_t parent, std::string_view name, const NodeSpec& spec,
                  EntryOut* out);
  int remove_node(const Context& ctx, uint64_t parent, std::string_view name, bool dir);
  int scan_directory(
      const std::shared_ptr<Inode>& dir, off_t offset,
      const std::function<bool(int, const char*, uint64_t, unsigned char, off_t)>& visit,
      size_t chunk);

  Options options_;
  backing::UniqueFd root_fd_;   // O_PATH of the backing root
  backing::UniqueFd mount_fd_;  // O_RDONLY of the backing root, for open_by_handle_at
  dev_t root_dev_ = 0;
  ino_t root_ino_ = 0;
  std::string backing_path_;  // realpath of the backing root
  // The daemon never changes its process-wide ids; threads take a caller's filesystem ids only
  // inside as_caller().
  const uid_t daemon_uid_ = ::geteuid();
  const gid_t daemon_gid_ = ::getegid();
  bool acts_as_callers_ = false;  // it may take other users' ids (root)
  bool network_backing_ = false;  // NFS, SMB, FUSE, ...: changes elsewhere go unreported
  // Node ids are backing handles where they fit (see node_identity()).
  std::optional<backing::NodeIdCodec> node_ids_;
  bool handles_carry_ino_ = false;  // FILEID_INO32_GEN handles, checked on the root
  InodeTable inodes_;
  backing::FdCache fds_;
  KernelNotifier* notifier_ = nullptr;
  std::function<std::string()> transport_stats_;
  TestHook test_hook_;
  void hook(const char* point) const {
    if (test_hook_) test_hook_(point);
  }
  std::unique_ptr<backing::DirWatcher> watcher_;  // null in outside=revalidate mode
  std::atomic<uint64_t> epoch_{0};                // invalidations sent so far
  Counters counters_;
  // Index budget (lock order: taken with no index_lock held; victims are try-locked).
  void account_index(const std::shared_ptr<Inode>* loaded_dir, long delta);
  std::mutex budget_mutex_;
  std::list<std::weak_ptr<Inode>> loaded_indexes_;  // oldest first. Guarded by budget_mutex_.
  long indexed_names_ = 0;  // an estimate: exact at loads and evictions. Guarded likewise.
  std::mutex marks_mutex_;  // orders table entry + watch mark against FORGET (see forget())
  struct Device {
    dev_t dev;
    backing::UniqueFd fd;  // any descriptor on that filesystem; kept until the filesystem goes
  };
  mutable std::mutex devices_mutex_;
  std::vector<Device> devices_;  // Guarded by devices_mutex_.
  // Whether listings give files' attributes (readdirplus): a score in [0, kDemandMax] that a
  // LOOKUP after a lean listing raises (the program wants attributes: `ls -l`, opening every
  // file) and each lean listing lowers (`find`, which wants names and types only).
  static constexpr int kDemandMax = 8;
  static constexpr int kDemandFull = 4;    // at or above: files come with attributes
  static constexpr int kDemandSample = 8;  // then every 8th listing is lean, to keep measuring
  std::atomic<int> attribute_demand_{0};
  std::atomic<unsigned> listings_{0};
  bool listing_wants_attributes();
  void note_lookup_after_listing(DirState& dir);
  std::mutex pending_mutex_;                           // leaf
  std::vector<uint64_t> pending_inode_invalidations_;  // Guarded by pending_mutex_.
};

template <typename Op>
int Filesystem::as_caller(const Context& ctx, bool groups_first, Op&& op) {
  if (!acts_as_callers_ || (ctx.uid == daemon_uid_ && ctx.gid == daemon_gid_)) return op();
  // root keeps its capabilities whatever its groups: they decide nothing for it.
  const bool groups_matter = ctx.uid != 0 && ctx.supplementary_groups != nullptr;
  std::vector<gid_t> groups;
  bool fetched = false;
  auto fetch = [&] {
    fetched = true;
    return ctx.supplementary_groups(&groups) && !groups.empty();
  };
  if (groups_first && groups_matter) fetch();
  for (;;) {
    int err;
    {
      backing::ActingAs as(ctx.uid, ctx.gid, groups);
      if (!as.ok()) return EPERM;
      err = op();
    }
    if ((err == EACCES || err == EPERM) && groups_matter && !fetched && fetch()) continue;
    return err;
  }
}

}  // namespace foldfs::fs
