#include "reliability_util.h"

#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <linux/fs.h>
#include <pwd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace foldfs::itest {

long env_long(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (end && *end == 0) ? n : fallback;
}

void report_figure(const std::string& name, const std::string& value) {
  std::printf("figure: %s = %s\n", name.c_str(), value.c_str());
  std::fflush(stdout);
}
void report_figure(const std::string& name, long long value) {
  report_figure(name, std::to_string(value));
}

std::string content_hash(std::string_view bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// ---- callers --------------------------------------------------------------------------------

std::string errno_text(int e) {
  if (e == 0) return "OK";
  const char* n = ::strerrorname_np(e);
  return n ? n : "E" + std::to_string(e);
}

UnusedIds::UnusedIds() {
  // Spread concurrent test processes apart; every candidate is still checked.
  const unsigned base = 61000 + static_cast<unsigned>(::getpid() % 500) * 8;
  next_uid_ = base;
  next_gid_ = base;
}

uid_t UnusedIds::uid() {
  while (::getpwuid(next_uid_) != nullptr) ++next_uid_;
  return next_uid_++;
}

gid_t UnusedIds::gid() {
  while (::getgrgid(next_gid_) != nullptr) ++next_gid_;
  return next_gid_++;
}

// ---- snapshots ------------------------------------------------------------------------------

namespace {

std::string describe_entry(const std::string& path, const struct stat& st) {
  std::ostringstream os;
  os << "mode=0" << std::oct << st.st_mode << std::dec << " uid=" << st.st_uid
     << " gid=" << st.st_gid << " size=" << st.st_size << " mtime=" << st.st_mtim.tv_sec << "."
     << st.st_mtim.tv_nsec << " ctime=" << st.st_ctim.tv_sec << "." << st.st_ctim.tv_nsec
     << " nlink=" << st.st_nlink;
  if (S_ISREG(st.st_mode)) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
    std::string content;
    if (fd >= 0) {
      char buf[65536];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) content.append(buf, static_cast<size_t>(n));
      ::close(fd);
      os << " content=" << content_hash(content);
    } else {
      os << " content=<" << std::strerror(errno) << ">";
    }
  } else if (S_ISLNK(st.st_mode)) {
    char buf[4096];
    const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
    os << " target=" << (n >= 0 ? std::string(buf, static_cast<size_t>(n)) : "<error>");
  }
  char names[65536];
  const ssize_t n = ::llistxattr(path.c_str(), names, sizeof names);
  if (n > 0) {
    std::vector<std::string> list;
    for (ssize_t i = 0; i < n;) {
      std::string name(names + i);
      i += static_cast<ssize_t>(name.size()) + 1;
      char value[65536];
      const ssize_t v = ::lgetxattr(path.c_str(), name.c_str(), value, sizeof value);
      list.push_back(name + "=" +
                     (v >= 0 ? content_hash(std::string_view(value, static_cast<size_t>(v)))
                             : std::string("<error>")));
    }
    std::sort(list.begin(), list.end());
    os << " xattrs=" << join(list, ",");
  }
  return os.str();
}

thread_local std::map<std::string, std::string>* g_snapshot = nullptr;

}  // namespace

TreeSnapshot::TreeSnapshot(const std::string& root, bool recursive)
    : root_(root), recursive_(recursive), entries_(take(root, recursive)) {}

std::map<std::string, std::string> TreeSnapshot::take(const std::string& root, bool recursive) {
  std::map<std::string, std::string> out;
  struct stat st;
  if (::lstat(root.c_str(), &st) != 0) {
    out[root] = std::string("<missing: ") + std::strerror(errno) + ">";
    return out;
  }
  if (!recursive) {
    out[root] = describe_entry(root, st);
    return out;
  }
  g_snapshot = &out;
  ::nftw(
      root.c_str(),
      [](const char* p, const struct stat* s, int type, struct FTW*) -> int {
        if (type == FTW_NS) {
          (*g_snapshot)[p] = "<stat failed>";
        } else {
          (*g_snapshot)[p] = describe_entry(p, *s);
        }
        return 0;
      },
      32, FTW_PHYS | FTW_MOUNT);
  g_snapshot = nullptr;
  return out;
}

::testing::AssertionResult TreeSnapshot::Unchanged() const {
  const auto now = take(root_, recursive_);
  std::ostringstream diff;
  bool same = true;
  for (const auto& [path, was] : entries_) {
    auto it = now.find(path);
    if (it == now.end()) {
      same = false;
      diff << "\n  gone: " << printable(path) << " (was " << was << ")";
    } else if (it->second != was) {
      same = false;
      diff << "\n  changed: " << printable(path) << "\n    was " << was << "\n    now "
           << it->second;
    }
  }
  for (const auto& [path, is] : now) {
    if (!entries_.count(path)) {
      same = false;
      diff << "\n  new: " << printable(path) << " (" << is << ")";
    }
  }
  if (same) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "outside the backing tree, " << root_ << " changed:" << diff.str();
}

// ---- backing filesystems --------------------------------------------------------------------

std::unique_ptr<BackingFs> BackingFs::Tmpfs(Mount& m, const std::string& opts) {
  std::unique_ptr<BackingFs> fs(new BackingFs(m));
  RunResult r =
      run({"mount", "-t", "tmpfs", "-o", "mode=0755," + opts, "foldfs-it-tmpfs", m.backing()});
  if (!r.ok()) {
    fs->error_ = r.describe();
    return fs;
  }
  fs->ok_ = true;
  return fs;
}

