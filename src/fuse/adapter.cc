// The libfuse lowlevel adapter: unpacks each request, calls the fs core, packs the reply. What the
// reply carries besides the core's answer comes from the core too (timeouts, keep_cache from its
// attribute timeout, EROFS for writes from its options); the adapter only moves file data (reads
// and writes are spliced here, or read into an io_uring entry). No exception crosses into
// libfuse: every handler that may allocate runs inside guarded(), which turns std::bad_alloc (and
// anything else) into an errno reply; the others (forget, read, write, flush, release, fsync,
// fallocate, lseek, copy_file_range, releasedir, fsyncdir) allocate nothing.
#define FUSE_USE_VERSION 312
#include "fuse/adapter.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "fuse/passthrough.h"
#include "fuse/uring_transport.h"

namespace foldfs::fuse {
namespace {

static_assert(fs::kSetAttrMode == FUSE_SET_ATTR_MODE && fs::kSetAttrUid == FUSE_SET_ATTR_UID &&
              fs::kSetAttrGid == FUSE_SET_ATTR_GID && fs::kSetAttrSize == FUSE_SET_ATTR_SIZE &&
              fs::kSetAttrAtime == FUSE_SET_ATTR_ATIME &&
              fs::kSetAttrMtime == FUSE_SET_ATTR_MTIME &&
              fs::kSetAttrAtimeNow == FUSE_SET_ATTR_ATIME_NOW &&
              fs::kSetAttrMtimeNow == FUSE_SET_ATTR_MTIME_NOW &&
              fs::kSetAttrKillSuidgid == FATTR_KILL_SUIDGID);

struct State {
  fs::Operations* fs;
  EpochNotifier* notifier;
  BackingFiles* backing = nullptr;  // with passthrough=auto
  bool no_opendir = false;          // the kernel skips OPENDIR/RELEASEDIR once opendir says ENOSYS
};

State* state(fuse_req_t req) {
  return static_cast<State*>(fuse_req_userdata(req));
}
fs::Operations& fsys(fuse_req_t req) {
  return *state(req)->fs;
}

// Whether thread `pid` holds CAP_FSETID as the kernel's capable() sees it: in its effective set
// and in the daemon's user namespace (capabilities held inside another one do not count).
// False when it cannot be known (the thread is gone): the caller then loses the bits, the safe
// side.
bool holds_cap_fsetid(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  char own_ns[64] = {};
  char its_ns[64] = {};
  if (::readlink("/proc/self/ns/user", own_ns, sizeof(own_ns) - 1) <= 0 ||
      ::readlink((proc + "/ns/user").c_str(), its_ns, sizeof(its_ns) - 1) <= 0 ||
      strcmp(own_ns, its_ns) != 0) {
    return false;
  }
  FILE* status = ::fopen((proc + "/status").c_str(), "re");
  if (!status) return false;
  char line[256];
  unsigned long long effective = 0;
  bool found = false;
  while (!found && ::fgets(line, sizeof(line), status)) {
    found = ::sscanf(line, "CapEff: %llx", &effective) == 1;
  }
  ::fclose(status);
  return found && (effective & (1ULL << CAP_FSETID)) != 0;
}

fs::Context context(fuse_req_t req) {
  const struct fuse_ctx* c = fuse_req_ctx(req);
  fs::Context ctx;
  ctx.uid = c->uid;
  ctx.gid = c->gid;
  ctx.pid = c->pid;
  ctx.umask = c->umask;
  // Read from /proc by libfuse, only if the operation asks.
  ctx.supplementary_groups = [req](std::vector<gid_t>* out) {
    gid_t groups[256];
    const int n = fuse_req_getgroups(req, 256, groups);
    if (n < 0) return false;
    out->assign(groups, groups + std::min(n, 256));
    return true;
  };
  ctx.holds_cap_fsetid = [pid = c->pid] { return holds_cap_fsetid(pid); };
  return ctx;
}

template <typename F>
void guarded(fuse_req_t req, F&& body) {
  try {
    body();
  } catch (const std::bad_alloc&) {
    fuse_reply_err(req, ENOMEM);
  } catch (...) {
    fuse_reply_err(req, EIO);
  }
}

struct fuse_entry_param to_entry_param(const fs::EntryOut& out) {
  struct fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  e.ino = out.ino;
  e.generation = out.generation;
  e.attr = out.attr;
  e.attr_timeout = out.attr_timeout;
  e.entry_timeout = out.entry_timeout;
  return e;
}

void reply_entry(fuse_req_t req, int err, const fs::EntryOut& out) {
  if (err == ENOENT && out.entry_timeout > 0) {
    // A negative entry the kernel may cache: it is invalidated exactly when needed.
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    e.ino = 0;
    e.entry_timeout = out.entry_timeout;
    fuse_reply_entry(req, &e);
    return;
  }
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  const struct fuse_entry_param e = to_entry_param(out);
  fuse_reply_entry(req, &e);
}

void reply_attr(fuse_req_t req, fuse_ino_t ino, int err, const struct stat& st) {
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_attr(req, &st, fsys(req).attr_timeout_of(ino));
}

// --- lifecycle -------------------------------------------------------------------------------

void op_init(void* userdata, struct fuse_conn_info* conn) {
  auto* s = static_cast<State*>(userdata);
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  want(FUSE_CAP_EXPORT_SUPPORT);
  want(FUSE_CAP_IOCTL_DIR);
  // Not FUSE_CAP_ATOMIC_O_TRUNC: the kernel then truncates through SETATTR with the caller's
  // rights and clears setuid/setgid bits as on a local filesystem.
  conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;  // libfuse asks for it by default
  want(FUSE_CAP_POSIX_ACL);  // the kernel enforces ACLs (stored by the backing filesystem)
  want(FUSE_CAP_DONT_MASK);  // and leaves the umask to us: default ACLs replace it
  want(FUSE_CAP_SPLICE_READ);
  want(FUSE_CAP_SPLICE_WRITE);
  want(FUSE_CAP_SPLICE_MOVE);
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_READDIRPLUS);
  want(FUSE_CAP_READDIRPLUS_AUTO);
  want(FUSE_CAP_AUTO_INVAL_DATA);  // drop cached pages when the file changed (mtime, size)
  want(FUSE_CAP_NO_OPENDIR_SUPPORT);
  s->no_opendir = conn->want & FUSE_CAP_NO_OPENDIR_SUPPORT;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // Locks stay local to this mount: the kernel's own lock manager serves flock and fcntl.
  conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  s->notifier->attach_from_init(conn->proto_major, conn->proto_minor);
}

// --- names -----------------------------------------------------------------------------------

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  guarded(req, [&] {
    fs::EntryOut out;
    const int err = fsys(req).lookup(context(req), parent, name, &out);
    reply_entry(req, err, out);
  });
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  fsys(req).forget(ino, nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) fsys(req).forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  guarded(req, [&] {
    fs::EntryOut out;
    reply_entry(req, fsys(req).mknod(context(req), parent, name, mode, rdev, &out), out);
  });
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  guarded(req, [&] {
    fs::EntryOut out;
    reply_entry(req, fsys(req).mkdir(context(req), parent, name, mode, &out), out);
  });
}

