// The filesystem: its parts (node ids, confinement, outside changes, the kernel's cache, the index
// budget, listing demand) put together, inodes entering the table, name resolution in casefolded
// directories, and lookups. The lock order is in filesystem.h.
#include "fs/filesystem.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "backing/casefold_flag.h"
#include "backing/dir_reader.h"
#include "backing/proc_path.h"
#include "backing/union_format.h"
#include "fs/dir_lock.h"
#include "fs/union_parts.h"

namespace foldfs::fs {
namespace {

bool is_network_filesystem(long type) {
  switch (static_cast<unsigned long>(type)) {
    case NFS_SUPER_MAGIC:
    case SMB_SUPER_MAGIC:
    case 0xFF534D42:  // CIFS
    case 0xFE534D42:  // SMB2
    case 0x00C36400:  // Ceph
    case V9FS_MAGIC:
    case FUSE_SUPER_MAGIC:
    case 0x73757245:  // Coda
    case AFS_SUPER_MAGIC:
      return true;
    default:
      return false;
  }
}

}  // namespace

using backing::SharedFd;
using backing::UniqueFd;

// Forgotten directories kept watched with their indexes (RestingDirs): each pins one backing
// inode and its fanotify mark; their names count in the index budget.
constexpr size_t kRestingDirectories = 1024;

// The descriptors this process may hold (the soft limit; the CLI raises it to the hard one).
uint64_t open_file_limit() {
  struct rlimit limit;
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 1024;
  return limit.rlim_cur;
}

Filesystem::Filesystem(const Options& options, UniqueFd root, const struct stat& root_st,
                       const backing::FileHandle& root_handle, UniqueFd root_read,
                       const std::string& backing)
    : options_(options),
      root_fd_(std::move(root)),
      backing_path_(backing),
      ids_(root_st, root_handle, std::move(root_read)),
      confinement_(backing, root_fd_.get(), root_st.st_dev, root_st.st_ino),
      fds_(fd_cache_capacity_for(options, open_file_limit())),
      kernel_(options.debug_no_invalidation),
      budget_(options.index_budget),
      resting_(kRestingDirectories) {}

// The watcher's thread calls back into this object: it stops first.
Filesystem::~Filesystem() {
  outside_.reset();
}

names::FoldRules Filesystem::rules() const {
  return {unicode::Version::kUtf8_12_1,
          options_.strict ? unicode::Strictness::kStrict : unicode::Strictness::kLenient};
}

std::unique_ptr<Filesystem> Filesystem::open(const std::string& backing, const Options& options,
                                             int* error) {
  UniqueFd root(::open(backing.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    *error = errno;
    return nullptr;
  }
  // open_by_handle_at takes no O_PATH descriptor: the root once more, for reading.
  UniqueFd root_read(::openat(root.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  struct stat st;
  if (!root_read.valid() || ::fstat(root.get(), &st) != 0) {
    *error = errno;
    return nullptr;
  }
  auto inode = std::make_shared<Inode>();
  if (inode->handle.assign_from(root.get(), "") != 0) {
    inode->handle = backing::FileHandle();
    inode->pinned_fd = UniqueFd(::fcntl(root.get(), F_DUPFD_CLOEXEC, 0));
  }
  std::unique_ptr<Filesystem> fs(
      new Filesystem(options, std::move(root), st, inode->handle, std::move(root_read), backing));
  fs->callers_.probe();
  struct statfs sfs;
  fs->network_backing_ =
      ::fstatfs(fs->root_fd_.get(), &sfs) == 0 && is_network_filesystem(sfs.f_type);
  uint32_t ino32 = 0;
  fs->handles_carry_ino_ = inode->handle.ino32(&ino32) && ino32 == st.st_ino;

  inode->id = kRootId;
  inode->backing_ino = st.st_ino;
  inode->backing_dev = st.st_dev;
  inode->type = S_IFDIR;
  inode->dir = std::make_unique<DirState>(fs->rules());
  bool flag = false;
  if (int err = backing::read_casefold_flag(fs->root_fd_.get(), &flag); err != 0) {
    *error = err;
    return nullptr;
  }
  inode->dir->casefold = flag;
  fs->inodes_.insert_root(std::move(inode));
  return fs;
}

bool Filesystem::casefolded(const Inode& dir) const {
  return options_.casefold == CasefoldMode::kAll || (dir.dir && dir.dir->casefold.load());
}

bool Filesystem::casefolded(uint64_t ino) const {
  auto node = inode(ino);
  return node && node->is_dir() && casefolded(*node);
}

// ---------------------------------------------------------------------------------------------
// Inodes and their descriptors

int Filesystem::dir_inode(uint64_t ino, std::shared_ptr<Inode>* out) const {
  *out = inodes_.get(ino);
  if (!*out) return ESTALE;
  return (*out)->is_dir() ? 0 : ENOTDIR;
}

int Filesystem::inode_and_fd(uint64_t ino, std::shared_ptr<Inode>* node, SharedFd* fd) {
  *node = inodes_.get(ino);
  if (!*node) return ESTALE;
  int err = 0;
  *fd = path_fd(*node, &err);
  return *fd ? 0 : err;
}

int Filesystem::begin_change(uint64_t parent, std::shared_ptr<Inode>* dir, SharedFd* dirfd) {
  if (options_.read_only) return EROFS;
  if (int err = dir_inode(parent, dir); err != 0) return err;
  take_in_outside_changes(**dir);
  int err = 0;
  *dirfd = path_fd(*dir, &err);
  return *dirfd ? 0 : err;
}

uint64_t Filesystem::fd_cache_key(const Inode& inode) {
  // The generation tells apart two files that held the same inode number in turn.
  return inode.id ^ (inode.generation * 0x9e3779b97f4a7c15ull);
}

SharedFd Filesystem::path_fd(const std::shared_ptr<Inode>& inode, int* error) {
  if (inode->pinned_fd.valid()) return SharedFd(inode, &inode->pinned_fd);
  if (inode->id == kRootId && inode->handle.empty()) return SharedFd(inode, &root_fd_);
  const uint64_t key = fd_cache_key(*inode);
  if (SharedFd fd = fds_.get(key)) return fd;
  const int fd = ids_.open(inode->handle, inode->backing_dev, O_PATH | O_NOFOLLOW);
  if (fd < 0) {
    *error = -fd;
    return nullptr;
  }
  return fds_.put(key, UniqueFd(fd));
}

int Filesystem::open_inode(const std::shared_ptr<Inode>& inode, int flags) {
  flags |= O_CLOEXEC;
  if (!inode->handle.empty()) return ids_.open(inode->handle, inode->backing_dev, flags);
  int error = 0;
  SharedFd pfd = path_fd(inode, &error);
  if (!pfd) return -error;
  const int fd = ::open(backing::ProcPath(pfd->get()).c_str(), flags & ~O_NOFOLLOW);
  return fd >= 0 ? fd : -errno;
}

// ---------------------------------------------------------------------------------------------
// Entering inodes in the table

int Filesystem::enter(UniqueFd fd, const struct stat& st, const backing::FileHandle& handle,
                      EntryOut* out) {
  auto fresh = std::make_shared<Inode>();
  fresh->backing_ino = st.st_ino;
  fresh->backing_dev = st.st_dev;
  fresh->type = st.st_mode & S_IFMT;
  fresh->handle = handle;
  const NodeIds::Identity identity = ids_.identify(st, fresh->handle);
  fresh->id = identity.id;
  fresh->generation = identity.generation;
  if (S_ISDIR(st.st_mode)) ids_.note_directory(st.st_dev, fd.get());

  std::shared_ptr<Inode> known = inodes_.get(fresh->id);
  const bool same_file =
      known && (fresh->handle.empty() || known->id == kRootId ? known->backing_ino == st.st_ino
                                                              : known->handle == fresh->handle);
  if (!same_file && S_ISDIR(st.st_mode)) {
    // Rules come from the directory itself, however it was reached (lookup, file handle).
    fresh->dir = std::make_unique<DirState>(rules());
    bool flag = false;
    if (options_.casefold == CasefoldMode::kFlag) {  // with casefold=all the flag is moot
      if (int err = backing::read_casefold_flag(fd.get(), &flag); err != 0) return err;
    }
    fresh->dir->casefold = flag;
  }
  // Without a handle the inode keeps its descriptor. Set before the inode enters the table:
  // other threads read it from then on.
  if (!same_file && fresh->handle.empty()) fresh->pinned_fd = std::move(fd);
  bool changed = false;
  bool inserted = false;
  std::shared_ptr<Inode> inode;
  {
    // Entering the table and placing the directory's watch mark are one step with respect to
    // FORGET, which removes both: an inode brought back by a racing lookup is watched again.
    MutexLock marks(marks_of(fresh->id));  // known and fresh have the same id
    std::shared_ptr<Inode> rested;
    if (!same_file) {
      rested = wake_resting(*fresh);
    } else if (inodes_.get(fresh->id) != known) {
      // A FORGET took `known` out of the table after it was read above, and rested it if it
      // is a watched directory: it comes back from there, or the same object would be in the
      // table and at rest at once (and its next rest would unwatch it).
      rested = resting_.take(fresh->id);
      if (rested) woke(*rested);
    }
    inode = inodes_.acquire(same_file ? known : rested ? rested : fresh, &changed, &inserted);
    if (inserted && inode->is_dir() && inode != rested) {
      watch_directory(*inode, inode->pinned_fd.valid() ? inode->pinned_fd.get() : fd.get());
    }
  }
  if (changed) fds_.erase(fd_cache_key(*inode));
  if (fd.valid() && !inode->pinned_fd.valid() && inode->id != kRootId) {
    fds_.put(fd_cache_key(*inode), std::move(fd));
  }

  out->ino = inode->id;
  out->generation = inode->generation;
  out->attr = st;
  out->attr_timeout = attr_timeout_for(*inode);
  return 0;
}

int Filesystem::enter_descriptor(UniqueFd fd, EntryOut* out) {
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errno;
  backing::FileHandle handle;
  if (handle.assign_from(fd.get(), "") != 0) handle = backing::FileHandle();
  return enter(std::move(fd), st, handle, out);
}

// Two system calls instead of four (counting the close of the descriptor it would push out of
// the cache). Where handles carry the inode number (checked at mount), a handle and a stat of
// the same name that agree on it name the same file; if the name changed in between they
// disagree and the caller opens the file instead.
bool Filesystem::enter_name_without_opening(int dirfd, const std::string& name,
                                            const std::optional<struct stat>& known, EntryOut* out,
                                            int* err) {
  if (!handles_carry_ino_) return false;
  backing::FileHandle handle;
  if (handle.assign_from(dirfd, name.c_str()) != 0) return false;
  struct stat st;
  if (known) {
    st = *known;
  } else if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return false;
  }
  uint32_t ino = 0;
  if (S_ISDIR(st.st_mode) || st.st_dev != ids_.root_dev() || !handle.ino32(&ino) ||
      ino != st.st_ino) {
    return false;
  }
  *err = enter(UniqueFd(), st, handle, out);
  return true;
}

int Filesystem::enter_name(Inode& parent, int dirfd, const std::string& name, EntryOut* out,
                           const std::optional<struct stat>& known) {
  int err = 0;
  if (!enter_name_without_opening(dirfd, name, known, out, &err)) {
    UniqueFd fd(::openat(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return errno;
    err = enter_descriptor(std::move(fd), out);
  }
  if (err == 0) out->entry_timeout = entry_timeout_for(parent, false);
  return err;
}

int Filesystem::enter_open_file(Inode& parent, int fd, const struct stat& st, EntryOut* out) {
  backing::FileHandle handle;
  UniqueFd path_fd;
  const bool has_handle = handle.assign_from(fd, "") == 0;
  if (!has_handle) handle = backing::FileHandle();
  if (!has_handle || st.st_dev != ids_.root_dev()) {
    // The inode keeps an O_PATH descriptor (no handles), or its filesystem needs one for its
    // handles: taken from this one's /proc link, which leads to the same file, never a name
    // (with O_NOFOLLOW it would give the link itself).
    path_fd.reset(::open(backing::ProcPath(fd).c_str(), O_PATH | O_CLOEXEC));
    if (!path_fd.valid()) return errno;
  }
  const int err = enter(std::move(path_fd), st, handle, out);
  if (err == 0) out->entry_timeout = entry_timeout_for(parent, false);
  return err;
}

void Filesystem::forget(uint64_t ino, uint64_t nlookup) {
  std::vector<std::shared_ptr<Inode>> pushed_out;
  {
    MutexLock marks(marks_of(ino));
    auto removed = inodes_.release(ino, nlookup);
    if (!removed) return;
    fds_.erase(fd_cache_key(*removed));
    if (!outside_ || !removed->is_dir()) return;
    bool watched = false;
    {
      MutexLock lock(removed->dir->index_lock);
      watched = removed->dir->watched;
    }
    if (!watched) return;
    // Still watched, its index kept: the kernel may well look it up again soon.
    pushed_out = resting_.rest(std::move(removed));
  }
  stop_resting(pushed_out);
}

// A resting directory the kernel found again, if `fresh` is the same directory: it comes back
// with its index (its casefold flag as the backing tree has it now) and a record that says the
// kernel holds nothing in it. The caller holds marks_of(fresh.id).
std::shared_ptr<Inode> Filesystem::wake_resting(const Inode& fresh) {
  if (!fresh.is_dir()) return nullptr;
  std::shared_ptr<Inode> rested = resting_.take(fresh.id);
  if (!rested) return nullptr;
  if (rested->handle != fresh.handle) {  // the inode number was reused
    unwatch_directory(*rested);
    return nullptr;
  }
  const bool casefold = fresh.dir->casefold.load();
  if (rested->dir->casefold.load() != casefold) {
    {
      MutexLock lock(rested->dir->index_lock);
      rested->dir->index.clear();
    }
    budget_.resized(*rested, 0);
    rested->dir->casefold = casefold;
  }
  woke(*rested);
  return rested;
}

void Filesystem::woke(Inode& rested) {
  rested.dir->kernel.forget_all();
  rested.dir->listed_epoch = ~0ull;
  counters_.rested_wakes++;
}

void Filesystem::unwatch_directory(Inode& dir) {
  {
    MutexLock lock(dir.dir->index_lock);
    if (!dir.dir->watched) return;
    dir.dir->watched = false;
  }
  // The mark pins the backing inode: it goes with the last use.
  const int fd = ids_.open(dir.handle, dir.backing_dev, O_PATH | O_NOFOLLOW);
  if (fd >= 0) {
    outside_->unwatch(fd);
    ::close(fd);
  }
}

void Filesystem::stop_resting(const std::vector<std::shared_ptr<Inode>>& dirs) {
  for (const auto& dir : dirs) {
    MutexLock marks(marks_of(dir->id));
    auto live = inodes_.get(dir->id);
    if (live && live->handle == dir->handle) continue;  // its mark serves the live inode
    unwatch_directory(*dir);
  }
}

int Filesystem::reconnect(uint64_t id, EntryOut* out) {
  const auto handle = ids_.handle_of(id);
  if (!handle) return ESTALE;
  const int raw = ids_.open(*handle, ids_.root_dev(), O_PATH | O_NOFOLLOW);
  if (raw < 0) return ESTALE;
  UniqueFd fd(raw);
  // A file whose directory the kernel still holds is most likely found there.
  auto likely = [this](const std::function<bool(int dirfd)>& visit) {
    for (const auto& dir : inodes_.directories()) {
      if (dir->backing_dev != ids_.root_dev()) continue;
      int err = 0;
      SharedFd dirfd = path_fd(dir, &err);
      if (dirfd && visit(dirfd->get())) return;
    }
  };
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !confinement_.contains(fd.get(), st, likely)) return ESTALE;
  if (int e = enter_descriptor(std::move(fd), out); e != 0) return e;
  if (out->ino != id) {
    forget(out->ino, 1);
    return ESTALE;
  }
  out->entry_timeout = 0;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Outside changes

void Filesystem::start_services() {
  if (options_.outside != OutsideChanges::kWatch || outside_) return;
  if (network_backing_) {
    std::fprintf(stderr,
                 "foldfs: %s is on a network filesystem: changes made elsewhere are seen by "
                 "revalidation (outside=revalidate)\n",
                 backing_path_.c_str());
    return;
  }
  auto root = inodes_.get(kRootId);
  int err = EOPNOTSUPP;
  if (!root->handle.empty())
    outside_ = OutsideWatch::start(root_fd_.get(), *this, kernel_.notifier(), &err);
  if (!outside_) {
    std::fprintf(stderr,
                 "foldfs: cannot watch %s for outside changes (fanotify: %s): changes made "
                 "directly in it are seen within the timeouts (outside=revalidate)\n",
                 backing_path_.c_str(), std::strerror(err));
    return;
  }
  MutexLock lock(root->dir->index_lock);
  root->dir->watched = true;
  root->dir->index.clear();
}

void Filesystem::stop_services() {
  if (outside_) outside_->stop();
}

// Marks only on the root's filesystem: events of another one could not be matched to inodes.
void Filesystem::watch_directory(Inode& dir, int fd) {
  if (!outside_ || dir.handle.empty() || dir.backing_dev != ids_.root_dev() || fd < 0) return;
  const bool ok = outside_->watch(fd);
  {
    MutexLock lock(dir.dir->index_lock);
    dir.dir->watched = ok;
    // Changes made while the directory was not watched (an inode object brought back after a
    // FORGET) were never reported: start over from a fresh listing.
    dir.dir->index.clear();
  }
  budget_.resized(dir, 0);
}

// The inode in the table for a backing handle reported by the watcher, if the kernel holds it.
std::shared_ptr<Inode> Filesystem::known_inode(const backing::FileHandle& handle) {
  auto root = inodes_.get(kRootId);
  if (root && handle == root->handle) return root;
  const auto id = ids_.id_of(handle);
  if (!id) return nullptr;
  // FORGET moves a directory from the table to rest, and waking moves it back, under this
  // lock: without it an event could find the directory in neither, and its index, kept, would
  // miss the change.
  MutexLock marks(marks_of(*id));
  auto node = inodes_.get(*id);
  if (!node) node = resting_.find(*id);  // its index follows outside changes too
  return node && node->handle == handle ? node : nullptr;
}

// A change of names: the index learns it, then the kernel forgets every dentry, so that another
// spelling or a miss it cached cannot outlive the change.
void Filesystem::names_changed(const backing::FileHandle& dir_handle, const std::string& name) {
  std::shared_ptr<Inode> dir = known_inode(dir_handle);
  if (!dir || !dir->is_dir()) return;  // the kernel holds nothing there
  int err = 0;
  SharedFd dirfd = path_fd(dir, &err);
  size_t names = 0;
  {
    MutexLock lock(dir->dir->index_lock);
    if (dir->dir->index.complete()) {
      struct stat st;
      if (!dirfd) {
        dir->dir->index.clear();
      } else if (::fstatat(dirfd->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        dir->dir->index.insert(name);
      } else {
        dir->dir->index.erase(name);
      }
    }
    names = dir->dir->index.size();
  }
  budget_.resized(*dir, names);
  kernel_.forget_everything();
}

// A change of attributes or data: the kernel forgets that inode's attributes and pages.
void Filesystem::attributes_changed(const backing::FileHandle& dir_handle,
                                    const std::string& name) {
  std::shared_ptr<Inode> dir = known_inode(dir_handle);
  if (!dir || !dir->is_dir()) return;
  if (name == ".") {
    outside_->invalidate_inodes({dir->id});
    return;
  }
  int err = 0;
  SharedFd dirfd = path_fd(dir, &err);
  backing::FileHandle handle;
  if (!dirfd || handle.assign_from(dirfd->get(), name.c_str()) != 0) return;  // gone already
  if (auto node = known_inode(handle)) outside_->invalidate_inodes({node->id});
}

void Filesystem::lost_track() {
  stop_resting(resting_.take_all());
  for (auto& dir : inodes_.directories()) {
    {
      MutexLock lock(dir->dir->index_lock);
      dir->dir->index.clear();
    }
    budget_.resized(*dir, 0);
  }
  kernel_.forget_everything();
  outside_->invalidate_inodes(inodes_.ids());
}

void Filesystem::take_in_outside_changes(bool queued) {
  if (!outside_) return;
  if (queued)
    outside_->deliver_queued();
  else
    outside_->wait_for_delivery();
}

void Filesystem::take_in_outside_changes(const Inode& dir) {
  take_in_outside_changes(dir, dir);
}

void Filesystem::take_in_outside_changes(const Inode& a, const Inode& b) {
  if (!outside_) return;
  auto loaded = [](const Inode& d) {
    MutexLock lock(d.dir->index_lock);
    return d.dir->index.complete();
  };
  if (loaded(a) || (&a != &b && loaded(b))) outside_->deliver_queued();
}

bool Filesystem::changes_pushed() const {
  return outside_ && kernel_.forgets();
}

double Filesystem::timeout_or_auto(double option, bool pushed) const {
  if (option != Options::kAutoTimeout) return option;
  return pushed ? Options::kPushedTimeout : Options::kPolledTimeout;
}

double Filesystem::attr_timeout() const {
  return timeout_or_auto(options_.attr_timeout, changes_pushed());
}

// Attributes and data changed outside are pushed for files on the watched filesystem; on a
// filesystem mounted inside the tree they expire after the short timeout.
double Filesystem::attr_timeout_for(const Inode& inode) const {
  return timeout_or_auto(options_.attr_timeout,
                         changes_pushed() && inode.backing_dev == ids_.root_dev());
}

double Filesystem::attr_timeout_of(uint64_t ino) const {
  auto node = inodes_.get(ino);
  return node ? attr_timeout_for(*node) : timeout_or_auto(options_.attr_timeout, false);
}

double Filesystem::entry_timeout_for(const Inode& dir, bool negative) const {
  const double option = negative ? options_.negative_timeout : options_.entry_timeout;
  const double t = timeout_or_auto(option, changes_pushed() && dir.dir->watched.load());
  if (!casefolded(dir)) return t;
  // Other spellings and misses may only be cached where they can be invalidated exactly.
  return kernel_.can_forget() ? t : 0;
}

// ---------------------------------------------------------------------------------------------
// Names in casefolded directories

int Filesystem::check_name(std::string_view name, bool casefold, NameUse use) const {
  if (name.empty()) return ENOENT;
  if (name.size() > unicode::kMaxNameBytes) return ENAMETOOLONG;
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return EINVAL;
  }
  if (use == NameUse::kMake && casefold && options_.strict && !unicode::is_valid_utf8(name)) {
    return EINVAL;
  }
  return 0;
}

int Filesystem::ensure_index(DirState& dir, int dirfd, bool* loaded) {
  *loaded = false;
  if (dir.watched && dir.index.complete()) return 0;  // outside changes arrive as events
  // Revalidation: the directory's times must not have moved behind our back, and the index
  // must be younger than the kernel's timeouts. Times alone miss some outside changes (a
  // change within one timestamp tick of ours; tmpfs's multigrain times), the age bounds those
  // by the same timeouts that bound the kernel's caches.
  struct stat st;
  if (::fstat(dirfd, &st) != 0) return errno;
  const auto max_age =
      std::chrono::duration<double>(std::max(timeout_or_auto(options_.entry_timeout, false),
                                             timeout_or_auto(options_.negative_timeout, false)));
  const bool fresh = dir.index.complete() && st.st_mtim.tv_sec == dir.index_mtime.tv_sec &&
                     st.st_mtim.tv_nsec == dir.index_mtime.tv_nsec &&
                     st.st_ctim.tv_sec == dir.index_ctime.tv_sec &&
                     st.st_ctim.tv_nsec == dir.index_ctime.tv_nsec &&
                     std::chrono::steady_clock::now() - dir.index_loaded_at < max_age;
  if (fresh) return 0;
  std::vector<backing::DirEntry> entries;
  if (int err = backing::read_directory(dirfd, &entries); err != 0) return err;
  std::vector<std::string> names;
  names.reserve(entries.size());
  for (auto& e : entries) names.push_back(std::move(e.name));
  dir.index.load(names);
  dir.index_mtime = st.st_mtim;
  dir.index_ctime = st.st_ctim;
  dir.index_loaded_at = std::chrono::steady_clock::now();
  counters_.index_loads++;
  *loaded = true;
  return 0;
}

// The exact spelling is checked first: cheapest, and it keeps every entry of a directory with
// collisions reachable.
int Filesystem::resolve(const std::shared_ptr<Inode>& dir_ptr, int dirfd,
                        const names::FoldedName& name, std::string* stored,
                        std::optional<struct stat>* exact_stat) {
  DirState& dir = *dir_ptr->dir;
  {
    // Callers took in every outside change queued before their request (lookup(),
    // begin_change()): a watched directory read once answers every lookup, hits and misses,
    // from its index.
    MutexLock lock(dir.index_lock);
    if (dir.watched && dir.index.complete()) {
      auto found = dir.index.resolve(name);
      if (!found) return ENOENT;
      (*found == name.name() ? counters_.exact_hits : counters_.folded_hits)++;
      *stored = std::move(*found);
      return 0;
    }
  }
  // Loads or revalidates the index and accounts for what that changed; then `use` runs with
  // the index lock held.
  auto with_fresh_index = [&](bool only_if_loaded, auto&& use) {
    bool loaded = false;
    size_t names = 0;
    int err = 0;
    {
      MutexLock lock(dir.index_lock);
      if (!only_if_loaded || dir.index.complete()) err = ensure_index(dir, dirfd, &loaded);
      if (err == 0) use();
      names = dir.index.size();
    }
    if (loaded) budget_.loaded(dir_ptr, names);
    return err;
  };
  struct stat st;
  const std::string exact(name.name());
  if (::fstatat(dirfd, exact.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    *stored = exact;
    if (exact_stat) *exact_stat = st;
    counters_.exact_hits++;
    // A change about to be made through the mount restamps the index: first take in any
    // outside change its times show, or the restamp would hide it.
    with_fresh_index(true, [] {});
    return 0;
  }
  if (errno != ENOENT) return errno;
  std::optional<std::string> found;
  auto look = [&]() NO_THREAD_SAFETY_ANALYSIS { found = dir.index.resolve(name); };
  if (int err = with_fresh_index(false, look); err != 0) return err;
  if (!found || *found == exact) return ENOENT;  // an index entry for `exact` is stale
  *stored = std::move(*found);
  counters_.folded_hits++;
  return 0;
}

void Filesystem::index_change(Inode& dir, int dirfd, std::string_view added,
                              std::string_view removed) {
  DirState& state = *dir.dir;
  size_t names = 0;
  {
    MutexLock lock(state.index_lock);
    if (!state.index.complete()) return;
    if (!removed.empty()) state.index.erase(removed);
    if (!added.empty()) state.index.insert(added);
    if (!state.watched) restamp_index(state, dirfd);  // watched: events, not times
    names = state.index.size();
  }
  budget_.resized(dir, names);
}

// The directory's times moved because of a change made through the mount: they become the
// index's new stamp.
void Filesystem::restamp_index(DirState& state, int dirfd) {
  struct stat st;
  if (::fstat(dirfd, &st) == 0) {
    state.index_mtime = st.st_mtim;
    state.index_ctime = st.st_ctim;
  } else {
    state.index.clear();
  }
}

void Filesystem::note_kernel_entry(Inode& dir, const names::FoldedName& name, bool negative) {
  if (!casefolded(dir) || entry_timeout_for(dir, negative) <= 0) return;
  kernel_.noted(dir.dir->kernel, name);
}

void Filesystem::forget_other_spellings(Inode& dir, const names::FoldedName& name,
                                        std::string_view stored) {
  if (!casefolded(dir)) return;
  kernel_.forget_other_spellings(dir.dir->kernel, dir.dir->listed_epoch.load(), name, stored);
}

void Filesystem::note_change(Inode& dir, const names::FoldedName& name, std::string_view stored,
                             bool negative) {
  forget_other_spellings(dir, name, stored);
  note_kernel_entry(dir, name, negative);
}

// ---------------------------------------------------------------------------------------------
// Lookup

int Filesystem::lookup(const Context& ctx, uint64_t parent, std::string_view name, EntryOut* out) {
  return lookup_in_tree(ctx, parent, name, out, nullptr, nullptr);
}

int Filesystem::lookup_in_tree(const Context&, uint64_t parent, std::string_view name,
                               EntryOut* out, std::string* found, size_t* equivalents,
                               bool changes_taken_in) {
  counters_.lookups++;
  // "." and ".." arrive only when the kernel reconnects an inode reached by file handle.
  if (name == ".") {
    std::shared_ptr<Inode> self = inode(parent);
    if (!self) return reconnect(parent, out);
    int err = 0;
    SharedFd fd = path_fd(self, &err);
    if (!fd) return err;
    if (int e = enter_descriptor(UniqueFd(::fcntl(fd->get(), F_DUPFD_CLOEXEC, 0)), out); e != 0) {
      return e;
    }
    out->entry_timeout = 0;
    return 0;
  }
  std::shared_ptr<Inode> dir;
  if (int err = dir_inode(parent, &dir); err != 0) return err;
  int err = 0;
  SharedFd dirfd = path_fd(dir, &err);
  if (!dirfd) return err;
  if (name == "..") {
    // The root's parent is the root: nothing above the backing directory is ever reached.
    UniqueFd fd(
        ::openat(dirfd->get(), parent == kRootId ? "." : "..", O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return errno;
    if (int e = enter_descriptor(std::move(fd), out); e != 0) return e;
    out->entry_timeout = 0;
    return 0;
  }

  listing_.looked_up_in(*dir->dir);
  if (!changes_taken_in) take_in_outside_changes(*dir);
  DirLock lock(*dir->dir, DirLock::kRead);
  const bool casefold = casefolded(*dir);
  if (int e = check_name(name, casefold, NameUse::kFind); e != 0) return e;
  std::string stored(name);
  std::optional<struct stat> exact_stat;    // the exact name's, when resolving had to stat it
  std::optional<names::FoldedName> folded;  // folded once per request, where names fold
  if (casefold) {
    folded.emplace(name, rules());
    err = resolve(dir, dirfd->get(), *folded, &stored, &exact_stat);
  }
  if (err == 0) err = enter_name(*dir, dirfd->get(), stored, out, exact_stat);
  if (err == 0 && found) *found = std::move(stored);
  if (err == 0 && equivalents) {
    *equivalents = folded ? count_equivalents(dir, dirfd->get(), *folded) : 1;
  }
  if (err == ENOENT) {
    counters_.negative_answers++;
    out->ino = 0;
    out->entry_timeout = entry_timeout_for(*dir, true);
  }
  if (folded && (err == 0 || err == ENOENT)) note_kernel_entry(*dir, *folded, err == ENOENT);
  hook("lookup:answered");
  return err;
}

// The stored names that share `name`'s key (at least the one found): the index, loaded if it was
// not (a single-tree lookup of an exact spelling needs none).
size_t Filesystem::count_equivalents(const std::shared_ptr<Inode>& dir, int dirfd,
                                     const names::FoldedName& name) {
  DirState& state = *dir->dir;
  bool loaded = false;
  size_t names = 0;
  size_t count = 1;
  {
    MutexLock lock(state.index_lock);
    if (ensure_index(state, dirfd, &loaded) == 0) {
      count = std::max<size_t>(1, state.index.count_equivalents(name));
    }
    names = state.index.size();
  }
  if (loaded) budget_.loaded(dir, names);
  return count;
}

int Filesystem::read_union_part(uint64_t ino, size_t tree, names::UnionPart* part) {
  std::shared_ptr<Inode> dir;
  if (int err = dir_inode(ino, &dir); err != 0) return err;
  int err = 0;
  SharedFd fd = path_fd(dir, &err);
  if (!fd) return err;
  std::vector<backing::DirEntry> entries;
  if ((err = backing::read_directory(fd->get(), &entries)) != 0) return err;
  if (union_upper_) {  // a node a crash left under its temporary name is not the union's
    std::erase_if(entries, [](const backing::DirEntry& e) { return is_temporary_name(e.name); });
  }
  *part = union_part(fd->get(), tree, std::move(entries));
  return 0;
}

bool Filesystem::opaque(uint64_t ino) {
  std::shared_ptr<Inode> dir;
  if (dir_inode(ino, &dir) != 0) return false;
  int err = 0;
  SharedFd fd = path_fd(dir, &err);
  return fd && backing::is_opaque(fd->get());
}

// ---------------------------------------------------------------------------------------------
// Counters

std::string Filesystem::stats_text() const {
  const Counters& c = counters_;
  std::string out;
  auto line = [&out](const char* name, uint64_t v) {
    out += name;
    out += ' ';
    out += std::to_string(v);
    out += '\n';
  };
  line("lookups", c.lookups);
  line("exact_hits", c.exact_hits);
  line("folded_hits", c.folded_hits);
  line("negative_answers", c.negative_answers);
  line("index_loads", c.index_loads);
  line("changes_checked", kernel_.changes_checked());
  line("invalidations_sent", kernel_.forgets_sent());
  line("outside_changes", outside_ ? outside_->changes_seen() : 0);
  line("watching", outside_ ? 1 : 0);
  line("persistent_handles", ids_.persistent() ? 1 : 0);
  line("index_evictions", budget_.evictions());
  line("fd_cache_capacity", fds_.capacity());
  line("indexed_names", static_cast<uint64_t>(budget_.names()));
  line("resting_directories", resting_.size());
  line("resting_directories_woken", c.rested_wakes);
  line("xattr_requests", c.xattr_requests);
  line("inodes", inodes_.size());
  line("cached_fds", fds_.size());
  line("fd_evictions", fds_.evictions());
  if (transport_stats_) out += transport_stats_();
  return out;
}

uint64_t Filesystem::counter(std::string_view name) const {
  const std::string text = stats_text();
  const std::string key = std::string(name) + " ";
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = text.find('\n', pos);
    if (text.compare(pos, key.size(), key) == 0) {
      return std::stoull(text.substr(pos + key.size(), end - pos - key.size()));
    }
    pos = end == std::string::npos ? text.size() : end + 1;
  }
  return 0;
}

}  // namespace foldfs::fs
