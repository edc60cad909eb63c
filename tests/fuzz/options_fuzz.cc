// libFuzzer target over the mount-option parser (parse_mount_options), input = the option list.
//
// Checks, for any byte string:
//  - no crash or sanitizer report;
//  - it is accepted exactly when an independent reference grammar accepts it (README's option
//    table: casefold=flag|all, outside=watch|revalidate, uring=auto|on|off, strict, ro,
//    allow_other, debug_no_invalidation, device=/<anything but a comma>, lowerdir=<overlayfs list
//    of non-empty trees>, upperdir= and workdir=<anything but a comma, not empty>,
//    *_timeout=<decimal digits
//    and dots, at most 32 characters, at most 1e9>, generic mount(8) options and x-* ignored, no
//    empty item), and yields the same Options, starting from the defaults and from a non-default
//    base (options apply on top);
//  - a rejected list always leaves a non-empty message, the same one every time;
//  - an accepted list yields valid Options (timeouts finite, >= 0, <= 1e9; enums in range; the
//    fields no option names untouched), the same ones every time; its canonical rendering
//    parses back to exactly those Options (doubles bit for bit) and renders identically;
//  - parsing "L1,L2" equals parsing L2 on top of the result of L1.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fs/options.h"

namespace {

using foldfs::fs::CasefoldMode;
using foldfs::fs::Options;
using foldfs::fs::OutsideChanges;
using foldfs::fs::Passthrough;
using foldfs::fs::Uring;
using foldfs::fs::Xattrs;

[[noreturn]] void fail(std::string_view list, const char* what) {
  std::fprintf(stderr, "options_fuzz: %s\nlist (%zu bytes): ", what, list.size());
  for (unsigned char c : list) {
    if (c >= 0x20 && c < 0x7f)
      std::fputc(c, stderr);
    else
      std::fprintf(stderr, "\\x%02x", c);
  }
  std::fputc('\n', stderr);
  std::abort();
}

bool same_double(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

bool same(const Options& a, const Options& b) {
  return a.casefold == b.casefold && a.strict == b.strict && a.read_only == b.read_only &&
         a.allow_other == b.allow_other && a.outside == b.outside && a.uring == b.uring &&
         a.xattrs == b.xattrs && a.passthrough == b.passthrough &&
         same_double(a.entry_timeout, b.entry_timeout) &&
         same_double(a.attr_timeout, b.attr_timeout) &&
         same_double(a.negative_timeout, b.negative_timeout) &&
         a.fd_cache_capacity == b.fd_cache_capacity && a.index_budget == b.index_budget &&
         a.debug_no_invalidation == b.debug_no_invalidation && a.mount_flags == b.mount_flags &&
         a.device == b.device && a.casefold_given == b.casefold_given &&
         a.lower_trees == b.lower_trees && a.upper_tree == b.upper_tree && a.work_dir == b.work_dir;
}

// --- the reference grammar -------------------------------------------------------------------

// Directions to mount(8): accepted (with or without a value) and ignored.
constexpr std::string_view kGeneric[] = {
    "rw",     "defaults", "auto",  "noauto", "user", "nouser", "users",
    "nofail", "_netdev",  "owner", "group",  "loud", "silent", "comment",
};
// Flags of the mount: recorded in order, never with a value.
constexpr std::string_view kMountFlags[] = {
    "dev",       "nodev",       "suid",     "nosuid",      "exec",     "noexec",
    "atime",     "noatime",     "relatime", "strictatime", "diratime", "nodiratime",
    "symfollow", "nosymfollow", "sync",     "async",       "dirsync",
};

// Seconds: 1 to 32 characters, digits with at most one dot and at least one digit, at most 1e9.
bool ref_seconds(std::string_view text, double* out) {
  if (text.empty() || text.size() > 32) return false;
  int dots = 0, digits = 0;
  for (char c : text) {
    if (c == '.')
      ++dots;
    else if (c >= '0' && c <= '9')
      ++digits;
    else
      return false;
  }
  if (dots > 1 || digits == 0) return false;
  const std::string s(text);
  const double v = std::strtod(s.c_str(), nullptr);  // a plain decimal: strtod reads it all
  if (!(v <= 1e9)) return false;
  *out = v;
  return true;
}

// overlayfs's list of trees: ':' separates, '\\' takes the next character as it is (a '\\' at
// the end stands for itself); no tree may be empty.
bool ref_trees(std::string_view value, std::vector<std::string>* trees) {
  std::vector<std::string> out{std::string()};
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size()) {
      out.back() += value[++i];
    } else if (value[i] == ':') {
      out.emplace_back();
    } else {
      out.back() += value[i];
    }
  }
  for (const auto& t : out) {
    if (t.empty()) return false;
  }
  *trees = std::move(out);
  return true;
}

