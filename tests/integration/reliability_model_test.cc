// Reliability §5 (part 2): a single-threaded, fully deterministic random-operation generator
// checked against a model, and its soak.
//
// Every operation's outcome (errno, data read back) is predicted by an in-memory model of the
// tree — files (content, xattrs, hard links), symlinks, directories with their casefold flag —
// before it is made through the mount, with a random spelling of every name: ASCII case,
// "ss"/"ß"/"ẞ", "k"/"K"/KELVIN SIGN, precomposed and decomposed "é", and ZERO WIDTH JOINER
// (ignorable) inserted anywhere. Operations: create, open-for-write (truncate, overwrite at an
// offset, append), read, truncate, unlink, mkdir, rmdir, symlink, readlink, link, rename (within
// and across directories, onto equivalents, onto hard links of itself, directories into their
// own subtree), RENAME_NOREPLACE, RENAME_EXCHANGE, set/get/remove/list user xattrs, chattr +F/-F,
// lstat (type, size, link count), readdir, fsync, dropping the kernel's caches. Every
// FOLDFS_MODEL_VERIFY_EVERY operations (default 400) and at the end, the whole tree is compared
// with the model through the mount (every name by another spelling too) and directly in the backing
// tree; then foldfs is remounted and the tree compared again.
//
// ModelCheck runs FOLDFS_MODEL_OPS operations (default 20000) per mode with FOLDFS_MODEL_SEED
// (default 1) and prints both. Soak runs rounds of 2000 operations with seeds 1000, 1001, ...
// alternating casefold=flag and casefold=all, remounting (and dropping caches) between rounds,
// for FOLDFS_SOAK_SECONDS (default 60). A failure prints the seed, the operation number and the
// last operations, and reproduces with
//   FOLDFS_MODEL_SEED=<seed> FOLDFS_MODEL_OPS=<n> foldfs_reliability_model_test
//     --gtest_filter='Model.ModelCheck*'
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "reliability_util.h"

namespace foldfs::itest {
namespace {

// ---- names -----------------------------------------------------------------------------------

// A unit of a name: its folded form and the spellings that fold to it.
struct Unit {
  std::string canon;
  std::vector<std::string> spellings;
};

Unit letter(char c) {
  if (c >= 'a' && c <= 'z')
    return {std::string(1, c), {std::string(1, c), std::string(1, char(c - 32))}};
  return {std::string(1, c), {std::string(1, c)}};
}
const Unit kSharpS = {"ss", {"ss", "SS", "Ss", "sS", "\u00df", "\u1e9e"}};
const Unit kKelvin = {"k", {"k", "K", "\u212a"}};
const Unit kEAcute = {"e\u0301", {"\u00e9", "\u00c9", "e\u0301", "E\u0301"}};

using Key = std::vector<Unit>;

Key word(const std::string& w) {
  Key k;
  for (size_t i = 0; i < w.size(); ++i) {
    if (w.compare(i, 2, "SS") == 0) {
      k.push_back(kSharpS);
      ++i;
    } else if (w[i] == 'k') {
      k.push_back(kKelvin);
    } else if (w[i] == 'E') {
      k.push_back(kEAcute);
    } else {
      k.push_back(letter(w[i]));
    }
  }
  return k;
}

// "SS": the sharp-s unit; "E": e-acute; 'k': kelvin-capable. "straSSe" and "strasse" are
// different keys with the same folded form: they collide in casefolded directories.
const std::vector<Key> kPool = {word("a"),       word("b1"),    word("data"), word("straSSe"),
                                word("strasse"), word("kk"),    word("cafE"), word("cafe"),
                                word("x"),       word("readme")};

struct Name {
  std::string spelling;
  std::string canon;
};

std::string canon_of(const Key& k) {
  std::string c;
  for (const auto& u : k) c += u.canon;
  return c;
}

// ---- the model -------------------------------------------------------------------------------

struct Obj;
using ObjP = std::shared_ptr<Obj>;
struct Entry {
  std::string stored;
  std::string canon;
  ObjP obj;
};
struct Obj {
  enum Kind { kFile, kDir, kLink } kind = kFile;
  std::string data;                           // content, or symlink target
  std::map<std::string, std::string> xattrs;  // user.*
  int nlink = 1;                              // files and symlinks: entries naming it
  bool casefold = false;                      // directories
  std::map<std::string, Entry> entries;       // directories: key -> entry
  Obj* parent = nullptr;                      // directories
  std::string key_in_parent;
};

const char* kind_name(Obj::Kind k) {
  return k == Obj::kFile ? "file" : k == Obj::kDir ? "dir" : "symlink";
}

bool is_ancestor_or_self(const Obj* a, const Obj* b) {
  for (const Obj* p = b; p; p = p->parent)
    if (p == a) return true;
  return false;
}

class ModelRun {
 public:
  ModelRun(Mount& m, bool casefold_all, unsigned seed, std::string rel_root)
      : m_(m), all_(casefold_all), seed_(seed), rng_(seed), rel_root_(std::move(rel_root)) {
    root_ = std::make_shared<Obj>();
    root_->kind = Obj::kDir;
    root_->casefold = all_;
    for (const auto& k : kPool) by_canon_[canon_of(k)].push_back(&k);
  }

