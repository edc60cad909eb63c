// A case-insensitive union of trees (issue 16, docs/union.md): the Operations of a mount with
// lowerdir=TOP:...:BOTTOM, and with upperdir= a writable tree above them.
//
// Each tree is served by a Filesystem of its own (casefold=all; read-only but the upper tree),
// which keeps for that tree everything a single-tree mount promises: names and their index, the
// caches and their coherence with the kernel, outside changes, confinement, handles. This class
// merges the trees' answers by the union's rules (names/union_dir.h), asking each tree as the
// kernel would ask a single-tree mount.
//
// Nodes. A union node is a file of the tree that decides its name, or a merged directory: the
// directories of its name in each tree, highest first, down to the first opaque one (its parts;
// the first decides its attributes). Its node id is the deciding tree's node id (a squeezed
// handle where it fits: the same after a restart), unless a node of another tree has that id
// already: then an id of the union's own, valid while the daemon runs. Every tree node a union
// node stands on holds one tree lookup per union lookup that found it, given back when the kernel
// forgets the union node.
//
// Lookups. Each tree is asked in turn for the name (the lower trees for the spelling the deciding
// tree stores): a whiteout stops the search, a non-directory decides, directories merge until an
// opaque one. Where a tree holds several names of the key (a collision inside that tree), the
// answer is taken from the merged listing instead, which states the rules exactly.
//
// Coherence (docs/coherence.md). Each tree notes what the kernel may hold after the union asked
// it (a negative answer of a higher tree, the positive answer of the deciding tree and of each
// merged part), so an outside change in any tree that could change the union's answer makes that
// tree invalidate the kernel's dentries, exactly as in a single-tree mount; the union's entry
// timeout is the shortest of the answers it was made of. Attribute invalidations of a tree node
// reach every union node standing on it. Entries that arrive without a lookup (a node id brought
// back by a file handle, a directory's "..") get the union's rules: a directory is found again by
// its path, through the union, and only if the union still shows it there.
//
// Writes (docs/union.md "Writes go to the upper tree only"): with upperdir=, tree 0 is the upper
// tree, served writable; every change is a change of the upper tree's own Filesystem (which keeps
// its index and its coherence record) after the copy-ups it needs, and a removal of a name the
// lower trees show leaves a whiteout. Changes whose answers the lower trees' records covered
// (copy-ups, whiteouts) make the kernel revalidate every dentry of the mount.
//
// Lock order: change_mutex_, then a tree's own locks, then mutex_, a leaf: no tree is called
// while it is held.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/thread_safety.h"
#include "fs/filesystem.h"
#include "fs/operations.h"
#include "names/union_dir.h"

namespace foldfs::fs {

class UnionFilesystem : public Operations {
 public:
  // Opens every tree (highest first). Returns nullptr and sets *error (a message) on failure.
  static std::unique_ptr<UnionFilesystem> open(const std::vector<std::string>& trees,
                                               const Options& options, std::string* error);
  ~UnionFilesystem() override;

  void set_notifier(KernelNotifier* notifier) override;
  void set_transport_stats(std::function<std::string()> lines) override;
  void start_services() override;
  void stop_services() override;
  const Options& options() const override { return options_; }
  double attr_timeout() const override;
  double attr_timeout_of(uint64_t ino) const override;
  std::string stats_text() const override;

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

  int getattr(uint64_t ino, struct stat* out) override;
  int setattr(const Context& ctx, uint64_t ino, const struct stat& attr, int to_set,
              const uint64_t* fh, struct stat* out) override;
  int readlink(uint64_t ino, std::string* out) override;
  int statfs(uint64_t ino, struct statvfs* out) override;

  int setxattr(uint64_t ino, std::string_view name, std::string_view value, int flags) override;
  int getxattr(uint64_t ino, std::string_view name, size_t size, std::string* value,
               size_t* needed) override;
  int listxattr(uint64_t ino, size_t size, std::string* list, size_t* needed) override;
  int removexattr(uint64_t ino, std::string_view name) override;