bool ref_item(std::string_view item, Options* o) {
  const size_t eq = item.find('=');
  const std::string_view name = item.substr(0, eq);
  const bool has_value = eq != std::string_view::npos;
  const std::string_view value = has_value ? item.substr(eq + 1) : std::string_view();
  if (name == "casefold" && has_value && (value == "flag" || value == "all")) {
    o->casefold = value == "all" ? CasefoldMode::kAll : CasefoldMode::kFlag;
    o->casefold_given = true;
    return true;
  }
  if (name == "lowerdir" && has_value) return ref_trees(value, &o->lower_trees);
  if ((name == "upperdir" || name == "workdir") && has_value && !value.empty()) {
    (name == "upperdir" ? o->upper_tree : o->work_dir) = std::string(value);
    return true;
  }
  if (name == "outside" && has_value && (value == "watch" || value == "revalidate")) {
    o->outside = value == "watch" ? OutsideChanges::kWatch : OutsideChanges::kRevalidate;
    return true;
  }
  if (name == "uring" && has_value && (value == "auto" || value == "on" || value == "off")) {
    o->uring = value == "on" ? Uring::kOn : value == "off" ? Uring::kOff : Uring::kAuto;
    return true;
  }
  if (name == "xattr" && has_value && (value == "passthrough" || value == "nosys")) {
    o->xattrs = value == "nosys" ? Xattrs::kNosys : Xattrs::kPassthrough;
    return true;
  }
  if (name == "passthrough" && has_value && (value == "auto" || value == "off")) {
    o->passthrough = value == "auto" ? Passthrough::kAuto : Passthrough::kOff;
    return true;
  }
  // fd_cache: "auto", or 1 to 9 decimal digits worth 16 to 2^20.
  if (name == "fd_cache" && has_value && value == "auto") {
    o->fd_cache_capacity = Options::kAutoFdCache;
    return true;
  }
  if (name == "fd_cache" && has_value && !value.empty() && value.size() <= 9) {
    size_t n = 0;
    for (char c : value) {
      if (c < '0' || c > '9') return false;
      n = n * 10 + static_cast<size_t>(c - '0');
    }
    if (n < 16 || n > (1u << 20)) return false;
    o->fd_cache_capacity = n;
    return true;
  }
  if (name == "device" && has_value && !value.empty() && value[0] == '/') {
    o->device = std::string(value);
    return true;
  }
  if (!has_value) {
    if (name == "strict") return o->strict = true;
    if (name == "ro") return o->read_only = true;
    if (name == "allow_other") return o->allow_other = true;
    if (name == "debug_no_invalidation") return o->debug_no_invalidation = true;
  }
  if (has_value && name == "entry_timeout") return ref_seconds(value, &o->entry_timeout);
  if (has_value && name == "attr_timeout") return ref_seconds(value, &o->attr_timeout);
  if (has_value && name == "negative_timeout") return ref_seconds(value, &o->negative_timeout);
  if (name.substr(0, 2) == "x-") return true;
  for (auto g : kGeneric) {
    if (name == g) return true;
  }
  for (auto f : kMountFlags) {
    if (name != f) continue;
    if (has_value) return false;
    o->mount_flags.emplace_back(name);
    return true;
  }
  return false;
}