void op_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  guarded(req, [&] {
    fs::EntryOut out;
    reply_entry(req, fsys(req).symlink(context(req), link, parent, name, &out), out);
  });
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  guarded(req, [&] {
    fs::EntryOut out;
    reply_entry(req, fsys(req).link(context(req), ino, newparent, newname, &out), out);
  });
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  guarded(req, [&] { fuse_reply_err(req, fsys(req).unlink(context(req), parent, name)); });
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  guarded(req, [&] { fuse_reply_err(req, fsys(req).rmdir(context(req), parent, name)); });
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
               const char* newname, unsigned int flags) {
  guarded(req, [&] {
    fuse_reply_err(req, fsys(req).rename(context(req), parent, name, newparent, newname, flags));
  });
}

// --- attributes ------------------------------------------------------------------------------

void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info*) {
  guarded(req, [&] {
    struct stat st;
    reply_attr(req, ino, fsys(req).getattr(ino, &st), st);
  });
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                struct fuse_file_info* fi) {
  guarded(req, [&] {
    struct stat st;
    const uint64_t fh = fi ? fi->fh : 0;
    reply_attr(req, ino,
               fsys(req).setattr(context(req), ino, *attr, to_set, fi ? &fh : nullptr, &st), st);
  });
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  guarded(req, [&] {
    std::string target;
    const int err = fsys(req).readlink(ino, &target);
    if (err != 0)
      fuse_reply_err(req, err);
    else
      fuse_reply_readlink(req, target.c_str());
  });
}

