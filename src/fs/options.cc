#include "fs/options.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <utility>

namespace foldfs::fs {
namespace {

// Directions to mount(8) and fstab, not to the filesystem: accepted and ignored, as every
// filesystem does. ("rw" is the default; "ro" is foldfs's own.)
constexpr std::string_view kIgnored[] = {
    "rw",     "defaults", "auto",  "noauto", "user", "nouser", "users",
    "nofail", "_netdev",  "owner", "group",  "loud", "silent", "comment",
};

// Flags of the mount itself, which the kernel applies to the foldfs mount as to any other
// (see kMountFlags in options.h).
constexpr std::string_view kMountFlags[] = {
    "dev",       "nodev",       "suid",     "nosuid",      "exec",     "noexec",
    "atime",     "noatime",     "relatime", "strictatime", "diratime", "nodiratime",
    "symfollow", "nosymfollow", "sync",     "async",       "dirsync",
};

// Refused, with the reason.
struct Refused {
  std::string_view name;
  std::string_view why;
};
constexpr Refused kRefused[] = {
    {"lazytime", "FUSE filesystems keep no timestamps in memory to write lazily"},
    {"nolazytime", "FUSE filesystems keep no timestamps in memory to write lazily"},
    {"mand", "mandatory locks were removed from Linux"},
};

bool parse_seconds(std::string_view text, double* out) {
  if (text.empty() || text.size() > 32) return false;
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size() || !std::isfinite(v) || v < 0 || v > 1e9) {
    return false;
  }
  // Reject hex, inf and other strtod forms: plain decimal digits and one dot only.
  for (char c : s) {
    if (!(c >= '0' && c <= '9') && c != '.') return false;
  }
  *out = v;
  return true;
}

constexpr size_t kMaxFdCache = 1u << 20;

// A decimal count in [min, max].
bool parse_count(std::string_view text, size_t min, size_t max, size_t* out) {
  if (text.empty() || text.size() > 9) return false;
  size_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  if (v < min || v > max) return false;
  *out = v;
  return true;
}

bool is_ignored(std::string_view name) {
  if (name.substr(0, 2) == "x-") return true;
  for (auto i : kIgnored) {
    if (name == i) return true;
  }
  return false;
}

// An option whose value is one of a few words, each naming one setting: sets it, or false.
template <typename Setting>
bool choice(std::string_view value, Setting* field,
            std::initializer_list<std::pair<std::string_view, Setting>> words) {
  for (const auto& [word, setting] : words) {
    if (value == word) {
      *field = setting;
      return true;
    }
  }
  return false;
}

bool apply_one(std::string_view opt, Options* out, std::string* error) {
  const size_t eq = opt.find('=');
  const std::string_view name = opt.substr(0, eq);
  const std::string_view value = eq == std::string_view::npos ? "" : opt.substr(eq + 1);
  const bool has_value = eq != std::string_view::npos;
  auto bad_value = [&] {
    *error = "bad value for " + std::string(name) + ": '" + std::string(value) + "'";
    return false;
  };
  auto flag = [&](bool* field) {
    if (has_value) return bad_value();
    *field = true;
    return true;
  };
  if (name == "casefold") {
    out->casefold_given = true;
    return choice(value, &out->casefold,
                  {{"flag", CasefoldMode::kFlag}, {"all", CasefoldMode::kAll}}) ||
           bad_value();
  }
  if (name == "outside") {
    return choice(
               value, &out->outside,
               {{"watch", OutsideChanges::kWatch}, {"revalidate", OutsideChanges::kRevalidate}}) ||
           bad_value();
  }
  if (name == "uring")
    return choice(value, &out->uring,
                  {{"auto", Uring::kAuto}, {"on", Uring::kOn}, {"off", Uring::kOff}}) ||
           bad_value();
  if (name == "xattr")
    return choice(value, &out->xattrs,
                  {{"passthrough", Xattrs::kPassthrough}, {"nosys", Xattrs::kNosys}}) ||
           bad_value();
  if (name == "passthrough") {
    return choice(value, &out->passthrough,
                  {{"auto", Passthrough::kAuto}, {"off", Passthrough::kOff}}) ||
           bad_value();
  }
  if (name == "fd_cache") {
    if (value == "auto") {
      out->fd_cache_capacity = Options::kAutoFdCache;
      return true;
    }
    size_t n = 0;
    if (!parse_count(value, 16, kMaxFdCache, &n)) return bad_value();
    out->fd_cache_capacity = n;
    return true;
  }
  if (name == "device") {
    if (value.empty() || value.front() != '/') return bad_value();
    out->device = std::string(value);
    return true;
  }
  if (name == "lowerdir") {
    out->lower_trees = split_tree_list(value);
    for (const auto& t : out->lower_trees) {
      if (t.empty()) return bad_value();
    }
    return true;
  }
  if (name == "upperdir" || name == "workdir") {
    if (value.empty()) return bad_value();
    (name == "upperdir" ? out->upper_tree : out->work_dir) = std::string(value);
    return true;
  }
  if (name == "strict") return flag(&out->strict);
  if (name == "ro") return flag(&out->read_only);
  if (name == "allow_other") return flag(&out->allow_other);
  if (name == "debug_no_invalidation") return flag(&out->debug_no_invalidation);
  if (name == "entry_timeout" || name == "attr_timeout" || name == "negative_timeout") {
    double* field = name == "entry_timeout"  ? &out->entry_timeout
                    : name == "attr_timeout" ? &out->attr_timeout
                                             : &out->negative_timeout;
    return parse_seconds(value, field) ? true : bad_value();
  }
  if (is_ignored(name)) return true;
  for (auto f : kMountFlags) {
    if (name != f) continue;
    if (has_value) return bad_value();
    out->mount_flags.emplace_back(name);
    return true;
  }
  for (const Refused& r : kRefused) {
    if (name != r.name) continue;
    *error = "option '" + std::string(name) + "' is not supported: " + std::string(r.why);
    return false;
  }
  *error = "unknown option '" + std::string(opt) + "'";
  return false;
}

}  // namespace

bool parse_mount_options(std::string_view list, Options* out, std::string* error) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const std::string_view opt = list.substr(0, comma);
    if (opt.empty()) {
      *error = "empty option in list";
      return false;
    }
    if (!apply_one(opt, out, error)) return false;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
    if (list.empty()) {
      *error = "empty option in list";
      return false;
    }
  }
  return true;
}

std::vector<std::string> split_tree_list(std::string_view list) {
  std::vector<std::string> out(1);
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i] == '\\' && i + 1 < list.size())
      out.back().push_back(list[++i]);
    else if (list[i] == ':')
      out.emplace_back();
    else
      out.back().push_back(list[i]);
  }
  return out;
}

size_t auto_fd_cache_capacity(uint64_t open_files) {
  constexpr uint64_t kReserved = 1024, kMin = 128, kMax = 65536;
  const uint64_t spare = open_files > kReserved ? (open_files - kReserved) / 2 : 0;
  return static_cast<size_t>(std::clamp(spare, kMin, kMax));
}

size_t fd_cache_capacity_for(const Options& options, uint64_t open_files) {
  return options.fd_cache_capacity == Options::kAutoFdCache ? auto_fd_cache_capacity(open_files)
                                                            : options.fd_cache_capacity;
}

}  // namespace foldfs::fs
