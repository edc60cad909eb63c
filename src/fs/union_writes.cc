// Changes through a union of trees (fs/union_fs.h, docs/union.md "Writes go to the upper tree
// only"): every change is made in the upper tree (tree 0) by its own Filesystem, after copying up
// what it changes; removing a name the lower trees show leaves a whiteout.
// The lock order is in union_fs.h: change_mutex_, then the trees' locks, then mutex_.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#include <algorithm>

#include "backing/union_format.h"
#include "fs/union_fs.h"

namespace foldfs::fs {
namespace {

constexpr size_t kMaxCopyDepth = 4096;  // bounds a copy of a tree whose directories would loop

bool writes(int flags) {
  return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

}  // namespace

void UnionFilesystem::invalidate_all() {
  if (kernel_) kernel_->invalidate_all_dentries();
}

bool UnionFilesystem::restand(Part old, Part upper, uint64_t shown_ino) {
  MutexLock lock(mutex_);
  auto it = by_decider_.find(old);
  if (it == by_decider_.end()) return false;
  std::shared_ptr<Node> n = nodes_.at(it->second);
  n->aliases.push_back(old);  // by_decider_ keeps `old` for lookups that asked before the copy
  by_decider_[upper] = n->id;
  if (n->directory) {
    n->parts.insert(n->parts.begin(), upper);  // the lower parts stay merged below it
  } else {
    n->parts = {upper};  // the lower file is hidden now; its lookup is given back at forget
  }
  hold(*n, upper);
  n->listing.reset();
  if (!n->shown_ino) n->shown_ino = shown_ino;
  return true;
}

bool UnionFilesystem::lower_trees_show(const Context& ctx, uint64_t dir, const std::string& name) {
  auto d = node(dir);
  if (!d) return true;  // a whiteout too many hides nothing that shows
  std::vector<Part> lower = parts_of(*d);
  lower.erase(std::remove_if(lower.begin(), lower.end(), [](const Part& p) { return p.tree == 0; }),
              lower.end());
  if (lower.empty()) return false;
  Found found;
  const int err = find(ctx, lower, name, &found);
  give_back(found.held);
  return err != ENOENT;
}

int UnionFilesystem::copy_from(const Context& ctx, const std::vector<Part>& level, size_t tree,
                               const std::string& name, uint64_t* upper) {
  const auto in =
      std::find_if(level.begin(), level.end(), [&](const Part& p) { return p.tree == tree; });
  if (in == level.end() || level.front().tree != 0) return ESTALE;
  backing::SharedFd lower;
  if (int err = trees_[tree]->descriptor(in->id, &lower); err != 0) return err;
  EntryOut e;
  int err = trees_[0]->copy_in(level.front().id, name, lower->get(), name, &e);
  if (err == EEXIST) {  // made meanwhile in the upper tree itself: that one
    err = trees_[0]->lookup(ctx, level.front().id, name, &e);
    if (err == 0 && e.ino == 0) err = ESTALE;
  }
  if (err == 0) *upper = e.ino;
  return err;
}

int UnionFilesystem::upper_dir(const Context& ctx, uint64_t dir, uint64_t* upper, bool* copied) {
  auto n = node(dir);
  if (!n) return ESTALE;
  const std::vector<Part> parts = parts_of(*n);
  if (parts.empty()) return ESTALE;
  if (parts.front().tree == 0) {
    *upper = parts.front().id;
    return 0;
  }
  // Walk down from the root through the union by the directory's path, copying up each
  // directory the upper tree lacks from the tree that decides it there.
  std::vector<std::string> path;
  if (int err = path_in_tree(ctx, parts.front().tree, parts.front().id, &path); err != 0) {
    return err;
  }
  std::vector<Part> level = parts_of(*node(kRootId));
  std::vector<Part> held;
  int err = 0;
  for (const std::string& name : path) {
    Found found;
    if ((err = find(ctx, level, name, &found)) != 0) {
      if (err == ENOENT) err = ESTALE;
      break;
    }
    held.insert(held.end(), found.held.begin(), found.held.end());
    if (!is_dir(found.entry)) {
      err = ESTALE;
      break;
    }
    const Part decider = found.parts.front();
    if (decider.tree != 0) {
      uint64_t made = 0;
      if ((err = copy_from(ctx, level, decider.tree, found.stored, &made)) != 0) break;
      *copied = true;
      const Part up{0, made};
      if (!restand(decider, up, origin_of(made))) held.push_back(up);
      found.parts.insert(found.parts.begin(), up);
    }
    level = std::move(found.parts);
  }
  if (err == 0) *upper = level.front().id;
  give_back(held);
  return err;
}

int UnionFilesystem::copy_up_found(const Context& ctx, uint64_t dir, const Found& found,
                                   Part* upper) {
  uint64_t up_dir = 0;
  bool copied = false;
  if (int err = upper_dir(ctx, dir, &up_dir, &copied); err != 0) return err;
  auto d = node(dir);
  if (!d) return ESTALE;
  uint64_t made = 0;
  if (int err = copy_from(ctx, parts_of(*d), found.parts.front().tree, found.stored, &made);
      err != 0) {
    return err;
  }
  *upper = Part{0, made};
  if (!restand(found.parts.front(), *upper, origin_of(made))) trees_[0]->forget(made, 1);
  invalidate_all();  // the lower tree's record covered the name's spellings
  return 0;
}

int UnionFilesystem::copy_up(const Context& ctx, uint64_t ino, Part* upper) {
  auto n = node(ino);
  if (!n) return ESTALE;
  Found found;
  uint64_t parent = 0;
  {
    MutexLock lock(mutex_);
    if (n->parts.empty()) return ESTALE;
    found.parts = {n->parts.front()};
    found.stored = n->name;
    parent = n->parent;
  }
  if (found.parts.front().tree == 0) {
    *upper = found.parts.front();
    return 0;
  }
  if (n->directory || ino == kRootId) {
    bool copied = false;
    uint64_t up = 0;
    const int err = upper_dir(ctx, ino, &up, &copied);
    if (copied) invalidate_all();
    *upper = Part{0, up};
    return err;
  }
  // A lower file known by handle alone has no name to copy up from: the client looks it up
  // again (NFS clients do on ESTALE) and the change works then.
  if (parent == 0) return ESTALE;
  return copy_up_found(ctx, parent, found, upper);
}

// ---------------------------------------------------------------------------------------------
// Changes of names

UnionFilesystem::Found UnionFilesystem::made_in_upper(const EntryOut& entry, std::string_view name,
                                                      uint64_t parent) {
  Found made;
  made.parts = {{0, entry.ino}};
  made.held = made.parts;
  made.entry = entry;
  made.timeout = entry.entry_timeout;
  made.stored = std::string(name);
  made.parent = parent;
  return made;
}

int UnionFilesystem::make_in_upper(const Context& ctx, uint64_t parent, std::string_view name,
                                   const std::function<int(uint64_t, EntryOut*)>& make,
                                   EntryOut* out) {
  if (!writable()) return EROFS;
  MutexLock change(change_mutex_);
  auto dir = node(parent);
  if (!dir) return ESTALE;
  if (!dir->directory && parent != kRootId) return ENOTDIR;
  Found existing;
  int err = find(ctx, parts_of(*dir), name, &existing);
  give_back(existing.held);
  if (err == 0) return EEXIST;
  if (err != ENOENT) return err;
  uint64_t up = 0;
  bool copied = false;
  if ((err = upper_dir(ctx, parent, &up, &copied)) != 0) return err;
  EntryOut e;
  if ((err = make(up, &e)) != 0) return err;
  if (copied) invalidate_all();
  return enter(made_in_upper(e, name, parent), out);
}

int UnionFilesystem::mknod(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode,
                           dev_t rdev, EntryOut* out) {
  return make_in_upper(
      ctx, parent, name,
      [&](uint64_t up, EntryOut* e) { return trees_[0]->mknod(ctx, up, name, mode, rdev, e); },
      out);
}

int UnionFilesystem::mkdir(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode,
                           EntryOut* out) {
  return make_in_upper(
      ctx, parent, name,
      [&](uint64_t up, EntryOut* e) { return trees_[0]->mkdir(ctx, up, name, mode, e); }, out);
}

int UnionFilesystem::symlink(const Context& ctx, std::string_view target, uint64_t parent,
                             std::string_view name, EntryOut* out) {
  return make_in_upper(
      ctx, parent, name,
      [&](uint64_t up, EntryOut* e) { return trees_[0]->symlink(ctx, target, up, name, e); }, out);
}

// A lower file is copied up first: the new name is a link of the copy (the lower file's other
// names stay the lower file's, as in overlayfs without its index).
int UnionFilesystem::link(const Context& ctx, uint64_t ino, uint64_t newparent,
                          std::string_view newname, EntryOut* out) {
  return make_in_upper(
      ctx, newparent, newname,
      [&](uint64_t up, EntryOut* e) {
        Part source;
        if (int err = copy_up(ctx, ino, &source); err != 0) return err;
        return trees_[0]->link(ctx, source.id, up, newname, e);
      },
      out);
}

int UnionFilesystem::remove(const Context& ctx, uint64_t parent, std::string_view name,
                            bool want_dir) {
  if (!writable()) return EROFS;
  MutexLock change(change_mutex_);
  auto dir = node(parent);
  if (!dir) return ESTALE;
  Found found;
  int err = find(ctx, parts_of(*dir), name, &found);
  if (err != 0) return err;
  if (want_dir != is_dir(found.entry)) {
    err = want_dir ? ENOTDIR : EISDIR;
  } else if (want_dir) {  // empty as the union shows it: whiteouts and hidden names aside
    names::UnionDir merged;
    err = merge(found.parts, &merged);
    if (err == 0 && !merged.entries.empty()) err = ENOTEMPTY;
  }
  const bool lower = err == 0 && lower_trees_show(ctx, parent, found.stored);
  const bool decided_below = found.parts.front().tree != 0;
  give_back(found.held);
  if (err != 0) return err;
  uint64_t up = 0;
  bool copied = false;
  if ((err = upper_dir(ctx, parent, &up, &copied)) != 0) return err;
  if (lower) {
    err = trees_[0]->remove_leaving_whiteout(up, found.stored, want_dir);
  } else {
    err = want_dir ? trees_[0]->rmdir(ctx, up, found.stored)
                   : trees_[0]->unlink(ctx, up, found.stored);
  }
  if (err == 0 && (lower || copied || decided_below)) invalidate_all();
  return err;
}

int UnionFilesystem::unlink(const Context& ctx, uint64_t parent, std::string_view name) {
  return remove(ctx, parent, name, false);
}

int UnionFilesystem::rmdir(const Context& ctx, uint64_t parent, std::string_view name) {
  return remove(ctx, parent, name, true);
}

// A directory the lower trees have a part of is not moved (EXDEV, as overlayfs without
// redirect_dir answers: mv copies it then). A lower file is copied up and moved in the upper
// tree; where the lower trees show the old name, a whiteout takes its place in the same step.
int UnionFilesystem::rename(const Context& ctx, uint64_t parent, std::string_view name,
                            uint64_t newparent, std::string_view newname, unsigned int flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return EINVAL;
  if (!writable()) return EROFS;
  MutexLock change(change_mutex_);
  auto from = node(parent);
  auto to = node(newparent);
  if (!from || !to) return ESTALE;
  Found src, dst;
  int err = find(ctx, parts_of(*from), name, &src);
  if (err != 0) return err;
  const int dst_err = find(ctx, parts_of(*to), newname, &dst);
  auto done = [&](int e) {
    give_back(src.held);
    give_back(dst.held);
    return e;
  };
  if (dst_err != 0 && dst_err != ENOENT) return done(dst_err);
  const bool target = dst_err == 0;
  if ((flags & RENAME_NOREPLACE) && target) return done(EEXIST);
  if ((flags & RENAME_EXCHANGE) && !target) return done(ENOENT);
  auto has_lower_part = [](const Found& f) {
    return is_dir(f.entry) && (f.parts.size() > 1 || f.parts.front().tree != 0);
  };
  if (target && src.parts.front() == dst.parts.front()) return done(0);  // one entry, two names
  if (has_lower_part(src) && (flags & RENAME_EXCHANGE)) return done(EXDEV);
  const bool replaces_dir = target && !(flags & RENAME_EXCHANGE) && is_dir(dst.entry);
  if (replaces_dir) {  // empty as the union shows it, as rmdir asks
    names::UnionDir merged;
    if ((err = merge(dst.parts, &merged)) != 0) return done(err);
    if (!merged.entries.empty()) return done(ENOTEMPTY);
  }
  if (target && has_lower_part(dst) && (flags & RENAME_EXCHANGE)) return done(EXDEV);

  if (has_lower_part(src)) {
    const std::string target_name = target ? dst.stored : std::string(newname);
    return done(
        rename_by_copy(ctx, parent, src, newparent, target_name, target && has_lower_part(dst)));
  }

  bool lower_involved = false;
  Part moved = src.parts.front();
  if (moved.tree != 0) {
    if ((err = copy_up_found(ctx, parent, src, &moved)) != 0) return done(err);
    lower_involved = true;
  }
  if ((flags & RENAME_EXCHANGE) && dst.parts.front().tree != 0) {
    Part ignored;
    if ((err = copy_up_found(ctx, newparent, dst, &ignored)) != 0) return done(err);
    lower_involved = true;
  }
  uint64_t up_from = 0, up_to = 0;
  bool copied = false;
  if ((err = upper_dir(ctx, parent, &up_from, &copied)) != 0) return done(err);
  if ((err = upper_dir(ctx, newparent, &up_to, &copied)) != 0) return done(err);
  const bool whiteout = !(flags & RENAME_EXCHANGE) && lower_trees_show(ctx, parent, src.stored);
  const std::string target_name = target ? dst.stored : std::string(newname);
  if (replaces_dir && has_lower_part(dst)) {
    // A directory with lower parts is replaced by first becoming a whiteout: the directory moved
    // there then hides every lower part of the name (it is made opaque as it replaces the
    // whiteout). A crash in between leaves the target removed and the source where it was.
    if ((err = trees_[0]->remove_leaving_whiteout(up_to, target_name, true)) != 0) {
      return done(err);
    }
    lower_involved = true;
  }
  err = trees_[0]->rename(ctx, up_from, src.stored, up_to, target_name,
                          flags | (whiteout ? Filesystem::kRenameWhiteout : 0));
  if (err != 0) return done(err);
  {
    MutexLock lock(mutex_);
    auto it = by_decider_.find(moved);
    if (it != by_decider_.end()) {
      Node& n = *nodes_.at(it->second);
      n.parent = newparent;
      n.name = target_name;
    }
  }
  if (whiteout || copied || lower_involved || (target && dst.parts.front().tree != 0)) {
    invalidate_all();
  }
  return done(0);
}

// overlayfs without redirect_dir answers EXDEV here, and `mv` then copies and removes; programs
// that rename by the system call alone (Windows programs under Wine: MoveFileEx) would fail. The
// union does what mv does, in the upper tree, in an order that never loses anything: the copy is
// built under a temporary name the union does not list, made opaque, put in place in one step,
// and only then is the old name removed (its upper part with all it holds) and whited out. A
// crash leaves the old directory, or both, never neither. Hard links inside are not kept (each
// name is a copy of its own, as a copy-up makes it); the copies keep their inode numbers.
int UnionFilesystem::rename_by_copy(const Context& ctx, uint64_t parent, const Found& src,
                                    uint64_t newparent, const std::string& target_name,
                                    bool target_has_lower_parts) {
  uint64_t up_from = 0, up_to = 0;
  bool copied = false;
  if (int err = upper_dir(ctx, parent, &up_from, &copied); err != 0) return err;
  if (int err = upper_dir(ctx, newparent, &up_to, &copied); err != 0) return err;
  auto from = node(parent);
  if (!from) return ESTALE;
  const std::string temp = Filesystem::temporary_name();
  int err = copy_tree(ctx, parts_of(*from), src, up_to, temp, 0);
  backing::SharedFd to_fd;
  if (err == 0 && target_has_lower_parts) {  // an empty merged directory: a whiteout first
    err = trees_[0]->remove_leaving_whiteout(up_to, target_name, true);
  }
  if (err == 0) err = trees_[0]->rename(Context{}, up_to, temp, up_to, target_name, 0);
  if (err != 0) {
    if (trees_[0]->descriptor(up_to, &to_fd) == 0) trees_[0]->remove_tree(ctx, to_fd->get(), temp);
    invalidate_all();
    return err;
  }
  // The move is made: the old name is a whiteout from here on, whatever of its upper part the
  // caller may not remove stays under a name the union does not list.
  trees_[0]->remove_leaving_whiteout(up_from, src.stored, true, &ctx);
  // Every node the kernel holds in the old directory stands on its old parts: it finds the new
  // ones by looking up again.
  invalidate_all();
  return 0;
}

int UnionFilesystem::copy_tree(const Context& ctx, const std::vector<Part>& from_parent,
                               const Found& what, uint64_t into, const std::string& name,
                               size_t depth) {
  if (depth > kMaxCopyDepth) return ELOOP;
  const Part decider = what.parts.front();
  const auto in = std::find_if(from_parent.begin(), from_parent.end(),
                               [&](const Part& p) { return p.tree == decider.tree; });
  if (in == from_parent.end()) return ESTALE;
  backing::SharedFd from_fd;
  if (int err = trees_[decider.tree]->descriptor(in->id, &from_fd); err != 0) return err;
  EntryOut made;
  if (int err = trees_[0]->copy_in(into, name, from_fd->get(), what.stored, &made); err != 0) {
    return err;
  }
  int err = 0;
  if (is_dir(what.entry)) {
    backing::SharedFd made_fd;
    if ((err = trees_[0]->descriptor(made.ino, &made_fd)) == 0) {
      err = backing::make_opaque(made_fd->get());
    }
    names::UnionDir merged;
    if (err == 0) err = merge(what.parts, &merged);
    for (size_t i = 0; err == 0 && i < merged.entries.size(); ++i) {
      Found child;
      if ((err = find(ctx, what.parts, merged.entries[i].name, &child)) != 0) break;
      err = copy_tree(ctx, what.parts, child, made.ino, child.stored, depth + 1);
      give_back(child.held);
    }
  }
  trees_[0]->forget(made.ino, 1);
  return err;
}

// ---------------------------------------------------------------------------------------------
// Changes of files: the upper copy's

int UnionFilesystem::setattr(const Context& ctx, uint64_t ino, const struct stat& attr, int to_set,
                             const uint64_t* fh, struct stat* out) {
  Part up;
  if (int err = writable_part(ctx, ino, &up); err != 0) return err;
  uint64_t inner = 0;
  const uint64_t* inner_fh = nullptr;
  if (fh && tree_of_fh(*fh) == 0) {
    inner = tree_fh(*fh);
    inner_fh = &inner;
  }
  const int err = trees_[0]->setattr(ctx, up.id, attr, to_set, inner_fh, out);
  uint64_t shown = 0;
  decider(ino, &shown);
  if (err == 0 && shown) out->st_ino = shown;
  return err;
}

int UnionFilesystem::writable_part(const Context& ctx, uint64_t ino, Part* up) {
  if (!writable()) return EROFS;
  const Part d = decider(ino);
  if (!d.id) return ESTALE;
  if (d.tree == 0) {
    *up = d;
    return 0;
  }
  MutexLock change(change_mutex_);
  return copy_up(ctx, ino, up);
}

// overlayfs's own attributes say what the union is made of: not the files' to set.
int UnionFilesystem::setxattr(uint64_t ino, std::string_view name, std::string_view value,
                              int flags) {
  if (backing::is_union_xattr(name)) return EOPNOTSUPP;
  Part up;
  if (int err = writable_part(Context{}, ino, &up); err != 0) return err;
  return trees_[0]->setxattr(up.id, name, value, flags);
}

int UnionFilesystem::removexattr(uint64_t ino, std::string_view name) {
  if (backing::is_union_xattr(name)) return EOPNOTSUPP;
  Part up;
  if (int err = writable_part(Context{}, ino, &up); err != 0) return err;
  return trees_[0]->removexattr(up.id, name);
}

int UnionFilesystem::set_flags(const Context& ctx, uint64_t ino, uint32_t flags) {
  Part up;
  if (int err = writable_part(ctx, ino, &up); err != 0) return err;
  return trees_[0]->set_flags(ctx, up.id, flags);
}

int UnionFilesystem::set_fsxattr(uint64_t ino, const void* fsxattr_in) {
  Part up;
  if (int err = writable_part(Context{}, ino, &up); err != 0) return err;
  return trees_[0]->set_fsxattr(up.id, fsxattr_in);
}

int UnionFilesystem::open(const Context& ctx, uint64_t ino, int flags, uint64_t* fh) {
  Part d = decider(ino);
  if (!d.id) return ESTALE;
  if (writes(flags) && d.tree != 0) {
    if (int err = writable_part(ctx, ino, &d); err != 0) return err;
  }
  uint64_t inner = 0;
  if (int err = trees_[d.tree]->open(ctx, d.id, flags, &inner); err != 0) return err;
  if (tree_fh(inner) != inner) {
    trees_[d.tree]->release(inner);
    return EOVERFLOW;
  }
  *fh = to_fh(d.tree, inner);
  return 0;
}

int UnionFilesystem::create(const Context& ctx, uint64_t parent, std::string_view name, mode_t mode,
                            int flags, EntryOut* out, uint64_t* fh) {
  if (!writable()) return EROFS;
  {
    MutexLock change(change_mutex_);
    auto dir = node(parent);
    if (!dir) return ESTALE;
    Found found;
    found.parent = parent;
    int err = find(ctx, parts_of(*dir), name, &found);
    if (err == ENOENT) {
      uint64_t up = 0;
      bool copied = false;
      if ((err = upper_dir(ctx, parent, &up, &copied)) != 0) return err;
      EntryOut e;
      uint64_t inner = 0;
      if ((err = trees_[0]->create(ctx, up, name, mode, flags, &e, &inner)) != 0) return err;
      if (copied) invalidate_all();
      if (tree_fh(inner) != inner) {
        trees_[0]->release(inner);
        trees_[0]->forget(e.ino, 1);
        return EOVERFLOW;
      }
      *fh = to_fh(0, inner);
      return enter(made_in_upper(e, name, parent), out);
    }
    if (err != 0) return err;
    if ((flags & O_EXCL) || is_dir(found.entry)) {
      give_back(found.held);
      return (flags & O_EXCL) ? EEXIST : EISDIR;
    }
    if ((err = enter(std::move(found), out)) != 0) return err;
  }
  // The name exists: open(O_CREAT) opens it (copied up first if it is a lower file).
  const int err = open(ctx, out->ino, flags & ~(O_CREAT | O_EXCL), fh);
  if (err != 0) forget(out->ino, 1);
  return err;
}

int UnionFilesystem::fallocate(uint64_t fh, int mode, off_t offset, off_t length) {
  return trees_[tree_of_fh(fh)]->fallocate(tree_fh(fh), mode, offset, length);
}

int UnionFilesystem::copy_file_range(uint64_t fh_in, off_t off_in, uint64_t fh_out, off_t off_out,
                                     size_t len, int flags, size_t* copied) {
  if (tree_of_fh(fh_in) != tree_of_fh(fh_out)) return EXDEV;
  return trees_[tree_of_fh(fh_out)]->copy_file_range(tree_fh(fh_in), off_in, tree_fh(fh_out),
                                                     off_out, len, flags, copied);
}

}  // namespace foldfs::fs