  int open(const Context& ctx, uint64_t ino, int flags, uint64_t* fh) override;
  int create(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode, int flags,
             EntryOut* out, uint64_t* fh) override;
  int file_fd(uint64_t fh) const override;
  int flush(uint64_t fh) override;
  int release(uint64_t fh) override;
  int fsync(uint64_t fh, bool datasync) override;
  int fallocate(uint64_t fh, int mode, off_t offset, off_t length) override;
  int lseek(uint64_t fh, off_t offset, int whence, off_t* result) override;
  int copy_file_range(uint64_t fh_in, off_t off_in, uint64_t fh_out, off_t off_out, size_t len,
                      int flags, size_t* copied) override;

  int opendir(const Context& ctx, uint64_t ino, uint64_t* fh) override;
  int readdir(uint64_t ino, off_t offset, const DirEmit& emit, size_t reply_bytes) override;
  int readdirplus(uint64_t ino, off_t offset, const DirPlusEmit& emit, size_t reply_bytes) override;
  int releasedir(uint64_t) override { return 0; }
  int fsyncdir(uint64_t, bool) override { return 0; }

  int get_flags(uint64_t ino, uint32_t* flags) override;
  int set_flags(const Context& ctx, uint64_t ino, uint32_t flags) override;
  int get_fsxattr(uint64_t ino, void* fsxattr_out) override;
  int set_fsxattr(uint64_t ino, const void* fsxattr_in) override;

  size_t tree_count() const { return trees_.size(); }
  bool writable() const { return upper_ && !options_.read_only; }

 private:
  struct Part {
    size_t tree = 0;
    uint64_t id = 0;  // the tree's node id
    bool operator==(const Part&) const = default;
    bool operator<(const Part& o) const { return tree != o.tree ? tree < o.tree : id < o.id; }
  };
  struct PartHash {
    size_t operator()(const Part& p) const {
      return std::hash<uint64_t>{}(p.id * 0x9E3779B97F4A7C15ull + p.tree);
    }
  };
  // Tree lookups a node holds: few (one per part it stood on), so a vector.
  using Holds = std::vector<std::pair<Part, uint64_t>>;
  // One entry of a merged listing, as the deciding tree lists it (its d_ino and DT_ type).
  using Item = names::UnionPartEntry;
  // id and directory are set before the node is published in nodes_ and never change; the rest
  // is guarded by mutex_.
  struct Node {
    uint64_t id = 0;
    bool directory = false;
    std::vector<Part> parts;  // highest first; parts[0] decides
    Holds held;               // tree lookups held for this node
    uint64_t nlookup = 0;
    std::shared_ptr<const std::vector<Item>> listing;  // made by the last readdir from offset 0
    // Where the last lookup found a non-directory: the union directory and the deciding tree's
    // name (a copy-up copies it from there). 0: reached by handle only.
    uint64_t parent = 0;
    std::string name;
    uint64_t shown_ino = 0;  // st_ino shown instead of the decider's (a copy's origin), or 0
    // Deciding parts it had before a copy-up: a lookup that asked the trees before the copy-up
    // and enters after it finds this node through them (by_decider_), not a node of its own.
    std::vector<Part> aliases;
    // The generation replies carry: the first decider's, kept when a copy-up changes the decider
    // (the kernel takes a node id coming back with another generation for a reused one, and
    // fails every open file of the old: EIO).
    uint64_t generation = 0;
  };
  // What asking the trees found for one name.
  struct Found {
    std::vector<Part> parts;  // empty: nothing (ENOENT)
    std::vector<Part> held;   // tree lookups taken and kept (the parts)
    EntryOut entry;           // the deciding tree's answer
    double timeout = 0;       // the union's entry timeout
    std::string stored;       // the name the deciding tree stores
    uint64_t parent = 0;      // the union directory it was found in (0: by handle)
  };
  class TreeNotifier;

