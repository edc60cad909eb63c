// libFuzzer target over the inode-flag ioctls of the filesystem core: get_flags / set_flags
// (FS_IOC_GETFLAGS / FS_IOC_SETFLAGS) and get_fsxattr / set_fsxattr (FS_IOC_FSGETXATTR /
// FS_IOC_FSSETXATTR), with arbitrary 32-bit flag words and arbitrary 28-byte fsxattr payloads,
// on files and directories of a fresh backing directory (casefold=flag or all, rw or ro).
//
// Input: byte 0 = configuration (bit 0 casefold=all, bit 1 ro), then operations:
//   [op] [target] [payload]   op % 8: 0 get_flags, 1 set_flags(u32), 2 set_flags(current ^ u32),
//   3 get_fsxattr, 4 set_fsxattr(28 bytes), 5 set_fsxattr(current with fsx_xflags ^= u32),
//   6 add or remove a child through the mount (directories), 7 reopen (byte: new mode bits).
// Targets: the root, a file, an empty directory, a non-empty directory, a file inside it, a
// non-empty directory and an empty one that carry the casefold flag from the start.
//
// Checks after every operation, on every target:
//  - no crash or sanitizer report; every result is 0 or an errno from the allowed set;
//  - FS_CASEFOLD_FL (0x40000000) is reported only on directories, exactly when the model says
//    the directory folds (casefold=all: every directory; flag: its stored flag), and
//    is_casefolded() agrees;
//  - the stored flag (xattr trusted.foldfs.casefold on the backing directory) agrees with what
//    get_flags reports (casefold=flag), and is never written with casefold=all;
//  - every other flag is the backing file's own, passed through unchanged; fsx_xflags and the
//    flag word agree on the flags they share;
//  - the casefold state changes only through a successful set_flags on an empty directory with
//    casefold=flag on a writable mount; setting it on a file is EOPNOTSUPP; clearing it with
//    casefold=all is EPERM; on a non-empty directory nothing changes (ENOTEMPTY);
//  - a failed set_flags changes nothing (as ext4, whose SETFLAGS is all or nothing); with ro,
//    set_flags and set_fsxattr answer EROFS (as the VFS does) and change nothing;
//  - a flip invalidates the kernel's dentries; the state survives a new instance of the
//    filesystem over the same backing tree.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <memory>
#include <string>

#include "backing/inode_flags.h"
#include "fs/filesystem.h"
#include "fuzz_support.h"
#include "support/fake_kernel.h"

namespace {

using namespace foldfs;
using fs::CasefoldMode;
using fs::Filesystem;
using fuzz::errname;
using fuzz::fail;

constexpr uint32_t kCasefold = FS_CASEFOLD_FL;

using Notifier = test_support::FakeKernel;

struct Target {
  const char* path;  // relative to the backing root ("" for the root)
  bool is_dir;
  bool flagged_at_start;
  uint64_t ino = 0;
  bool flag = false;  // the model: the stored casefold flag
};

class Run {
 public:
  Run(const fuzz::ScratchDir& dir, uint8_t config) : root_(dir.path()) {
    all_ = config & 1;
    ro_ = config & 2;
    make_tree();
    open_fs();
  }

  void op(fuzz::ByteReader& in) {
    const uint8_t code = in.u8() % 8;
    Target& t = targets_[in.u8() % targets_.size()];
    switch (code) {
      case 0: {
        uint32_t flags = 0;
        const int err = fs_->get_flags(t.ino, &flags);
        note("get_flags %s -> %s 0x%x", name(t), errname(err).c_str(), flags);
        if (err != 0) fail(trace_, "get_flags failed: %s", errname(err).c_str());
        break;
      }
      case 1:
        set_flags(t, in.u32());
        break;
      case 2: {
        const uint32_t x = in.u32();
        uint32_t cur = 0;
        if (fs_->get_flags(t.ino, &cur) != 0) fail(trace_, "get_flags failed");
        set_flags(t, cur ^ x);
        break;
      }
      case 3: {
        struct fsxattr fsx;
        const int err = fs_->get_fsxattr(t.ino, &fsx);
        note("get_fsxattr %s -> %s", name(t), errname(err).c_str());
        if (err != 0) fail(trace_, "get_fsxattr failed: %s", errname(err).c_str());
        break;
      }
      case 4: {
        struct fsxattr fsx;
        static_assert(sizeof(fsx) == 28);
        in.bytes(&fsx, sizeof fsx);
        set_fsxattr(t, fsx);
        break;
      }
      case 5: {
        const uint32_t x = in.u32();
        struct fsxattr fsx;
        if (fs_->get_fsxattr(t.ino, &fsx) != 0) fail(trace_, "get_fsxattr failed");
        fsx.fsx_xflags ^= x;
        set_fsxattr(t, fsx);
        break;
      }
      case 6:
        toggle_child(t);
        break;
      case 7: {
        const uint8_t mode = in.u8();
        fs_.reset();
        all_ = mode & 1;
        ro_ = mode & 2;
        note("reopen casefold=%s%s", all_ ? "all" : "flag", ro_ ? ",ro" : "");
        open_fs();
        break;
      }
    }
    check_all();
  }

