// foldfs_nfs_probe: a small NFSv4 client (libnfs) for the NFS tests and bench/nfs.sh.
//
//   foldfs_nfs_probe HOST PORT EXPORT COMMAND ARGS...
//
// Creating goes as a kernel client's open(O_CREAT) without O_EXCL does (OPEN, createmode
// UNCHECKED4: an existing file is opened, not refused; libnfs's own open asks GUARDED4):
//   create PATH [TEXT]  OPEN UNCHECKED4, WRITE TEXT at offset 0 if given, CLOSE; prints the handle
//   put PATH TEXT       the same with the size set to 0 first (O_TRUNC)
// Path commands (PATH relative to the export, '/'-separated) go through libnfs's file API:
//   cat PATH            the content
//   ls PATH             the names in PATH, one a line, sorted bytewise
//   stat PATH           "fileid=N size=N type=reg|dir|other"
//   mv FROM TO, rm PATH, mkdir PATH
// Handle commands work on raw NFSv4 file handles (hex), as a client machine holds them: a
// handle obtained once is presented again later, whatever happened to the server meanwhile.
//   fh PATH             PUTROOTFH, LOOKUP of each component, GETFH: the handle
//   getattr FH          PUTFH, GETATTR: "fileid=N size=N type=..."
//   read FH             PUTFH, READ (anonymous stateid): the content
//   lookup FH NAME      PUTFH, LOOKUP, GETFH: the handle of NAME in directory FH
//   readdir FH          PUTFH, READDIR: the names, one a line, sorted bytewise
// Bench commands (one connection, N operations, prints "ops=N errors=N seconds=S"):
//   bench-create DIR N       create DIR/fNNNNN with a short content
//   bench-read DIR N         cat DIR/fNNNNN
//   bench-lookup DIR N exact|other   stat DIR/fNNNNN, or DIR/FNNNNN
//   bench-list DIR N         N listings of DIR (prints entries=E too)
//
// Exit status 0 on success; 1 when the server answered with an error (the error's name, such
// as NFS4ERR_STALE or ENOENT, is printed on stdout); 2 for usage, connection or timeout errors.
// Every RPC waits at most 10 s.
#include <fcntl.h>
// libnfs.h defines what the raw headers use: it comes first.
#include <nfsc/libnfs.h>
// (keep the order)
#include <nfsc/libnfs-raw.h>
// (keep the order)
#include <nfsc/libnfs-raw-nfs4.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <string>
#include <vector>