bool ref_parse(std::string_view list, Options* o) {
  if (list.empty()) return true;
  size_t start = 0;
  for (;;) {
    const size_t comma = list.find(',', start);
    const std::string_view item = list.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (item.empty() || !ref_item(item, o)) return false;
    if (comma == std::string_view::npos) return true;
    start = comma + 1;
  }
}

// --- canonical rendering ------------------------------------------------------------------------

std::string seconds_text(std::string_view list, double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  if (r.ec != std::errc()) fail(list, "to_chars failed");
  std::string s(buf, r.ptr);
  // The parser takes at most 32 characters; ".5" is as good as "0.5".
  if (s.size() > 32 && s.substr(0, 2) == "0.") s.erase(0, 1);
  if (s.size() > 32) fail(list, "an accepted timeout has no rendering of at most 32 characters");
  return s;
}

std::string canonical(std::string_view list, const Options& o) {
  std::string out = o.outside == OutsideChanges::kWatch ? "outside=watch" : "outside=revalidate";
  if (o.casefold_given)
    out += o.casefold == CasefoldMode::kAll ? ",casefold=all" : ",casefold=flag";
  if (!o.lower_trees.empty()) {
    out += ",lowerdir=";
    for (size_t k = 0; k < o.lower_trees.size(); ++k) {
      if (k) out += ':';
      for (char c : o.lower_trees[k]) {
        if (c == ':' || c == '\\') out += '\\';
        out += c;
      }
    }
  }
  if (!o.upper_tree.empty()) out += ",upperdir=" + o.upper_tree;
  if (!o.work_dir.empty()) out += ",workdir=" + o.work_dir;
  out += o.uring == Uring::kOn    ? ",uring=on"
         : o.uring == Uring::kOff ? ",uring=off"
                                  : ",uring=auto";
  if (o.xattrs == Xattrs::kNosys) out += ",xattr=nosys";
  out += o.passthrough == Passthrough::kAuto ? ",passthrough=auto" : ",passthrough=off";
  if (o.fd_cache_capacity != Options::kAutoFdCache) {
    out += ",fd_cache=" + std::to_string(o.fd_cache_capacity);
  }
  if (o.strict) out += ",strict";
  if (o.read_only) out += ",ro";
  if (o.allow_other) out += ",allow_other";
  if (o.debug_no_invalidation) out += ",debug_no_invalidation";
  if (!o.device.empty()) out += ",device=" + o.device;
  // A timeout never given stays Options::kAutoTimeout, which has no rendering.
  auto timeout = [&](const char* name, double t) {
    if (t != Options::kAutoTimeout) out += std::string(",") + name + "=" + seconds_text(list, t);
  };
  timeout("entry_timeout", o.entry_timeout);
  timeout("attr_timeout", o.attr_timeout);
  timeout("negative_timeout", o.negative_timeout);
  for (const auto& f : o.mount_flags) out += "," + f;
  return out;
}

void check_valid(std::string_view list, const Options& o, const Options& base) {
  for (double t : {o.entry_timeout, o.attr_timeout, o.negative_timeout}) {
    if (t == Options::kAutoTimeout) continue;  // not given: the filesystem chooses
    if (!std::isfinite(t) || t < 0 || t > 1e9) fail(list, "accepted a timeout out of range");
  }
  if (o.casefold != CasefoldMode::kFlag && o.casefold != CasefoldMode::kAll) {
    fail(list, "casefold mode out of range");
  }
  if (o.outside != OutsideChanges::kWatch && o.outside != OutsideChanges::kRevalidate) {
    fail(list, "outside mode out of range");
  }
  if (o.uring != Uring::kAuto && o.uring != Uring::kOn && o.uring != Uring::kOff) {
    fail(list, "uring mode out of range");
  }
  if (o.xattrs != Xattrs::kPassthrough && o.xattrs != Xattrs::kNosys) {
    fail(list, "xattr mode out of range");
  }
  if (o.passthrough != Passthrough::kAuto && o.passthrough != Passthrough::kOff) {
    fail(list, "passthrough mode out of range");
  }
  if (o.fd_cache_capacity != base.fd_cache_capacity &&
      (list.find("fd_cache=") == std::string_view::npos ||
       (o.fd_cache_capacity != Options::kAutoFdCache &&
        (o.fd_cache_capacity < 16 || o.fd_cache_capacity > (1u << 20))))) {
    fail(list, "fd_cache changed without a valid fd_cache option");
  }
  if (o.index_budget != base.index_budget) {
    fail(list, "an option changed a field no option names");
  }
}

