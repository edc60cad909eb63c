#include "fs/union_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <system_error>
#include <thread>

#include "backing/copy_up.h"
#include "backing/proc_path.h"
#include "backing/union_format.h"
#include "names/folded_name.h"

namespace foldfs::fs {
namespace {

constexpr double kNever = std::numeric_limits<double>::infinity();
constexpr size_t kMaxDepth = 4096;  // bounds a walk up a tree whose ".." would loop
// A merged directory whose parts hold this much is read with a thread per part (read_parts).
constexpr off_t kReadAsideBytes = 64 * 1024;
constexpr size_t kReadAsideThreads = 7;  // besides the request's own

}  // namespace

// A tree's invalidations, passed on in the union's node ids.
class UnionFilesystem::TreeNotifier : public KernelNotifier {
 public:
  TreeNotifier(UnionFilesystem* fs, size_t tree, KernelNotifier* kernel)
      : fs_(fs), tree_(tree), kernel_(kernel) {}
  bool can_invalidate_all() const override { return kernel_->can_invalidate_all(); }
  bool invalidate_all_dentries() override { return kernel_->invalidate_all_dentries(); }
  void invalidate_inode(uint64_t ino) override {
    for (uint64_t id : fs_->nodes_on(tree_, ino)) kernel_->invalidate_inode(id);
  }