namespace {

constexpr int kRpcTimeoutMs = 10'000;

[[noreturn]] void fail(int code, const std::string& msg) {
  std::printf("%s\n", msg.c_str());
  std::fflush(stdout);
  std::exit(code);
}

std::string nfs4_error_name(int status) {
  switch (status) {
    case NFS4ERR_PERM:
      return "NFS4ERR_PERM";
    case NFS4ERR_NOENT:
      return "NFS4ERR_NOENT";
    case NFS4ERR_IO:
      return "NFS4ERR_IO";
    case NFS4ERR_ACCESS:
      return "NFS4ERR_ACCESS";
    case NFS4ERR_EXIST:
      return "NFS4ERR_EXIST";
    case NFS4ERR_NOTDIR:
      return "NFS4ERR_NOTDIR";
    case NFS4ERR_ISDIR:
      return "NFS4ERR_ISDIR";
    case NFS4ERR_INVAL:
      return "NFS4ERR_INVAL";
    case NFS4ERR_STALE:
      return "NFS4ERR_STALE";
    case NFS4ERR_BADHANDLE:
      return "NFS4ERR_BADHANDLE";
    case NFS4ERR_SERVERFAULT:
      return "NFS4ERR_SERVERFAULT";
    case NFS4ERR_DELAY:
      return "NFS4ERR_DELAY";
    case NFS4ERR_GRACE:
      return "NFS4ERR_GRACE";
    case NFS4ERR_FHEXPIRED:
      return "NFS4ERR_FHEXPIRED";
    case NFS4ERR_WRONGSEC:
      return "NFS4ERR_WRONGSEC";
    case NFS4ERR_NOFILEHANDLE:
      return "NFS4ERR_NOFILEHANDLE";
    case NFS4ERR_MOVED:
      return "NFS4ERR_MOVED";
    default:
      return "NFS4ERR_" + std::to_string(status);
  }
}

std::string errno_name(int err) {
  switch (err) {
    case ENOENT:
      return "ENOENT";
    case EEXIST:
      return "EEXIST";
    case ESTALE:
      return "ESTALE";
    case EACCES:
      return "EACCES";
    case EPERM:
      return "EPERM";
    case EIO:
      return "EIO";
    case ENOTDIR:
      return "ENOTDIR";
    case EISDIR:
      return "EISDIR";
    case EINVAL:
      return "EINVAL";
    case ETIMEDOUT:
      return "ETIMEDOUT";
    default:
      return "errno " + std::to_string(err);
  }
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::string to_hex(const char* data, size_t len) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < len; ++i) {
    const auto b = static_cast<unsigned char>(data[i]);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

std::string from_hex(const std::string& hex) {
  if (hex.size() % 2 != 0) fail(2, "bad handle: odd number of hex digits");
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

uint32_t xdr_u32(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}
uint64_t xdr_u64(const char* p) {
  return (uint64_t{xdr_u32(p)} << 32) | xdr_u32(p + 4);
}

// A connection: libnfs's context (mounted: path commands) and its RPC context, on which raw
// COMPOUNDs travel.
class Client {
 public:
  Client(const std::string& host, const std::string& port, const std::string& export_path)
      : export_(export_path) {
    nfs_ = nfs_init_context();
    if (nfs_ == nullptr) fail(2, "nfs_init_context failed");
    const std::string url =
        "nfs://" + host + export_path + "?version=4&nfsport=" + port + "&autoreconnect=0";
    nfs_url* parsed = nfs_parse_url_dir(nfs_, url.c_str());
    if (parsed == nullptr) fail(2, std::string("bad url: ") + nfs_get_error(nfs_));
    nfs_set_timeout(nfs_, kRpcTimeoutMs);
    nfs_set_dircache(nfs_, 0);
    const int rc = nfs_mount(nfs_, parsed->server, parsed->path);
    nfs_destroy_url(parsed);
    if (rc != 0) fail(2, std::string("mount failed: ") + nfs_get_error(nfs_));
    rpc_ = nfs_get_rpc_context(nfs_);
  }
  ~Client() { nfs_destroy_context(nfs_); }

  nfs_context* nfs() { return nfs_; }

  // Sends ops as one COMPOUND and hands the reply to `on_reply` (valid only during the call).
  // Returns the COMPOUND's status (NFS4_OK or an error); exits on a transport failure.
  int compound(std::vector<nfs_argop4>& ops, const std::function<void(COMPOUND4res*)>& on_reply) {
    COMPOUND4args args;
    std::memset(&args, 0, sizeof(args));
    args.argarray.argarray_len = static_cast<u_int>(ops.size());
    args.argarray.argarray_val = ops.data();
    struct State {
      bool done = false;
      int rpc_status = 0;
      int nfs_status = 0;
      const std::function<void(COMPOUND4res*)>* on_reply;
    } state;
    state.on_reply = &on_reply;
    auto cb = [](rpc_context*, int status, void* data, void* priv) {
      auto* s = static_cast<State*>(priv);
      s->done = true;
      s->rpc_status = status;
      if (status == RPC_STATUS_SUCCESS) {
        auto* res = static_cast<COMPOUND4res*>(data);
        s->nfs_status = res->status;
        (*s->on_reply)(res);
      }
    };
    if (rpc_nfs4_compound_async(rpc_, cb, &args, &state) != 0) {
      fail(2, std::string("cannot send COMPOUND: ") + rpc_get_error(rpc_));
    }
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kRpcTimeoutMs);
    while (!state.done) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) fail(2, "timeout waiting for the server");
      pollfd pfd{rpc_get_fd(rpc_), static_cast<short>(rpc_which_events(rpc_)), 0};
      const int n = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
      if (n < 0 && errno != EINTR) fail(2, "poll failed");
      if (rpc_service(rpc_, n > 0 ? pfd.revents : 0) < 0) {
        fail(2, std::string("connection failed: ") + rpc_get_error(rpc_));
      }
    }
    if (state.rpc_status != RPC_STATUS_SUCCESS) {
      fail(2, std::string("RPC failed: ") + rpc_get_error(rpc_));
    }
    return state.nfs_status;
  }