std::unique_ptr<BackingFs> BackingFs::Command(Mount& m, const std::vector<std::string>& argv) {
  std::unique_ptr<BackingFs> fs(new BackingFs(m));
  RunResult r = run(argv);
  if (!r.ok()) {
    fs->error_ = r.describe();
    return fs;
  }
  fs->ok_ = true;
  return fs;
}

std::unique_ptr<BackingFs> BackingFs::Ext4(Mount& m, int megabytes,
                                           const std::vector<std::string>& mkfs_args,
                                           const std::string& mount_opts) {
  std::unique_ptr<BackingFs> fs(new BackingFs(m));
  fs->image_ = m.tpath("backing.ext4");
  fs->mount_opts_ = mount_opts;
  const int fd = ::open(fs->image_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(megabytes) << 20) != 0) {
    fs->error_ = std::string("creating the image: ") + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return fs;
  }
  ::close(fd);
  std::vector<std::string> mkfs = {"mkfs.ext4", "-F", "-q"};
  mkfs.insert(mkfs.end(), mkfs_args.begin(), mkfs_args.end());
  mkfs.push_back(fs->image_);
  RunResult r = run(mkfs, std::chrono::seconds(120));
  if (!r.ok()) {
    fs->error_ = r.describe();
    return fs;
  }
  std::string opts = "loop";
  if (!mount_opts.empty()) opts += "," + mount_opts;
  r = run({"mount", "-t", "ext4", "-o", opts, fs->image_, m.backing()});
  if (!r.ok()) {
    fs->error_ = r.describe();
    return fs;
  }
  ::chmod(m.backing().c_str(), 0755);
  fs->ok_ = true;
  return fs;
}

::testing::AssertionResult BackingFs::Remount(const std::string& opts) {
  RunResult r = run({"mount", "-o", "remount," + opts, m_.backing()});
  if (!r.ok()) return ::testing::AssertionFailure() << r;
  return ::testing::AssertionSuccess();
}

void BackingFs::teardown() {
  if (m_.mounted()) {
    ::testing::AssertionResult u = m_.unmount();
    if (!u) {
      ADD_FAILURE() << "unmounting foldfs before its backing fs: " << u.message();
      if (m_.mounted()) run({"umount", "-l", m_.mnt()});
    }
  }
  while (is_mount_point(m_.backing())) {
    RunResult r = run({"umount", m_.backing()});
    if (!r.ok()) {
      ADD_FAILURE() << "unmounting the backing fs: " << r;
      run({"umount", "-l", m_.backing()});
      break;
    }
  }
}

::testing::AssertionResult BackingFs::CycleImage(std::string* fsck_report) {
  if (image_.empty()) return ::testing::AssertionFailure() << "not an image";
  teardown();
  if (is_mount_point(m_.backing()))
    return ::testing::AssertionFailure() << "the backing fs is still mounted";
  RunResult f = run({"e2fsck", "-f", "-y", image_}, std::chrono::seconds(120));
  if (fsck_report) *fsck_report = f.describe();
  if (f.exit_code < 0 || f.exit_code >= 4)
    return ::testing::AssertionFailure() << "e2fsck could not repair the image: " << f;
  std::string opts = "loop";
  if (!mount_opts_.empty()) opts += "," + mount_opts_;
  RunResult r = run({"mount", "-t", "ext4", "-o", opts, image_, m_.backing()});
  if (!r.ok()) return ::testing::AssertionFailure() << r;
  return ::testing::AssertionSuccess() << "e2fsck exit " << f.exit_code;
}

BackingFs::~BackingFs() {
  teardown();
}

InodeFlagsGuard::~InodeFlagsGuard() {
  for (auto it = paths_.rbegin(); it != paths_.rend(); ++it) {
    struct stat st;
    if (::lstat(it->c_str(), &st) != 0 || S_ISLNK(st.st_mode)) continue;
    const int fd = ::open(it->c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    int flags = 0;
    if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & (FS_IMMUTABLE_FL | FS_APPEND_FL))) {
      flags &= ~(FS_IMMUTABLE_FL | FS_APPEND_FL);
      if (::ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0)
        ADD_FAILURE() << "could not clear chattr +i/+a on " << *it << ": " << std::strerror(errno);
    }
    ::close(fd);
  }
}

// ---- daemons --------------------------------------------------------------------------------

bool alive(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string st((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (st.empty()) return false;
  const auto p = st.rfind(") ");
  if (p == std::string::npos || p + 2 >= st.size()) return false;
  return st[p + 2] != 'Z' && st[p + 2] != 'X';
}

::testing::AssertionResult signal_daemons(Mount& m, int sig) {
  std::vector<pid_t> pids = find_daemons(m.mnt());
  for (pid_t p : m.daemon_pids())
    if (alive(p) && std::find(pids.begin(), pids.end(), p) == pids.end()) pids.push_back(p);
  if (pids.empty()) return ::testing::AssertionFailure() << "no foldfs daemon for " << m.mnt();
  for (pid_t p : pids) ::kill(p, sig);
  if (sig != SIGKILL) return ::testing::AssertionSuccess();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    bool any = false;
    for (pid_t p : pids) any = any || alive(p);
    if (!any) return ::testing::AssertionSuccess();
    if (std::chrono::steady_clock::now() > deadline)
      return ::testing::AssertionFailure() << "daemon still alive 10 s after SIGKILL";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

::testing::AssertionResult lazy_unmount(const std::string& path) {
  RunResult r = run({"umount", "-l", path});
  if (!r.ok()) return ::testing::AssertionFailure() << r;
  if (is_mount_point(path)) return ::testing::AssertionFailure() << path << " still mounted";
  return ::testing::AssertionSuccess();
}

}  // namespace foldfs::itest
