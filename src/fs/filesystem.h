// The foldfs filesystem over one backing tree: the Operations (fs/operations.h) a mount serves.
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
// contradicts it. The kernel updates the dentry an operation names by itself (a create turns
// its negative dentry positive, an unlink its positive one negative); every other dentry it may
// hold for the same key (another spelling, positive or negative, as KernelCache's record says;
// anything cached under the rules before a casefold flip) is invalidated before the reply, through
// KernelNotifier::invalidate_all_dentries() (FUSE_NOTIFY_INC_EPOCH: takes no lock, so it is safe
// inside a request handler, and every lookup that started earlier is tagged with the old epoch
// by the kernel, which closes the lookup-vs-change race). Without that notification, nothing
// in a casefolded directory is cached by the kernel (timeouts 0).
//
// Lock order (each acquired before the ones below it):
//   1. DirState::ns_lock of directories, by increasing node id when two are needed (rename)
//   2. DirWatcher::read_mutex_ (OutsideWatch::deliver_queued(); the Listener runs under it)
//   3. one of marks_, never two at once
//   4. IndexBudget's mutex (other directories' index_lock only try-locked under it)
//   5. DirState::index_lock
//   6. leaf locks: InodeTable, FdCache, KernelDentries, NodeIds, RestingDirs, OutsideWatch'
//      pending queue
#pragma once

#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backing/dir_reader.h"
#include "backing/fd_cache.h"
#include "backing/unique_fd.h"
#include "base/thread_safety.h"
#include "fs/caller.h"
#include "fs/confinement.h"
#include "fs/index_budget.h"
#include "fs/inode_table.h"
#include "fs/kernel_cache.h"
#include "fs/kernel_notifier.h"
#include "fs/listing_demand.h"
#include "fs/node_ids.h"
#include "fs/operations.h"
#include "fs/options.h"
#include "fs/outside_watch.h"
#include "fs/resting_dirs.h"
#include "names/folded_name.h"
#include "names/union_dir.h"

namespace foldfs::fs {

class Filesystem : public Operations, private OutsideWatch::Listener {
 public:
  // Opens the backing root. Returns nullptr and sets *error on failure.
  static std::unique_ptr<Filesystem> open(const std::string& backing, const Options& options,
                                          int* error);
  ~Filesystem() override;

  void set_notifier(KernelNotifier* notifier) override { kernel_.set_notifier(notifier); }
  // More "name value" lines for stats_text(), from the layer that carries requests (set before
  // requests are served).
  void set_transport_stats(std::function<std::string()> lines) override {
    transport_stats_ = std::move(lines);
  }
  // Starts the threads the filesystem runs (the outside-change watcher). Call it in the process
  // that serves requests: after daemonizing, since fork() keeps only the calling thread.
  void start_services() override;
  // Stops them: call it before the session the notifier writes to goes away.
  void stop_services() override;
  // Whether outside changes are watched (outside=watch, and fanotify can mark the backing root).
  bool watching() const { return outside_ != nullptr; }
  const Options& options() const override { return options_; }
  // The attribute timeout replies carry (the option, or the automatic choice, see Options): the
  // longest, and that of one inode.
  double attr_timeout() const override;
  double attr_timeout_of(uint64_t ino) const override;
  std::string stats_text() const override;        // "name value" lines
  uint64_t counter(std::string_view name) const;  // one of them (0 if there is none)
  static_assert(kRootId == NodeIds::kRootId);

  // Namespace.
  int lookup(const Context& ctx, uint64_t parent, std::string_view name, EntryOut* out) override;
  void forget(uint64_t ino, uint64_t nlookup) override;
  int mknod(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
            EntryOut* out) override;
  int mkdir(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode,
            EntryOut* out) override;
  int symlink(const Context& ctx, std::string_view target, uint64_t parent, std::string_view name,
              EntryOut* out) override;
  int link(const Context& ctx, uint64_t ino, uint64_t newparent, std::string_view newname,
           EntryOut* out) override;
  int unlink(const Context& ctx, uint64_t parent, std::string_view name) override;
  int rmdir(const Context& ctx, uint64_t parent, std::string_view name) override;
  int rename(const Context& ctx, uint64_t parent, std::string_view name, uint64_t newparent,
             std::string_view newname, unsigned int flags) override;