  // Helpers that fill ops; strings live in `keep_` until the next reset().
  void reset() { keep_.clear(); }
  nfs_argop4 putrootfh() {
    nfs_argop4 op;
    std::memset(&op, 0, sizeof(op));
    op.argop = OP_PUTROOTFH;
    return op;
  }
  nfs_argop4 putfh(const std::string& fh) {
    keep_.push_back(fh);
    nfs_argop4 op;
    std::memset(&op, 0, sizeof(op));
    op.argop = OP_PUTFH;
    op.nfs_argop4_u.opputfh.object.nfs_fh4_len = static_cast<u_int>(keep_.back().size());
    op.nfs_argop4_u.opputfh.object.nfs_fh4_val = keep_.back().data();
    return op;
  }
  nfs_argop4 lookup(const std::string& name) {
    keep_.push_back(name);
    nfs_argop4 op;
    std::memset(&op, 0, sizeof(op));
    op.argop = OP_LOOKUP;
    op.nfs_argop4_u.oplookup.objname.utf8string_len = static_cast<u_int>(keep_.back().size());
    op.nfs_argop4_u.oplookup.objname.utf8string_val = keep_.back().data();
    return op;
  }
  nfs_argop4 getfh() {
    nfs_argop4 op;
    std::memset(&op, 0, sizeof(op));
    op.argop = OP_GETFH;
    return op;
  }
  nfs_argop4 getattr_basic() {
    // type (1), size (4), fileid (20): all in word 0.
    bitmap_[0] = (1u << FATTR4_TYPE) | (1u << FATTR4_SIZE) | (1u << FATTR4_FILEID);
    nfs_argop4 op;
    std::memset(&op, 0, sizeof(op));
    op.argop = OP_GETATTR;
    op.nfs_argop4_u.opgetattr.attr_request.bitmap4_len = 1;
    op.nfs_argop4_u.opgetattr.attr_request.bitmap4_val = bitmap_;
    return op;
  }

  const std::string& export_path() const { return export_; }

  // The client id (SETCLIENTID + SETCLIENTID_CONFIRM, once) and one open-owner whose sequence
  // number advances with every OPEN, OPEN_CONFIRM and CLOSE.
  uint64_t client_id();
  uint32_t next_seqid() { return seqid_++; }
  const std::string& owner() const { return owner_; }

 private:
  bool have_client_id_ = false;
  uint64_t client_id_ = 0;
  uint32_t seqid_ = 0;
  std::string owner_ = "foldfs-probe-" + std::to_string(::getpid());
  nfs_context* nfs_ = nullptr;
  rpc_context* rpc_ = nullptr;
  std::string export_;
  std::deque<std::string> keep_;
  uint32_t bitmap_[1] = {0};
};

// The first failing op's status, or NFS4_OK.
int first_error(COMPOUND4res* res) {
  if (res->status == NFS4_OK) return NFS4_OK;
  for (u_int i = 0; i < res->resarray.resarray_len; ++i) {
    // Every nfs_resop4 member starts with its status.
    const auto* status =
        reinterpret_cast<const nfsstat4*>(&res->resarray.resarray_val[i].nfs_resop4_u);
    if (*status != NFS4_OK) return *status;
  }
  return res->status;
}

