#include "cli/check_command.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "backing/casefold_flag.h"
#include "backing/dir_reader.h"
#include "backing/unique_fd.h"
#include "fs/options.h"
#include "fs/union_parts.h"
#include "names/dir_index.h"
#include "names/union_dir.h"

namespace foldfs::cli {
namespace {

using backing::UniqueFd;

std::string escape(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (c == '\t')
      out += "\\t";
    else if (c == '\n')
      out += "\\n";
    else if (c == '\\')
      out += "\\\\";
    else
      out.push_back(c);
  }
  return out;
}

// Opens `rel` below `root` without following any symlink and without leaving the tree.
int open_beneath(int root, const std::string& rel) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  const long fd = ::syscall(SYS_openat2, root, rel.c_str(), &how, sizeof(how));
  return fd < 0 ? -errno : static_cast<int>(fd);
}

// Opens and lists `rel` below `root` (`where`: how messages name it). On failure says why,
// counts it in `errors` and returns an invalid descriptor.
UniqueFd list_beneath(int root, const std::string& rel, const std::string& where,
                      std::vector<backing::DirEntry>* entries, uint64_t* errors) {
  const int fd = open_beneath(root, rel);
  if (fd < 0) {
    std::fprintf(stderr, "foldfs check: cannot open %s: %s\n", where.c_str(), std::strerror(-fd));
    ++*errors;
    return UniqueFd();
  }
  UniqueFd dir(fd);
  if (int err = backing::read_directory(dir.get(), entries); err != 0) {
    std::fprintf(stderr, "foldfs check: cannot read %s: %s\n", where.c_str(), std::strerror(err));
    ++*errors;
    return UniqueFd();
  }
  return dir;
}

struct Walk {
  bool all = false;
  uint64_t dirs = 0;
  uint64_t names = 0;
  uint64_t groups = 0;
  uint64_t errors = 0;
  std::chrono::steady_clock::time_point last_progress = std::chrono::steady_clock::now();

  void progress(bool final) {
    const auto now = std::chrono::steady_clock::now();
    if (!final && now - last_progress < std::chrono::seconds(2)) return;
    last_progress = now;
    std::fprintf(stderr, "foldfs check: %s%llu directories, %llu names, %llu collisions\n",
                 final ? "done: " : "", static_cast<unsigned long long>(dirs),
                 static_cast<unsigned long long>(names), static_cast<unsigned long long>(groups));
  }

  void report(const std::string& rel, const std::vector<std::vector<std::string>>& found) {
    for (const auto& group : found) {
      std::string line = escape(rel);
      for (const auto& n : group) line += "\t" + escape(n);
      std::printf("%s\n", line.c_str());
      ++groups;
    }
  }

  void visit(int root, const std::string& rel, std::deque<std::string>* pending) {
    std::vector<backing::DirEntry> entries;
    const UniqueFd dir = list_beneath(root, rel, "'" + rel + "'", &entries, &errors);
    if (!dir.valid()) return;
    ++dirs;
    names += entries.size();
    bool casefold = all;
    if (!casefold) backing::read_casefold_flag(dir.get(), &casefold);
    if (casefold) {
      names::DirIndex index(names::FoldRules{});
      std::vector<std::string> list;
      list.reserve(entries.size());
      for (const auto& e : entries) list.push_back(e.name);
      index.load(list);
      report(rel, index.collisions());
    }
    for (const auto& e : entries) {
      bool is_dir = e.type == DT_DIR;
      if (e.type == DT_UNKNOWN) {
        struct stat st;
        is_dir = ::fstatat(dir.get(), e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                 S_ISDIR(st.st_mode);
      }
      if (is_dir) pending->push_back(rel == "." ? e.name : rel + "/" + e.name);
    }
    progress(false);
  }
};

// --- a union of trees (docs/union.md) --------------------------------------------------------

// One tree's directory that takes part in a merged directory: the tree and its path there.
struct TreeDir {
  size_t tree;
  std::string rel;
};

struct MergedDir {
  std::string rel;  // as the union lists it
  std::vector<TreeDir> parts;
};

// Walks the union of `trees` (highest first) as the mount will show it, and reports what a
// case-insensitive union changes: names that collide inside one tree ("collision"), lower names
// hidden by a higher name of another spelling ("hides"), directories merged under another
// spelling ("merges"), lower names removed by a whiteout of another spelling ("removes"). The
// same spelling in several trees is the union doing its job, not reported.
struct UnionWalk {
  std::vector<std::string> trees;  // as given, for messages
  std::vector<UniqueFd> roots;
  uint64_t dirs = 0;
  uint64_t names = 0;
  uint64_t collisions = 0;
  uint64_t hides = 0;
  uint64_t merges = 0;
  uint64_t errors = 0;

  void line(const char* what, const std::string& rel, const std::vector<std::string>& fields) {
    std::string out = std::string(what) + "\t" + escape(rel);
    for (const auto& f : fields) out += "\t" + escape(f);
    std::printf("%s\n", out.c_str());
  }

  bool read_part(const TreeDir& at, names::UnionPart* part) {
    std::vector<backing::DirEntry> entries;
    const UniqueFd dir =
        list_beneath(roots[at.tree].get(), at.rel, "'" + at.rel + "' in '" + trees[at.tree] + "'",
                     &entries, &errors);
    if (!dir.valid()) return false;
    names += entries.size();
    *part = fs::union_part(dir.get(), at.tree, std::move(entries));
    return true;
  }