// Parses `list` on top of `base` and checks it against the reference. Returns acceptance.
bool check_against_reference(std::string_view list, const Options& base, Options* result) {
  Options got = base;
  std::string error;
  const bool ok = foldfs::fs::parse_mount_options(list, &got, &error);
  Options want = base;
  const bool want_ok = ref_parse(list, &want);
  if (ok != want_ok)
    fail(list, ok ? "accepted a list the grammar rejects" : "rejected a valid list");
  if (!ok) {
    if (error.empty()) fail(list, "rejected without a message");
    Options again = base;
    std::string error2;
    if (foldfs::fs::parse_mount_options(list, &again, &error2) || error2 != error) {
      fail(list, "rejection is not deterministic");
    }
    return false;
  }
  if (!same(got, want)) fail(list, "accepted with other values than the grammar's");
  check_valid(list, got, base);
  Options again = base;
  std::string error2;
  if (!foldfs::fs::parse_mount_options(list, &again, &error2) || !same(again, got)) {
    fail(list, "acceptance is not deterministic");
  }
  *result = got;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view list(reinterpret_cast<const char*>(data), size);

  Options defaults;
  Options parsed;
  const bool ok = check_against_reference(list, defaults, &parsed);

  // On top of a base with every field away from its default.
  Options base;
  base.casefold = CasefoldMode::kAll;
  base.outside = OutsideChanges::kRevalidate;
  base.uring = Uring::kOff;
  base.xattrs = Xattrs::kNosys;
  base.passthrough = Passthrough::kOff;
  base.strict = base.read_only = base.allow_other = base.debug_no_invalidation = true;
  base.entry_timeout = 7.25;
  base.attr_timeout = 0;
  base.negative_timeout = 1e9;
  base.fd_cache_capacity = 3;
  base.index_budget = 5;
  Options on_base;
  if (check_against_reference(list, base, &on_base) != ok)
    fail(list, "acceptance depends on the base");

  if (ok) {
    // Canonical rendering: parses back to the same Options and renders the same.
    const std::string text = canonical(list, parsed);
    Options back;
    std::string error;
    if (!foldfs::fs::parse_mount_options(text, &back, &error)) {
      fail(list, ("canonical rendering rejected: " + text + ": " + error).c_str());
    }
    if (!same(back, parsed))
      fail(list, ("canonical rendering reads back differently: " + text).c_str());
    if (canonical(list, back) != text) fail(list, "canonical rendering is not stable");
  }

  // "L1,L2" is L2 applied on top of L1 (split at the first comma past the middle).
  const size_t comma = list.find(',', list.size() / 2);
  if (comma != std::string_view::npos) {
    const std::string_view l1 = list.substr(0, comma);
    const std::string_view l2 = list.substr(comma + 1);
    Options seq;
    std::string error;
    const bool ok1 = foldfs::fs::parse_mount_options(l1, &seq, &error);
    const bool ok2 =
        ok1 && !l1.empty() && !l2.empty() && foldfs::fs::parse_mount_options(l2, &seq, &error);
    if (ok2 != ok) fail(list, "a list and its two halves disagree on acceptance");
    if (ok && !same(seq, parsed)) fail(list, "a list is not its second half on top of its first");
  }
  return 0;
}