  // Creates the root (and, with casefold=flag, a casefolded and a plain subdirectory).
  ::testing::AssertionResult Setup() {
    if (::mkdir(m_.path(rel_root_).c_str(), 0755) != 0)
      return ::testing::AssertionFailure() << "mkdir model root: " << std::strerror(errno);
    if (!all_) {
      for (const char* d : {"cf", "plain"}) {
        if (::mkdir(m_.path(rel_root_ + "/" + d).c_str(), 0755) != 0)
          return ::testing::AssertionFailure() << std::strerror(errno);
        auto o = std::make_shared<Obj>();
        o->kind = Obj::kDir;
        o->parent = root_.get();
        o->key_in_parent = d;
        root_->entries[d] = Entry{d, d, o};
      }
      if (set_inode_flags(m_.path(rel_root_ + "/cf"), kCasefoldFl) != Errno(0))
        return ::testing::AssertionFailure() << "chattr +F";
      root_->entries["cf"].obj->casefold = true;
    }
    return ::testing::AssertionSuccess();
  }

  // Runs `ops` operations; the first discrepancy is returned as a failure.
  ::testing::AssertionResult Run(long ops, long verify_every) {
    for (long i = 0; i < ops; ++i) {
      op_index_ = i;
      std::string problem = Step();
      ++ops_done_;
      if (problem.empty() && verify_every > 0 && (i + 1) % verify_every == 0) problem = VerifyAll();
      if (!problem.empty()) return Fail(problem);
    }
    std::string problem = VerifyAll();
    if (!problem.empty()) return Fail(problem);
    return ::testing::AssertionSuccess();
  }

  // The whole tree through the mount, and the backing tree directly.
  std::string VerifyAll() {
    ++verifications_;
    std::string p = VerifyDir(*root_, m_.path(rel_root_), /*through_mount=*/true);
    if (p.empty()) p = VerifyDir(*root_, m_.bpath(rel_root_), /*through_mount=*/false);
    return p;
  }

  ::testing::AssertionResult Fail(const std::string& problem) {
    std::ostringstream os;
    os << "model discrepancy (seed " << seed_ << ", operation " << op_index_ << ", mode "
       << (all_ ? "casefold=all" : "casefold=flag") << "): " << problem << "\nlast operations:";
    for (const auto& l : recent_) os << "\n  " << l;
    return ::testing::AssertionFailure() << os.str();
  }

  long ops_done() const { return ops_done_; }
  long checks() const { return checks_; }
  long verifications() const { return verifications_; }
  const std::map<std::string, long>& op_counts() const { return op_counts_; }

 private:
  unsigned R(unsigned n) { return static_cast<unsigned>(rng_() % n); }

  std::string spell(const Key& k) {
    std::string s;
    const size_t zwj_at = R(10) == 0 ? R(static_cast<unsigned>(k.size() + 1)) : std::string::npos;
    for (size_t i = 0; i <= k.size(); ++i) {
      if (i == zwj_at) s += "\u200d";
      if (i < k.size()) s += k[i].spellings[R(static_cast<unsigned>(k[i].spellings.size()))];
    }
    return s;
  }
  Name random_name() {
    const Key& k = kPool[R(static_cast<unsigned>(kPool.size()))];
    return Name{spell(k), canon_of(k)};
  }
  // How a caller may spell an existing entry of `dir`.
  std::string spell_entry(const Obj& dir, const Entry& e) {
    if (!dir.casefold) return e.stored;
    const auto& keys = by_canon_.at(e.canon);
    return spell(*keys[R(static_cast<unsigned>(keys.size()))]);
  }
  std::string key_of(const Obj& dir, const Name& n) const {
    return dir.casefold ? n.canon : n.spelling;
  }
  Entry* find(Obj& dir, const Name& n) {
    auto it = dir.entries.find(key_of(dir, n));
    return it == dir.entries.end() ? nullptr : &it->second;
  }
  std::string path_of(const Obj& dir) {
    if (!dir.parent) return m_.path(rel_root_);
    const Entry& e = dir.parent->entries.at(dir.key_in_parent);
    return path_of(*dir.parent) + "/" + spell_entry(*dir.parent, e);
  }
  std::string exact_path(const Obj& dir, const std::string& base) {
    if (!dir.parent) return base;
    return exact_path(*dir.parent, base) + "/" + dir.parent->entries.at(dir.key_in_parent).stored;
  }
  void dirs(Obj& d, std::vector<Obj*>* out) {
    out->push_back(&d);
    for (auto& [k, e] : d.entries)
      if (e.obj->kind == Obj::kDir) dirs(*e.obj, out);
  }
  Obj& random_dir() {
    std::vector<Obj*> all;
    dirs(*root_, &all);
    return *all[R(static_cast<unsigned>(all.size()))];
  }
  // Sometimes an existing entry's name (respelled), sometimes any name of the pool.
  Name pick_name(Obj& dir) {
    if (!dir.entries.empty() && R(3) != 0) {
      auto it = dir.entries.begin();
      std::advance(it, R(static_cast<unsigned>(dir.entries.size())));
      return Name{spell_entry(dir, it->second), it->second.canon};
    }
    return random_name();
  }
  size_t count_entries(const Obj& d) {
    size_t n = d.entries.size();
    for (const auto& [k, e] : d.entries)
      if (e.obj->kind == Obj::kDir) n += count_entries(*e.obj);
    return n;
  }
  std::string content() {
    std::string s;
    const unsigned n = R(4) == 0 ? 0 : R(300);
    for (unsigned i = 0; i < n; ++i) s.push_back(static_cast<char>('!' + R(90)));
    return s;
  }
  void add_entry(Obj& dir, const Name& n, ObjP obj) {
    const std::string key = key_of(dir, n);
    if (obj->kind == Obj::kDir) {
      obj->parent = &dir;
      obj->key_in_parent = key;
    }
    dir.entries[key] = Entry{n.spelling, n.canon, std::move(obj)};
  }
  void remove_entry(Obj& dir, const std::string& key) {
    auto it = dir.entries.find(key);
    if (it->second.obj->kind != Obj::kDir) it->second.obj->nlink--;
    dir.entries.erase(it);
  }
  int subdirs(const Obj& d) {
    int n = 0;
    for (const auto& [k, e] : d.entries) n += e.obj->kind == Obj::kDir;
    return n;
  }