nfs_resop4* result_of(COMPOUND4res* res, nfs_opnum4 op) {
  for (u_int i = 0; i < res->resarray.resarray_len; ++i) {
    if (res->resarray.resarray_val[i].resop == op) return &res->resarray.resarray_val[i];
  }
  return nullptr;
}

uint64_t Client::client_id() {
  if (have_client_id_) return client_id_;
  reset();
  std::string id =
      owner_ + "-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  keep_.push_back(id);
  nfs_argop4 op;
  std::memset(&op, 0, sizeof(op));
  op.argop = OP_SETCLIENTID;
  SETCLIENTID4args& a = op.nfs_argop4_u.opsetclientid;
  std::memcpy(a.client.verifier, id.data() + id.size() - NFS4_VERIFIER_SIZE, NFS4_VERIFIER_SIZE);
  a.client.id.id_len = static_cast<u_int>(keep_.back().size());
  a.client.id.id_val = keep_.back().data();
  static char netid[] = "tcp";
  static char addr[] = "0.0.0.0.0.0";  // no callbacks: no delegations are asked for
  a.callback.cb_program = 0;
  a.callback.cb_location.r_netid = netid;
  a.callback.cb_location.r_addr = addr;
  std::vector<nfs_argop4> ops{op};
  char confirm[NFS4_VERIFIER_SIZE] = {};
  int err = compound(ops, [&](COMPOUND4res* res) {
    if (res->status != NFS4_OK) return;
    const SETCLIENTID4resok& ok =
        res->resarray.resarray_val[0].nfs_resop4_u.opsetclientid.SETCLIENTID4res_u.resok4;
    client_id_ = ok.clientid;
    std::memcpy(confirm, ok.setclientid_confirm, sizeof(confirm));
  });
  if (err != NFS4_OK) fail(1, "SETCLIENTID: " + std::to_string(err));
  std::memset(&op, 0, sizeof(op));
  op.argop = OP_SETCLIENTID_CONFIRM;
  op.nfs_argop4_u.opsetclientid_confirm.clientid = client_id_;
  std::memcpy(op.nfs_argop4_u.opsetclientid_confirm.setclientid_confirm, confirm, sizeof(confirm));
  ops = {op};
  err = compound(ops, [](COMPOUND4res*) {});
  if (err != NFS4_OK) fail(1, "SETCLIENTID_CONFIRM: " + std::to_string(err));
  have_client_id_ = true;
  return client_id_;
}

std::string describe_attrs(const fattr4& attrs) {
  // Values follow in attribute order: type (u32), size (u64), fileid (u64).
  const char* p = attrs.attr_vals.attrlist4_val;
  if (attrs.attr_vals.attrlist4_len < 20) return "short attributes";
  const uint32_t type = xdr_u32(p);
  const uint64_t size = xdr_u64(p + 4);
  const uint64_t fileid = xdr_u64(p + 12);
  const char* tname = type == NF4REG ? "reg" : type == NF4DIR ? "dir" : "other";
  return "fileid=" + std::to_string(fileid) + " size=" + std::to_string(size) + " type=" + tname;
}

int cmd_fh_of(Client& c, const std::string& dir_fh, const std::vector<std::string>& names) {
  c.reset();
  std::vector<nfs_argop4> ops;
  if (dir_fh.empty()) {
    ops.push_back(c.putrootfh());
    for (const auto& part : split_path(c.export_path())) ops.push_back(c.lookup(part));
  } else {
    ops.push_back(c.putfh(dir_fh));
  }
  for (const auto& part : names) ops.push_back(c.lookup(part));
  ops.push_back(c.getfh());
  std::string out;
  int err = NFS4_OK;
  c.compound(ops, [&](COMPOUND4res* res) {
    err = first_error(res);
    if (err != NFS4_OK) return;
    nfs_resop4* r = result_of(res, OP_GETFH);
    if (r == nullptr) return;
    const nfs_fh4& fh = r->nfs_resop4_u.opgetfh.GETFH4res_u.resok4.object;
    out = to_hex(fh.nfs_fh4_val, fh.nfs_fh4_len);
  });
  if (err != NFS4_OK) fail(1, nfs4_error_name(err));
  std::printf("%s\n", out.c_str());
  return 0;
}

