// libFuzzer target over the filesystem core's operation API, checked against a model.
//
// Each input is a configuration byte (bit 0 casefold=all, bit 1 strict, bit 2 the caller is
// uid/gid 1000, so that what it makes is handed to it) and a sequence of operations on a fresh
// backing directory (outside=revalidate: no watcher thread), over names made of one to three
// tokens of a small alphabet of case and Unicode variants ("a", "A", "ß", "SS", "ẞ", NFC and
// NFD "é", U+200B, Ω/ω/U+2126, Kelvin sign, dotless and dotted i, final sigma, invalid "\xff"
// and "\xc3", ...). The model keeps, per directory, the stored names, and implements the
// documented semantics (docs/design.md "Semantics decisions", README): names are equivalent per
// unicode::names_equal in casefolded directories; an exact spelling finds its own entry, any
// other the bytewise smallest equivalent; creating an equivalent is EEXIST (O_CREAT alone opens
// the existing file); a rename between spellings of one entry changes nothing; a rename onto an
// equivalent replaces it and keeps its spelling; new subdirectories inherit the flag
// (casefold=flag); flips only on empty directories; strict refuses invalid UTF-8 in casefolded
// directories; foldfs's own xattrs are invisible; node ids are stable; files belong to their
// maker. Errors follow Linux's rename(2)/unlink(2)/... rules for the backing call.
//
// A model of the kernel's dentry cache rides along (as in tests/unit/fs_interleaving_test.cc):
// every reply with a timeout is cached under its exact spelling, tagged with the invalidation
// epoch read before the request; the dentries an operation names are updated as the kernel
// does; after every operation, every still-valid cached answer must agree with the model (the
// coherence contract of docs/coherence.md).
//
// Operations (op % 25): 0 create O_EXCL, 1 create, 2 mkdir, 3 symlink or FIFO (mknod), 4 link,
// 5 unlink, 6 rmdir, 7 and 23 rename (flags 0, NOREPLACE, EXCHANGE, invalid), 8 lookup,
// 9 readdir and 24 readdirplus (in chunks: what does not fit is taken again), 10 chattr +F/-F,
// 11 setxattr, 12 getxattr, 13 listxattr, 14 removexattr, 15 getattr, 16 forget, 17 lookup "."
// (reconnect by node id when forgotten), 18 lookup "..", 19 create a file directly in the
// backing tree, 20 remove a backing entry directly, 21 mkdir directly in the backing tree,
// 22 a new instance of the filesystem (next byte: new casefold/strict bits).
//
// FOLDFS_FUZZ_TRACE=1 prints every operation and its result; FOLDFS_FUZZ_NAIVE=1 runs the
// daemon without kernel invalidations, which must be caught (a self-check of the model).
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "fs/filesystem.h"
#include "fuzz_support.h"
#include "support/fake_kernel.h"
#include "unicode/fold.h"

namespace {

using namespace foldfs;
using fs::CasefoldMode;
using fs::Filesystem;
using fuzz::errname;
using fuzz::fail;
using fuzz::show;

constexpr uint32_t kCasefold = FS_CASEFOLD_FL;

const char* const kTokens[32] = {
    "a",
    "A",
    "\xc3\x9f",
    "SS",
    "ss",
    "\xc3\xa9",
    "e\xcc\x81",
    "\xe2\x80\x8b",
    "\xce\xa9",
    "\xcf\x89",
    "\xe2\x84\xa6",
    "\xff",
    "\xe1\xba\x9e",
    "\xe2\x84\xaa",
    "k",
    ".",
    "\xc3\x89",
    "\xc7\x85",
    "\xef\xac\x80",
    "f",
    "\xc4\xb0",
    "i",
    "\xc4\xb1",
    "\xcc\x81",
    "x",
    "X",
    "\xc3",
    "\xe2\x80\x8d",
    "\xce\xa3",
    "\xcf\x82",
    "\xcf\x83",
    "\xc2\xad",
};
const char* const kXattrNames[] = {
    "user.a", "user.A", "user.b", "trusted.x", "trusted.foldfs.casefold", "trusted.foldfs.stats"};
const char* const kXattrValues[] = {"", "1", "value", "0"};

bool trace_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("FOLDFS_FUZZ_TRACE");
    return e && *e && *e != '0';
  }();
  return on;
}

// The kernel side: counts invalidations (FUSE_NOTIFY_INC_EPOCH).
using Kernel = test_support::FakeKernel;

enum class Kind { kFile, kDir, kSymlink, kFifo };

mode_t type_of(Kind k) {
  switch (k) {
    case Kind::kFile:
      return S_IFREG;
    case Kind::kDir:
      return S_IFDIR;
    case Kind::kSymlink:
      return S_IFLNK;
    case Kind::kFifo:
      return S_IFIFO;
  }
  return 0;
}
// user.* xattrs exist only on regular files and directories (xattr_permission()).
bool takes_user_xattrs(Kind k) {
  return k == Kind::kFile || k == Kind::kDir;
}

struct Node {
  Kind kind = Kind::kFile;
  bool alive = true;
  uint64_t ino = 0;      // FUSE node id, once the filesystem told us
  uint64_t nlookup = 0;  // lookups the "kernel" holds
  int links = 0;         // names (files and symlinks)
  int parent = -1;       // directories: where they live
  std::string name;
  bool flag = false;  // directories: the stored casefold flag
  uid_t uid = 0;      // owner: the caller who made it through the mount, root outside
  gid_t gid = 0;
  std::map<std::string, int> entries;
  std::map<std::string, std::string> xattrs;  // user.* and trusted.*, foldfs's own excluded
};

struct Cached {
  bool positive;
  uint64_t ino;
  uint64_t epoch;
};

bool protected_hardlinks() {
  static const bool on = [] {
    FILE* f = std::fopen("/proc/sys/fs/protected_hardlinks", "r");
    int v = 0;
    if (f) {
      if (std::fscanf(f, "%d", &v) != 1) v = 0;
      std::fclose(f);
    }
    return v != 0;
  }();
  return on;
}