  static int err(long rc) { return rc < 0 ? errno : 0; }
  std::string expect(const std::string& what, int want, int got) {
    ++checks_;
    if (want == got) return "";
    // POSIX lets a rename onto a non-empty directory fail either way (ext4: ENOTEMPTY, xfs:
    // EEXIST); foldfs passes on the backing filesystem's answer.
    if (want == ENOTEMPTY && got == EEXIST && what.rfind("rename", 0) == 0) return "";
    return what + ": expected " + errno_text(want) + ", got " + errno_text(got);
  }
  void note(const std::string& what) {
    recent_.push_back(std::to_string(op_index_) + ": " + what);
    if (recent_.size() > 25) recent_.pop_front();
  }

  // ---- one random operation ----

  // Where an operation acts: a directory of the model, a name in it (respelled or new), the path
  // the caller uses, and the model's entry for that name if it has one.
  struct Target {
    Obj& d;
    std::string dp;
    Name n;
    std::string p;
    Entry* e;
  };
  using Operation = std::string (ModelRun::*)(Target&);
  struct WeightedOperation {
    unsigned percent;
    Operation run;
  };
  static const WeightedOperation kOperations[];

  std::string Step();

  void count(const char* op) { op_counts_[op]++; }

  // Create O_EXCL.
  std::string Create(Target& t) {
    auto& [d, dp, n, p, e] = t;
    count("create");
    note("create " + printable(p));
    if (count_entries(*root_) > 250) return "";
    const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    const int got = fd < 0 ? errno : 0;
    if (fd >= 0) ::close(fd);
    const int want = e ? EEXIST : 0;
    if (auto s = expect("create " + printable(p), want, got); !s.empty()) return s;
    if (!e) {
      auto o = std::make_shared<Obj>();
      add_entry(d, n, o);
    }
    return "";
  }

  // Open for writing: truncate, overwrite at an offset, or append.
  std::string Write(Target& t) {
    auto& [d, dp, n, p, e] = t;
    count("write");
    const unsigned how = R(3);
    const std::string data = content();
    note("write(" + std::to_string(how) + ") " + printable(p) + " " + std::to_string(data.size()));
    if (!e && count_entries(*root_) > 250) return "";
    int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC;
    if (how == 0) flags |= O_TRUNC;
    if (how == 2) flags |= O_APPEND;
    const int fd = ::open(p.c_str(), flags, 0644);
    const int got = fd < 0 ? errno : 0;
    const int want = !e                           ? 0
                     : e->obj->kind == Obj::kDir  ? EISDIR
                     : e->obj->kind == Obj::kLink ? ELOOP
                                                  : 0;
    if (auto s = expect("open for writing " + printable(p), want, got); !s.empty()) {
      if (fd >= 0) ::close(fd);
      return s;
    }
    if (fd < 0) return "";
    if (!e) {
      add_entry(d, n, std::make_shared<Obj>());
      e = find(d, n);
    }
    std::string& c = e->obj->data;
    if (how == 0) c.clear();
    off_t off = how == 2 ? static_cast<off_t>(c.size())
                         : static_cast<off_t>(R(static_cast<unsigned>(c.size() + 1)));
    const ssize_t w = how == 2 ? ::write(fd, data.data(), data.size())
                               : ::pwrite(fd, data.data(), data.size(), off);
    const int werr = w < 0 ? errno : 0;
    const int cerr = ::close(fd) != 0 ? errno : 0;
    if (werr || cerr || w != static_cast<ssize_t>(data.size()))
      return "write " + printable(p) + ": " + errno_text(werr ? werr : cerr);
    if (c.size() < static_cast<size_t>(off) + data.size()) c.resize(off + data.size());
    std::memcpy(c.data() + off, data.data(), data.size());
    ++checks_;
    return "";
  }