int cmd_getattr(Client& c, const std::string& fh) {
  c.reset();
  std::vector<nfs_argop4> ops{c.putfh(fh), c.getattr_basic()};
  std::string out;
  int err = NFS4_OK;
  c.compound(ops, [&](COMPOUND4res* res) {
    err = first_error(res);
    if (err != NFS4_OK) return;
    nfs_resop4* r = result_of(res, OP_GETATTR);
    if (r != nullptr)
      out = describe_attrs(r->nfs_resop4_u.opgetattr.GETATTR4res_u.resok4.obj_attributes);
  });
  if (err != NFS4_OK) fail(1, nfs4_error_name(err));
  std::printf("%s\n", out.c_str());
  return 0;
}

int cmd_read(Client& c, const std::string& fh) {
  std::string content;
  for (int round = 0; round < 1024; ++round) {  // at most 64 MiB
    c.reset();
    std::vector<nfs_argop4> ops{c.putfh(fh)};
    nfs_argop4 read;
    std::memset(&read, 0, sizeof(read));
    read.argop = OP_READ;  // the anonymous stateid (all zeros)
    read.nfs_argop4_u.opread.offset = content.size();
    read.nfs_argop4_u.opread.count = 65536;
    ops.push_back(read);
    int err = NFS4_OK;
    bool eof = true;
    c.compound(ops, [&](COMPOUND4res* res) {
      err = first_error(res);
      if (err != NFS4_OK) return;
      nfs_resop4* r = result_of(res, OP_READ);
      if (r == nullptr) return;
      const READ4resok& ok = r->nfs_resop4_u.opread.READ4res_u.resok4;
      content.append(ok.data.data_val, ok.data.data_len);
      eof = ok.eof != 0 || ok.data.data_len == 0;
    });
    if (err != NFS4_OK) fail(1, nfs4_error_name(err));
    if (eof) break;
  }
  std::fwrite(content.data(), 1, content.size(), stdout);
  return 0;
}

int cmd_readdir(Client& c, const std::string& fh) {
  std::vector<std::string> names;
  uint64_t cookie = 0;
  char verifier[NFS4_VERIFIER_SIZE] = {};
  for (int round = 0; round < 100'000; ++round) {
    c.reset();
    std::vector<nfs_argop4> ops{c.putfh(fh)};
    nfs_argop4 rd;
    std::memset(&rd, 0, sizeof(rd));
    rd.argop = OP_READDIR;
    rd.nfs_argop4_u.opreaddir.cookie = cookie;
    std::memcpy(rd.nfs_argop4_u.opreaddir.cookieverf, verifier, sizeof(verifier));
    rd.nfs_argop4_u.opreaddir.dircount = 8192;
    rd.nfs_argop4_u.opreaddir.maxcount = 32768;
    ops.push_back(rd);
    int err = NFS4_OK;
    bool eof = true;
    c.compound(ops, [&](COMPOUND4res* res) {
      err = first_error(res);
      if (err != NFS4_OK) return;
      nfs_resop4* r = result_of(res, OP_READDIR);
      if (r == nullptr) return;
      const READDIR4resok& ok = r->nfs_resop4_u.opreaddir.READDIR4res_u.resok4;
      std::memcpy(verifier, ok.cookieverf, sizeof(verifier));
      for (entry4* e = ok.reply.entries; e != nullptr; e = e->nextentry) {
        names.emplace_back(e->name.utf8string_val, e->name.utf8string_len);
        cookie = e->cookie;
      }
      eof = ok.reply.eof != 0 || ok.reply.entries == nullptr;
    });
    if (err != NFS4_OK) fail(1, nfs4_error_name(err));
    if (eof) break;
  }
  std::sort(names.begin(), names.end());
  for (const auto& n : names) std::printf("%s\n", n.c_str());
  return 0;
}