  void close() { fs_.reset(); }

 private:
  std::string path_of(const Target& t) const { return t.path[0] ? root_ + "/" + t.path : root_; }
  static const char* name(const Target& t) { return t.path[0] ? t.path : "/"; }

  void note(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    trace_ += "  ";
    trace_ += buf;
    trace_ += '\n';
  }

  void make_tree() {
    auto must = [&](bool ok, const char* what) {
      if (!ok) fail("", "setting up the backing tree: %s: %s", what, std::strerror(errno));
    };
    auto touch = [&](const std::string& p) {
      const int fd = ::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      must(fd >= 0, p.c_str());
      ::close(fd);
    };
    touch(root_ + "/f");
    must(::mkdir((root_ + "/e").c_str(), 0755) == 0, "e");
    must(::mkdir((root_ + "/n").c_str(), 0755) == 0, "n");
    touch(root_ + "/n/x");
    must(::mkdir((root_ + "/c").c_str(), 0755) == 0, "c");
    touch(root_ + "/c/y");
    must(::mkdir((root_ + "/g").c_str(), 0755) == 0, "g");
    for (const char* p : {"c", "g"}) {
      must(::setxattr((root_ + "/" + p).c_str(), "trusted.foldfs.casefold", "1", 1, 0) == 0, p);
    }
    targets_ = {{
        {"", true, false},
        {"f", false, false},
        {"e", true, false},
        {"n", true, false},
        {"n/x", false, false},
        {"c", true, true},
        {"g", true, true},
    }};
    for (auto& t : targets_) t.flag = t.flagged_at_start;
  }

  void open_fs() {
    fs::Options o;
    o.casefold = all_ ? CasefoldMode::kAll : CasefoldMode::kFlag;
    o.read_only = ro_;
    o.outside = fs::OutsideChanges::kRevalidate;
    int err = 0;
    fs_ = Filesystem::open(root_, o, &err);
    if (!fs_) fail(trace_, "Filesystem::open: %s", errname(err).c_str());
    fs_->set_notifier(&notifier_);
    for (auto& t : targets_) {
      if (!t.path[0]) {
        t.ino = Filesystem::kRootId;
        continue;
      }
      const std::string p = t.path;
      uint64_t parent = Filesystem::kRootId;
      std::string rest = p;
      for (size_t slash; (slash = rest.find('/')) != std::string::npos;) {
        fs::EntryOut out;
        if (fs_->lookup({}, parent, rest.substr(0, slash), &out) != 0) fail(trace_, "lookup");
        parent = out.ino;
        rest.erase(0, slash + 1);
      }
      fs::EntryOut out;
      if (int e = fs_->lookup({}, parent, rest, &out); e != 0) {
        fail(trace_, "lookup %s: %s", t.path, errname(e).c_str());
      }
      if (t.ino != 0 && t.ino != out.ino) fail(trace_, "%s changed node id after reopen", t.path);
      t.ino = out.ino;
    }
  }

  bool expected_casefold(const Target& t) const { return t.is_dir && (all_ || t.flag); }

  uint32_t backing_flags(const Target& t) {
    const int fd = ::open(path_of(t).c_str(),
                          (t.is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK) | O_CLOEXEC);
    if (fd < 0) fail(trace_, "open backing %s: %s", name(t), std::strerror(errno));
    int v = 0;
    if (::ioctl(fd, FS_IOC_GETFLAGS, &v) != 0) fail(trace_, "backing GETFLAGS %s", name(t));
    ::close(fd);
    return static_cast<uint32_t>(v);
  }