class Run {
 public:
  Run(const std::string& root, uint8_t config) : root_(root) {
    all_ = config & 1;
    strict_ = config & 2;
    if (config & 4) {
      // A caller other than root: what it makes is its own (made with its ids), in a tree it
      // may write (as the kernel would have checked before asking).
      ctx_.uid = ctx_.gid = 1000;
      ::chmod(root_.c_str(), 0777);
    }
    Node r;
    r.kind = Kind::kDir;
    r.ino = Filesystem::kRootId;
    nodes_.push_back(r);
    by_ino_[r.ino] = 0;
    open_fs();
  }

  void op(fuzz::ByteReader& in, int step) {
    step_ = step;
    const uint8_t code = in.u8() % 25;
    switch (code) {
      case 0:
      case 1: {
        const int d = pick_dir(in);
        const std::string n = read_name(in, d);
        do_create(d, n, code == 0);
        break;
      }
      case 2:
      case 3: {
        const int d = pick_dir(in);
        const std::string n = read_name(in, d);
        do_make(d, n, code == 2 ? Kind::kDir : (n.size() & 1) ? Kind::kFifo : Kind::kSymlink);
        break;
      }
      case 4: {
        const int src = pick_node(in);
        const int d = pick_dir(in);
        const std::string n = read_name(in, d);
        do_link(src, d, n);
        break;
      }
      case 5:
      case 6: {
        const int d = pick_dir(in);
        const std::string n = read_name(in, d);
        do_remove(d, n, code == 6);
        break;
      }
      case 7:
      case 23: {
        const int d1 = pick_dir(in);
        const std::string n1 = read_name(in, d1);
        const int d2 = pick_dir(in);
        const std::string n2 = read_name(in, d2);
        static const unsigned kFlags[8] = {0,
                                           0,
                                           0,
                                           RENAME_NOREPLACE,
                                           RENAME_NOREPLACE,
                                           RENAME_EXCHANGE,
                                           RENAME_EXCHANGE,
                                           RENAME_WHITEOUT};
        unsigned flags = kFlags[in.u8() % 8];
        if (flags == RENAME_WHITEOUT && (step & 1)) flags = RENAME_NOREPLACE | RENAME_EXCHANGE;
        do_rename(d1, n1, d2, n2, flags);
        break;
      }
      case 8: {
        const int d = pick_dir(in);
        do_lookup(d, read_name(in, d));
        break;
      }
      case 9: {
        const int d = pick_dir(in);
        do_readdir(d, 1 + in.u8() % 4);
        break;
      }
      case 10: {
        const int n = pick_node(in);
        do_chattr(n, in.u8() & 1);
        break;
      }
      case 11: {
        const int n = pick_node(in);
        const std::string name = kXattrNames[in.u8() % 6];
        const std::string value = kXattrValues[in.u8() % 4];
        static const int kSetFlags[3] = {0, XATTR_CREATE, XATTR_REPLACE};
        do_setxattr(n, name, value, kSetFlags[in.u8() % 3]);
        break;
      }
      case 12: {
        const int n = pick_node(in);
        const std::string name = kXattrNames[in.u8() % 6];
        static const size_t kSizes[3] = {0, 1, 1024};
        do_getxattr(n, name, kSizes[in.u8() % 3]);
        break;
      }
      case 13:
        do_listxattr(pick_node(in), in.u8() & 1);
        break;
      case 14: {
        const int n = pick_node(in);
        do_removexattr(n, kXattrNames[in.u8() % 6]);
        break;
      }
      case 15:
        do_getattr(pick_node(in));
        break;
      case 16: {
        const int n = pick_node(in);
        do_forget(n, in.u8());
        break;
      }
      case 17:
        do_lookup_dot(pick_node(in));
        break;
      case 18:
        do_lookup_dotdot(pick_dir(in));
        break;
      case 19:
      case 21: {
        const int d = pick_any_dir(in);
        const std::string n = read_name(in, d);
        do_outside_create(d, n, code == 21);
        break;
      }
      case 20: {
        const int d = pick_any_dir(in);
        do_outside_remove(d, in.u8());
        break;
      }
      case 22:
        do_reopen(in.u8());
        break;
      case 24: {
        const int d = pick_dir(in);
        do_readdirplus(d, 1 + in.u8() % 4);
        break;
      }
    }
    check_kernel_cache();
    if (step % 8 == 7) check_everything();
  }

  void finish() {
    check_everything();
    fs_.reset();
  }

 private:
  // --- decoding --------------------------------------------------------------------------------