  explicit UnionFilesystem(const Options& options);
  static int check_upper_tree(const std::string& upper);  // 0 or an errno

  std::shared_ptr<Node> node(uint64_t id) const EXCLUDES(mutex_);
  std::vector<Part> parts_of(const Node& n) const EXCLUDES(mutex_);
  // {_, 0} when there is no such node. *shown_ino (if given): the st_ino the node shows (0: the
  // deciding tree's own).
  Part decider(uint64_t ino, uint64_t* shown_ino = nullptr) const EXCLUDES(mutex_);
  static bool is_dir(const EntryOut& e) { return S_ISDIR(e.attr.st_mode); }
  // Whether a union node stands on `decider` already.
  bool entered(Part decider) const EXCLUDES(mutex_);
  // The inode number a copy in the upper tree shows: its origin's (backing/union_format.h), 0
  // when it has none.
  uint64_t origin_of(uint64_t upper_id);

  // The trees' answers for `name` in the merged directory `dir`. `changes_taken_in`: by
  // take_in_outside_changes() for this request.
  int find(const Context& ctx, const std::vector<Part>& dir, std::string_view name, Found* found,
           bool changes_taken_in = false);
  // Every tree takes in the outside changes queued before the call, as each tree's lookup would
  // on its own: one poll of all their queues, a read of those that hold any. False when the
  // trees must do it themselves.
  bool take_in_outside_changes();
  // The same from the merged listing (a collision inside a tree).
  int find_by_listing(const Context& ctx, const std::vector<Part>& dir, std::string_view name,
                      Found* found);
  // The union node for what was found: one more lookup of it. `out` gets its entry.
  int enter(Found&& found, EntryOut* out) EXCLUDES(mutex_);
  void give_back(const std::vector<Part>& held);
  // One more tree lookup of `p` held by `n`.
  void hold(Node& n, Part p) REQUIRES(mutex_);

  // The merged listing of `dir`.
  // The parts of `dir` (down to the first opaque one); `hash`: with their names' key_hashes, for
  // names::union_listing().
  int read_parts(const std::vector<Part>& dir, std::vector<names::UnionPart>* parts, bool hash);
  off_t listed_bytes(const std::vector<Part>& dir);
  int merge(const std::vector<Part>& dir, names::UnionDir* merged);
  int listing(uint64_t ino, off_t offset, std::shared_ptr<const std::vector<Item>>* out);

  // Entries that arrive without a lookup.
  int reconnect(const Context& ctx, uint64_t id, EntryOut* out);
  int parent_of(const Context& ctx, const Node& child, EntryOut* out);
  // The directory `dir` of tree `tree`, found again through the union by its path: the union
  // node there, if `dir` decides it (kDeciding) or is one of its parts (kAsAPart).
  enum class Shown { kDeciding, kAsAPart };
  int directory_through_union(const Context& ctx, size_t tree, uint64_t dir, Shown how,
                              EntryOut* out);
  int path_in_tree(const Context& ctx, size_t tree, uint64_t dir, std::vector<std::string>* path);