 private:
  UnionFilesystem* const fs_;
  const size_t tree_;
  KernelNotifier* const kernel_;
};

std::unique_ptr<UnionFilesystem> UnionFilesystem::open(const std::vector<std::string>& trees,
                                                       const Options& options, std::string* error) {
  if (trees.empty()) {
    *error = "a union needs at least one tree";
    return nullptr;
  }
  Options tree_options = options;
  tree_options.casefold = CasefoldMode::kAll;
  tree_options.lower_trees.clear();
  tree_options.upper_tree.clear();
  tree_options.work_dir.clear();
  std::unique_ptr<UnionFilesystem> fs(new UnionFilesystem(options));
  fs->upper_ = !options.upper_tree.empty();
  for (const std::string& tree : trees) {
    int err = 0;
    tree_options.read_only = options.read_only || !fs->upper_ || !fs->trees_.empty();
    auto one = Filesystem::open(tree, tree_options, &err);
    if (!one) {
      *error = "cannot open tree '" + tree + "': " + std::strerror(err);
      return nullptr;
    }
    fs->trees_.push_back(std::move(one));
  }
  if (fs->upper_) {
    if (int err = check_upper_tree(trees.front()); err != 0) {
      *error = "upperdir '" + trees.front() +
               "': its filesystem cannot hold whiteouts (a character device 0/0, as overlayfs "
               "writes them): " +
               std::strerror(err);
      return nullptr;
    }
    backing::UniqueFd work;
    if (!options.work_dir.empty()) {
      work.reset(::open(options.work_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!work.valid() || backing::clear_copy_up_leftovers(work.get()) != 0) {
        *error = "cannot use workdir '" + options.work_dir + "': " + std::strerror(errno);
        return nullptr;
      }
    }
    fs->trees_.front()->serve_as_union_upper(std::move(work));
  }
  auto root = std::make_shared<Node>();
  root->id = kRootId;
  root->directory = true;
  root->nlookup = 1;  // never forgotten
  for (size_t t = 0; t < trees.size(); ++t) root->parts.push_back({t, kRootId});
  MutexLock lock(fs->mutex_);
  fs->nodes_[kRootId] = root;
  fs->by_decider_[Part{0, kRootId}] = kRootId;
  return fs;
}

UnionFilesystem::UnionFilesystem(const Options& options) : options_(options) {}

// Removing a lower name needs a whiteout in the upper tree: where its filesystem cannot hold one
// (an overlayfs refuses them to its users), the mount is refused rather than every removal.
int UnionFilesystem::check_upper_tree(const std::string& upper) {
  const backing::UniqueFd dir(::open(upper.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return errno;
  const std::string probe = ".foldfs-whiteout-probe." + std::to_string(::getpid());
  if (int err = backing::make_whiteout(dir.get(), probe); err != 0) return err;
  ::unlinkat(dir.get(), probe.c_str(), 0);
  return 0;
}

UnionFilesystem::~UnionFilesystem() = default;

// ---------------------------------------------------------------------------------------------
// Services

void UnionFilesystem::set_notifier(KernelNotifier* notifier) {
  kernel_ = notifier;
  notifiers_.clear();
  for (size_t t = 0; t < trees_.size(); ++t) {
    if (notifier) notifiers_.push_back(std::make_unique<TreeNotifier>(this, t, notifier));
    trees_[t]->set_notifier(notifier ? notifiers_.back().get() : nullptr);
  }
}

void UnionFilesystem::set_transport_stats(std::function<std::string()> lines) {
  transport_stats_ = std::move(lines);
}

void UnionFilesystem::start_services() {
  for (auto& t : trees_) t->start_services();
  backing::UniqueFd poll(::epoll_create1(EPOLL_CLOEXEC));
  for (size_t t = 0; t < trees_.size() && poll.valid(); ++t) {
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u64 = t;
    const int queue = trees_[t]->outside_queue_fd();
    if (queue < 0 || ::epoll_ctl(poll.get(), EPOLL_CTL_ADD, queue, &ev) != 0) poll.reset();
  }
  outside_poll_ = std::move(poll);
}

// One epoll_wait instead of a read of each tree's queue on every lookup (most find theirs
// empty). Level-triggered: a queue that holds events when the poll runs is reported.
bool UnionFilesystem::take_in_outside_changes() {
  if (!outside_poll_.valid()) return false;
  std::vector<struct epoll_event> ready(trees_.size());
  const int n = ::epoll_wait(outside_poll_.get(), ready.data(), static_cast<int>(ready.size()), 0);
  if (n < 0) return false;
  std::vector<bool> queued(trees_.size(), false);
  for (int i = 0; i < n; ++i) queued[ready[static_cast<size_t>(i)].data.u64] = true;
  for (size_t t = 0; t < trees_.size(); ++t) trees_[t]->take_in_outside_changes(queued[t]);
  return true;
}

void UnionFilesystem::stop_services() {
  for (auto& t : trees_) t->stop_services();
}

double UnionFilesystem::attr_timeout() const {
  double shortest = kNever;
  for (const auto& t : trees_) shortest = std::min(shortest, t->attr_timeout());
  return shortest;
}

double UnionFilesystem::attr_timeout_of(uint64_t ino) const {
  const Part d = decider(ino);
  return d.id ? trees_[d.tree]->attr_timeout_of(d.id) : 0;
}

// The union's own lines, then each tree's under "treeN_".
std::string UnionFilesystem::stats_text() const {
  std::string out = "union_trees " + std::to_string(trees_.size()) + "\n";
  {
    MutexLock lock(mutex_);
    out += "union_nodes " + std::to_string(nodes_.size()) + "\n";
  }
  out += "union_listings_read_aside " + std::to_string(listings_read_aside_.load()) + "\n";
  for (size_t t = 0; t < trees_.size(); ++t) {
    const std::string text = trees_[t]->stats_text();
    for (size_t pos = 0; pos < text.size();) {
      const size_t end = text.find('\n', pos);
      out += "tree" + std::to_string(t) + "_" + text.substr(pos, end - pos) + "\n";
      pos = end == std::string::npos ? text.size() : end + 1;
    }
  }
  if (transport_stats_) out += transport_stats_();
  return out;
}

// ---------------------------------------------------------------------------------------------
// Nodes

std::shared_ptr<UnionFilesystem::Node> UnionFilesystem::node(uint64_t id) const {
  MutexLock lock(mutex_);
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : it->second;
}

std::vector<UnionFilesystem::Part> UnionFilesystem::parts_of(const Node& n) const {
  MutexLock lock(mutex_);
  return n.parts;
}

UnionFilesystem::Part UnionFilesystem::decider(uint64_t ino, uint64_t* shown_ino) const {
  MutexLock lock(mutex_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end() || it->second->parts.empty()) return Part{0, 0};
  if (shown_ino) *shown_ino = it->second->shown_ino;
  return it->second->parts.front();
}

uint64_t UnionFilesystem::origin_of(uint64_t upper_id) {
  backing::SharedFd fd;
  if (trees_[0]->descriptor(upper_id, &fd) != 0) return 0;
  char value[32];
  const backing::ProcPath path(fd->get());
  const ssize_t got = ::getxattr(path.c_str(), backing::kOriginXattr, value, sizeof value);
  if (got <= 0) return 0;
  uint64_t ino = 0;
  for (char c : std::string_view(value, static_cast<size_t>(got))) {
    if (c < '0' || c > '9') return 0;
    ino = ino * 10 + static_cast<uint64_t>(c - '0');
  }
  return ino;
}

bool UnionFilesystem::entered(Part decider) const {
  MutexLock lock(mutex_);
  return by_decider_.count(decider) > 0;
}

std::vector<uint64_t> UnionFilesystem::nodes_on(size_t tree, uint64_t id) const {
  MutexLock lock(mutex_);
  auto it = by_decider_.find(Part{tree, id});
  if (it == by_decider_.end()) return {};
  return {it->second};
}

int UnionFilesystem::enter(Found&& found, EntryOut* out) {
  const Part key = found.parts.front();
  std::vector<Part> surplus;  // tree lookups of the root: the trees never forget their roots
  uint64_t id = 0;
  // A copy's origin is read once, when its node is made (not on every lookup of it); outside
  // mutex_, which never waits for I/O.
  uint64_t shown = 0;
  if (upper_ && key.tree == 0 && key.id != kRootId && !entered(key)) shown = origin_of(key.id);
  {
    MutexLock lock(mutex_);
    auto known = by_decider_.find(key);
    std::shared_ptr<Node> n;
    if (known != by_decider_.end()) {
      n = nodes_.at(known->second);
    } else {
      n = std::make_shared<Node>();
      n->id = (nodes_.count(key.id) == 0 && key.id != kRootId) ? key.id : next_own_id_++;
      n->directory = is_dir(found.entry);  // the deciding tree node's kind: it never changes
      n->generation = found.entry.generation;
      nodes_[n->id] = n;
      by_decider_[key] = n->id;
    }
    id = n->id;
    if (!n->shown_ino) n->shown_ino = shown;
    shown = n->shown_ino;
    found.entry.generation = n->generation;
    if (id == kRootId) {
      surplus = std::move(found.held);
    } else {
      // Found through an alias (the trees were asked before a copy-up that has happened since):
      // the node keeps the parts it stands on now.
      if (n->parts.empty() || n->parts.front() == key) n->parts = found.parts;
      n->nlookup++;
      if (!n->directory && found.parent != 0) {
        n->parent = found.parent;
        n->name = found.stored;
      }
      for (const Part& p : found.held) hold(*n, p);
    }
  }
  give_back(surplus);
  *out = found.entry;
  out->ino = id;
  if (shown) out->attr.st_ino = shown;
  out->entry_timeout = found.timeout == kNever ? 0 : found.timeout;
  return 0;
}

void UnionFilesystem::hold(Node& n, Part p) {
  for (auto& [part, count] : n.held) {
    if (part == p) {
      count++;
      return;
    }
  }
  n.held.emplace_back(p, 1);
}

void UnionFilesystem::give_back(const std::vector<Part>& held) {
  for (const Part& p : held) {
    if (p.id != kRootId) trees_[p.tree]->forget(p.id, 1);
  }
}

void UnionFilesystem::forget(uint64_t ino, uint64_t nlookup) {
  if (ino == kRootId) return;
  Holds held;
  {
    MutexLock lock(mutex_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return;
    Node& n = *it->second;
    n.nlookup -= std::min(n.nlookup, nlookup);
    if (n.nlookup > 0) return;
    held = std::move(n.held);
    std::vector<Part> keys = n.aliases;
    if (!n.parts.empty()) keys.push_back(n.parts.front());
    for (const Part& k : keys) {
      auto key = by_decider_.find(k);
      if (key != by_decider_.end() && key->second == ino) by_decider_.erase(key);
    }
    nodes_.erase(it);
  }
  for (const auto& [part, count] : held) trees_[part.tree]->forget(part.id, count);
}

// ---------------------------------------------------------------------------------------------
// Lookup

int UnionFilesystem::lookup(const Context& ctx, uint64_t parent, std::string_view name,
                            EntryOut* out) {
  if (name == ".") return reconnect(ctx, parent, out);
  auto dir = node(parent);
  if (!dir) return ESTALE;
  if (!dir->directory && parent != kRootId) return ENOTDIR;
  if (name == "..") return parent_of(ctx, *dir, out);
  Found found;
  found.parent = parent;
  const bool taken_in = take_in_outside_changes();
  const int err = find(ctx, parts_of(*dir), name, &found, taken_in);
  if (err == ENOENT) {
    out->ino = 0;
    out->entry_timeout = found.timeout == kNever ? 0 : found.timeout;
  }
  if (err != 0) return err;
  return enter(std::move(found), out);
}

int UnionFilesystem::find(const Context& ctx, const std::vector<Part>& dir, std::string_view name,
                          Found* found, bool changes_taken_in) {
  found->timeout = kNever;
  std::string_view spelling = name;  // then the deciding tree's (found->stored)
  for (const Part& p : dir) {
    EntryOut e;
    std::string stored;
    size_t equivalents = 0;
    const int err = trees_[p.tree]->lookup_in_tree(ctx, p.id, spelling, &e, &stored, &equivalents,
                                                   changes_taken_in);
    if (err == ENOENT || (err == 0 && e.ino == 0)) {
      found->timeout = std::min(found->timeout, e.entry_timeout);
      continue;
    }
    if (err != 0) {
      give_back(found->held);
      return err;
    }
    if (equivalents > 1) {  // a collision inside this tree: the listing says what the rules say
      give_back(found->held);
      trees_[p.tree]->forget(e.ino, 1);
      const uint64_t parent = found->parent;
      *found = Found{};
      found->parent = parent;
      return find_by_listing(ctx, dir, name, found);
    }
    found->timeout = std::min(found->timeout, e.entry_timeout);
    const bool whiteout = backing::is_whiteout(e.attr);
    const bool merging_below = !found->parts.empty();
    if (whiteout || (merging_below && !is_dir(e))) {
      trees_[p.tree]->forget(e.ino, 1);  // a whiteout, or a lower non-directory: hidden
      break;
    }
    found->held.push_back({p.tree, e.ino});
    found->parts.push_back({p.tree, e.ino});
    if (!merging_below) {
      found->entry = e;
      found->stored = std::move(stored);
      spelling = found->stored;  // the lower trees are matched with the deciding spelling
    }
    if (!is_dir(e) || trees_[p.tree]->opaque(e.ino)) break;
  }
  return found->parts.empty() ? ENOENT : 0;
}

// The rules applied to the whole merged directory: the entry listed under `name`'s spelling, else
// the one its key resolves to (the bytewise smallest); then each of its parts looked up by its
// exact name. Nothing of this is cached by the kernel (timeout 0).
int UnionFilesystem::find_by_listing(const Context& ctx, const std::vector<Part>& dir,
                                     std::string_view name, Found* found) {
  names::UnionDir merged;
  if (int err = merge(dir, &merged); err != 0) return err;
  const names::FoldRules rules{};
  const names::FoldedName wanted(name, rules);
  const names::UnionEntry* chosen = nullptr;  // the exact spelling, else the smallest match
  for (const names::UnionEntry& e : merged.entries) {
    const names::FoldedName folded(e.name, rules);
    if (folded.key() != wanted.key()) continue;
    if (e.name == name) {
      chosen = &e;
      break;
    }
    if (!chosen || e.name < chosen->name) chosen = &e;
  }
  found->timeout = 0;
  if (!chosen) return ENOENT;
  std::vector<names::UnionName> parts = chosen->parts;
  if (parts.empty()) parts.push_back({chosen->tree, chosen->name});
  for (const names::UnionName& part : parts) {
    const auto in =
        std::find_if(dir.begin(), dir.end(), [&](const Part& p) { return p.tree == part.tree; });
    EntryOut e;
    int err = in == dir.end()
                  ? ESTALE
                  : trees_[part.tree]->lookup_in_tree(ctx, in->id, part.name, &e, nullptr, nullptr);
    if (err == 0 && e.ino == 0) err = ENOENT;
    if (err != 0) {  // changed meanwhile
      give_back(found->held);
      const uint64_t parent = found->parent;
      *found = Found{};
      found->parent = parent;
      return err;
    }
    if (found->parts.empty()) {
      found->entry = e;
      found->stored = part.name;
    }
    found->held.push_back({part.tree, e.ino});
    found->parts.push_back({part.tree, e.ino});
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Listings

// The parts of a large directory are read side by side: each read waits for its own tree's
// blocks and walks its own directory in the kernel, and a listing of the union is the sum of
// them. A small directory is read in turn, as a thread costs more than its read.
int UnionFilesystem::read_parts(const std::vector<Part>& dir, std::vector<names::UnionPart>* parts,
                                bool hash) {
  parts->assign(dir.size(), names::UnionPart{});
  std::vector<int> errors(dir.size(), 0);
  auto read = [&](size_t i) {  // and fold the names there, as part of the read
    errors[i] = trees_[dir[i].tree]->read_union_part(dir[i].id, dir[i].tree, &(*parts)[i]);
    if (errors[i] == 0 && hash) names::hash_keys(&(*parts)[i], names::FoldRules{});
  };
  if (dir.size() > 1 && listed_bytes(dir) >= kReadAsideBytes) {
    listings_read_aside_++;
    // At most kReadAsideThreads helpers (a mod list may hold a hundred trees), each taking the
    // next part not yet taken, as this thread does.
    std::atomic<size_t> next{0};
    auto take_parts = [&] {
      for (size_t i; (i = next.fetch_add(1)) < dir.size();) read(i);
    };
    std::vector<std::thread> helpers;
    const size_t wanted = std::min(dir.size() - 1, kReadAsideThreads);
    helpers.reserve(wanted);
    try {
      while (helpers.size() < wanted) helpers.emplace_back(take_parts);
    } catch (const std::system_error&) {  // no more threads to be had: fewer read aside
    }
    take_parts();
    for (std::thread& t : helpers) t.join();
  } else {
    for (size_t i = 0; i < dir.size(); ++i) {
      read(i);
      if (errors[i] != 0 || (*parts)[i].opaque) break;
    }
  }
  // Down to the first opaque part: what is below it counts for nothing, errors included.
  for (size_t i = 0; i < parts->size(); ++i) {
    if (errors[i] != 0) return errors[i];
    if ((*parts)[i].opaque) {
      parts->resize(i + 1);
      break;
    }
  }
  return 0;
}

// What the parts' directories say of their own size (st_size: bytes of entries on ext4 and
// xfs, names on btrfs, entries on tmpfs): enough to tell a large directory from a small one.
off_t UnionFilesystem::listed_bytes(const std::vector<Part>& dir) {
  off_t bytes = 0;
  for (const Part& p : dir) {
    struct stat st;
    if (trees_[p.tree]->getattr(p.id, &st) == 0) bytes += st.st_size;
  }
  return bytes;
}

int UnionFilesystem::merge(const std::vector<Part>& dir, names::UnionDir* merged) {
  std::vector<names::UnionPart> parts;
  // The full merge folds every name itself: no hashes for it.
  if (int err = read_parts(dir, &parts, /*hash=*/false); err != 0) return err;
  *merged = names::merge_union_dir(std::move(parts), names::FoldRules{}, /*sorted=*/false);
  return 0;
}

// The listing readdir serves from: made afresh by a read from the start (so a directory opened
// again shows every change), kept for the reads that follow.
int UnionFilesystem::listing(uint64_t ino, off_t offset,
                             std::shared_ptr<const std::vector<Item>>* out) {
  auto dir = node(ino);
  if (!dir) return ESTALE;
  if (!dir->directory && ino != kRootId) return ENOTDIR;
  if (offset > 0) {
    MutexLock lock(mutex_);
    *out = dir->listing;
    if (*out) return 0;
  }
  std::vector<names::UnionPart> parts;
  if (int err = read_parts(parts_of(*dir), &parts, /*hash=*/true); err != 0) return err;
  auto items = std::make_shared<const std::vector<Item>>(
      names::union_listing(std::move(parts), names::FoldRules{}));
  MutexLock lock(mutex_);
  dir->listing = items;
  *out = std::move(items);
  return 0;
}

int UnionFilesystem::opendir(const Context& ctx, uint64_t ino, uint64_t* fh) {
  const Part d = decider(ino);
  if (!d.id) return ESTALE;
  return trees_[d.tree]->opendir(ctx, d.id, fh);
}

// Offsets: 1 and 2 are "." and "..", entry i of the listing is i + 3.
int UnionFilesystem::readdir(uint64_t ino, off_t offset, const DirEmit& emit, size_t) {
  std::shared_ptr<const std::vector<Item>> items;
  if (int err = listing(ino, offset, &items); err != 0) return err;
  if (offset < 1 && !emit(".", ino, S_IFDIR, 1)) return 0;
  if (offset < 2 && !emit("..", ino, S_IFDIR, 2)) return 0;
  for (size_t i = static_cast<size_t>(std::max<off_t>(offset, 2) - 2); i < items->size(); ++i) {
    const Item& item = (*items)[i];
    if (!emit(item.name, item.ino, DTTOIF(item.type), static_cast<off_t>(i + 3))) break;
  }
  return 0;
}

// Names only (no entry counts a lookup): the kernel looks each up when it needs it, and then
// gets the union's rules for it.
int UnionFilesystem::readdirplus(uint64_t ino, off_t offset, const DirPlusEmit& emit,
                                 size_t reply_bytes) {
  return readdir(
      ino, offset,
      [&](std::string_view name, uint64_t d_ino, mode_t type, off_t next) {
        EntryOut e;
        e.attr.st_ino = d_ino;
        e.attr.st_mode = type;
        return emit(name, e, next);
      },
      reply_bytes);
}

// ---------------------------------------------------------------------------------------------
// Entries that arrive without a lookup

int UnionFilesystem::reconnect(const Context& ctx, uint64_t id, EntryOut* out) {
  if (auto known = node(id)) {
    const std::vector<Part> parts = parts_of(*known);
    if (parts.empty()) return ESTALE;
    Found found;
    found.timeout = 0;
    for (const Part& p : parts) {
      EntryOut e;
      if (int err = trees_[p.tree]->lookup(ctx, p.id, ".", &e); err != 0) {
        give_back(found.held);
        return err;
      }
      if (found.parts.empty()) found.entry = e;
      found.held.push_back(p);
      found.parts.push_back(p);
    }
    return enter(std::move(found), out);
  }
  for (size_t t = 0; t < trees_.size(); ++t) {
    EntryOut e;
    if (trees_[t]->lookup(ctx, id, ".", &e) != 0) continue;  // not a file of this tree
    if (is_dir(e)) {
      // A directory gets the union's rules: its parts in every tree, found by its path.
      const int err = directory_through_union(ctx, t, e.ino, Shown::kDeciding, out);
      trees_[t]->forget(e.ino, 1);
      if (err == 0 && out->ino != id) {
        forget(out->ino, 1);
        return ESTALE;
      }
      return err;
    }
    Found found;  // a file: its own tree decides it
    found.timeout = 0;
    found.entry = e;
    found.parts.push_back({t, e.ino});
    found.held.push_back({t, e.ino});
    if (int err = enter(std::move(found), out); err != 0) return err;
    if (out->ino != id) {
      forget(out->ino, 1);
      return ESTALE;
    }
    return 0;
  }
  return ESTALE;
}

int UnionFilesystem::parent_of(const Context& ctx, const Node& child, EntryOut* out) {
  const std::vector<Part> parts = parts_of(child);
  if (parts.empty()) return ESTALE;
  const Part d = parts.front();
  EntryOut up;
  if (int err = trees_[d.tree]->lookup(ctx, d.id, "..", &up); err != 0) return err;
  int err = 0;
  if (up.ino == kRootId) {
    if (int e = getattr(kRootId, &out->attr); e != 0) err = e;
    out->ino = kRootId;
    out->entry_timeout = 0;
    out->attr_timeout = up.attr_timeout;
  } else {
    err = directory_through_union(ctx, d.tree, up.ino, Shown::kAsAPart, out);
  }
  trees_[d.tree]->forget(up.ino, 1);
  return err;
}

// Walks up from `dir` to the tree's root, naming each directory by the d_ino its parent lists it
// with.
int UnionFilesystem::path_in_tree(const Context& ctx, size_t tree, uint64_t dir,
                                  std::vector<std::string>* path) {
  Filesystem& t = *trees_[tree];
  uint64_t here = dir;
  std::vector<uint64_t> held;  // ".." lookups to give back
  int err = 0;
  while (here != kRootId && err == 0) {
    if (path->size() > kMaxDepth) {
      err = ELOOP;
      break;
    }
    struct stat st;
    if ((err = t.getattr(here, &st)) != 0) break;
    EntryOut up;
    if ((err = t.lookup(ctx, here, "..", &up)) != 0) break;
    held.push_back(up.ino);
    names::UnionPart listed;
    if ((err = t.read_union_part(up.ino, tree, &listed)) != 0) break;
    const auto it =
        std::find_if(listed.entries.begin(), listed.entries.end(),
                     [&](const names::UnionPartEntry& e) { return e.ino == st.st_ino; });
    if (it == listed.entries.end()) {
      err = ESTALE;  // moved meanwhile
      break;
    }
    path->push_back(it->name);
    here = up.ino;
  }
  for (uint64_t id : held) {
    if (id != kRootId) t.forget(id, 1);
  }
  std::reverse(path->begin(), path->end());
  return err;
}

int UnionFilesystem::directory_through_union(const Context& ctx, size_t tree, uint64_t dir,
                                             Shown how, EntryOut* out) {
  std::vector<std::string> path;
  if (int err = path_in_tree(ctx, tree, dir, &path); err != 0) return err;
  uint64_t here = kRootId;
  EntryOut e;
  for (const std::string& name : path) {
    const int err = lookup(ctx, here, name, &e);
    if (here != kRootId) forget(here, 1);
    if (err != 0) return err == ENOENT ? ESTALE : err;
    if (e.ino == 0) return ESTALE;
    here = e.ino;
  }
  // Only if the union still shows this very directory there: deciding it (what a handle named),
  // or as one of its parts (the parent of a directory, which another tree may decide).
  const Part wanted{tree, dir};
  bool shown = false;
  if (auto n = node(here)) {
    const std::vector<Part> parts = parts_of(*n);
    shown = how == Shown::kDeciding ? !parts.empty() && parts.front() == wanted
                                    : std::find(parts.begin(), parts.end(), wanted) != parts.end();
  }
  if (!shown) {
    if (here != kRootId) forget(here, 1);
    return ESTALE;
  }
  *out = e;
  out->entry_timeout = 0;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Attributes, extended attributes, files: the deciding tree's

int UnionFilesystem::getattr(uint64_t ino, struct stat* out) {
  uint64_t shown = 0;
  const Part d = decider(ino, &shown);
  if (!d.id) return ESTALE;
  const int err = trees_[d.tree]->getattr(d.id, out);
  if (err == 0 && shown) out->st_ino = shown;
  return err;
}

int UnionFilesystem::readlink(uint64_t ino, std::string* out) {
  const Part d = decider(ino);
  return d.id ? trees_[d.tree]->readlink(d.id, out) : ESTALE;
}

int UnionFilesystem::statfs(uint64_t, struct statvfs* out) {
  return trees_.front()->statfs(kRootId, out);
}

// overlayfs's own attributes (the marks of whiteouts and opaque directories, origins) are the
// union's business, not the files': hidden, as overlayfs hides them.
int UnionFilesystem::getxattr(uint64_t ino, std::string_view name, size_t size, std::string* value,
                              size_t* needed) {
  if (backing::is_union_xattr(name)) return ENODATA;
  const Part d = decider(ino);
  return d.id ? trees_[d.tree]->getxattr(d.id, name, size, value, needed) : ESTALE;
}

int UnionFilesystem::listxattr(uint64_t ino, size_t size, std::string* list, size_t* needed) {
  const Part d = decider(ino);
  if (!d.id) return ESTALE;
  Filesystem& tree = *trees_[d.tree];
  std::string all;
  size_t want = 0;
  if (int err = tree.listxattr(d.id, 0, &all, &want); err != 0) return err;
  if (int err = tree.listxattr(d.id, want + 1024, &all, &want); err != 0) return err;
  std::string shown;
  for (size_t at = 0; at < all.size();) {
    const std::string_view name(all.c_str() + at);
    if (!backing::is_union_xattr(name)) shown.append(name).push_back('\0');
    at += name.size() + 1;
  }
  *needed = shown.size();
  if (size == 0) return 0;
  if (shown.size() > size) return ERANGE;
  *list = std::move(shown);
  return 0;
}

int UnionFilesystem::get_flags(uint64_t ino, uint32_t* flags) {
  const Part d = decider(ino);
  return d.id ? trees_[d.tree]->get_flags(d.id, flags) : ESTALE;
}

int UnionFilesystem::get_fsxattr(uint64_t ino, void* fsxattr_out) {
  const Part d = decider(ino);
  return d.id ? trees_[d.tree]->get_fsxattr(d.id, fsxattr_out) : ESTALE;
}

// An open file's handle says which tree's it is, in its top byte (the trees' handles are heap
// addresses, below 2^56).
uint64_t UnionFilesystem::to_fh(size_t tree, uint64_t tree_fh) {
  return (static_cast<uint64_t>(tree) << 56) | tree_fh;
}

int UnionFilesystem::file_fd(uint64_t fh) const {
  return trees_[tree_of_fh(fh)]->file_fd(tree_fh(fh));
}

int UnionFilesystem::flush(uint64_t fh) {
  return trees_[tree_of_fh(fh)]->flush(tree_fh(fh));
}

int UnionFilesystem::release(uint64_t fh) {
  return trees_[tree_of_fh(fh)]->release(tree_fh(fh));
}

int UnionFilesystem::fsync(uint64_t fh, bool datasync) {
  return trees_[tree_of_fh(fh)]->fsync(tree_fh(fh), datasync);
}

int UnionFilesystem::lseek(uint64_t fh, off_t offset, int whence, off_t* result) {
  return trees_[tree_of_fh(fh)]->lseek(tree_fh(fh), offset, whence, result);
}

}  // namespace foldfs::fs