// OPEN(CLAIM_NULL, OPEN4_CREATE, UNCHECKED4) of PATH's last component in its directory, then
// WRITE `text` at 0 (if any) and CLOSE. `truncate` asks for size 0 in the create attributes.
// Returns NFS4_OK or the first error; the new or existing file's handle goes to *fh_out.
int open_create(Client& c, const std::string& path, const std::string& text, bool truncate,
                std::string* fh_out) {
  std::vector<std::string> parts = split_path(path);
  if (parts.empty()) fail(2, "create: empty path");
  const std::string name = parts.back();
  parts.pop_back();
  const uint64_t clientid = c.client_id();
  c.reset();
  std::vector<nfs_argop4> ops{c.putrootfh()};
  for (const auto& part : split_path(c.export_path())) ops.push_back(c.lookup(part));
  for (const auto& part : parts) ops.push_back(c.lookup(part));
  nfs_argop4 open = c.lookup(name);  // keeps the name alive; the op itself is rewritten below
  const component4 file = open.nfs_argop4_u.oplookup.objname;
  std::memset(&open, 0, sizeof(open));
  open.argop = OP_OPEN;
  OPEN4args& a = open.nfs_argop4_u.opopen;
  a.seqid = c.next_seqid();
  a.share_access = OPEN4_SHARE_ACCESS_BOTH;
  a.share_deny = OPEN4_SHARE_DENY_NONE;
  a.owner.clientid = clientid;
  std::string owner = c.owner();
  a.owner.owner.owner_len = static_cast<u_int>(owner.size());
  a.owner.owner.owner_val = owner.data();
  a.openhow.opentype = OPEN4_CREATE;
  a.openhow.openflag4_u.how.mode = UNCHECKED4;
  uint32_t size_mask[1] = {1u << FATTR4_SIZE};
  char zero_size[8] = {};
  if (truncate) {
    fattr4& attrs = a.openhow.openflag4_u.how.createhow4_u.createattrs;
    attrs.attrmask.bitmap4_len = 1;
    attrs.attrmask.bitmap4_val = size_mask;
    attrs.attr_vals.attrlist4_len = sizeof(zero_size);
    attrs.attr_vals.attrlist4_val = zero_size;
  }
  a.claim.claim = CLAIM_NULL;
  a.claim.open_claim4_u.file = file;
  ops.push_back(open);
  ops.push_back(c.getfh());
  stateid4 stateid;
  std::memset(&stateid, 0, sizeof(stateid));
  bool confirm = false;
  int err = c.compound(ops, [&](COMPOUND4res* res) {
    if (nfs_resop4* r = result_of(res, OP_OPEN);
        r != nullptr && r->nfs_resop4_u.opopen.status == NFS4_OK) {
      const OPEN4resok& ok = r->nfs_resop4_u.opopen.OPEN4res_u.resok4;
      stateid = ok.stateid;
      confirm = (ok.rflags & OPEN4_RESULT_CONFIRM) != 0;
    }
    if (nfs_resop4* r = result_of(res, OP_GETFH);
        r != nullptr && r->nfs_resop4_u.opgetfh.status == NFS4_OK) {
      const nfs_fh4& fh = r->nfs_resop4_u.opgetfh.GETFH4res_u.resok4.object;
      fh_out->assign(fh.nfs_fh4_val, fh.nfs_fh4_len);
    }
  });
  if (err != NFS4_OK) return err;
  if (confirm) {
    c.reset();
    ops = {c.putfh(*fh_out)};
    nfs_argop4 oc;
    std::memset(&oc, 0, sizeof(oc));
    oc.argop = OP_OPEN_CONFIRM;
    oc.nfs_argop4_u.opopen_confirm.open_stateid = stateid;
    oc.nfs_argop4_u.opopen_confirm.seqid = c.next_seqid();
    ops.push_back(oc);
    err = c.compound(ops, [&](COMPOUND4res* res) {
      if (nfs_resop4* r = result_of(res, OP_OPEN_CONFIRM);
          r != nullptr && r->nfs_resop4_u.opopen_confirm.status == NFS4_OK) {
        stateid = r->nfs_resop4_u.opopen_confirm.OPEN_CONFIRM4res_u.resok4.open_stateid;
      }
    });
    if (err != NFS4_OK) return err;
  }
  c.reset();
  ops = {c.putfh(*fh_out)};
  std::string data = text;
  if (!data.empty()) {
    nfs_argop4 w;
    std::memset(&w, 0, sizeof(w));
    w.argop = OP_WRITE;
    w.nfs_argop4_u.opwrite.stateid = stateid;
    w.nfs_argop4_u.opwrite.offset = 0;
    w.nfs_argop4_u.opwrite.stable = FILE_SYNC4;
    w.nfs_argop4_u.opwrite.data.data_len = static_cast<u_int>(data.size());
    w.nfs_argop4_u.opwrite.data.data_val = data.data();
    ops.push_back(w);
  }
  nfs_argop4 close;
  std::memset(&close, 0, sizeof(close));
  close.argop = OP_CLOSE;
  close.nfs_argop4_u.opclose.seqid = c.next_seqid();
  close.nfs_argop4_u.opclose.open_stateid = stateid;
  ops.push_back(close);
  int first = NFS4_OK;
  err = c.compound(ops, [&](COMPOUND4res* res) { first = first_error(res); });
  return err != NFS4_OK ? first : NFS4_OK;
}