  // Read.
  std::string Read(Target& t) {
    auto& [d, dp, n, p, e] = t;
    count("read");
    note("read " + printable(p));
    const int fd = ::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int got = fd < 0 ? errno : 0;
    std::string data;
    if (fd >= 0) {
      char buf[4096];
      ssize_t r;
      while ((r = ::read(fd, buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(r));
      if (r < 0) got = errno;
      ::close(fd);
    }
    const int want = !e                           ? ENOENT
                     : e->obj->kind == Obj::kDir  ? EISDIR
                     : e->obj->kind == Obj::kLink ? ELOOP
                                                  : 0;
    if (auto s = expect("read " + printable(p), want, got); !s.empty()) return s;
    ++checks_;
    if (want == 0 && data != e->obj->data)
      return "read " + printable(p) + ": content " + content_hash(data) + " (" +
             std::to_string(data.size()) + " bytes), model " + content_hash(e->obj->data) + " (" +
             std::to_string(e->obj->data.size()) + " bytes)";
    return "";
  }

  // Truncate (follows symlinks: ours point nowhere).
  std::string Truncate(Target& t) {
    auto& [d, dp, n, p, e] = t;
    count("truncate");
    const unsigned len = R(400);
    note("truncate " + printable(p) + " " + std::to_string(len));
    const int got = err(::truncate(p.c_str(), len));
    const int want = !e                           ? ENOENT
                     : e->obj->kind == Obj::kDir  ? EISDIR
                     : e->obj->kind == Obj::kLink ? ENOENT
                                                  : 0;
    if (auto s = expect("truncate " + printable(p), want, got); !s.empty()) return s;
    if (want == 0) e->obj->data.resize(len, '\0');
    return "";
  }

  // Unlink.
  std::string Unlink(Target& t) {
    auto& [d, dp, n, p, e] = t;
    count("unlink");
    note("unlink " + printable(p));
    const int got = err(::unlink(p.c_str()));
    const int want = !e ? ENOENT : e->obj->kind == Obj::kDir ? EISDIR : 0;
    if (auto s = expect("unlink " + printable(p), want, got); !s.empty()) return s;
    if (want == 0) remove_entry(d, key_of(d, n));
    return "";
  }

  // Mkdir.
  std::string Mkdir(Target& t) {
    auto& [d, dp, n, p, e] = t;
    count("mkdir");
    note("mkdir " + printable(p));
    std::vector<Obj*> all;
    dirs(*root_, &all);
    if (all.size() > 24 || count_entries(*root_) > 250) return "";
    const int got = err(::mkdir(p.c_str(), 0755));
    if (auto s = expect("mkdir " + printable(p), e ? EEXIST : 0, got); !s.empty()) return s;
    if (!e) {
      auto o = std::make_shared<Obj>();
      o->kind = Obj::kDir;
      o->casefold = d.casefold;  // inherited (casefold=all: every directory)
      add_entry(d, n, o);
    }
    return "";
  }

  // Rmdir.
  std::string Rmdir(Target& t) {
    auto& [d, dp, n, p, e] = t;
    count("rmdir");
    note("rmdir " + printable(p));
    const int got = err(::rmdir(p.c_str()));
    const int want = !e                          ? ENOENT
                     : e->obj->kind != Obj::kDir ? ENOTDIR
                     : !e->obj->entries.empty()  ? ENOTEMPTY
                                                 : 0;
    if (auto s = expect("rmdir " + printable(p), want, got); !s.empty()) return s;
    if (want == 0) remove_entry(d, key_of(d, n));
    return "";
  }

  // Symlink.
  std::string Symlink(Target& t) {
    auto& [d, dp, n, p, e] = t;
    count("symlink");
    const std::string target = "nowhere/" + std::to_string(R(1000));
    note("symlink " + printable(p) + " -> " + target);
    if (count_entries(*root_) > 250) return "";
    const int got = err(::symlink(target.c_str(), p.c_str()));
    if (auto s = expect("symlink " + printable(p), e ? EEXIST : 0, got); !s.empty()) return s;
    if (!e) {
      auto o = std::make_shared<Obj>();
      o->kind = Obj::kLink;
      o->data = target;
      add_entry(d, n, o);
    }
    return "";
  }

  // Readlink.
  std::string Readlink(Target& t) {
    auto& [d, dp, n, p, e] = t;
    count("readlink");
    note("readlink " + printable(p));
    char buf[4096];
    const ssize_t r = ::readlink(p.c_str(), buf, sizeof buf);
    const int got = r < 0 ? errno : 0;
    const int want = !e ? ENOENT : e->obj->kind != Obj::kLink ? EINVAL : 0;
    if (auto s = expect("readlink " + printable(p), want, got); !s.empty()) return s;
    ++checks_;
    if (want == 0 && std::string(buf, static_cast<size_t>(r)) != e->obj->data)
      return "readlink " + printable(p) + ": " + std::string(buf, static_cast<size_t>(r)) +
             ", model " + e->obj->data;
    return "";
  }

  // Link.
  std::string Link(Target& t) {
    auto& [d, dp, n, p, e] = t;
    count("link");
    Obj& d2 = random_dir();
    Name n2 = pick_name(d2);
    const std::string q = path_of(d2) + "/" + n2.spelling;
    note("link " + printable(p) + " " + printable(q));
    Entry* e2 = find(d2, n2);
    const int got = err(::link(p.c_str(), q.c_str()));
    // The new name is checked first (EEXIST), then the old one's type (EPERM).
    const int want = !e ? ENOENT : e2 ? EEXIST : e->obj->kind == Obj::kDir ? EPERM : 0;
    if (auto s = expect("link " + printable(p) + " " + printable(q), want, got); !s.empty())
      return s;
    if (want == 0) {
      e->obj->nlink++;
      add_entry(d2, n2, e->obj);
    }
    return "";
  }

  // Rename, RENAME_NOREPLACE, RENAME_EXCHANGE.
  std::string Rename(Target& t) {
    auto& [d, dp, n, p, e] = t;
    const unsigned f = R(8);
    static const bool with_flags = !backing_lacks(BackingFeature::kRenameFlags);
    const unsigned flags = f < 5 || !with_flags ? 0 : f < 6 ? RENAME_NOREPLACE : RENAME_EXCHANGE;
    count(flags == 0                  ? "rename"
          : flags == RENAME_NOREPLACE ? "rename_noreplace"
                                      : "rename_exchange");
    Obj& d2 = R(2) ? d : random_dir();
    Name n2 = pick_name(d2);
    const std::string q = path_of(d2) + "/" + n2.spelling;
    note("rename(" + std::to_string(flags) + ") " + printable(p) + " " + printable(q));
    Entry* e2 = find(d2, n2);
    const int got = err(::renameat2(AT_FDCWD, p.c_str(), AT_FDCWD, q.c_str(), flags));
    int want = 0;
    bool noop = false;
    if (!e) {
      want = ENOENT;
    } else if ((flags & RENAME_NOREPLACE) && e2) {
      want = EEXIST;
    } else if ((flags & RENAME_EXCHANGE) && !e2) {
      want = ENOENT;
    } else if (e->obj->kind == Obj::kDir && is_ancestor_or_self(e->obj.get(), &d2)) {
      want = EINVAL;
    } else if (e2 && e2->obj->kind == Obj::kDir && is_ancestor_or_self(e2->obj.get(), &d)) {
      want = (flags & RENAME_EXCHANGE) ? EINVAL : ENOTEMPTY;
    } else if (e2 && e2->obj == e->obj) {
      noop = true;  // the same file (one entry by two spellings, or hard links): nothing
    } else if (!(flags & RENAME_EXCHANGE) && e2) {
      const bool sd = e->obj->kind == Obj::kDir, td = e2->obj->kind == Obj::kDir;
      if (sd && !td)
        want = ENOTDIR;
      else if (!sd && td)
        want = EISDIR;
      else if (td && !e2->obj->entries.empty())
        want = ENOTEMPTY;
    }
    if (auto s =
            expect("rename(" + std::to_string(flags) + ") " + printable(p) + " " + printable(q),
                   want, got);
        !s.empty())
      return s;
    if (want != 0 || noop) return "";
    const std::string k1 = key_of(d, n), k2 = key_of(d2, n2);
    if (flags & RENAME_EXCHANGE) {
      ObjP a = e->obj, b = e2->obj;
      e->obj = b;
      e2->obj = a;
      if (b->kind == Obj::kDir) {
        b->parent = &d;
        b->key_in_parent = k1;
      }
      if (a->kind == Obj::kDir) {
        a->parent = &d2;
        a->key_in_parent = k2;
      }
      return "";
    }
    ObjP moving = e->obj;
    d.entries.erase(k1);  // the moved entry (its link count is unchanged)
    if (e2) {
      // Replaced in place: a casefolded directory keeps the existing entry's spelling.
      Entry& target = d2.entries.at(k2);
      if (target.obj->kind != Obj::kDir) target.obj->nlink--;
      target.obj = moving;
      if (moving->kind == Obj::kDir) {
        moving->parent = &d2;
        moving->key_in_parent = k2;
      }
    } else {
      add_entry(d2, n2, moving);
    }
    return "";
  }

  // Xattrs.
  std::string Xattr(Target& t) {
    auto& [d, dp, n, p, e] = t;
    const std::string xn = std::string("user.") + static_cast<char>('a' + R(3));
    const unsigned what = R(4);
    if (what == 0) {
      count("setxattr");
      const std::string value = "v" + std::to_string(R(100));
      const int xf = R(3) == 0 ? XATTR_CREATE : R(2) == 0 ? XATTR_REPLACE : 0;
      note("setxattr " + printable(p) + " " + xn + " flags " + std::to_string(xf));
      const int got = err(::lsetxattr(p.c_str(), xn.c_str(), value.data(), value.size(), xf));
      int want = 0;
      if (!e)
        want = ENOENT;
      else if (e->obj->kind == Obj::kLink)
        want = EPERM;
      else if (xf == XATTR_CREATE && e->obj->xattrs.count(xn))
        want = EEXIST;
      else if (xf == XATTR_REPLACE && !e->obj->xattrs.count(xn))
        want = ENODATA;
      if (auto s = expect("setxattr " + printable(p) + " " + xn, want, got); !s.empty()) return s;
      if (want == 0) e->obj->xattrs[xn] = value;
    } else if (what == 1) {
      count("getxattr");
      note("getxattr " + printable(p) + " " + xn);
      char buf[256];
      const ssize_t r = ::lgetxattr(p.c_str(), xn.c_str(), buf, sizeof buf);
      const int got = r < 0 ? errno : 0;
      const int want = !e                                                          ? ENOENT
                       : (e->obj->kind == Obj::kLink || !e->obj->xattrs.count(xn)) ? ENODATA
                                                                                   : 0;
      if (auto s = expect("getxattr " + printable(p) + " " + xn, want, got); !s.empty()) return s;
      ++checks_;
      if (want == 0 && std::string(buf, static_cast<size_t>(r)) != e->obj->xattrs[xn])
        return "getxattr " + printable(p) + " " + xn + ": wrong value";
    } else if (what == 2) {
      count("removexattr");
      note("removexattr " + printable(p) + " " + xn);
      const int got = err(::lremovexattr(p.c_str(), xn.c_str()));
      const int want = !e                           ? ENOENT
                       : e->obj->kind == Obj::kLink ? EPERM
                       : !e->obj->xattrs.count(xn)  ? ENODATA
                                                    : 0;
      if (auto s = expect("removexattr " + printable(p) + " " + xn, want, got); !s.empty())
        return s;
      if (want == 0) e->obj->xattrs.erase(xn);
    } else {
      count("listxattr");
      note("listxattr " + printable(p));
      auto names = list_xattrs(p);
      if (!e)
        return expect(
            "listxattr " + printable(p), ENOENT,
            names.size() == 1 && names[0].find("ENOENT") != std::string::npos ? ENOENT : 0);
      std::vector<std::string> want;
      for (const auto& [k, v] : e->obj->xattrs) want.push_back(k);
      std::vector<std::string> user;
      for (const auto& x : names)
        if (x.rfind("user.", 0) == 0 || x.rfind("<", 0) == 0) user.push_back(x);
      ++checks_;
      if (user != want)
        return "listxattr " + printable(p) + ": [" + join(user, ",") + "], model [" +
               join(want, ",") + "]";
    }
    return "";
  }

  // Chattr +F / -F.
  std::string Chattr(Target& t) {
    auto& [d, dp, n, p, e] = t;
    count("chattr");
    const bool on = R(2);
    note(std::string("chattr ") + (on ? "+F " : "-F ") + printable(p));
    const int fd = ::open(p.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    int got = fd < 0 ? errno : 0;
    if (fd >= 0) {
      int flags = 0;
      if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
        got = errno;
      } else {
        flags =
            on ? (flags | static_cast<int>(kCasefoldFl)) : (flags & ~static_cast<int>(kCasefoldFl));
        got = ::ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0 ? errno : 0;
      }
      ::close(fd);
    }
    int want = 0;
    if (!e)
      want = ENOENT;
    else if (e->obj->kind == Obj::kLink)
      want = ELOOP;
    else if (e->obj->kind == Obj::kFile)
      want = on ? EOPNOTSUPP : 0;
    else if (e->obj->casefold == on)
      want = 0;
    else if (all_)
      want = EPERM;
    else if (!e->obj->entries.empty())
      want = ENOTEMPTY;
    if (auto s = expect(std::string("chattr ") + (on ? "+F " : "-F ") + printable(p), want, got);
        !s.empty())
      return s;
    if (want == 0 && e->obj->kind == Obj::kDir) e->obj->casefold = on;
    return "";
  }

  // Lstat.
  std::string Lstat(Target& t) {
    auto& [d, dp, n, p, e] = t;
    count("lstat");
    note("lstat " + printable(p));
    struct stat st;
    const int got = err(::lstat(p.c_str(), &st));
    if (auto s = expect("lstat " + printable(p), e ? 0 : ENOENT, got); !s.empty()) return s;
    if (!e) return "";
    return CheckStat(p, st, *e->obj);
  }

  // Readdir.
  std::string Readdir(Target& t) {
    auto& [d, dp, n, p, e] = t;
    count("readdir");
    note("readdir " + printable(dp));
    return CheckListing(d, dp);
  }

  // The kernel forgets its dentries (now and then), or an fsync of a directory.
  std::string ForgetOrSync(Target& t) {
    auto& [d, dp, n, p, e] = t;
    if (R(8) == 0) {  // the kernel forgets its dentries and inodes: lookups start afresh
      count("drop_caches");
      note("drop_caches");
      return drop_caches() ? "" : "drop_caches failed";
    }
    count("fsync");  // fsync of a directory: no visible effect
    note("fsync " + printable(dp));
    const int fd = ::open(dp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return "open for fsync " + printable(dp) + ": " + std::strerror(errno);
    const int got = err(::fsync(fd));
    ::close(fd);
    return expect("fsync " + printable(dp), 0, got);
  }

  std::string CheckStat(const std::string& p, const struct stat& st, const Obj& o) {
    ++checks_;
    const Obj::Kind k = S_ISDIR(st.st_mode)   ? Obj::kDir
                        : S_ISLNK(st.st_mode) ? Obj::kLink
                                              : Obj::kFile;
    if (k != o.kind)
      return printable(p) + ": a " + kind_name(k) + ", model says " + kind_name(o.kind);
    if (o.kind == Obj::kFile && st.st_size != static_cast<off_t>(o.data.size()))
      return printable(p) + ": size " + std::to_string(st.st_size) + ", model " +
             std::to_string(o.data.size());
    const nlink_t want = o.kind == Obj::kDir
                             ? static_cast<nlink_t>(2 + const_cast<ModelRun*>(this)->subdirs(o))
                             : static_cast<nlink_t>(o.nlink);
    static const bool dir_links = !backing_lacks(BackingFeature::kDirectoryLinkCounts);
    if (st.st_nlink != want && (o.kind != Obj::kDir || dir_links))
      return printable(p) + ": link count " + std::to_string(st.st_nlink) + ", model " +
             std::to_string(want);
    return "";
  }

  std::string CheckListing(const Obj& d, const std::string& path) {
    ++checks_;
    std::vector<std::string> want;
    for (const auto& [k, e] : d.entries) want.push_back(e.stored);
    std::sort(want.begin(), want.end());
    const auto got = list_dir(path);
    if (got != want)
      return "listing of " + printable(path) + ": [" + printable(join(got, ",")) + "], model [" +
             printable(join(want, ",")) + "]";
    return "";
  }

  std::string VerifyDir(Obj& d, const std::string& path, bool through_mount) {
    if (auto s = CheckListing(d, path); !s.empty()) return s;
    if (through_mount) {
      const unsigned flags = get_inode_flags(path).flags;
      ++checks_;
      if (((flags & kCasefoldFl) != 0) != d.casefold)
        return printable(path) + ": casefold flag " + std::to_string((flags & kCasefoldFl) != 0) +
               ", model " + std::to_string(d.casefold);
    } else if (d.casefold && !all_) {
      ++checks_;
      if (get_xattr(path, "trusted.foldfs.casefold").error != Errno(0))
        return printable(path) + ": no trusted.foldfs.casefold in the backing tree";
    }
    for (auto& [k, e] : d.entries) {
      const std::string p = path + "/" + e.stored;
      struct stat st;
      if (::lstat(p.c_str(), &st) != 0)
        return "lstat " + printable(p) + ": " + std::strerror(errno);
      if (auto s = CheckStat(p, st, *e.obj); !s.empty()) return s;
      if (through_mount && d.casefold) {  // another spelling finds the same inode
        const std::string q = path + "/" + spell_entry(d, e);
        struct stat st2;
        ++checks_;
        if (::lstat(q.c_str(), &st2) != 0 || st2.st_ino != st.st_ino)
          return printable(q) + " does not find " + printable(p);
      }
      if (e.obj->kind == Obj::kFile) {
        auto c = read_file(p);
        ++checks_;
        if (!c || *c != e.obj->data) return printable(p) + ": content differs from the model";
      } else if (e.obj->kind == Obj::kLink) {
        ++checks_;
        if (readlink_of(p) != e.obj->data) return printable(p) + ": symlink target differs";
      }
      if (e.obj->kind != Obj::kLink) {
        std::vector<std::string> want, got;
        for (const auto& [x, v] : e.obj->xattrs) want.push_back(x);
        for (const auto& x : list_xattrs(p))
          if (x.rfind("user.", 0) == 0) got.push_back(x);
        ++checks_;
        if (got != want)
          return printable(p) + ": xattrs [" + join(got, ",") + "], model [" + join(want, ",") +
                 "]";
      }
      if (e.obj->kind == Obj::kDir)
        if (auto s = VerifyDir(*e.obj, p, through_mount); !s.empty()) return s;
    }
    return "";
  }

  Mount& m_;
  bool all_;
  unsigned seed_;
  std::mt19937_64 rng_;
  std::string rel_root_;
  ObjP root_;
  std::map<std::string, std::vector<const Key*>> by_canon_;
  long op_index_ = 0, ops_done_ = 0, checks_ = 0, verifications_ = 0;
  std::deque<std::string> recent_;
  std::map<std::string, long> op_counts_;
};

// How often each operation runs, in percent (the order is part of each seed's sequence).
const ModelRun::WeightedOperation ModelRun::kOperations[] = {
    {7, &ModelRun::Create},       {12, &ModelRun::Write},  {10, &ModelRun::Read},
    {4, &ModelRun::Truncate},     {6, &ModelRun::Unlink},  {5, &ModelRun::Mkdir},
    {4, &ModelRun::Rmdir},        {4, &ModelRun::Symlink}, {3, &ModelRun::Readlink},
    {4, &ModelRun::Link},         {16, &ModelRun::Rename}, {9, &ModelRun::Xattr},
    {4, &ModelRun::Chattr},       {8, &ModelRun::Lstat},   {3, &ModelRun::Readdir},
    {1, &ModelRun::ForgetOrSync},
};

std::string ModelRun::Step() {
  Obj& d = random_dir();
  std::string dp = path_of(d);
  Name n = pick_name(d);
  std::string p = dp + "/" + n.spelling;
  Target t{d, std::move(dp), n, std::move(p), find(d, n)};
  unsigned pick = R(100);
  for (const WeightedOperation& op : kOperations) {
    if (pick < op.percent) return (this->*op.run)(t);
    pick -= op.percent;
  }
  return "operation weights do not add up to 100";
}

struct Mode {
  const char* name;
  const char* options;
  bool all;
};
const Mode kModes[] = {{"casefold_flag", "casefold=flag", false},
                       {"casefold_all", "casefold=all", true}};
constexpr const char* kTimeouts = ",entry_timeout=30,negative_timeout=30,attr_timeout=30";

void PrintTo(const Mode& mode, std::ostream* os) {
  *os << mode.name;
}

class Model : public ::testing::TestWithParam<Mode> {};

TEST_P(Model, ModelCheck) {
  const Mode& mode = GetParam();
  const unsigned seed = static_cast<unsigned>(env_long("FOLDFS_MODEL_SEED", 1));
  const long ops = env_long("FOLDFS_MODEL_OPS", 20000);
  const long every = env_long("FOLDFS_MODEL_VERIFY_EVERY", 400);
  std::printf("model: mode %s, seed %u, %ld operations (FOLDFS_MODEL_SEED, FOLDFS_MODEL_OPS)\n",
              mode.options, seed, ops);
  Mount m;
  const std::string opts = std::string(mode.options) + kTimeouts;
  ASSERT_TRUE(m.start(opts));
  ModelRun run(m, mode.all, seed, "model");
  ASSERT_TRUE(run.Setup());
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(run.Run(ops, every));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // After a remount and dropped caches, everything is still as the model says.
  ASSERT_TRUE(m.unmount());
  ASSERT_TRUE(m.start(opts));
  ASSERT_TRUE(drop_caches());
  const std::string after = run.VerifyAll();
  EXPECT_EQ(after, "") << "after remount (seed " << seed << ")";
  std::ostringstream counts;
  for (const auto& [op, n] : run.op_counts()) counts << op << "=" << n << " ";
  std::printf("model: %ld operations in %.1f s, %ld checks, %ld full verifications; %s\n",
              run.ops_done(), secs, run.checks(), run.verifications(), counts.str().c_str());
  report_figure(
      std::string("model ") + mode.name + ": operations (seed " + std::to_string(seed) + ")",
      run.ops_done());
  report_figure(std::string("model ") + mode.name + ": checks against the model", run.checks());
}

// The soak: rounds of 2000 operations, seeds 1000, 1001, ..., both modes in turn, a remount
// and dropped caches between rounds (each round verified again after it), bounded by
// FOLDFS_SOAK_SECONDS (default 60). One mount per round over one backing tree that keeps growing
// (each round has its own subtree).
TEST(ModelSoak, RoundsOfRandomOperationsWithRemountsAgainstTheModel) {
  const long seconds = env_long("FOLDFS_SOAK_SECONDS", 60);
  const long per_round = env_long("FOLDFS_SOAK_OPS_PER_ROUND", 2000);
  const unsigned base = static_cast<unsigned>(env_long("FOLDFS_SOAK_SEED", 1000));
  std::printf(
      "soak: %ld s, rounds of %ld operations, seeds from %u (FOLDFS_SOAK_SECONDS, "
      "FOLDFS_SOAK_OPS_PER_ROUND, FOLDFS_SOAK_SEED)\n",
      seconds, per_round, base);
  Mount m;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  long rounds = 0, ops = 0, checks = 0;
  do {
    const Mode& mode = kModes[rounds % 2];
    const unsigned seed = base + static_cast<unsigned>(rounds);
    const std::string opts = std::string(mode.options) + kTimeouts;
    ASSERT_TRUE(m.start(opts));
    ModelRun run(m, mode.all, seed, "round" + std::to_string(rounds));
    ASSERT_TRUE(run.Setup());
    const auto result = run.Run(per_round, 500);
    ASSERT_TRUE(result) << "reproduce: FOLDFS_MODEL_SEED=" << seed
                        << " FOLDFS_MODEL_OPS=" << per_round
                        << " --gtest_filter=Variants/Model.ModelCheck/" << mode.name;
    ASSERT_TRUE(m.unmount());
    ASSERT_TRUE(m.start(opts));
    ASSERT_TRUE(drop_caches());
    const std::string after = run.VerifyAll();
    ASSERT_EQ(after, "") << "round " << rounds << " (seed " << seed << ") after remount";
    ASSERT_TRUE(m.unmount());
    ops += run.ops_done();
    checks += run.checks();
    ++rounds;
  } while (std::chrono::steady_clock::now() < deadline);
  std::printf("soak: %ld rounds, %ld operations, %ld checks, %ld remounts\n", rounds, ops, checks,
              rounds);
  report_figure("soak: seconds", seconds);
  report_figure("soak: rounds (each followed by a remount)", rounds);
  report_figure("soak: operations", ops);
  report_figure("soak: checks against the model", checks);
}

INSTANTIATE_TEST_SUITE_P(Variants, Model, ::testing::ValuesIn(kModes),
                         [](const ::testing::TestParamInfo<Mode>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace foldfs::itest