  void visit(const MergedDir& here, std::deque<MergedDir>* pending) {
    std::vector<names::UnionPart> parts;
    for (const TreeDir& at : here.parts) {
      names::UnionPart part;
      if (read_part(at, &part)) parts.push_back(std::move(part));
      if (!parts.empty() && parts.back().tree == at.tree && parts.back().opaque) break;
    }
    ++dirs;
    const names::UnionDir merged = names::merge_union_dir(parts, names::FoldRules{});
    for (const auto& c : merged.collisions) {
      std::vector<std::string> fields{trees[c.tree]};
      fields.insert(fields.end(), c.names.begin(), c.names.end());
      line("collision", here.rel, fields);
      ++collisions;
    }
    for (const auto& w : merged.whiteouts) {
      for (const auto& h : w.hidden) {
        if (h.name == w.whiteout.name) continue;
        line("removes", here.rel, {trees[w.whiteout.tree], w.whiteout.name, trees[h.tree], h.name});
        ++hides;
      }
    }
    for (const auto& e : merged.entries) {
      for (const auto& h : e.hidden) {
        if (h.name == e.name) continue;
        line("hides", here.rel, {trees[e.tree], e.name, trees[h.tree], h.name});
        ++hides;
      }
      for (size_t k = 1; k < e.parts.size(); ++k) {
        if (e.parts[k].name == e.name) continue;
        line("merges", here.rel, {trees[e.tree], e.name, trees[e.parts[k].tree], e.parts[k].name});
        ++merges;
      }
      if (!e.directory) continue;
      MergedDir child{here.rel == "." ? e.name : here.rel + "/" + e.name, {}};
      for (const auto& p : e.parts) {
        const std::string& parent = rel_in(here, p.tree);
        child.parts.push_back({p.tree, parent == "." ? p.name : parent + "/" + p.name});
      }
      pending->push_back(std::move(child));
    }
  }

  static const std::string& rel_in(const MergedDir& dir, size_t tree) {
    for (const TreeDir& at : dir.parts) {
      if (at.tree == tree) return at.rel;
    }
    static const std::string kNone;  // not reached: a part's tree is one of the directory's
    return kNone;
  }

  void summary() {
    std::fprintf(stderr,
                 "foldfs check: done: %llu merged directories, %llu names in %zu trees, %llu "
                 "collisions, %llu names hidden by another spelling, %llu directories merged "
                 "under another spelling\n",
                 static_cast<unsigned long long>(dirs), static_cast<unsigned long long>(names),
                 trees.size(), static_cast<unsigned long long>(collisions),
                 static_cast<unsigned long long>(hides), static_cast<unsigned long long>(merges));
  }
};

int usage_error(const char* message) {
  std::fprintf(stderr,
               "foldfs: %s\nusage: foldfs check [--casefold=all] BACKING\n"
               "       foldfs check --lowerdir=TOP:...:BOTTOM [--upperdir=DIR]\n",
               message);
  return 2;
}

int run_union_check(const std::string& upper, const std::string& lower) {
  UnionWalk walk;
  if (!upper.empty()) walk.trees.push_back(upper);
  if (!lower.empty()) {
    for (const std::string& t : fs::split_tree_list(lower)) walk.trees.push_back(t);
  }
  for (const std::string& t : walk.trees) {
    if (t.empty()) return usage_error("an empty path in the list of trees");
    UniqueFd root(::open(t.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root.valid()) {
      std::fprintf(stderr, "foldfs: cannot open '%s': %s\n", t.c_str(), std::strerror(errno));
      return 2;
    }
    walk.roots.push_back(std::move(root));
  }
  MergedDir top{".", {}};
  for (size_t k = 0; k < walk.trees.size(); ++k) top.parts.push_back({k, "."});
  std::deque<MergedDir> pending{std::move(top)};
  while (!pending.empty()) {
    const MergedDir here = std::move(pending.front());
    pending.pop_front();
    walk.visit(here, &pending);
  }
  walk.summary();
  std::fflush(stdout);
  if (walk.collisions > 0) return 1;
  return walk.errors > 0 ? 3 : 0;
}

}  // namespace

int run_check_command(int argc, char** argv) {
  Walk walk;
  std::string backing;
  std::string upper;
  std::string lower;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--lowerdir=", 0) == 0)
      lower = arg.substr(11);
    else if (arg.rfind("--upperdir=", 0) == 0)
      upper = arg.substr(11);
    else if (arg == "--casefold=all")
      walk.all = true;
    else if (arg == "--casefold=flag")
      walk.all = false;
    else if (!arg.empty() && arg[0] == '-')
      return usage_error(("unknown option '" + arg + "'").c_str());
    else if (backing.empty())
      backing = arg;
    else
      return usage_error("only one BACKING directory");
  }
  if (!lower.empty() || !upper.empty()) {
    if (!backing.empty()) return usage_error("a union of trees takes no BACKING directory");
    if (lower.empty()) return usage_error("--upperdir needs --lowerdir");
    return run_union_check(upper, lower);
  }
  if (backing.empty()) return usage_error("need a BACKING directory");
  UniqueFd root(::open(backing.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    std::fprintf(stderr, "foldfs: cannot open '%s': %s\n", backing.c_str(), std::strerror(errno));
    return 2;
  }
  std::deque<std::string> pending{"."};
  while (!pending.empty()) {
    const std::string rel = std::move(pending.front());
    pending.pop_front();
    walk.visit(root.get(), rel, &pending);
  }
  walk.progress(true);
  std::fflush(stdout);
  if (walk.groups > 0) return 1;
  return walk.errors > 0 ? 3 : 0;
}

}  // namespace foldfs::cli