void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  guarded(req, [&] {
    struct statvfs st;
    const int err = fsys(req).statfs(ino, &st);
    if (err != 0)
      fuse_reply_err(req, err);
    else
      fuse_reply_statfs(req, &st);
  });
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                 int flags) {
  guarded(req, [&] {
    fuse_reply_err(req, fsys(req).setxattr(ino, name, std::string_view(value, size), flags));
  });
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  guarded(req, [&] {
    std::string value;
    size_t needed = 0;
    const int err = fsys(req).getxattr(ino, name, size, &value, &needed);
    if (err != 0)
      fuse_reply_err(req, err);
    else if (size == 0)
      fuse_reply_xattr(req, needed);
    else
      fuse_reply_buf(req, value.data(), value.size());
  });
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  guarded(req, [&] {
    std::string list;
    size_t needed = 0;
    const int err = fsys(req).listxattr(ino, size, &list, &needed);
    if (err != 0)
      fuse_reply_err(req, err);
    else if (size == 0)
      fuse_reply_xattr(req, needed);
    else
      fuse_reply_buf(req, list.data(), list.size());
  });
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  guarded(req, [&] { fuse_reply_err(req, fsys(req).removexattr(ino, name)); });
}

// --- files -----------------------------------------------------------------------------------

// Replies that hand the file to the kernel's passthrough (fuse/passthrough.h). libfuse 3.14's
// fuse_reply_open/fuse_reply_create cannot carry a backing id: these build the same bytes, with
// fuse_open_out as of protocol 7.40 (the id takes what was padding), and send them with
// fuse_reply_buf.
constexpr uint32_t kFopenPassthrough = 1u << 7;  // FOPEN_PASSTHROUGH

struct OpenOut {
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};
static_assert(sizeof(OpenOut) == sizeof(fuse_open_out));

uint64_t timeout_seconds(double t) {
  return t <= 0 ? 0 : static_cast<uint64_t>(t);
}
uint32_t timeout_nanoseconds(double t) {
  return t <= 0 ? 0 : static_cast<uint32_t>((t - static_cast<double>(timeout_seconds(t))) * 1e9);
}

struct fuse_entry_out entry_out(const fs::EntryOut& e) {
  struct fuse_entry_out out;
  memset(&out, 0, sizeof(out));
  out.nodeid = e.ino;
  out.generation = e.generation;
  out.entry_valid = timeout_seconds(e.entry_timeout);
  out.entry_valid_nsec = timeout_nanoseconds(e.entry_timeout);
  out.attr_valid = timeout_seconds(e.attr_timeout);
  out.attr_valid_nsec = timeout_nanoseconds(e.attr_timeout);
  const struct stat& st = e.attr;
  out.attr.ino = st.st_ino;
  out.attr.mode = st.st_mode;
  out.attr.nlink = static_cast<uint32_t>(st.st_nlink);
  out.attr.uid = st.st_uid;
  out.attr.gid = st.st_gid;
  out.attr.rdev = static_cast<uint32_t>(st.st_rdev);
  out.attr.size = static_cast<uint64_t>(st.st_size);
  out.attr.blksize = static_cast<uint32_t>(st.st_blksize);
  out.attr.blocks = static_cast<uint64_t>(st.st_blocks);
  out.attr.atime = static_cast<uint64_t>(st.st_atim.tv_sec);
  out.attr.mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
  out.attr.ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
  out.attr.atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
  out.attr.mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  out.attr.ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  return out;
}

// The backing id to open `fh` of `ino` with, 0 for none.
int32_t passthrough_id(fuse_req_t req, fuse_ino_t ino, uint64_t fh) {
  BackingFiles* backing = state(req)->backing;
  return backing ? backing->opened(ino, fh, fsys(req).file_fd(fh)) : 0;
}