  // Attributes.
  int getattr(uint64_t ino, struct stat* out) override;
  // `to_set` uses the FUSE_SET_ATTR_* bit values (declared in fs/options.h as kSetAttr*).
  int setattr(const Context& ctx, uint64_t ino, const struct stat& attr, int to_set,
              const uint64_t* fh, struct stat* out) override;
  int readlink(uint64_t ino, std::string* out) override;
  int statfs(uint64_t ino, struct statvfs* out) override;

  // Extended attributes. For get/list, size 0 asks for the needed size (*needed).
  int setxattr(uint64_t ino, std::string_view name, std::string_view value, int flags) override;
  int getxattr(uint64_t ino, std::string_view name, size_t size, std::string* value,
               size_t* needed) override;
  int listxattr(uint64_t ino, size_t size, std::string* list, size_t* needed) override;
  int removexattr(uint64_t ino, std::string_view name) override;

  // Files. `fh` identifies an open backing descriptor.
  int open(const Context& ctx, uint64_t ino, int flags, uint64_t* fh) override;
  int create(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode, int flags,
             EntryOut* out, uint64_t* fh) override;
  int file_fd(uint64_t fh) const override;  // the backing descriptor of an open file
  // ENOSYS where closing a backing descriptor reports nothing (local filesystems): the kernel
  // then stops sending FLUSH, one round trip less for every close.
  int flush(uint64_t fh) override;
  int release(uint64_t fh) override;
  int fsync(uint64_t fh, bool datasync) override;
  int fallocate(uint64_t fh, int mode, off_t offset, off_t length) override;
  int lseek(uint64_t fh, off_t offset, int whence, off_t* result) override;
  int copy_file_range(uint64_t fh_in, off_t off_in, uint64_t fh_out, off_t off_out, size_t len,
                      int flags, size_t* copied) override;

  // Directories. Reading keeps no per-open state (see file_ops.cc): opendir and releasedir do
  // nothing but check, and readdir takes the directory's node id.
  int opendir(const Context& ctx, uint64_t ino, uint64_t* fh) override;
  int readdir(uint64_t ino, off_t offset, const DirEmit& emit, size_t reply_bytes = 32768) override;
  int readdirplus(uint64_t ino, off_t offset, const DirPlusEmit& emit,
                  size_t reply_bytes = 32768) override;
  int releasedir(uint64_t fh) override;
  int fsyncdir(uint64_t ino, bool datasync) override;

  // Inode flags (FS_IOC_GETFLAGS / FS_IOC_SETFLAGS) and fsxattr (FS_IOC_FSGETXATTR/FSSETXATTR).
  int get_flags(uint64_t ino, uint32_t* flags) override;
  int set_flags(const Context& ctx, uint64_t ino, uint32_t flags) override;
  int get_fsxattr(uint64_t ino, void* fsxattr_out) override;  // struct fsxattr
  int set_fsxattr(uint64_t ino, const void* fsxattr_in) override;

  // For a union of trees (fs/union_fs.h), where this filesystem serves one tree: lookup() that
  // also gives the stored name it found (`found`) and how many stored names of the directory
  // share its key (`equivalents`: more than one is a collision inside this tree). Either may be
  // null.
  // `changes_taken_in`: the caller made take_in_outside_changes() answer for this request.
  int lookup_in_tree(const Context& ctx, uint64_t parent, std::string_view name, EntryOut* out,
                     std::string* found, size_t* equivalents, bool changes_taken_in = false);
  // The queue of outside changes, for a union to poll its trees' at once: -1 when they are not
  // watched. Then take_in_outside_changes(queued) with what the poll said of this one: changes
  // queued before the poll are taken in when it returns.
  int outside_queue_fd() const { return outside_ ? outside_->queue_fd() : -1; }
  void take_in_outside_changes(bool queued);
  // Whether the directory `ino` is opaque in a union (backing/union_format.h).
  bool opaque(uint64_t ino);
  // The directory `ino` as part `tree` of a union's merged directory (fs/union_parts.h): its
  // entries as listed (with their d_ino and type), which are whiteouts and directories, whether it
  // is opaque. 0 or an errno.
  int read_union_part(uint64_t ino, size_t tree, names::UnionPart* part);