std::string nfs_path(const std::string& rel) {
  return rel.starts_with("/") ? rel : "/" + rel;
}

// Path operations: 0 or -errno.
int cat_file(nfs_context* nfs, const std::string& path, std::string* out) {
  nfsfh* fh = nullptr;
  if (int rc = nfs_open(nfs, nfs_path(path).c_str(), O_RDONLY, &fh); rc < 0) return rc;
  char buf[65536];
  int rc = 0;
  for (int round = 0; round < 1024; ++round) {
    const int n = nfs_pread(nfs, fh, out->size(), sizeof(buf), buf);
    if (n < 0) {
      rc = n;
      break;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  nfs_close(nfs, fh);
  return rc;
}

int list_dir(nfs_context* nfs, const std::string& path, std::vector<std::string>* names) {
  nfsdir* dir = nullptr;
  if (int rc = nfs_opendir(nfs, nfs_path(path).c_str(), &dir); rc < 0) return rc;
  while (nfsdirent* e = nfs_readdir(nfs, dir)) {
    const std::string n = e->name;
    if (n != "." && n != "..") names->push_back(n);
  }
  nfs_closedir(nfs, dir);
  std::sort(names->begin(), names->end());
  return 0;
}

int check(nfs_context* nfs, int rc) {
  if (rc < 0) fail(1, errno_name(-rc) + " (" + nfs_get_error(nfs) + ")");
  return 0;
}

std::string bench_name(int i, bool other) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), other ? "F%05d" : "f%05d", i);
  return buf;
}