// An open file goes: its backing id (if it was the node's last) and the daemon's descriptor.
int release_file(fuse_req_t req, uint64_t fh) {
  if (BackingFiles* backing = state(req)->backing) backing->released(fh);
  return fsys(req).release(fh);
}

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  guarded(req, [&] {
    uint64_t fh = 0;
    const int err = fsys(req).open(context(req), ino, fi->flags, &fh);
    if (err != 0) {
      fuse_reply_err(req, err);
      return;
    }
    fi->fh = fh;
    if (const int32_t id = passthrough_id(req, ino, fh); id > 0) {
      const OpenOut out{fh, kFopenPassthrough, id};
      if (fuse_reply_buf(req, reinterpret_cast<const char*>(&out), sizeof(out)) != 0)
        release_file(req, fh);
      return;
    }
    // Keep the page cache across opens: AUTO_INVAL_DATA drops it when the file changed.
    fi->keep_cache = fsys(req).attr_timeout() > 0;
    if (fuse_reply_open(req, fi) != 0) release_file(req, fh);  // interrupted: don't leak
  });
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               struct fuse_file_info* fi) {
  guarded(req, [&] {
    fs::EntryOut out;
    uint64_t fh = 0;
    const int err = fsys(req).create(context(req), parent, name, mode, fi->flags, &out, &fh);
    if (err != 0) {
      fuse_reply_err(req, err);
      return;
    }
    fi->fh = fh;
    if (const int32_t id = passthrough_id(req, out.ino, fh); id > 0) {
      struct {
        struct fuse_entry_out entry;
        OpenOut open;
      } reply;
      static_assert(sizeof(reply) == sizeof(fuse_entry_out) + sizeof(OpenOut));
      reply.entry = entry_out(out);
      reply.open = OpenOut{fh, kFopenPassthrough, id};
      if (fuse_reply_buf(req, reinterpret_cast<const char*>(&reply), sizeof(reply)) != 0)
        release_file(req, fh);
      return;
    }
    const struct fuse_entry_param e = to_entry_param(out);
    if (fuse_reply_create(req, &e, fi) != 0) release_file(req, fh);
  });
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, struct fuse_file_info* fi) {
  if (char* space = UringTransport::reply_space(size)) {
    // A ring request: read straight into the ring entry, which is where the reply goes.
    const ssize_t n = ::pread(fsys(req).file_fd(fi->fh), space, size, off);
    if (n < 0)
      fuse_reply_err(req, errno);
    else
      fuse_reply_buf(req, space, static_cast<size_t>(n));
    return;
  }
  struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = fsys(req).file_fd(fi->fh);
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void op_write_buf(fuse_req_t req, fuse_ino_t, struct fuse_bufvec* in, off_t off,
                  struct fuse_file_info* fi) {
  if (fsys(req).options().read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = fsys(req).file_fd(fi->fh);
  out.buf[0].pos = off;
  const ssize_t n = fuse_buf_copy(&out, in, FUSE_BUF_SPLICE_NONBLOCK);
  if (n < 0)
    fuse_reply_err(req, static_cast<int>(-n));
  else
    fuse_reply_write(req, static_cast<size_t>(n));
}

void op_flush(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  fuse_reply_err(req, fsys(req).flush(fi->fh));
}

void op_release(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  fuse_reply_err(req, release_file(req, fi->fh));
}

void op_fsync(fuse_req_t req, fuse_ino_t, int datasync, struct fuse_file_info* fi) {
  fuse_reply_err(req, fsys(req).fsync(fi->fh, datasync != 0));
}

void op_fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t offset, off_t length,
                  struct fuse_file_info* fi) {
  fuse_reply_err(req, fsys(req).fallocate(fi->fh, mode, offset, length));
}

void op_lseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, struct fuse_file_info* fi) {
  off_t result = 0;
  const int err = fsys(req).lseek(fi->fh, off, whence, &result);
  if (err != 0)
    fuse_reply_err(req, err);
  else
    fuse_reply_lseek(req, result);
}