  // For the upper tree of a writable union (fs/union_fs.h, docs/union.md "Writes go to the upper
  // tree only"). After serve_as_union_upper(), a name made where a whiteout of its key stands
  // replaces the whiteout in one step (a directory made there is opaque: it hides what the lower
  // trees hold under its name), and a directory holding nothing but whiteouts can be removed.
  // `work_dir` (may be invalid): where copy-ups are built when the tree has no unnamed files.
  void serve_as_union_upper(backing::UniqueFd work_dir);
  // Removes `name` from `parent` leaving a whiteout under its spelling, or makes a whiteout of
  // `name` where nothing of its key is stored. With the daemon's rights: the kernel has checked
  // the caller's (default_permissions). `is_dir`: rmdir's rules (the directory may hold
  // whiteouts only), else unlink's.
  // `whole_tree` (not null): a directory goes with everything in it (a directory the union moved
  // by copying it elsewhere), removed with the rights of that caller (see remove_tree).
  int remove_leaving_whiteout(uint64_t parent, std::string_view name, bool is_dir,
                              const Context* whole_tree = nullptr);
  // Copies `lower_name` of the directory `lower_dir` (another tree's, any descriptor) into
  // `parent` as `name` (backing/copy_up.h), taking the copy into the index and the kernel record
  // as a name made through the mount. *out: the copy's entry (one lookup). EEXIST when `parent`
  // holds a name of that key.
  int copy_in(uint64_t parent, std::string_view name, int lower_dir, const std::string& lower_name,
              EntryOut* out);
  // A descriptor of the file `ino` (O_PATH). 0 or an errno.
  int descriptor(uint64_t ino, backing::SharedFd* out);
  // A name for a node being made that the union does not list (a crash may leave it behind).
  static std::string temporary_name();
  // Removes the directory `name` of `dirfd` and everything in it, never following a symlink, with
  // the rights of `ctx`: whoever may write a directory of the tree could move another user's
  // directory into it while it is being removed, and the daemon must not empty that for them.
  // Whiteouts (the daemon's markers) the caller may not remove are removed with the daemon's
  // rights. What cannot be removed stays (under the name it has); the first error is returned.
  int remove_tree(const Context& ctx, int dirfd, const std::string& name, size_t depth = 0);
  // rename()'s flag for a union: the source's name is left as a whiteout (the kernel's
  // RENAME_WHITEOUT, made with the daemon's rights). Only on a union's upper tree.
  static constexpr unsigned int kRenameWhiteout = 1u << 2;

  // The casefold rules of a directory (for tests and tools).
  bool casefolded(uint64_t ino) const;

  // Test hook: called at named points of an operation, with the operation's locks held
  // ("lookup:answered", "flip:written"), so that tests can force interleavings.
  using TestHook = std::function<void(const char* point)>;
  void set_test_hook(TestHook hook) { test_hook_ = std::move(hook); }

 private:
  Filesystem(const Options& options, backing::UniqueFd root, const struct stat& root_st,
             const backing::FileHandle& root_handle, backing::UniqueFd root_read,
             const std::string& backing);
  names::FoldRules rules() const;
  bool casefolded(const Inode& dir) const;
  void hook(const char* point) const {
    if (test_hook_) test_hook_(point);
  }

  // --- Inodes and their descriptors ---
  std::shared_ptr<Inode> inode(uint64_t ino) const { return inodes_.get(ino); }
  int dir_inode(uint64_t ino, std::shared_ptr<Inode>* out) const;
  // The inode `ino` and a descriptor for it. 0 or an errno.
  int inode_and_fd(uint64_t ino, std::shared_ptr<Inode>* node, backing::SharedFd* fd);
  // The start of every change of a directory's names: refused on a read-only mount, outside
  // changes taken in, the directory `parent` and a descriptor for it. 0 or an errno.
  int begin_change(uint64_t parent, std::shared_ptr<Inode>* dir, backing::SharedFd* dirfd);
  backing::SharedFd path_fd(const std::shared_ptr<Inode>& inode, int* error);
  int open_inode(const std::shared_ptr<Inode>& inode, int flags);  // fd, or -errno
  static uint64_t fd_cache_key(const Inode& inode);