  bool backing_xattr(const Target& t) {
    char v[8];
    const ssize_t n = ::getxattr(path_of(t).c_str(), "trusted.foldfs.casefold", v, sizeof v);
    if (n < 0 && errno != ENODATA)
      fail(trace_, "backing getxattr %s: %s", name(t), strerror(errno));
    return n >= 1 && v[0] == '1';
  }

  bool backing_empty(const Target& t) {
    DIR* d = ::opendir(path_of(t).c_str());
    if (!d) fail(trace_, "opendir %s", name(t));
    bool empty = true;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) empty = false;
    }
    ::closedir(d);
    return empty;
  }

  static bool allowed_set_error(int err) {
    switch (err) {
      case 0:
      case EOPNOTSUPP:
      case ENOTEMPTY:
      case EPERM:
      case EROFS:
      case EINVAL:
      case ENOTTY:
      case EACCES:
        return true;
      default:
        return false;
    }
  }

  void set_flags(Target& t, uint32_t w) {
    const uint32_t before = backing_flags(t);
    const bool was = expected_casefold(t);
    const bool empty = t.is_dir && backing_empty(t);
    const int invalidations = notifier_.invalidations();
    const int err = fs_->set_flags({}, t.ino, w);
    note("set_flags %s 0x%x -> %s", name(t), w, errname(err).c_str());
    if (!allowed_set_error(err))
      fail(trace_, "set_flags: unexpected errno %s", errname(err).c_str());
    const bool want = w & kCasefold;
    const uint32_t after = backing_flags(t);
    if (!t.is_dir && want && !ro_ && err != EOPNOTSUPP) {
      fail(trace_, "FS_CASEFOLD_FL on a file: %s, not EOPNOTSUPP", errname(err).c_str());
    }
    if (t.is_dir && want != was) {
      if (all_ && err == 0) fail(trace_, "casefold=all: the flag was cleared");
      if (!all_ && !empty && err == 0) fail(trace_, "the flag of a non-empty directory changed");
      if (!all_ && !ro_ && !empty && err != ENOTEMPTY &&
          (before & backing::kUserSettableFlags) == (w & backing::kUserSettableFlags)) {
        fail(trace_, "flip on a non-empty directory: %s, not ENOTEMPTY", errname(err).c_str());
      }
      if (ro_ && err == 0) fail(trace_, "ro: the flag changed");
    }
    // Flags of the backing filesystem's own layout never change, whatever was asked
    // (backing/inode_flags.h).
    if (((before ^ after) & ~backing::kUserSettableFlags & ~kCasefold) != 0) {
      fail(trace_, "a layout flag of the backing filesystem changed 0x%x -> 0x%x for 0x%x", before,
           after, w);
    }
    if (err == 0) {
      if (t.is_dir && want != was && notifier_.invalidations() == invalidations) {
        fail(trace_, "a flip did not invalidate the kernel's dentries");
      }
      if (t.is_dir && !all_) t.flag = want;
      // The backing fs may keep flags it manages itself (ext4's extents flag): only a flag that
      // changed to something other than what was asked for is wrong.
      if (((before ^ after) & (after ^ w) & ~kCasefold) != 0) {
        fail(trace_, "set_flags succeeded but the backing flags went 0x%x -> 0x%x for 0x%x", before,
             after, w);
      }
    } else if (after != before) {
      fail(trace_, "set_flags failed (%s) but changed the backing flags 0x%x -> 0x%x",
           errname(err).c_str(), before, after);
    }
    // As the VFS answers FS_IOC_SETFLAGS on a read-only mount, and as set_fsxattr does.
    if (ro_ && err != EROFS) {
      fail(trace_, "ro: set_flags answered %s, not EROFS", errname(err).c_str());
    }
  }

  void set_fsxattr(Target& t, const struct fsxattr& fsx) {
    const uint32_t before = backing_flags(t);
    const int err = fs_->set_fsxattr(t.ino, &fsx);
    note("set_fsxattr %s xflags=0x%x extsize=%u nextents=%u projid=%u cowextsize=%u -> %s", name(t),
         fsx.fsx_xflags, fsx.fsx_extsize, fsx.fsx_nextents, fsx.fsx_projid, fsx.fsx_cowextsize,
         errname(err).c_str());
    switch (err) {
      case 0:
      case EOPNOTSUPP:
      case EINVAL:
      case EPERM:
      case EROFS:
      case ENOTTY:
      case EACCES:
        break;
      default:
        fail(trace_, "set_fsxattr: unexpected errno %s", errname(err).c_str());
    }
    if (ro_ && err != EROFS) fail(trace_, "ro: set_fsxattr answered %s", errname(err).c_str());
    // Whether a failed call changed anything is the backing filesystem's business here (ext4
    // applies the flags before it refuses a project id), unlike set_flags' casefold step.
    if (ro_ && backing_flags(t) != before)
      fail(trace_, "ro: set_fsxattr changed the backing flags");
  }

  void toggle_child(Target& t) {
    if (!t.is_dir) return;
    struct stat st;
    const bool exists = ::lstat((path_of(t) + "/k").c_str(), &st) == 0;
    int err;
    if (exists) {
      err = fs_->unlink({}, t.ino, "K");  // another spelling where the directory folds
      if (err == ENOENT && !expected_casefold(t)) err = fs_->unlink({}, t.ino, "k");
    } else {
      fs::EntryOut out;
      uint64_t fh = 0;
      err = fs_->create({}, t.ino, "k", 0644, O_CREAT | O_EXCL | O_WRONLY, &out, &fh);
      if (err == 0) fs_->release(fh);
    }
    note("%s %s/k -> %s", exists ? "unlink" : "create", name(t), errname(err).c_str());
    switch (err) {
      case 0:
      case EPERM:
      case EROFS:
      case EACCES:
        break;
      default:
        fail(trace_, "child: unexpected errno %s", errname(err).c_str());
    }
    if (ro_ && err != EROFS) fail(trace_, "ro: a change went through");
  }

  void check_all() {
    for (auto& t : targets_) {
      uint32_t flags = 0;
      int err = fs_->get_flags(t.ino, &flags);
      if (err != 0) fail(trace_, "get_flags %s: %s", name(t), errname(err).c_str());
      const bool cf = flags & kCasefold;
      if (cf && !t.is_dir) fail(trace_, "FS_CASEFOLD_FL reported on the file %s", name(t));
      if (cf != expected_casefold(t)) {
        fail(trace_, "%s: get_flags says casefold=%d, the model %d", name(t), cf,
             expected_casefold(t));
      }
      if (fs_->casefolded(t.ino) != cf) fail(trace_, "%s: is_casefolded disagrees", name(t));
      if (t.is_dir && backing_xattr(t) != t.flag) {
        fail(trace_, "%s: the stored flag is %d, the model %d", name(t), !t.flag, t.flag);
      }
      const uint32_t raw = backing_flags(t);
      if ((raw & ~kCasefold) != (flags & ~kCasefold)) {
        fail(trace_, "%s: flags 0x%x reported, the backing file has 0x%x", name(t), flags, raw);
      }
      struct fsxattr fsx;
      err = fs_->get_fsxattr(t.ino, &fsx);
      if (err != 0) fail(trace_, "get_fsxattr %s: %s", name(t), errname(err).c_str());
      static constexpr std::pair<uint32_t, uint32_t> kShared[] = {
          {FS_XFLAG_IMMUTABLE, FS_IMMUTABLE_FL}, {FS_XFLAG_APPEND, FS_APPEND_FL},
          {FS_XFLAG_SYNC, FS_SYNC_FL},           {FS_XFLAG_NOATIME, FS_NOATIME_FL},
          {FS_XFLAG_NODUMP, FS_NODUMP_FL},
      };
      for (auto [x, f] : kShared) {
        if (((fsx.fsx_xflags & x) != 0) != ((flags & f) != 0)) {
          fail(trace_, "%s: fsx_xflags 0x%x and flags 0x%x disagree", name(t), fsx.fsx_xflags,
               flags);
        }
      }
    }
  }

  std::string root_;
  bool all_ = false;
  bool ro_ = false;
  std::array<Target, 7> targets_;
  Notifier notifier_;
  std::unique_ptr<Filesystem> fs_;
  std::string trace_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 4096) return -1;
  fuzz::ByteReader in(data, size);
  fuzz::ScratchDir dir;
  Run run(dir, in.u8());
  for (int n = 0; !in.done() && n < 64; ++n) run.op(in);
  run.close();
  return 0;
}