void op_copy_file_range(fuse_req_t req, fuse_ino_t, off_t off_in, struct fuse_file_info* fi_in,
                        fuse_ino_t, off_t off_out, struct fuse_file_info* fi_out, size_t len,
                        int flags) {
  size_t copied = 0;
  const int err =
      fsys(req).copy_file_range(fi_in->fh, off_in, fi_out->fh, off_out, len, flags, &copied);
  if (err != 0)
    fuse_reply_err(req, err);
  else
    fuse_reply_write(req, copied);
}

// --- directories -----------------------------------------------------------------------------

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  if (state(req)->no_opendir) {
    fuse_reply_err(req, ENOSYS);  // zero-message opendir from now on
    return;
  }
  guarded(req, [&] {
    uint64_t fh = 0;
    const int err = fsys(req).opendir(context(req), ino, &fh);
    if (err != 0) {
      fuse_reply_err(req, err);
      return;
    }
    fi->fh = fh;
    if (fuse_reply_open(req, fi) != 0) fsys(req).releasedir(fh);
  });
}

// A listed name as the C string fuse_add_direntry wants, without a heap copy: names read from a
// directory are at most NAME_MAX bytes (a longer one, which no directory holds, is copied).
class ListedName {
 public:
  explicit ListedName(std::string_view name) {
    if (name.size() < sizeof(buf_)) {
      std::memcpy(buf_, name.data(), name.size());
      buf_[name.size()] = '\0';
    } else {
      long_.assign(name);
    }
  }
  const char* c_str() const { return long_.empty() ? buf_ : long_.c_str(); }

 private:
  char buf_[NAME_MAX + 1];
  std::string long_;
};

// A readdir reply buffer of the kernel's size, filled one entry at a time.
class DirReply {
 public:
  DirReply(fuse_req_t req, size_t size) : req_(req), buf_(size) {}
  // `add_entry(buf, room)` packs one entry (fuse_add_direntry or _plus) and returns the room it
  // needs. False when it did not fit: the listing stops there.
  template <typename Add>
  bool add(Add&& add_entry) {
    const size_t room = buf_.size() - used_;
    const size_t need = add_entry(buf_.data() + used_, room);
    if (need > room) return false;
    used_ += need;
    return true;
  }
  void send(int err) {
    if (err != 0 && used_ == 0)
      fuse_reply_err(req_, err);
    else
      fuse_reply_buf(req_, buf_.data(), used_);
  }

 private:
  fuse_req_t req_;
  std::vector<char> buf_;
  size_t used_ = 0;
};

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, struct fuse_file_info*) {
  guarded(req, [&] {
    DirReply reply(req, size);
    const int err = fsys(req).readdir(
        ino, offset,
        [&](std::string_view name, uint64_t d_ino, mode_t type, off_t next) {
          struct stat st;
          memset(&st, 0, sizeof(st));
          st.st_ino = d_ino;
          st.st_mode = type;
          const ListedName n(name);
          return reply.add([&](char* buf, size_t room) {
            return fuse_add_direntry(req, buf, room, n.c_str(), &st, next);
          });
        },
        size);
    reply.send(err);
  });
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
                    struct fuse_file_info*) {
  guarded(req, [&] {
    DirReply reply(req, size);
    const int err = fsys(req).readdirplus(
        ino, offset,
        [&](std::string_view name, const fs::EntryOut& out, off_t next) {
          struct fuse_entry_param e = to_entry_param(out);
          const ListedName n(name);
          return reply.add([&](char* buf, size_t room) {
            return fuse_add_direntry_plus(req, buf, room, n.c_str(), &e, next);
          });
        },
        size);
    reply.send(err);
  });
}

void op_releasedir(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  fuse_reply_err(req, fsys(req).releasedir(fi->fh));
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info*) {
  fuse_reply_err(req, fsys(req).fsyncdir(ino, datasync != 0));
}

// --- ioctl: inode flags (chattr, lsattr, Wine's casefold probe), the stats of the mount -----