int run_bench(Client& c, const std::string& cmd, const std::string& dir, int n,
              const std::string& mode) {
  nfs_context* nfs = c.nfs();
  int errors = 0;
  size_t entries = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    int rc = 0;
    if (cmd == "bench-create") {
      std::string fh;
      rc = open_create(c, dir + "/" + bench_name(i, false), "payload-" + std::to_string(i), false,
                       &fh) == NFS4_OK
               ? 0
               : -EIO;
    } else if (cmd == "bench-read") {
      std::string content;
      rc = cat_file(nfs, dir + "/" + bench_name(i, false), &content);
    } else if (cmd == "bench-lookup") {
      nfs_stat_64 st;
      rc = nfs_stat64(nfs, nfs_path(dir + "/" + bench_name(i, mode == "other")).c_str(), &st);
    } else if (cmd == "bench-list") {
      std::vector<std::string> names;
      rc = list_dir(nfs, dir, &names);
      entries = names.size();
    } else {
      fail(2, "unknown bench " + cmd);
    }
    if (rc < 0) ++errors;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("ops=%d errors=%d seconds=%.6f entries=%zu\n", n, errors, seconds, entries);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) fail(2, "usage: foldfs_nfs_probe HOST PORT EXPORT COMMAND ARGS...");
  const std::vector<std::string> args(argv + 5, argv + argc);
  const std::string cmd = argv[4];
  auto need = [&](size_t n) {
    if (args.size() != n) fail(2, cmd + ": expects " + std::to_string(n) + " arguments");
  };
  Client c(argv[1], argv[2], argv[3]);
  nfs_context* nfs = c.nfs();
  if (cmd == "fh") {
    need(1);
    return cmd_fh_of(c, "", split_path(args[0]));
  }
  if (cmd == "lookup") {
    need(2);
    return cmd_fh_of(c, from_hex(args[0]), {args[1]});
  }
  if (cmd == "getattr") {
    need(1);
    return cmd_getattr(c, from_hex(args[0]));
  }
  if (cmd == "read") {
    need(1);
    return cmd_read(c, from_hex(args[0]));
  }
  if (cmd == "readdir") {
    need(1);
    return cmd_readdir(c, from_hex(args[0]));
  }
  if (cmd == "create" || cmd == "put") {
    if (args.empty() || args.size() > 2 || (cmd == "put" && args.size() != 2)) {
      fail(2, cmd + ": expects PATH" + (cmd == "put" ? " TEXT" : " [TEXT]"));
    }
    std::string fh;
    const int err = open_create(c, args[0], args.size() == 2 ? args[1] : "", cmd == "put", &fh);
    if (err != NFS4_OK) fail(1, nfs4_error_name(err));
    std::printf("%s\n", to_hex(fh.data(), fh.size()).c_str());
    return 0;
  }
  if (cmd == "cat") {
    need(1);
    std::string content;
    check(nfs, cat_file(nfs, args[0], &content));
    std::fwrite(content.data(), 1, content.size(), stdout);
    return 0;
  }
  if (cmd == "ls") {
    need(1);
    std::vector<std::string> names;
    check(nfs, list_dir(nfs, args[0], &names));
    for (const auto& n : names) std::printf("%s\n", n.c_str());
    return 0;
  }
  if (cmd == "stat") {
    need(1);
    nfs_stat_64 st;
    check(nfs, nfs_stat64(nfs, nfs_path(args[0]).c_str(), &st));
    const char* type = S_ISREG(st.nfs_mode) ? "reg" : S_ISDIR(st.nfs_mode) ? "dir" : "other";
    std::printf("fileid=%llu size=%llu type=%s\n", static_cast<unsigned long long>(st.nfs_ino),
                static_cast<unsigned long long>(st.nfs_size), type);
    return 0;
  }
  if (cmd == "mv") {
    need(2);
    return check(nfs, nfs_rename(nfs, nfs_path(args[0]).c_str(), nfs_path(args[1]).c_str()));
  }
  if (cmd == "rm") {
    need(1);
    return check(nfs, nfs_unlink(nfs, nfs_path(args[0]).c_str()));
  }
  if (cmd == "mkdir") {
    need(1);
    return check(nfs, nfs_mkdir(nfs, nfs_path(args[0]).c_str()));
  }
  if (cmd.starts_with("bench-")) {
    if (args.size() < 2 || args.size() > 3) fail(2, cmd + ": expects DIR N [exact|other]");
    return run_bench(c, cmd, args[0], std::stoi(args[1]), args.size() == 3 ? args[2] : "exact");
  }
  fail(2, "unknown command " + cmd);
}