  // --- Entering inodes in the table (each reply that names a node) ---
  // The one place an inode enters: `fd` is a descriptor of the file (required for directories
  // and files without a handle), or none.
  int enter(backing::UniqueFd fd, const struct stat& st, const backing::FileHandle& handle,
            EntryOut* out);
  // An O_PATH descriptor's file.
  int enter_descriptor(backing::UniqueFd fd, EntryOut* out);
  // The file `name` of the directory `dirfd` (as a lookup a moment later would find it);
  // `known`: its stat taken earlier in the request.
  int enter_name(Inode& parent, int dirfd, const std::string& name, EntryOut* out,
                 const std::optional<struct stat>& known = std::nullopt);
  // Without opening it, where handles carry the inode number: false when it must be opened.
  bool enter_name_without_opening(int dirfd, const std::string& name,
                                  const std::optional<struct stat>& known, EntryOut* out, int* err);
  // A file this request opened or created (any descriptor): never reached by name again.
  int enter_open_file(Inode& parent, int fd, const struct stat& st, EntryOut* out);
  // The kernel asks for "." of a node id it no longer holds: the id turns back into its file.
  int reconnect(uint64_t id, EntryOut* out);

  // --- Outside changes (OutsideWatch::Listener, on the watcher's thread or a catch-up) ---
  void names_changed(const backing::FileHandle& dir, const std::string& name) override;
  void attributes_changed(const backing::FileHandle& dir, const std::string& name) override;
  void lost_track() override;
  std::shared_ptr<Inode> known_inode(const backing::FileHandle& handle);
  void watch_directory(Inode& dir, int fd);
  // Removes the watch mark of a directory the kernel forgot. The caller holds marks_of(dir.id).
  void unwatch_directory(Inode& dir);
  std::shared_ptr<Inode> wake_resting(const Inode& fresh);
  // What the kernel held in a directory it found again is gone: its record starts empty.
  void woke(Inode& rested);
  // Directories that stopped resting other than by being found again: their marks go, unless
  // an inode with the same id and handle is live again and uses the mark.
  void stop_resting(const std::vector<std::shared_ptr<Inode>>& dirs);
  // Takes in every outside change queued so far, where a request may answer from an index that
  // has not seen them: in a directory whose index is loaded (watched indexes answer hits and
  // misses without asking the backing directory). Everywhere else answers come from the backing
  // directory itself, which already shows every change that returned.
  void take_in_outside_changes(const Inode& dir);
  void take_in_outside_changes(const Inode& a, const Inode& b);
  bool changes_pushed() const;  // whether outside changes reach the kernel as they happen
  double timeout_or_auto(double option, bool pushed) const;
  double attr_timeout_for(const Inode& inode) const;
  double entry_timeout_for(const Inode& dir, bool negative) const;

  // --- Names in casefolded directories ---
  // Whether a request may use `name`: to find an existing name, or to make a new one. In strict
  // casefolded directories, as on ext4, a name that is not valid UTF-8 cannot be made (EINVAL),
  // but looking for one is no error: it is found only if it exists byte for byte (made outside
  // the mount), else ENOENT.
  enum class NameUse { kFind, kMake };
  int check_name(std::string_view name, bool casefold, NameUse use) const;
  // The stored name `name` stands for: the exact spelling if stored, else the bytewise smallest
  // equivalent. Requires dir's ns_lock. *exact_stat (if given) gets the exact name's stat when
  // resolving had to take it.
  int resolve(const std::shared_ptr<Inode>& dir, int dirfd, const names::FoldedName& name,
              std::string* stored, std::optional<struct stat>* exact_stat = nullptr);
  // *loaded: whether it (re)loaded the index; *delta: the change in the number of names.
  int ensure_index(DirState& dir, int dirfd, bool* loaded) REQUIRES(dir.index_lock);
  size_t count_equivalents(const std::shared_ptr<Inode>& dir, int dirfd,
                           const names::FoldedName& name);
  void index_change(Inode& dir, int dirfd, std::string_view added, std::string_view removed);
  void restamp_index(DirState& state, int dirfd) REQUIRES(state.index_lock);
  // The kernel may now cache `name` in `dir` (a positive entry, or a `negative` one).
  void note_kernel_entry(Inode& dir, const names::FoldedName& name, bool negative);
  // Before a change of `name` in `dir` replies (`stored`: the name it found, empty if none).
  void forget_other_spellings(Inode& dir, const names::FoldedName& name,
                              std::string_view stored = {});
  // Both, after a change that leaves the kernel a dentry for `name` (`negative`: a negative one).
  void note_change(Inode& dir, const names::FoldedName& name, std::string_view stored,
                   bool negative);