void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void*, struct fuse_file_info*,
              unsigned flags, const void* in_buf, size_t in_bufsz, size_t out_bufsz) {
  guarded(req, [&] {
    if (flags & FUSE_IOCTL_COMPAT) {
      fuse_reply_err(req, ENOSYS);
      return;
    }
    // The command arrives as a 32-bit value: compare with the constants truncated alike.
    const uint32_t command = cmd;
    if (command == static_cast<uint32_t>(fs::kStatsIoctl)) {
      if (ino != fs::Operations::kRootId || fuse_req_ctx(req)->uid != 0) {
        fuse_reply_err(req, ino != fs::Operations::kRootId ? ENOTTY : EPERM);
        return;
      }
      std::string text = fsys(req).stats_text();
      text.resize(std::min(text.size(), std::min(out_bufsz, fs::kStatsIoctlSize) - 1));
      text.push_back('\0');
      fuse_reply_ioctl(req, 0, text.data(), text.size());
    } else if (command == static_cast<uint32_t>(FS_IOC_GETFLAGS)) {
      uint32_t value = 0;
      const int err = fsys(req).get_flags(ino, &value);
      if (err != 0)
        fuse_reply_err(req, err);
      else
        fuse_reply_ioctl(req, 0, &value, out_bufsz < sizeof(value) ? out_bufsz : sizeof(value));
    } else if (command == static_cast<uint32_t>(FS_IOC_SETFLAGS)) {
      uint32_t value = 0;
      if (in_bufsz < sizeof(value)) {
        fuse_reply_err(req, EINVAL);
        return;
      }
      memcpy(&value, in_buf, sizeof(value));
      const int err = fsys(req).set_flags(context(req), ino, value);
      if (err != 0)
        fuse_reply_err(req, err);
      else
        fuse_reply_ioctl(req, 0, nullptr, 0);
    } else if (command == static_cast<uint32_t>(FS_IOC_FSGETXATTR)) {
      struct fsxattr fsx;
      const int err = fsys(req).get_fsxattr(ino, &fsx);
      if (err != 0)
        fuse_reply_err(req, err);
      else
        fuse_reply_ioctl(req, 0, &fsx, out_bufsz < sizeof(fsx) ? out_bufsz : sizeof(fsx));
    } else if (command == static_cast<uint32_t>(FS_IOC_FSSETXATTR)) {
      struct fsxattr fsx;
      if (in_bufsz < sizeof(fsx)) {
        fuse_reply_err(req, EINVAL);
        return;
      }
      memcpy(&fsx, in_buf, sizeof(fsx));
      const int err = fsys(req).set_fsxattr(ino, &fsx);
      if (err != 0)
        fuse_reply_err(req, err);
      else
        fuse_reply_ioctl(req, 0, nullptr, 0);
    } else {
      fuse_reply_err(req, ENOTTY);
    }
  });
}

struct fuse_lowlevel_ops make_ops() {
  struct fuse_lowlevel_ops ops;
  memset(&ops, 0, sizeof(ops));
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.readlink = op_readlink;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.symlink = op_symlink;
  ops.rename = op_rename;
  ops.link = op_link;
  ops.open = op_open;
  ops.read = op_read;
  ops.write_buf = op_write_buf;
  ops.flush = op_flush;
  ops.release = op_release;
  ops.fsync = op_fsync;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.releasedir = op_releasedir;
  ops.fsyncdir = op_fsyncdir;
  ops.statfs = op_statfs;
  ops.setxattr = op_setxattr;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.removexattr = op_removexattr;
  ops.create = op_create;
  ops.ioctl = op_ioctl;
  ops.fallocate = op_fallocate;
  ops.copy_file_range = op_copy_file_range;
  ops.lseek = op_lseek;
  return ops;
}

}  // namespace

const struct fuse_lowlevel_ops& lowlevel_ops() {
  static const struct fuse_lowlevel_ops ops = make_ops();
  return ops;
}

void* make_userdata(fs::Operations* fs, EpochNotifier* notifier) {
  return new State{fs, notifier};
}

void set_backing_files(void* userdata, BackingFiles* backing) {
  static_cast<State*>(userdata)->backing = backing;
}

void free_userdata(void* userdata) {
  delete static_cast<State*>(userdata);
}

}  // namespace foldfs::fuse