  // Live directories the filesystem has told us the node id of (the root first).
  int pick_dir(fuzz::ByteReader& in) {
    std::vector<int> dirs;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].alive && nodes_[i].kind == Kind::kDir && nodes_[i].ino != 0) {
        dirs.push_back(static_cast<int>(i));
      }
    }
    return dirs[in.u8() % dirs.size()];
  }
  // Any live directory (outside changes need only its path).
  int pick_any_dir(fuzz::ByteReader& in) {
    std::vector<int> dirs;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].alive && nodes_[i].kind == Kind::kDir) dirs.push_back(static_cast<int>(i));
    }
    return dirs[in.u8() % dirs.size()];
  }
  // Any live node with a known node id.
  int pick_node(fuzz::ByteReader& in) {
    std::vector<int> live;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].alive && nodes_[i].ino != 0) live.push_back(static_cast<int>(i));
    }
    return live[in.u8() % live.size()];
  }

  // A name: one to three tokens (bit 7 of a token byte: another token follows). A first byte
  // with bits 5 and 6 set picks a name stored in the directory instead (bits 0-4), and the next
  // byte a variant of it: as is, ASCII upper case, ASCII lower case, with U+200B appended.
  std::string read_name(fuzz::ByteReader& in, int dir) {
    uint8_t b = in.u8();
    const Node& d = nodes_[dir];
    if ((b & 0x60) == 0x60 && !d.entries.empty()) {
      auto it = d.entries.begin();
      std::advance(it, (b & 31) % d.entries.size());
      std::string n = it->first;
      switch (in.u8() % 4) {
        case 1:
          for (auto& c : n) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
          break;
        case 2:
          for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          break;
        case 3:
          n += "\xe2\x80\x8b";
          break;
      }
      return dotless(n);
    }
    std::string n = kTokens[b & 31];
    for (int count = 1; (b & 0x80) && count < 3; ++count) {
      b = in.u8();
      n += kTokens[b & 31];
    }
    return dotless(n);
  }
  // "." and ".." never reach these operations from the kernel: make them ordinary names whose
  // key is "." or "..".
  static std::string dotless(const std::string& n) {
    return n == "." || n == ".." ? "\xe2\x80\x8b" + n : n;
  }

  // --- the model -----------------------------------------------------------------------------

  bool cf(int d) const { return all_ || nodes_[d].flag; }
  unicode::Strictness strictness() const {
    return strict_ ? unicode::Strictness::kStrict : unicode::Strictness::kLenient;
  }
  // Making a name that is not valid UTF-8 in a strict casefolded directory is refused; finding
  // one is no error (it is found by its exact bytes, if it exists), as on ext4.
  int check_make(int d, const std::string& n) const {
    return strict_ && cf(d) && !unicode::is_valid_utf8(n) ? EINVAL : 0;
  }
  // The stored name `n` stands for: itself, else (casefolded) the smallest equivalent.
  std::optional<std::string> resolve(int d, const std::string& n) const {
    const Node& dir = nodes_[d];
    if (dir.entries.count(n)) return n;
    if (!cf(d)) return std::nullopt;
    for (const auto& [stored, node] : dir.entries) {  // std::map: bytewise order
      if (unicode::names_equal(stored, n, unicode::Version::kUtf8_12_1, strictness())) {
        return stored;
      }
    }
    return std::nullopt;
  }
  // Whether the filesystem holds the node (the root always; others while looked up).
  bool known(int n) const { return n == 0 || nodes_[n].nlookup > 0; }
  bool is_ancestor(int a, int b) const {  // a is a proper ancestor of b
    for (int p = nodes_[b].parent; p >= 0; p = nodes_[p].parent) {
      if (p == a) return true;
    }
    return false;
  }
  int child_towards(int a, int b) const {  // the child of a on the way down to b
    int c = b;
    while (nodes_[c].parent != a) c = nodes_[c].parent;
    return c;
  }
  std::string path(int d) const {
    if (d == 0) return root_;
    return path(nodes_[d].parent) + "/" + nodes_[d].name;
  }
  int subdirs(int d) const {
    int n = 0;
    for (const auto& [name, c] : nodes_[d].entries) n += nodes_[c].kind == Kind::kDir;
    return n;
  }
  int new_node(Kind kind) {
    Node n;
    n.kind = kind;
    nodes_.push_back(n);
    return static_cast<int>(nodes_.size() - 1);
  }
  void add_entry(int d, const std::string& name, int n) {
    nodes_[d].entries[name] = n;
    Node& node = nodes_[n];
    node.alive = true;
    if (node.kind == Kind::kDir) {
      node.parent = d;
      node.name = name;
    } else {
      ++node.links;
    }
  }
  // Puts an existing node under a name (a move: link counts do not change).
  void place(int d, const std::string& name, int n) {
    nodes_[d].entries[name] = n;
    if (nodes_[n].kind == Kind::kDir) {
      nodes_[n].parent = d;
      nodes_[n].name = name;
    }
  }
  void drop_entry(int d, const std::string& name) {
    const int n = nodes_[d].entries.at(name);
    nodes_[d].entries.erase(name);
    Node& node = nodes_[n];
    if (node.kind == Kind::kDir) {
      node.alive = false;
    } else if (--node.links == 0) {
      node.alive = false;
    }
  }

  void own(int n) {
    nodes_[n].uid = ctx_.uid;
    nodes_[n].gid = ctx_.gid;
  }

  // The filesystem told us node `n` has node id `ino`.
  void learn(int n, uint64_t ino, const char* what) {
    Node& node = nodes_[n];
    if (ino == 0) fail(trace_, "%s: node id 0", what);
    if (node.ino == 0) {
      auto it = by_ino_.find(ino);
      if (it != by_ino_.end() && it->second != n) {
        fail(trace_, "%s: node id %llu already names another file", what,
             static_cast<unsigned long long>(ino));
      }
      node.ino = ino;
      by_ino_[ino] = n;
    } else if (node.ino != ino) {
      fail(trace_, "%s: node id %llu, expected %llu", what, static_cast<unsigned long long>(ino),
           static_cast<unsigned long long>(node.ino));
    }
  }
  void check_entry(int n, const fs::EntryOut& out, const char* what) {
    learn(n, out.ino, what);
    if ((out.attr.st_mode & S_IFMT) != type_of(nodes_[n].kind)) {
      fail(trace_, "%s: wrong file type", what);
    }
    ++nodes_[n].nlookup;
  }

  // --- trace and checks ----------------------------------------------------------------------

  std::string dname(int d) const {
    if (d == 0) return "/";
    return dname(nodes_[d].parent) + (nodes_[d].parent == 0 ? "" : "/") + show(nodes_[d].name);
  }
  std::string nname(int n) const {
    const Node& node = nodes_[n];
    if (node.kind == Kind::kDir) return dname(n);
    const char* kind = node.kind == Kind::kFile   ? "file#"
                       : node.kind == Kind::kFifo ? "fifo#"
                                                  : "symlink#";
    return kind + std::to_string(n);
  }
  void note(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    std::string line = "  [" + std::to_string(step_) + "] " + buf + "\n";
    if (trace_enabled()) std::fputs(line.c_str(), stderr);
    trace_ += line;
  }
  void expect(int got, int want, const char* what) {
    if (got != want) {
      fail(trace_, "%s: got %s, the model expects %s", what, errname(got).c_str(),
           errname(want).c_str());
    }
  }

  // --- operations ----------------------------------------------------------------------------

  void do_create(int d, const std::string& n, bool excl) {
    int want = 0;
    int target = -1;
    if (!known(d)) {
      want = ESTALE;
    } else if ((want = check_make(d, n)) == 0) {
      if (auto s = resolve(d, n)) {
        target = nodes_[d].entries[*s];
        const Kind k = nodes_[target].kind;
        if (!excl && k == Kind::kFifo) {
          // The kernel opens an existing FIFO itself; the daemon's open would wait for a reader.
          note("create %s %s: an existing FIFO, skipped", dname(d).c_str(), show(n).c_str());
          return;
        }
        want = excl ? EEXIST : k == Kind::kDir ? EISDIR : k == Kind::kSymlink ? ELOOP : 0;
        // Opening an existing file for writing needs the caller's rights (files are 0644).
        if (want == 0 && ctx_.uid != 0 && nodes_[target].uid != ctx_.uid) want = EACCES;
      }
    }
    const uint64_t snapshot = kernel_.epoch();
    fs::EntryOut out;
    uint64_t fh = 0;
    const int err = fs_->create(ctx_, nodes_[d].ino, n, 0644,
                                O_CREAT | O_WRONLY | (excl ? O_EXCL : 0), &out, &fh);
    note("create%s %s %s -> %s", excl ? " O_EXCL" : "", dname(d).c_str(), show(n).c_str(),
         errname(err).c_str());
    if (err == 0) fs_->release(fh);
    expect(err, want, "create");
    if (err != 0) return;
    if (target < 0) {
      target = new_node(Kind::kFile);
      own(target);
      add_entry(d, n, target);
    }
    check_entry(target, out, "create");
    operated(d, n, out, snapshot);
  }

  void do_make(int d, const std::string& n, Kind kind) {
    int want = known(d) ? check_make(d, n) : ESTALE;
    if (want == 0 && resolve(d, n)) want = EEXIST;
    const uint64_t snapshot = kernel_.epoch();
    fs::EntryOut out;
    const char* what = kind == Kind::kDir ? "mkdir" : kind == Kind::kFifo ? "mknod" : "symlink";
    const int err = kind == Kind::kDir ? fs_->mkdir(ctx_, nodes_[d].ino, n, 0755, &out)
                    : kind == Kind::kFifo
                        ? fs_->mknod(ctx_, nodes_[d].ino, n, S_IFIFO | 0644, 0, &out)
                        : fs_->symlink(ctx_, "t", nodes_[d].ino, n, &out);
    note("%s %s %s -> %s", what, dname(d).c_str(), show(n).c_str(), errname(err).c_str());
    expect(err, want, what);
    if (err != 0) return;
    const int made = new_node(kind);
    if (kind == Kind::kDir) nodes_[made].flag = !all_ && cf(d);  // inherited (casefold=flag)
    add_entry(d, n, made);
    own(made);
    check_entry(made, out, what);
    operated(d, n, out, snapshot);
  }

  void do_link(int src, int d, const std::string& n) {
    int want = 0;
    if (!known(src) || !known(d)) {
      want = ESTALE;
    } else if ((want = check_make(d, n)) == 0) {
      if (resolve(d, n))
        want = EEXIST;
      else if (nodes_[src].kind == Kind::kDir)
        want = EPERM;
      else if (ctx_.uid != 0 && nodes_[src].uid != ctx_.uid && protected_hardlinks())
        want = EPERM;  // links are made with the caller's ids: root's 0644 file is not theirs
    }
    const uint64_t snapshot = kernel_.epoch();
    fs::EntryOut out;
    const int err = fs_->link(ctx_, nodes_[src].ino, nodes_[d].ino, n, &out);
    note("link %s -> %s %s -> %s", nname(src).c_str(), dname(d).c_str(), show(n).c_str(),
         errname(err).c_str());
    expect(err, want, "link");
    if (err != 0) return;
    add_entry(d, n, src);
    check_entry(src, out, "link");
    if (out.attr.st_nlink != static_cast<nlink_t>(nodes_[src].links)) {
      fail(trace_, "link: st_nlink %lu, the model %d",
           static_cast<unsigned long>(out.attr.st_nlink), nodes_[src].links);
    }
    operated(d, n, out, snapshot);
  }

  void do_remove(int d, const std::string& n, bool dir) {
    int want = known(d) ? 0 : ESTALE;
    std::optional<std::string> s;
    if (want == 0) {
      s = resolve(d, n);
      if (!s) {
        want = ENOENT;
      } else {
        const Node& node = nodes_[nodes_[d].entries[*s]];
        if (!dir && node.kind == Kind::kDir) want = EISDIR;
        if (dir && node.kind != Kind::kDir) want = ENOTDIR;
        if (dir && node.kind == Kind::kDir && !node.entries.empty()) want = ENOTEMPTY;
      }
    }
    const int err = dir ? fs_->rmdir(ctx_, nodes_[d].ino, n) : fs_->unlink(ctx_, nodes_[d].ino, n);
    note("%s %s %s -> %s", dir ? "rmdir" : "unlink", dname(d).c_str(), show(n).c_str(),
         errname(err).c_str());
    expect(err, want, dir ? "rmdir" : "unlink");
    if (err != 0) return;
    drop_entry(d, *s);
    forget_cached(nodes_[d].ino, n);  // the kernel's dentry expires (fuse_entry_unlinked)
  }

  void do_rename(int d1, const std::string& n1, int d2, const std::string& n2, unsigned flags) {
    int want = 0;
    int also = -1;              // another acceptable answer
    bool changes = false;       // whether the model changes
    bool kernel_moves = false;  // whether the kernel would move its dentries
    std::optional<std::string> src;
    std::string target = n2;
    int S = -1, T = -1;
    const bool exchange = flags & RENAME_EXCHANGE;
    if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) ||
        ((flags & RENAME_NOREPLACE) && exchange)) {
      want = EINVAL;
    } else if (!known(d1) || !known(d2)) {
      want = ESTALE;
    } else if ((want = check_make(d2, n2)) != 0) {
    } else if (!(src = resolve(d1, n1))) {
      want = ENOENT;
      // The VFS never sends a rename whose source it did not find. The daemon checks the source
      // only where it folds names, so its own EEXIST for the target may come first.
      if (!cf(d1) && cf(d2) && (flags & RENAME_NOREPLACE) && resolve(d2, n2)) also = EEXIST;
    } else {
      S = nodes_[d1].entries[*src];
      bool same_entry = false;
      if (cf(d2)) {
        if (auto ex = resolve(d2, n2)) {
          if (flags & RENAME_NOREPLACE)
            want = EEXIST;
          else if (d1 == d2 && *ex == *src)
            same_entry = true;
          target = *ex;
        }
      }
      if (want == 0 && same_entry) {
        // The kernel never sends this one (its lookups of both spellings found one inode, and
        // vfs_rename() returns 0 at once): nothing to say about its dentries but to drop them.
        forget_cached(nodes_[d1].ino, n1);
        forget_cached(nodes_[d2].ino, n2);
      } else if (want == 0) {
        auto it = nodes_[d2].entries.find(target);
        T = it == nodes_[d2].entries.end() ? -1 : it->second;
        if ((flags & RENAME_NOREPLACE) && T >= 0) {
          want = EEXIST;
        } else if (exchange && T < 0) {
          want = ENOENT;
        } else if (d1 != d2 && is_ancestor(d1, d2) && child_towards(d1, d2) == S) {
          want = EINVAL;  // into its own subtree
        } else if (d1 != d2 && is_ancestor(d2, d1) && child_towards(d2, d1) == T) {
          want = exchange ? EINVAL : ENOTEMPTY;  // onto an ancestor of the source
        } else if (S == T) {
          // Two links of one file: rename(2) does nothing.
        } else if (!exchange && T >= 0 && nodes_[S].kind == Kind::kDir &&
                   nodes_[T].kind != Kind::kDir) {
          want = ENOTDIR;
        } else if (!exchange && T >= 0 && nodes_[S].kind != Kind::kDir &&
                   nodes_[T].kind == Kind::kDir) {
          want = EISDIR;
        } else if (!exchange && T >= 0 && nodes_[T].kind == Kind::kDir &&
                   !nodes_[T].entries.empty()) {
          want = ENOTEMPTY;
        } else {
          changes = true;
          kernel_moves = true;
        }
      }
    }
    const uint64_t snapshot = kernel_.epoch();
    const int err = fs_->rename(ctx_, nodes_[d1].ino, n1, nodes_[d2].ino, n2, flags);
    note("rename %s %s -> %s %s flags %u -> %s", dname(d1).c_str(), show(n1).c_str(),
         dname(d2).c_str(), show(n2).c_str(), flags, errname(err).c_str());
    if (err != also) expect(err, want, "rename");
    if (err != 0) return;
    if (changes) {
      if (exchange) {
        place(d1, *src, T);
        place(d2, target, S);
      } else {
        if (T >= 0) drop_entry(d2, target);
        nodes_[d1].entries.erase(*src);
        place(d2, target, S);
      }
    }
    if (kernel_moves) {
      forget_cached(nodes_[d1].ino, n1);
      if (exchange && nodes_[T].ino) {
        cache_[{nodes_[d1].ino, n1}] = Cached{true, nodes_[T].ino, snapshot};
      }
      if (nodes_[S].ino)
        cache_[{nodes_[d2].ino, n2}] = Cached{true, nodes_[S].ino, snapshot};
      else
        forget_cached(nodes_[d2].ino, n2);
    }
  }

  void do_lookup(int d, const std::string& n) {
    int want = known(d) ? 0 : ESTALE;
    int target = -1;
    if (want == 0) {
      if (auto s = resolve(d, n))
        target = nodes_[d].entries[*s];
      else
        want = ENOENT;
    }
    const uint64_t snapshot = kernel_.epoch();
    fs::EntryOut out;
    const int err = fs_->lookup(ctx_, nodes_[d].ino, n, &out);
    note("lookup %s %s -> %s", dname(d).c_str(), show(n).c_str(), errname(err).c_str());
    expect(err, want, "lookup");
    if (err == 0) {
      check_entry(target, out, "lookup");
      operated(d, n, out, snapshot);
    } else if (err == ENOENT && out.entry_timeout > 0) {
      cache_[{nodes_[d].ino, n}] = Cached{false, 0, snapshot};
    } else {
      forget_cached(nodes_[d].ino, n);
    }
  }

  void do_readdir(int d, int chunk) {
    uint64_t fh = 0;
    int err = fs_->opendir(ctx_, nodes_[d].ino, &fh);
    note("readdir %s (chunks of %d) -> %s", dname(d).c_str(), chunk, errname(err).c_str());
    expect(err, known(d) ? 0 : ESTALE, "opendir");
    if (err != 0) return;
    std::multiset<std::string> seen;
    off_t offset = 0;
    for (int rounds = 0;; ++rounds) {
      int emitted = 0;
      bool more = false;
      err = fs_->readdir(nodes_[d].ino, offset,
                         [&](std::string_view name, uint64_t, mode_t type, off_t next) {
                           if (emitted == chunk) {
                             more = true;
                             return false;
                           }
                           ++emitted;
                           offset = next;
                           if (name != "." && name != "..") {
                             seen.insert(std::string(name));
                             check_listed_type(d, name, type);
                           }
                           return true;
                         });
      if (err != 0) fail(trace_, "readdir: %s", errname(err).c_str());
      if (!more) break;
      if (rounds > 1000) fail(trace_, "readdir does not end");
    }
    fs_->releasedir(fh);
    check_listing(d, seen);
  }

  // readdirplus: every entry with a node id is a lookup, and the kernel caches it as a dentry.
  void do_readdirplus(int d, int chunk) {
    const uint64_t snapshot = kernel_.epoch();
    std::multiset<std::string> seen;
    off_t offset = 0;
    int err = 0;
    for (int rounds = 0;; ++rounds) {
      int emitted = 0;
      bool more = false;
      err = fs_->readdirplus(
          nodes_[d].ino, offset, [&](std::string_view name, const fs::EntryOut& out, off_t next) {
            if (emitted == chunk) {
              more = true;
              return false;  // did not fit: the filesystem drops the lookup it counted
            }
            ++emitted;
            offset = next;
            if (name == "." || name == "..") return true;
            const std::string s(name);
            seen.insert(s);
            check_listed_type(d, name, out.attr.st_mode & S_IFMT);
            auto it = nodes_[d].entries.find(s);
            if (out.ino != 0 && it != nodes_[d].entries.end()) {
              check_entry(it->second, out, "readdirplus");
              if (out.entry_timeout > 0) {
                cache_[{nodes_[d].ino, s}] = Cached{true, out.ino, snapshot};
              }
            }
            return true;
          });
      if (err != 0) break;
      if (!more) break;
      if (rounds > 1000) fail(trace_, "readdirplus does not end");
    }
    note("readdirplus %s (chunks of %d) -> %s", dname(d).c_str(), chunk, errname(err).c_str());
    expect(err, known(d) ? 0 : ESTALE, "readdirplus");
    if (err == 0) check_listing(d, seen);
  }

  void check_listed_type(int d, std::string_view name, mode_t type) {
    auto it = nodes_[d].entries.find(std::string(name));
    if (it == nodes_[d].entries.end()) return;
    if (type != type_of(nodes_[it->second].kind)) {
      fail(trace_, "readdir: %s has the wrong type", show(name).c_str());
    }
  }

  void check_listing(int d, const std::multiset<std::string>& seen) {
    std::multiset<std::string> want;
    for (const auto& [name, n] : nodes_[d].entries) want.insert(name);
    if (seen != want) {
      fail(trace_, "readdir: names differ from the stored names\n%s", diff(want, seen).c_str());
    }
  }

  void do_chattr(int n, bool on) {
    uint32_t flags = 0;
    int err = fs_->get_flags(nodes_[n].ino, &flags);
    // A symlink cannot be opened for an ioctl, a FIFO is opened by the kernel itself: the
    // kernel never asks the daemon about either. The daemon refuses.
    const Kind kind = nodes_[n].kind;
    if (known(n) && kind == Kind::kFifo) {
      note("chattr %s: a FIFO, %s", nname(n).c_str(), errname(err).c_str());
      return;
    }
    expect(err, !known(n) ? ESTALE : kind == Kind::kSymlink ? ELOOP : 0, "get_flags");
    if (err != 0) {
      note("chattr %cF %s -> get_flags %s", on ? '+' : '-', nname(n).c_str(), errname(err).c_str());
      return;
    }
    const bool is_dir = nodes_[n].kind == Kind::kDir;
    if (((flags & kCasefold) != 0) != (is_dir && cf(n))) {
      fail(trace_, "get_flags of %s: casefold %d, the model %d", nname(n).c_str(),
           (flags & kCasefold) != 0, is_dir && cf(n));
    }
    int want = 0;
    if (!is_dir)
      want = on ? EOPNOTSUPP : 0;
    else if (on != cf(n))
      want = all_ ? EPERM : !nodes_[n].entries.empty() ? ENOTEMPTY : 0;
    const uint64_t before = kernel_.epoch();
    err = fs_->set_flags(ctx_, nodes_[n].ino, on ? flags | kCasefold : flags & ~kCasefold);
    note("chattr %cF %s -> %s", on ? '+' : '-', nname(n).c_str(), errname(err).c_str());
    expect(err, want, "set_flags");
    if (err == 0 && is_dir && on != cf(n)) {
      nodes_[n].flag = on;
      if (kernel_.epoch() == before)
        fail(trace_, "a flip did not invalidate the kernel's dentries");
    }
  }

  void do_setxattr(int n, const std::string& name, const std::string& value, int flags) {
    const bool reserved = name.rfind("trusted.foldfs.", 0) == 0;
    const bool user = name.rfind("user.", 0) == 0;
    auto& xs = nodes_[n].xattrs;
    int want = 0;
    if (reserved)
      want = EPERM;
    else if (!known(n))
      want = ESTALE;
    else if (user && !takes_user_xattrs(nodes_[n].kind))
      want = EPERM;
    else if (flags == XATTR_CREATE && xs.count(name))
      want = EEXIST;
    else if (flags == XATTR_REPLACE && !xs.count(name))
      want = ENODATA;
    const int err = fs_->setxattr(nodes_[n].ino, name, value, flags);
    note("setxattr %s %s=%s flags %d -> %s", nname(n).c_str(), name.c_str(), show(value).c_str(),
         flags, errname(err).c_str());
    expect(err, want, "setxattr");
    if (err == 0) xs[name] = value;
  }

  void do_getxattr(int n, const std::string& name, size_t size) {
    std::string value;
    size_t needed = 0;
    const int err = fs_->getxattr(nodes_[n].ino, name, size, &value, &needed);
    note("getxattr %s %s size %zu -> %s", nname(n).c_str(), name.c_str(), size,
         errname(err).c_str());
    if (n == 0 && name == fs::kStatsXattr) {
      if (err != 0 && !(err == ERANGE && size == 1))
        fail(trace_, "stats: %s", errname(err).c_str());
      return;
    }
    const auto& xs = nodes_[n].xattrs;
    const bool user = name.rfind("user.", 0) == 0;
    int want = 0;
    auto it = xs.find(name);
    if (name.rfind("trusted.foldfs.", 0) == 0)
      want = ENODATA;
    else if (!known(n))
      want = ESTALE;
    else if (it == xs.end() || (user && !takes_user_xattrs(nodes_[n].kind)))
      want = ENODATA;
    else if (size != 0 && size < it->second.size())
      want = ERANGE;
    expect(err, want, "getxattr");
    if (err != 0) return;
    if (needed != it->second.size()) fail(trace_, "getxattr: needed %zu", needed);
    if (size != 0 && value != it->second) fail(trace_, "getxattr: value %s", show(value).c_str());
  }

  void do_listxattr(int n, bool sized) {
    std::string list;
    size_t needed = 0;
    const int err = fs_->listxattr(nodes_[n].ino, sized ? 4096 : 0, &list, &needed);
    note("listxattr %s -> %s", nname(n).c_str(), errname(err).c_str());
    expect(err, known(n) ? 0 : ESTALE, "listxattr");
    if (err != 0) return;
    std::string want_list;
    for (const auto& [name, v] : nodes_[n].xattrs) want_list += name + '\0';
    if (!sized) {
      // Other namespaces (security.*, system.*) may add names of their own: only a lower bound.
      if (needed < want_list.size()) fail(trace_, "listxattr: needed %zu", needed);
      return;
    }
    std::set<std::string> got;
    for (size_t pos = 0; pos < list.size();) {
      const size_t end = list.find('\0', pos);
      const std::string name = list.substr(pos, end - pos);
      if (name.rfind("trusted.foldfs.", 0) == 0) fail(trace_, "listxattr shows %s", name.c_str());
      if (name.rfind("security.", 0) != 0 && name.rfind("system.", 0) != 0) got.insert(name);
      pos = end == std::string::npos ? list.size() : end + 1;
    }
    std::set<std::string> want;
    for (const auto& [name, v] : nodes_[n].xattrs) want.insert(name);
    if (got != want)
      fail(trace_, "listxattr: names differ\n%s",
           diff({want.begin(), want.end()}, {got.begin(), got.end()}).c_str());
  }

  void do_removexattr(int n, const std::string& name) {
    auto& xs = nodes_[n].xattrs;
    int want = 0;
    if (name.rfind("trusted.foldfs.", 0) == 0)
      want = EPERM;
    else if (!known(n))
      want = ESTALE;
    else if (name.rfind("user.", 0) == 0 && !takes_user_xattrs(nodes_[n].kind))
      want = EPERM;
    else if (!xs.count(name))
      want = ENODATA;
    const int err = fs_->removexattr(nodes_[n].ino, name);
    note("removexattr %s %s -> %s", nname(n).c_str(), name.c_str(), errname(err).c_str());
    expect(err, want, "removexattr");
    if (err == 0) xs.erase(name);
  }

  void do_getattr(int n) {
    struct stat st;
    const int err = fs_->getattr(nodes_[n].ino, &st);
    note("getattr %s -> %s", nname(n).c_str(), errname(err).c_str());
    expect(err, known(n) ? 0 : ESTALE, "getattr");
    if (err != 0) return;
    const Node& node = nodes_[n];
    if ((st.st_mode & S_IFMT) != type_of(node.kind)) fail(trace_, "getattr: wrong type");
    if (st.st_uid != node.uid || st.st_gid != node.gid) {
      fail(trace_, "getattr: owner %u:%u, the model %u:%u", st.st_uid, st.st_gid, node.uid,
           node.gid);
    }
    const long links = node.kind == Kind::kDir ? 2 + subdirs(n) : node.links;
    if (static_cast<long>(st.st_nlink) != links) {
      fail(trace_, "getattr: st_nlink %ld, the model %ld", static_cast<long>(st.st_nlink), links);
    }
  }

  void do_forget(int n, uint8_t b) {
    Node& node = nodes_[n];
    if (n == 0 || node.nlookup == 0) return;
    const uint64_t k = 1 + b % node.nlookup;
    fs_->forget(node.ino, k);
    node.nlookup -= k;
    note("forget %s %llu (left %llu)", nname(n).c_str(), static_cast<unsigned long long>(k),
         static_cast<unsigned long long>(node.nlookup));
    if (node.nlookup == 0) {
      // The kernel forgets an inode only once it holds no dentry for it or in it.
      for (auto it = cache_.begin(); it != cache_.end();) {
        const bool drop =
            it->first.first == node.ino || (it->second.positive && it->second.ino == node.ino);
        it = drop ? cache_.erase(it) : std::next(it);
      }
    }
  }

  void do_lookup_dot(int n) {
    fs::EntryOut out;
    const int err = fs_->lookup(ctx_, nodes_[n].ino, ".", &out);
    note("lookup . of %s%s -> %s", nname(n).c_str(), known(n) ? "" : " (reconnect)",
         errname(err).c_str());
    expect(err, 0, "lookup \".\"");
    check_entry(n, out, "lookup \".\"");
  }

  void do_lookup_dotdot(int d) {
    fs::EntryOut out;
    const int err = fs_->lookup(ctx_, nodes_[d].ino, "..", &out);
    note("lookup .. of %s -> %s", dname(d).c_str(), errname(err).c_str());
    expect(err, known(d) ? 0 : ESTALE, "lookup \"..\"");
    if (err != 0) return;
    const int parent = d == 0 ? 0 : nodes_[d].parent;
    check_entry(parent, out, "lookup \"..\"");
  }

  void do_outside_create(int d, const std::string& n, bool dir) {
    const std::string p = path(d) + "/" + n;
    int r;
    if (dir) {
      r = ::mkdir(p.c_str(), 0777);  // root's, but a caller other than root may write it
      if (r == 0) r = ::chmod(p.c_str(), 0777);
    } else {
      r = ::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      if (r >= 0) r = ::close(r);
    }
    note("outside %s %s %s -> %s", dir ? "mkdir" : "create", dname(d).c_str(), show(n).c_str(),
         r == 0 ? "0" : errname(errno).c_str());
    if (r != 0) {
      if (errno != EEXIST || !nodes_[d].entries.count(n)) fail(trace_, "outside change failed");
      return;
    }
    if (nodes_[d].entries.count(n)) fail(trace_, "outside: the model holds that name already");
    const int made = new_node(dir ? Kind::kDir : Kind::kFile);
    add_entry(d, n, made);
    cache_.clear();  // outside=revalidate: such changes are seen once the kernel's timeouts ran out
    after_outside_change(d);
  }

  // The directory's modification time is set to a value never seen before. With
  // outside=revalidate the daemon tells an outside change by the directory's times, else by
  // the index's age (the kernel's timeouts, 60 s here); on tmpfs an unlink right after the
  // daemon read the times may leave them as they were (OutsideRemovalIsSeenWithinTheTimeouts in
  // tests/unit/fs_fuzz_regressions_test.cc). The model stands for a backing fs whose times tell
  // every change apart, where the daemon sees outside changes at once.
  void after_outside_change(int d) {
    static long fake_seconds = 1000000;
    const struct timespec times[2] = {{0, UTIME_OMIT}, {++fake_seconds, 0}};
    if (::utimensat(AT_FDCWD, path(d).c_str(), times, 0) != 0) fail(trace_, "utimensat");
  }

  void do_outside_remove(int d, uint8_t b) {
    Node& dir = nodes_[d];
    if (dir.entries.empty()) return;
    auto it = dir.entries.begin();
    std::advance(it, b % dir.entries.size());
    const std::string n = it->first;
    const Node& node = nodes_[it->second];
    if (node.kind == Kind::kDir && !node.entries.empty()) return;
    const std::string p = path(d) + "/" + n;
    const int r = node.kind == Kind::kDir ? ::rmdir(p.c_str()) : ::unlink(p.c_str());
    note("outside remove %s %s -> %s", dname(d).c_str(), show(n).c_str(),
         r == 0 ? "0" : errname(errno).c_str());
    if (r != 0) fail(trace_, "outside remove failed");
    drop_entry(d, n);
    cache_.clear();
    after_outside_change(d);
  }

  void do_reopen(uint8_t b) {
    fs_.reset();
    all_ = b & 1;
    strict_ = b & 2;
    note("reopen casefold=%s%s", all_ ? "all" : "flag", strict_ ? ",strict" : "");
    for (auto& n : nodes_) n.nlookup = 0;
    cache_.clear();
    open_fs();
  }

  void open_fs() {
    fs::Options o;
    o.casefold = all_ ? CasefoldMode::kAll : CasefoldMode::kFlag;
    o.strict = strict_;
    o.outside = fs::OutsideChanges::kRevalidate;
    o.entry_timeout = o.negative_timeout = o.attr_timeout = 60;
    // Self-check of the coherence model: with FOLDFS_FUZZ_NAIVE=1 the daemon never invalidates
    // the kernel's dentries (the naive design), which the fuzzer must catch within seconds.
    o.debug_no_invalidation = std::getenv("FOLDFS_FUZZ_NAIVE") != nullptr;
    int err = 0;
    fs_ = Filesystem::open(root_, o, &err);
    if (!fs_) fail(trace_, "Filesystem::open: %s", errname(err).c_str());
    fs_->set_notifier(&kernel_);
  }

  // --- the kernel's dentry cache -------------------------------------------------------------

  // The kernel instantiates the dentry an operation named with the reply.
  void operated(int d, const std::string& n, const fs::EntryOut& out, uint64_t snapshot) {
    if (out.entry_timeout > 0)
      cache_[{nodes_[d].ino, n}] = Cached{true, out.ino, snapshot};
    else
      forget_cached(nodes_[d].ino, n);
  }
  void forget_cached(uint64_t dir, const std::string& n) { cache_.erase({dir, n}); }

  // Every cached answer still valid (its epoch current) must be what a lookup would answer now.
  void check_kernel_cache() {
    for (auto it = cache_.begin(); it != cache_.end();) {
      if (it->second.epoch != kernel_.epoch()) {
        it = cache_.erase(it);
        continue;
      }
      const auto& [dir_ino, name] = it->first;
      auto d = by_ino_.find(dir_ino);
      if (d == by_ino_.end() || !nodes_[d->second].alive) {
        ++it;
        continue;
      }
      const auto s = resolve(d->second, name);
      const uint64_t now = s ? nodes_[nodes_[d->second].entries[*s]].ino : 0;
      if (it->second.positive ? now != it->second.ino : s.has_value()) {
        fail(trace_,
             "coherence: the kernel may still answer %s for %s in %s, but a lookup now finds %s",
             it->second.positive ? ("node " + std::to_string(it->second.ino)).c_str() : "ENOENT",
             show(name).c_str(), dname(d->second).c_str(),
             s ? ("node " + std::to_string(now) + " (" + show(*s) + ")").c_str() : "nothing");
      }
      ++it;
    }
  }

  // --- whole-tree checks ---------------------------------------------------------------------

  static std::string diff(const std::multiset<std::string>& want,
                          const std::multiset<std::string>& got) {
    std::string out = "  model:";
    for (const auto& n : want) out += " " + show(n);
    out += "\n  found:";
    for (const auto& n : got) out += " " + show(n);
    return out;
  }

  void check_everything() {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const int d = static_cast<int>(i);
      const Node& node = nodes_[i];
      if (!node.alive || node.kind != Kind::kDir) continue;
      // The backing directory holds exactly the model's names, and the model's flag.
      std::multiset<std::string> want, got;
      for (const auto& [name, n] : node.entries) want.insert(name);
      DIR* dir = ::opendir(path(d).c_str());
      if (!dir) fail(trace_, "opendir %s: %s", path(d).c_str(), std::strerror(errno));
      while (struct dirent* e = ::readdir(dir)) {
        const std::string n = e->d_name;
        if (n != "." && n != "..") got.insert(n);
      }
      ::closedir(dir);
      if (got != want) {
        fail(trace_, "backing directory %s differs from the model\n%s", dname(d).c_str(),
             diff(want, got).c_str());
      }
      char v[8];
      const ssize_t len = ::getxattr(path(d).c_str(), "trusted.foldfs.casefold", v, sizeof v);
      if ((len >= 1 && v[0] == '1') != node.flag) {
        fail(trace_, "%s: stored casefold flag differs from the model (%d)", dname(d).c_str(),
             node.flag);
      }
      if (node.ino != 0 && known(d)) {
        if (fs_->casefolded(node.ino) != cf(d)) {
          fail(trace_, "%s: casefolded %d, the model %d", dname(d).c_str(),
               fs_->casefolded(node.ino), cf(d));
        }
        do_readdir(d, 64);
      }
    }
  }

  std::string root_;
  bool all_ = false;
  bool strict_ = false;
  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, int> by_ino_;
  std::map<std::pair<uint64_t, std::string>, Cached> cache_;
  Kernel kernel_;
  std::unique_ptr<Filesystem> fs_;
  fs::Context ctx_;
  std::string trace_;
  int step_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 2048) return -1;
  fuzz::ByteReader in(data, size);
  fuzz::ScratchDir dir;
  Run run(dir.path(), in.u8());
  for (int step = 0; !in.done() && step < 96; ++step) run.op(in, step);
  run.finish();
  return 0;
}