  // --- Writes (union_writes.cc): the upper tree is tree 0 ---
  // The upper part of the union directory `dir`, made (copied up, with every missing directory
  // above it) where it has none. *copied: whether anything was copied up.
  int upper_dir(const Context& ctx, uint64_t dir, uint64_t* upper, bool* copied);
  // The upper part of the union node `ino`, copied up where a lower tree decides it.
  int copy_up(const Context& ctx, uint64_t ino, Part* upper);
  // Copies the entry `found` (decided by a lower tree) of the union directory `dir` up; the
  // union node standing on it (if any) now stands on the copy. *upper gets the copy's part.
  int copy_up_found(const Context& ctx, uint64_t dir, const Found& found, Part* upper);
  // Copies `name` of the directory part of `tree` in the merged directory `level` (upper part
  // first) into the upper part. *upper: the copy's node id (one lookup).
  int copy_from(const Context& ctx, const std::vector<Part>& level, size_t tree,
                const std::string& name, uint64_t* upper);
  // The upper part of `ino` for a change of its data or attributes (copied up if needed).
  int writable_part(const Context& ctx, uint64_t ino, Part* up);
  // The union node decided by `old` now stands on `upper` first. Whether there was one (it then
  // holds the one lookup of `upper` the caller took).
  bool restand(Part old, Part upper, uint64_t shown_ino) EXCLUDES(mutex_);
  // Whether a lower tree shows a name of `name`'s key in the union directory `dir`.
  bool lower_trees_show(const Context& ctx, uint64_t dir, const std::string& name);
  // The shared steps of mknod, mkdir, symlink, link: refused where the name exists, made by
  // `make(upper_dir, out)` in the upper part of `parent` otherwise, then entered.
  int make_in_upper(const Context& ctx, uint64_t parent, std::string_view name,
                    const std::function<int(uint64_t upper_dir, EntryOut*)>& make, EntryOut* out);
  int remove(const Context& ctx, uint64_t parent, std::string_view name, bool is_dir);
  // What the union enters for a node just made in the upper tree (`entry`: the tree's answer,
  // one lookup) as `name` in the union directory `parent`.
  static Found made_in_upper(const EntryOut& entry, std::string_view name, uint64_t parent);
  // Copies what the union shows of `what` (found in the merged directory whose parts are
  // `from_parent`), a directory with everything in it, into the upper directory `into` as `name`;
  // directories copied are opaque: the copy alone is what they hold.
  int copy_tree(const Context& ctx, const std::vector<Part>& from_parent, const Found& what,
                uint64_t into, const std::string& name, size_t depth);
  // rename() of a directory that has lower parts: copied whole to the new name, then the old
  // name removed, leaving a whiteout.
  int rename_by_copy(const Context& ctx, uint64_t parent, const Found& src, uint64_t newparent,
                     const std::string& target_name, bool target_has_lower_parts);
  // The kernel drops every dentry of the mount (a change a lower tree's record covers).
  void invalidate_all();
  // Serializes the union's changes (each is several steps across trees). Taken before any tree's
  // lock.
  Mutex change_mutex_;
  bool upper_ = false;  // tree 0 is the writable upper tree
  KernelNotifier* kernel_ = nullptr;

  static uint64_t to_fh(size_t tree, uint64_t tree_fh);
  static size_t tree_of_fh(uint64_t fh) { return static_cast<size_t>(fh >> 56); }
  static uint64_t tree_fh(uint64_t fh) { return fh & ((uint64_t{1} << 56) - 1); }

  // Called by a tree's notifier: the union nodes standing on the tree node `id`.
  std::vector<uint64_t> nodes_on(size_t tree, uint64_t id) const EXCLUDES(mutex_);

  const Options options_;
  std::vector<std::unique_ptr<Filesystem>> trees_;
  // An epoll set of the trees' queues of outside changes (each tagged with its tree), made by
  // start_services() when every tree is watched; invalid otherwise.
  backing::UniqueFd outside_poll_;
  std::vector<std::unique_ptr<TreeNotifier>> notifiers_;
  std::function<std::string()> transport_stats_;

  std::atomic<uint64_t> listings_read_aside_{0};  // listings read a thread per part (stats)

  mutable Mutex mutex_;
  std::unordered_map<uint64_t, std::shared_ptr<Node>> nodes_ GUARDED_BY(mutex_);
  // the deciding part -> union id
  std::unordered_map<Part, uint64_t, PartHash> by_decider_ GUARDED_BY(mutex_);
  uint64_t next_own_id_ GUARDED_BY(mutex_) = uint64_t{1} << 63;
};

}  // namespace foldfs::fs