  // --- Making nodes ---
  struct NodeSpec;
  mode_t creation_mode(const Context& ctx, int dirfd, mode_t mode) const;
  // Whether creating `mode` in `dirfd` keeps or drops the setgid bit by the caller's groups.
  static bool groups_decide_setgid(int dirfd, const Context& ctx, mode_t mode);
  // Gives a directory made by `ctx` in a casefolded directory the casefold flag.
  int inherit_casefold_flag(const Context& ctx, int dirfd, const std::string& name);
  int create_node(const Context& ctx, uint64_t parent, std::string_view name, const NodeSpec& spec,
                  EntryOut* out);
  int remove_node(const Context& ctx, uint64_t parent, std::string_view name, bool dir);
  // A union's upper tree: whether `name` in `dirfd` is a whiteout, and the steps that put a node
  // made under the temporary name `made` in the whiteout's place (union_upper_ops.cc).
  bool whiteout_at(int dirfd, const std::string& name) const;
  int replace_whiteout(int dirfd, const std::string& made, const std::string& whiteout,
                       bool is_dir);
  static bool is_temporary_name(std::string_view name);
  static int rename_keeping(int dirfd, const std::string& from, const std::string& to);
  // Removes the whiteouts a directory `name` of `dirfd` holds; ENOTEMPTY if it holds anything
  // else.
  int clear_whiteouts(int dirfd, const std::string& name);

  int scan_directory(
      const std::shared_ptr<Inode>& dir, off_t offset,
      const std::function<bool(int, const char*, uint64_t, unsigned char, off_t)>& visit,
      size_t chunk);

  // The lookup counters; each part keeps its own (stats_text() gathers them).
  struct Counters {
    std::atomic<uint64_t> lookups{0};
    std::atomic<uint64_t> exact_hits{0};
    std::atomic<uint64_t> folded_hits{0};
    std::atomic<uint64_t> negative_answers{0};
    std::atomic<uint64_t> index_loads{0};
    std::atomic<uint64_t> rested_wakes{0};
    std::atomic<uint64_t> xattr_requests{0};
  };

  const Options options_;
  const backing::UniqueFd root_fd_;  // O_PATH of the backing root
  const std::string backing_path_;   // realpath of the backing root
  bool network_backing_ = false;     // NFS, SMB, FUSE, ...: changes elsewhere go unreported
  bool handles_carry_ino_ = false;   // FILEID_INO32_GEN handles, checked on the root
  Callers callers_;
  NodeIds ids_;
  Confinement confinement_;
  InodeTable inodes_;
  backing::FdCache fds_;
  KernelCache kernel_;
  IndexBudget budget_;
  RestingDirs resting_;
  ListingDemand listing_;
  // Entering the table and placing a directory's watch mark are one step with respect to FORGET,
  // which removes both. Per inode, not per mount: a burst of FORGETs (each may open a handle and
  // remove a mark) does not hold up lookups of other inodes. The shard of `id` is marks_[id % n].
  std::array<Mutex, 64> marks_;
  Mutex& marks_of(uint64_t id) { return marks_[id % marks_.size()]; }
  std::unique_ptr<OutsideWatch> outside_;  // null unless outside changes are watched
  Counters counters_;
  std::function<std::string()> transport_stats_;
  TestHook test_hook_;
  bool union_upper_ = false;  // set before requests are served
  backing::UniqueFd work_dir_;
};

}  // namespace foldfs::fs
