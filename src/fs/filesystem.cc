// Inode plumbing, name resolution and lookups. The lock order is in filesystem.h.
#include "fs/filesystem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "backing/casefold_flag.h"
#include "backing/dir_reader.h"
#include "backing/proc_path.h"
#include "fs/dir_lock.h"

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

Filesystem::Filesystem(const Options& options, UniqueFd root, UniqueFd mount_fd)
    : options_(options),
      root_fd_(std::move(root)),
      mount_fd_(std::move(mount_fd)),
      fds_(options.fd_cache_capacity) {}

// The watcher thread calls into every other member: it stops first.
Filesystem::~Filesystem() {
  watcher_.reset();
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
  UniqueFd mount_fd(::openat(root.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!mount_fd.valid()) {
    *error = errno;
    return nullptr;
  }
  struct stat st;
  if (::fstat(root.get(), &st) != 0) {
    *error = errno;
    return nullptr;
  }
  std::unique_ptr<Filesystem> fs(new Filesystem(options, std::move(root), std::move(mount_fd)));
  fs->root_dev_ = st.st_dev;
  fs->root_ino_ = st.st_ino;
  fs->acts_as_callers_ = backing::can_act_as_others();
  fs->backing_path_ = backing;
  struct statfs sfs;
  fs->network_backing_ =
      ::fstatfs(fs->root_fd_.get(), &sfs) == 0 && is_network_filesystem(sfs.f_type);

  auto inode = std::make_shared<Inode>();
  inode->id = kRootId;
  inode->backing_ino = st.st_ino;
  inode->backing_dev = st.st_dev;
  inode->type = S_IFDIR;
  if (inode->handle.assign_from(fs->root_fd_.get(), "") != 0) {
    inode->pinned_fd = UniqueFd(::fcntl(fs->root_fd_.get(), F_DUPFD_CLOEXEC, 0));
  }
  inode->generation = 0;
  uint32_t ino32 = 0;
  fs->handles_carry_ino_ = inode->handle.ino32(&ino32) && ino32 == st.st_ino;
  fs->node_ids_ = backing::NodeIdCodec::for_root(inode->handle);
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

// ---------------------------------------------------------------------------------------------
// Inodes

std::shared_ptr<Inode> Filesystem::inode(uint64_t ino) const {
  return inodes_.get(ino);
}

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
  catch_up_for(**dir);
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
  const int fd = inode->handle.open(handle_fd_for(inode->backing_dev), O_PATH | O_NOFOLLOW);
  if (fd < 0) {
    *error = -fd;
    return nullptr;
  }
  return fds_.put(key, UniqueFd(fd));
}

int Filesystem::open_inode(const std::shared_ptr<Inode>& inode, int flags) {
  flags |= O_CLOEXEC;
  if (!inode->handle.empty()) return inode->handle.open(handle_fd_for(inode->backing_dev), flags);
  int error = 0;
  SharedFd pfd = path_fd(inode, &error);
  if (!pfd) return -error;
  const int fd = ::open(backing::ProcPath(pfd->get()).c_str(), flags & ~O_NOFOLLOW);
  return fd >= 0 ? fd : -errno;
}

// Node ids. On the backing root's filesystem a node id is the file's handle, squeezed into 64
// bits (backing/node_id_codec.h): the same file gets the same id after a restart, no two files
// share one, and an id the kernel brings back (open_by_handle_at through the mount after a
// restart, an NFS server's handle) turns back into the backing handle. Files whose handles do not
// fit, and files of filesystems mounted inside the tree, get ids from their inode number with the
// device's position in a small table in the top byte; those do not survive a restart. The FUSE
// generation is a digest of the handle: the kernel's handle carries it, and it is the same again
// when the id is reconnected.
void Filesystem::node_identity(const struct stat& st, const backing::FileHandle& handle,
                               uint64_t* id, uint64_t* generation) {
  *generation = handle.empty() ? 0 : static_cast<uint32_t>(handle.digest());
  if (node_ids_ && st.st_dev == root_dev_) {
    if (auto encoded = node_ids_->encode(handle)) {
      *id = *encoded;
      return;
    }
  }
  *id = (static_cast<uint64_t>(device_index(st.st_dev) + 1) << 56) ^ st.st_ino;
  if (*id <= kRootId) *id |= 1ull << 63;
}

size_t Filesystem::device_index(dev_t dev) {
  std::lock_guard lock(devices_mutex_);
  size_t index = 0;
  while (index < devices_.size() && devices_[index].dev != dev) ++index;
  if (index == devices_.size()) devices_.push_back(Device{dev, UniqueFd()});
  return index;
}

// A filesystem mounted inside the backing tree: its handles open only relative to a descriptor
// on it (a handle of one filesystem given to another names nothing, or another file). The first
// directory seen on a device serves for all of its handles: open_by_handle_at takes no O_PATH
// descriptor, so the directory is opened for reading, through its descriptor's /proc link.
void Filesystem::note_device(dev_t dev, int fd, bool is_dir) {
  if (dev == root_dev_ || fd < 0 || !is_dir) return;
  device_index(dev);
  std::lock_guard lock(devices_mutex_);
  for (auto& d : devices_) {
    if (d.dev != dev || d.fd.valid()) continue;
    d.fd.reset(::open(backing::ProcPath(fd).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }
}

int Filesystem::handle_fd_for(dev_t dev) const {
  if (dev == root_dev_) return mount_fd_.get();
  std::lock_guard lock(devices_mutex_);
  for (const auto& d : devices_) {
    if (d.dev == dev) return d.fd.get();  // never closed before the filesystem goes
  }
  return -1;
}

bool Filesystem::casefolded(const Inode& dir) const {
  return options_.casefold == CasefoldMode::kAll || (dir.dir && dir.dir->casefold.load());
}

int Filesystem::entry_from_fd(UniqueFd fd, EntryOut* out) {
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errno;
  backing::FileHandle handle;
  if (handle.assign_from(fd.get(), "") != 0) handle = backing::FileHandle();
  return entry_from(std::move(fd), st, handle, out);
}

// A non-directory's entry without opening it (two system calls instead of four, counting the
// close of the descriptor it would push out of the cache). Where handles carry the inode number
// (checked at mount), a handle and a stat of the same name that agree on it name the same
// file; if the name changed in between they disagree and the caller opens the file instead.
bool Filesystem::entry_without_fd(int dirfd, const std::string& name,
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
  if (S_ISDIR(st.st_mode) || st.st_dev != root_dev_ || !handle.ino32(&ino) || ino != st.st_ino)
    return false;
  *err = entry_from(UniqueFd(), st, handle, out);
  return true;
}

// `fd`: a descriptor of the file (required for directories and files without a handle), or
// none.
int Filesystem::entry_from(UniqueFd fd, const struct stat& st, const backing::FileHandle& handle,
                           EntryOut* out) {
  auto fresh = std::make_shared<Inode>();
  fresh->backing_ino = st.st_ino;
  fresh->backing_dev = st.st_dev;
  fresh->type = st.st_mode & S_IFMT;
  fresh->handle = handle;
  if (st.st_dev == root_dev_ && st.st_ino == root_ino_) {
    fresh->id = kRootId;  // ".." of a top-level directory, or "." of the root
    fresh->generation = 0;
  } else {
    node_identity(st, fresh->handle, &fresh->id, &fresh->generation);
  }
  note_device(st.st_dev, fd.get(), S_ISDIR(st.st_mode));

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
    std::lock_guard marks(marks_mutex_);
    inode = inodes_.acquire(same_file ? known : fresh, &changed, &inserted);
    if (inserted && inode->is_dir()) {
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

int Filesystem::entry_from_open_file(Inode& parent, int fd, const struct stat& st, EntryOut* out) {
  backing::FileHandle handle;
  UniqueFd path_fd;
  const bool has_handle = handle.assign_from(fd, "") == 0;
  if (!has_handle) handle = backing::FileHandle();
  if (!has_handle || st.st_dev != root_dev_) {
    // The inode keeps an O_PATH descriptor (no handles), or its filesystem needs one for its
    // handles: taken from this one's /proc link, which leads to the same file, never a name
    // (with O_NOFOLLOW it would give the link itself).
    path_fd.reset(::open(backing::ProcPath(fd).c_str(), O_PATH | O_CLOEXEC));
    if (!path_fd.valid()) return errno;
  }
  const int err = entry_from(std::move(path_fd), st, handle, out);
  if (err == 0) out->entry_timeout = entry_timeout_for(parent, false);
  return err;
}

int Filesystem::make_entry(Inode& parent, int dirfd, const std::string& stored, EntryOut* out,
                           const std::optional<struct stat>& known) {
  int err = 0;
  if (!entry_without_fd(dirfd, stored, known, out, &err)) {
    UniqueFd fd(::openat(dirfd, stored.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return errno;
    err = entry_from_fd(std::move(fd), out);
  }
  if (err == 0) out->entry_timeout = entry_timeout_for(parent, false);
  return err;
}

void Filesystem::forget(uint64_t ino, uint64_t nlookup) {
  std::lock_guard marks(marks_mutex_);
  auto removed = inodes_.release(ino, nlookup);
  if (!removed) return;
  fds_.erase(fd_cache_key(*removed));
  if (watcher_ && removed->is_dir()) {
    // The mark pins the backing inode: drop it with the last kernel reference.
    bool watched = false;
    {
      std::lock_guard lock(removed->dir->index_lock);
      watched = removed->dir->watched;
      removed->dir->watched = false;
    }
    if (!watched) return;
    const int fd = removed->handle.open(mount_fd_.get(), O_PATH | O_NOFOLLOW);
    if (fd >= 0) {
      watcher_->unwatch(fd);
      ::close(fd);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Outside changes

void Filesystem::start_services() {
  if (options_.outside != OutsideChanges::kWatch || watcher_) return;
  start_watching(backing_path_);
}

void Filesystem::stop_services() {
  if (watcher_) watcher_->stop();
}

// One rule decides what is watched and how long the kernel may keep answers: outside changes are
// pushed for the backing root's filesystem when fanotify can mark its root directory (it reports
// handles and names there), and then for every directory on that filesystem; everything else
// (network and FUSE filesystems, filesystems without handles, filesystems mounted inside the
// tree) is revalidated within the short timeouts. No directory is called watched unless its
// mark was placed.
void Filesystem::start_watching(const std::string& backing) {
  if (network_backing_) {
    std::fprintf(stderr,
                 "foldfs: %s is on a network filesystem: changes made elsewhere are seen by "
                 "revalidation (outside=revalidate)\n",
                 backing.c_str());
    return;
  }
  int err = 0;
  watcher_ = backing::DirWatcher::start(
      [this](const backing::DirWatcher::Event& e) { on_outside_change(e); },
      [this] { send_inode_invalidations(); }, &err);
  if (watcher_) {
    Inode& root = *inodes_.get(kRootId);
    err = root.handle.empty() ? EOPNOTSUPP : watcher_->watch(root_fd_.get());
    if (err == 0) {
      std::lock_guard lock(root.dir->index_lock);
      root.dir->watched = true;
      root.dir->index.clear();
      return;
    }
    watcher_.reset();
  }
  std::fprintf(stderr,
               "foldfs: cannot watch %s for outside changes (fanotify: %s): changes made "
               "directly in it are seen within the timeouts (outside=revalidate)\n",
               backing.c_str(), std::strerror(err));
}

void Filesystem::watch_directory(Inode& dir, int fd) {
  // Marks only on the root's filesystem: events of another one could not be matched to inodes.
  if (!watcher_ || dir.handle.empty() || dir.backing_dev != root_dev_ || fd < 0) return;
  const bool ok = watcher_->watch(fd) == 0;
  std::lock_guard lock(dir.dir->index_lock);
  dir.dir->watched = ok;
  // Changes made while the directory was not watched (an inode object brought back after a
  // FORGET) were never reported: start over from a fresh listing.
  dir.dir->index.clear();
}

// Runs on the watcher's thread, or in a request that catches up. A change of names: the index
// learns it, then the kernel forgets every dentry, so that another spelling or a miss it cached
// cannot outlive the change. A change of attributes or data: the kernel forgets that inode's
// attributes and pages, from the watcher's thread (send_inode_invalidations()).
void Filesystem::on_outside_change(const backing::DirWatcher::Event& event) {
  counters_.outside_changes++;
  if (event.overflow) {
    for (auto& dir : inodes_.directories()) {
      std::lock_guard lock(dir->dir->index_lock);
      dir->dir->index.clear();
    }
    invalidate_kernel_dentries();
    queue_inode_invalidations(inodes_.ids());
    return;
  }
  std::shared_ptr<Inode> dir = known_inode(event.dir);
  if (!dir || !dir->is_dir()) return;  // the kernel holds nothing there
  int err = 0;
  SharedFd dirfd = path_fd(dir, &err);
  if (event.attributes_changed)
    note_outside_attribute_change(*dir, dirfd ? dirfd->get() : -1, event.name);
  if (!event.names_changed) return;
  {
    std::lock_guard lock(dir->dir->index_lock);
    if (dir->dir->index.complete()) {
      struct stat st;
      if (!dirfd) {
        dir->dir->index.clear();
      } else if (::fstatat(dirfd->get(), event.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        dir->dir->index.insert(event.name);
      } else {
        dir->dir->index.erase(event.name);
      }
    }
  }
  invalidate_kernel_dentries();
}

void Filesystem::note_outside_attribute_change(const Inode& dir, int dirfd,
                                               const std::string& name) {
  if (name == ".") {
    queue_inode_invalidations({dir.id});
    return;
  }
  backing::FileHandle handle;
  if (dirfd < 0 || handle.assign_from(dirfd, name.c_str()) != 0) return;  // gone already
  if (auto node = known_inode(handle)) queue_inode_invalidations({node->id});
}

// The inode in the table for a backing handle reported by the watcher, if the kernel holds it.
std::shared_ptr<Inode> Filesystem::known_inode(const backing::FileHandle& handle) {
  auto root = inodes_.get(kRootId);
  if (root && handle == root->handle) return root;
  if (handle.empty()) return nullptr;
  uint64_t id = 0;
  if (auto encoded = node_ids_ ? node_ids_->encode(handle) : std::nullopt) {
    id = *encoded;
  } else {
    // Larger handles (btrfs: 20 bytes) do not carry the node id: the file's inode number does.
    const int raw = handle.open(mount_fd_.get(), O_PATH | O_NOFOLLOW);
    if (raw < 0) return nullptr;
    UniqueFd fd(raw);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return nullptr;
    uint64_t generation = 0;
    node_identity(st, handle, &id, &generation);
  }
  auto node = inodes_.get(id);
  return node && node->handle == handle ? node : nullptr;
}

void Filesystem::queue_inode_invalidations(const std::vector<uint64_t>& ids) {
  if (ids.empty() || !watcher_) return;
  bool was_empty = false;
  {
    std::lock_guard lock(pending_mutex_);
    was_empty = pending_inode_invalidations_.empty();
    pending_inode_invalidations_.insert(pending_inode_invalidations_.end(), ids.begin(), ids.end());
  }
  if (was_empty) watcher_->kick();  // from a request's catch-up: the watcher sends them
}

void Filesystem::send_inode_invalidations() {
  std::vector<uint64_t> ids;
  {
    std::lock_guard lock(pending_mutex_);
    ids.swap(pending_inode_invalidations_);
  }
  if (ids.empty() || !notifier_) return;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (uint64_t id : ids) notifier_->invalidate_inode(id);
}

bool Filesystem::changes_pushed() const {
  return watcher_ && notifier_ && notifier_->can_invalidate_all() &&
         !options_.debug_no_invalidation;
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
  return timeout_or_auto(options_.attr_timeout, changes_pushed() && inode.backing_dev == root_dev_);
}

double Filesystem::attr_timeout_of(uint64_t ino) const {
  auto node = inodes_.get(ino);
  return node ? attr_timeout_for(*node) : timeout_or_auto(options_.attr_timeout, false);
}

void Filesystem::catch_up_for(const Inode& dir) {
  catch_up_for(dir, dir);
}

void Filesystem::catch_up_for(const Inode& a, const Inode& b) {
  if (!watcher_) return;
  auto loaded = [](const Inode& d) {
    std::lock_guard lock(d.dir->index_lock);
    return d.dir->index.complete();
  };
  if (loaded(a) || (&a != &b && loaded(b))) watcher_->catch_up();
}

bool Filesystem::is_casefolded(uint64_t ino) {
  auto node = inode(ino);
  return node && node->is_dir() && casefolded(*node);
}

// ---------------------------------------------------------------------------------------------
// Names

int Filesystem::check_name(std::string_view name, bool casefold) const {
  if (name.empty()) return ENOENT;
  if (name.size() > unicode::kMaxNameBytes) return ENAMETOOLONG;
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return EINVAL;
  }
  if (casefold && options_.strict && !unicode::is_valid_utf8(name)) return EINVAL;
  return 0;
}

uint64_t Filesystem::key_hash_of(std::string_view name) const {
  unicode::KeyBuffer key;
  const auto r = rules();
  if (key.assign(name, r.version, r.strictness) == unicode::FoldStatus::kRefused) {
    return unicode::key_hash(name);
  }
  return unicode::key_hash(key.view());
}

int Filesystem::ensure_index_locked(DirState& dir, int dirfd, bool* loaded, long* delta) {
  *loaded = false;
  *delta = 0;
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
  const long before = static_cast<long>(dir.index.size());
  dir.index.load(names);
  *delta = static_cast<long>(dir.index.size()) - before;
  dir.index_mtime = st.st_mtim;
  dir.index_ctime = st.st_ctim;
  dir.index_loaded_at = std::chrono::steady_clock::now();
  counters_.index_loads++;
  *loaded = true;
  return 0;
}

// Finds the stored name `name` stands for in a casefolded directory: the exact spelling when it
// exists (checked first: cheapest, and it keeps every entry of a directory with collisions
// reachable), else the bytewise smallest equivalent. Requires dir.ns_lock (either mode).
int Filesystem::resolve_locked(const std::shared_ptr<Inode>& dir_ptr, int dirfd,
                               std::string_view name, std::string* stored,
                               std::optional<struct stat>* exact_stat) {
  Inode& dir = *dir_ptr;
  {
    // Callers took in every outside change queued before their request (lookup(),
    // begin_change()): a watched directory read once answers every lookup, hits and misses,
    // from its index.
    std::lock_guard lock(dir.dir->index_lock);
    if (dir.dir->watched && dir.dir->index.complete()) {
      auto found = dir.dir->index.resolve(name);
      if (!found) return ENOENT;
      (*found == name ? counters_.exact_hits : counters_.folded_hits)++;
      *stored = std::move(*found);
      return 0;
    }
  }
  // Loads or revalidates the index and accounts for what that changed; then `use` runs with
  // the index lock held.
  auto with_fresh_index = [&](bool only_if_loaded, auto&& use) {
    bool loaded = false;
    long delta = 0;
    int err = 0;
    {
      std::lock_guard lock(dir.dir->index_lock);
      if (!only_if_loaded || dir.dir->index.complete()) {
        err = ensure_index_locked(*dir.dir, dirfd, &loaded, &delta);
      }
      if (err == 0) use();
    }
    if (loaded) account_index(&dir_ptr, delta);
    return err;
  };
  struct stat st;
  const std::string exact(name);
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
  if (int err = with_fresh_index(false, [&] { found = dir.dir->index.resolve(name); }); err != 0)
    return err;
  if (!found || *found == exact) return ENOENT;  // an index entry for `exact` is stale
  *stored = std::move(*found);
  counters_.folded_hits++;
  return 0;
}

// Keeps the names held by all indexes under options_.index_budget: the least recently loaded
// indexes are dropped (they reload on their next miss). Victims are only try-locked, so this
// never waits on another directory while a caller holds locks.
void Filesystem::account_index(const std::shared_ptr<Inode>* loaded_dir, long delta) {
  std::lock_guard lock(budget_mutex_);
  indexed_names_ = std::max(0L, indexed_names_ + delta);
  if (loaded_dir) {
    loaded_indexes_.remove_if(
        [&](const std::weak_ptr<Inode>& w) { return w.expired() || w.lock() == *loaded_dir; });
    loaded_indexes_.push_back(*loaded_dir);
  }
  const long budget = static_cast<long>(options_.index_budget);
  for (auto it = loaded_indexes_.begin(); indexed_names_ > budget && it != loaded_indexes_.end();) {
    auto victim = it->lock();
    if (loaded_dir && victim == *loaded_dir) {
      ++it;
      continue;
    }
    if (victim) {
      std::unique_lock index_lock(victim->dir->index_lock, std::try_to_lock);
      if (!index_lock.owns_lock()) {
        ++it;
        continue;
      }
      indexed_names_ = std::max(0L, indexed_names_ - static_cast<long>(victim->dir->index.size()));
      victim->dir->index.clear();
      counters_.index_evictions++;
    }
    it = loaded_indexes_.erase(it);
  }
}

void Filesystem::index_change(Inode& dir, int dirfd, std::string_view added,
                              std::string_view removed) {
  DirState& state = *dir.dir;
  long delta = 0;
  {
    std::lock_guard lock(state.index_lock);
    if (!state.index.complete()) return;
    const long before = static_cast<long>(state.index.size());
    if (!removed.empty()) state.index.erase(removed);
    if (!added.empty()) state.index.insert(added);
    delta = static_cast<long>(state.index.size()) - before;
    if (!state.watched) refresh_index_stamp(state, dirfd);  // watched: events, not times
  }
  if (delta != 0) account_index(nullptr, delta);
}

// The directory's times moved because of a change made through the mount: they become the
// index's new stamp. Requires state.index_lock.
void Filesystem::refresh_index_stamp(DirState& state, int dirfd) {
  struct stat st;
  if (::fstat(dirfd, &st) == 0) {
    state.index_mtime = st.st_mtim;
    state.index_ctime = st.st_ctim;
  } else {
    state.index.clear();
  }
}

double Filesystem::entry_timeout_for(const Inode& dir, bool negative) const {
  const double option = negative ? options_.negative_timeout : options_.entry_timeout;
  const double t = timeout_or_auto(option, changes_pushed() && dir.dir->watched.load());
  if (!casefolded(dir)) return t;
  // Other spellings and misses may only be cached where they can be invalidated exactly.
  return notifier_ && notifier_->can_invalidate_all() ? t : 0;
}

void Filesystem::note_kernel_entry(Inode& dir, std::string_view asked, bool negative,
                                   std::optional<uint64_t> key_hash) {
  if (!casefolded(dir) || entry_timeout_for(dir, negative) <= 0) return;
  const uint64_t hash = key_hash ? *key_hash : key_hash_of(asked);
  while (!dir.dir->kernel.note(epoch_.load(), hash, asked)) {
    // The record is full: forgetting everything the kernel holds empties it.
    invalidate_kernel_dentries();
    if (options_.debug_no_invalidation) return;
  }
}

void Filesystem::invalidate_if_other_spelling(Inode& dir, std::string_view asked,
                                              std::string_view stored,
                                              std::optional<uint64_t> key_hash) {
  if (!casefolded(dir) || !notifier_ || !notifier_->can_invalidate_all()) return;
  counters_.changes_checked++;
  const uint64_t epoch = epoch_.load();
  const bool listed_other =
      dir.dir->listed_epoch.load() == epoch && !stored.empty() && stored != asked;
  if (listed_other ||
      dir.dir->kernel.may_hold_other(epoch, key_hash ? *key_hash : key_hash_of(asked), asked)) {
    invalidate_kernel_dentries();
  }
}

void Filesystem::note_change(Inode& dir, std::string_view asked, std::string_view stored,
                             bool negative) {
  if (!casefolded(dir)) return;
  const uint64_t hash = key_hash_of(asked);  // folded once for both
  invalidate_if_other_spelling(dir, asked, stored, hash);
  note_kernel_entry(dir, asked, negative, hash);
}

void Filesystem::invalidate_kernel_dentries() {
  if (!notifier_ || !notifier_->can_invalidate_all()) return;
  if (options_.debug_no_invalidation) return;
  // Count first: a lookup handled after the kernel saw the new epoch must note its answer
  // under the new epoch too, or the next change would not see it.
  epoch_.fetch_add(1);
  if (notifier_->invalidate_all_dentries()) counters_.invalidations_sent++;
}

// ---------------------------------------------------------------------------------------------
// Lookup

// Whether a descriptor reached by file handle lies inside the backing tree. A handle can name
// any file of the backing filesystem, so one brought back by the kernel (or forged by an NFS
// client) is checked before use: a directory by walking ".." up to the backing root, anything
// else by the path the kernel knows for it.
bool Filesystem::within_backing(int fd, bool is_dir) {
  if (!is_dir) {
    char path[PATH_MAX];
    const ssize_t n = ::readlink(backing::ProcPath(fd).c_str(), path, sizeof(path) - 1);
    if (n <= 0) return false;
    const std::string_view p(path, static_cast<size_t>(n));
    const std::string prefix = backing_path_ == "/" ? "/" : backing_path_ + "/";
    return p.substr(0, prefix.size()) == prefix;
  }
  UniqueFd cur(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  for (int depth = 0; cur.valid() && depth < 4096; ++depth) {
    struct stat st;
    if (::fstat(cur.get(), &st) != 0) return false;
    if (st.st_dev == root_dev_ && st.st_ino == root_ino_) return true;
    UniqueFd up(::openat(cur.get(), "..", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat up_st;
    if (!up.valid() || ::fstat(up.get(), &up_st) != 0) return false;
    if (up_st.st_dev == st.st_dev && up_st.st_ino == st.st_ino) return false;  // fs root
    cur = std::move(up);
  }
  return false;
}

// The kernel asks for "." of a node id it no longer has in memory (open_by_handle_at after a
// restart or after dropping caches): turn the id back into the backing handle.
int Filesystem::reconnect(uint64_t id, EntryOut* out) {
  if (!node_ids_ || id == kRootId) return ESTALE;
  const auto handle = node_ids_->decode(id);
  const int raw = handle.open(mount_fd_.get(), O_PATH | O_NOFOLLOW);
  if (raw < 0) return ESTALE;
  UniqueFd fd(raw);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !within_backing(fd.get(), S_ISDIR(st.st_mode))) {
    return ESTALE;
  }
  if (int e = entry_from_fd(std::move(fd), out); e != 0) return e;
  if (out->ino != id) {
    forget(out->ino, 1);
    return ESTALE;
  }
  out->entry_timeout = 0;
  return 0;
}

int Filesystem::lookup(const Context& ctx, uint64_t parent, std::string_view name, EntryOut* out) {
  counters_.lookups++;
  // "." and ".." arrive only when the kernel reconnects an inode reached by file handle.
  if (name == ".") {
    std::shared_ptr<Inode> self = inode(parent);
    if (!self) return reconnect(parent, out);
    int err = 0;
    SharedFd fd = path_fd(self, &err);
    if (!fd) return err;
    if (int e = entry_from_fd(UniqueFd(::fcntl(fd->get(), F_DUPFD_CLOEXEC, 0)), out); e != 0) {
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
    if (int e = entry_from_fd(std::move(fd), out); e != 0) return e;
    out->entry_timeout = 0;
    return 0;
  }

  note_lookup_after_listing(*dir->dir);
  catch_up_for(*dir);
  DirLock lock(*dir->dir, DirLock::kRead);
  const bool casefold = casefolded(*dir);
  if (int e = check_name(name, casefold); e != 0) return e;
  std::string stored(name);
  std::optional<struct stat> exact_stat;  // the exact name's, when resolving had to stat it
  if (casefold) err = resolve_locked(dir, dirfd->get(), name, &stored, &exact_stat);
  if (err == 0) err = make_entry(*dir, dirfd->get(), stored, out, exact_stat);
  if (err == ENOENT) {
    counters_.negative_answers++;
    out->ino = 0;
    out->entry_timeout = entry_timeout_for(*dir, true);
    note_kernel_entry(*dir, name, true);
    hook("lookup:answered");
    return ENOENT;
  }
  if (err == 0) note_kernel_entry(*dir, name, false);
  hook("lookup:answered");
  return err;
}

}  // namespace foldfs::fs

namespace foldfs::fs {

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
  line("changes_checked", c.changes_checked);
  line("invalidations_sent", c.invalidations_sent);
  line("outside_changes", c.outside_changes);
  line("watching", watcher_ ? 1 : 0);
  line("index_evictions", c.index_evictions);
  line("inodes", inodes_.size());
  line("cached_fds", fds_.size());
  line("fd_evictions", fds_.evictions());
  if (transport_stats_) out += transport_stats_();
  return out;
}

}  // namespace foldfs::fs
