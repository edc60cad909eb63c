// A read-only, case-insensitive union of trees (issue 16, docs/union.md): the Operations of a
// mount with lowerdir=TOP:...:BOTTOM.
//
// Each tree is served by a Filesystem of its own (casefold=all, read-only), which keeps for that
// tree everything a single-tree mount promises: names and their index, the caches and their
// coherence with the kernel, outside changes, confinement, handles. This class merges the trees'
// answers by the union's rules (names/union_dir.h), asking each tree as the kernel would ask a
// single-tree mount.
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
// Lock order: a tree's own locks, then mutex_, a leaf: no tree is called while it is held.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backing/dir_reader.h"
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
  int mknod(const Context&, uint64_t, std::string_view, mode_t, dev_t, EntryOut*) override {
    return EROFS;
  }
  int mkdir(const Context&, uint64_t, std::string_view, mode_t, EntryOut*) override {
    return EROFS;
  }
  int symlink(const Context&, std::string_view, uint64_t, std::string_view, EntryOut*) override {
    return EROFS;
  }
  int link(const Context&, uint64_t, uint64_t, std::string_view, EntryOut*) override {
    return EROFS;
  }
  int unlink(const Context&, uint64_t, std::string_view) override { return EROFS; }
  int rmdir(const Context&, uint64_t, std::string_view) override { return EROFS; }
  int rename(const Context&, uint64_t, std::string_view, uint64_t, std::string_view,
             unsigned int) override {
    return EROFS;
  }

  int getattr(uint64_t ino, struct stat* out) override;
  int setattr(const Context&, uint64_t, const struct stat&, int, const uint64_t*,
              struct stat*) override {
    return EROFS;
  }
  int readlink(uint64_t ino, std::string* out) override;
  int statfs(uint64_t ino, struct statvfs* out) override;

  int setxattr(uint64_t, std::string_view, std::string_view, int) override { return EROFS; }
  int getxattr(uint64_t ino, std::string_view name, size_t size, std::string* value,
               size_t* needed) override;
  int listxattr(uint64_t ino, size_t size, std::string* list, size_t* needed) override;
  int removexattr(uint64_t, std::string_view) override { return EROFS; }

  int open(const Context& ctx, uint64_t ino, int flags, uint64_t* fh) override;
  int create(const Context&, uint64_t, std::string_view, mode_t, int, EntryOut*,
             uint64_t*) override {
    return EROFS;
  }
  int file_fd(uint64_t fh) const override;
  int flush(uint64_t fh) override;
  int release(uint64_t fh) override;
  int fsync(uint64_t fh, bool datasync) override;
  int fallocate(uint64_t, int, off_t, off_t) override { return EROFS; }
  int lseek(uint64_t fh, off_t offset, int whence, off_t* result) override;
  int copy_file_range(uint64_t, off_t, uint64_t, off_t, size_t, int, size_t*) override {
    return EROFS;
  }

  int opendir(const Context& ctx, uint64_t ino, uint64_t* fh) override;
  int readdir(uint64_t ino, off_t offset, const DirEmit& emit, size_t reply_bytes) override;
  int readdirplus(uint64_t ino, off_t offset, const DirPlusEmit& emit, size_t reply_bytes) override;
  int releasedir(uint64_t) override { return 0; }
  int fsyncdir(uint64_t, bool) override { return 0; }

  int get_flags(uint64_t ino, uint32_t* flags) override;
  int set_flags(const Context&, uint64_t, uint32_t) override { return EROFS; }
  int get_fsxattr(uint64_t ino, void* fsxattr_out) override;
  int set_fsxattr(uint64_t, const void*) override { return EROFS; }

  size_t tree_count() const { return trees_.size(); }

 private:
  struct Part {
    size_t tree = 0;
    uint64_t id = 0;  // the tree's node id
    bool operator==(const Part&) const = default;
    bool operator<(const Part& o) const { return tree != o.tree ? tree < o.tree : id < o.id; }
  };
  // One entry of a merged listing, as the deciding tree lists it (its d_ino and DT_ type).
  using Item = backing::DirEntry;
  // id and directory are set before the node is published in nodes_ and never change; the rest
  // is guarded by mutex_.
  struct Node {
    uint64_t id = 0;
    bool directory = false;
    std::vector<Part> parts;        // highest first; parts[0] decides
    std::map<Part, uint64_t> held;  // tree lookups held for this node
    uint64_t nlookup = 0;
    std::shared_ptr<const std::vector<Item>> listing;  // made by the last readdir from offset 0
  };
  // What asking the trees found for one name.
  struct Found {
    std::vector<Part> parts;  // empty: nothing (ENOENT)
    std::vector<Part> held;   // tree lookups taken and kept (the parts)
    EntryOut entry;           // the deciding tree's answer
    double timeout = 0;       // the union's entry timeout
  };
  class TreeNotifier;

  explicit UnionFilesystem(const Options& options);

  std::shared_ptr<Node> node(uint64_t id) const EXCLUDES(mutex_);
  std::vector<Part> parts_of(const Node& n) const EXCLUDES(mutex_);
  Part decider(uint64_t ino) const EXCLUDES(mutex_);  // {_, 0} when there is no such node

  // The trees' answers for `name` in the merged directory `dir`.
  int find(const Context& ctx, const std::vector<Part>& dir, std::string_view name, Found* found);
  // The same from the merged listing (a collision inside a tree).
  int find_by_listing(const Context& ctx, const std::vector<Part>& dir, std::string_view name,
                      Found* found);
  // The union node for what was found: one more lookup of it. `out` gets its entry.
  int enter(Found&& found, EntryOut* out) EXCLUDES(mutex_);
  void give_back(const std::vector<Part>& held);

  // The merged listing of `dir`, and each tree's names with their d_ino and type.
  using TreeNames = std::unordered_map<std::string, Item>;
  int merge(const std::vector<Part>& dir, names::UnionDir* merged, std::vector<TreeNames>* names);
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

  static uint64_t to_fh(size_t tree, uint64_t tree_fh);
  static size_t tree_of_fh(uint64_t fh) { return static_cast<size_t>(fh >> 56); }
  static uint64_t tree_fh(uint64_t fh) { return fh & ((uint64_t{1} << 56) - 1); }

  // Called by a tree's notifier: the union nodes standing on the tree node `id`.
  std::vector<uint64_t> nodes_on(size_t tree, uint64_t id) const EXCLUDES(mutex_);

  const Options options_;
  std::vector<std::unique_ptr<Filesystem>> trees_;
  std::vector<std::unique_ptr<TreeNotifier>> notifiers_;
  std::function<std::string()> transport_stats_;

  mutable Mutex mutex_;
  std::unordered_map<uint64_t, std::shared_ptr<Node>> nodes_ GUARDED_BY(mutex_);
  std::map<Part, uint64_t> by_decider_ GUARDED_BY(mutex_);  // the deciding part -> union id
  uint64_t next_own_id_ GUARDED_BY(mutex_) = uint64_t{1} << 63;
};

}  // namespace foldfs::fs
