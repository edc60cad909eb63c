#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "backing/file_handle.h"
#include "backing/node_id_codec.h"

#ifndef FOLDFS_BINARY
#error "FOLDFS_BINARY must be defined (path of the foldfs binary under test)"
#endif

namespace foldfs::itest {

namespace {

std::string errno_name(int e) {
  if (e == 0) return "success";
  const char* n = strerrorname_np(e);
  std::string s = n ? n : "E?";
  return s + " (" + std::to_string(e) + ", " + std::strerror(e) + ")";
}

// ---- process plumbing -----------------------------------------------------------------------

int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

std::string read_all_fd(int fd) {
  std::string s;
  if (fd < 0) return s;
  char buf[65536];
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n <= 0) break;
    s.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return s;
}

// Resolves argv[0] like execvp, with the sbin dirs as a fallback (mount helpers, fusermount3).
std::string resolve_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  std::string path = ::getenv("PATH") ? ::getenv("PATH") : "";
  path += ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string cand = dir + "/" + name;
    if (::access(cand.c_str(), X_OK) == 0) return cand;
  }
  return name;
}

struct Spawned {
  pid_t pid = -1;
  int pidfd = -1;
  int out_fd = -1;
  int err_fd = -1;
  std::string spawn_error;
};

Spawned spawn(const std::vector<std::string>& argv) {
  Spawned s;
  if (argv.empty()) {
    s.spawn_error = "empty argv";
    return s;
  }
  s.out_fd = ::memfd_create("itest-out", MFD_CLOEXEC);
  s.err_fd = ::memfd_create("itest-err", MFD_CLOEXEC);
  std::string prog = resolve_program(argv[0]);
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = ::fork();
  if (pid < 0) {
    s.spawn_error = std::string("fork: ") + std::strerror(errno);
    return s;
  }
  if (pid == 0) {
    ::dup2(devnull, 0);
    ::dup2(s.out_fd, 1);
    ::dup2(s.err_fd, 2);
    ::syscall(SYS_close_range, 3U, ~0U, 0U);
    ::execv(prog.c_str(), cargv.data());
    const char msg[] = "itest: exec failed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(devnull);
  s.pid = pid;
  s.pidfd = pidfd_open(pid);
  return s;
}

// Waits for pid (our child) up to timeout. Returns true and fills status when it exited.
bool wait_child(pid_t pid, int pidfd, std::chrono::milliseconds timeout, int* status) {
  if (pidfd >= 0) {
    struct pollfd p = {pidfd, POLLIN, 0};
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() < 0) left = 0ms;
      int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r > 0) break;
      if (r == 0) return false;
      if (errno != EINTR) break;
    }
    return ::waitpid(pid, status, 0) == pid;
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    pid_t r = ::waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return false;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}

void fill_status(RunResult& r, int status) {
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.exit_code = -1;
    r.term_signal = WTERMSIG(status);
  }
}

// ---- /proc ----------------------------------------------------------------------------------

std::string read_small(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Alive and not a zombie.
bool process_alive(pid_t pid) {
  std::string st = read_small("/proc/" + std::to_string(pid) + "/stat");
  if (st.empty()) return false;
  auto p = st.rfind(") ");
  if (p == std::string::npos || p + 2 >= st.size()) return false;
  char state = st[p + 2];
  return state != 'Z' && state != 'X';
}

std::string base_name(std::string p) {
  const std::string deleted = " (deleted)";
  if (p.size() > deleted.size() && p.ends_with(deleted)) p.resize(p.size() - deleted.size());
  auto s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

bool is_foldfs_process(pid_t pid) {
  std::string proc = "/proc/" + std::to_string(pid);
  char buf[4096];
  ssize_t n = ::readlink((proc + "/exe").c_str(), buf, sizeof buf - 1);
  if (n > 0) {
    buf[n] = 0;
    if (base_name(buf) == "foldfs") return true;
  }
  std::string cmd = read_small(proc + "/cmdline");
  std::string argv0 = cmd.substr(0, cmd.find('\0'));
  std::string b = base_name(argv0);
  return b == "foldfs" || b == "mount.fuse.foldfs";
}

std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      int v = (s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0');
      out.push_back(static_cast<char>(v));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// mount point -> fstype of the topmost mount there.
std::string mountinfo_lookup(const std::string& path, bool* found) {
  *found = false;
  std::string fstype;
  std::ifstream f("/proc/self/mountinfo");
  std::string line;
  while (std::getline(f, line)) {
    std::vector<std::string> fields;
    std::stringstream ss(line);
    std::string w;
    while (ss >> w) fields.push_back(w);
    if (fields.size() < 7) continue;
    if (unescape_mountinfo(fields[4]) != path) continue;
    auto dash = std::find(fields.begin() + 6, fields.end(), "-");
    *found = true;
    fstype = (dash != fields.end() && dash + 1 != fields.end()) ? *(dash + 1) : "";
  }
  return fstype;
}

// ---- watchdog -------------------------------------------------------------------------------

class Watchdog {
 public:
  static Watchdog& get() {
    static Watchdog* w = new Watchdog;  // never destroyed: its thread outlives static dtors
    return *w;
  }
  void arm(std::string test) {
    std::lock_guard<std::mutex> l(mu_);
    if (!thread_started_) {
      thread_started_ = true;
      std::thread([this] { loop(); }).detach();
    }
    long secs = 240;
    if (const char* e = ::getenv("FOLDFS_IT_WATCHDOG_SECONDS")) secs = std::atol(e);
    if (secs <= 0) secs = 240;
    armed_ = true;
    deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(secs);
    secs_ = secs;
    test_ = std::move(test);
    cv_.notify_all();
  }
  void disarm() {
    std::lock_guard<std::mutex> l(mu_);
    armed_ = false;
    cv_.notify_all();
  }
  void set(const void* key, std::vector<pid_t> pids) {
    std::lock_guard<std::mutex> l(mu_);
    pids_[key] = std::move(pids);
  }
  void erase(const void* key) {
    std::lock_guard<std::mutex> l(mu_);
    pids_.erase(key);
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      if (!armed_) {
        cv_.wait(l);
        continue;
      }
      if (cv_.wait_until(l, deadline_) == std::cv_status::timeout && armed_ &&
          std::chrono::steady_clock::now() >= deadline_) {
        armed_ = false;
        std::fprintf(stderr,
                     "itest watchdog: %s still running after %ld s: killing its foldfs "
                     "daemons so that blocked calls fail (ENOTCONN)\n",
                     test_.c_str(), secs_);
        for (auto& [key, pids] : pids_)
          for (pid_t p : pids)
            if (process_alive(p) && is_foldfs_process(p)) ::kill(p, SIGKILL);
        ADD_FAILURE() << "watchdog: test exceeded " << secs_ << " s; daemons killed";
      }
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false;
  bool thread_started_ = false;
  long secs_ = 0;
  std::chrono::steady_clock::time_point deadline_;
  std::string test_;
  std::map<const void*, std::vector<pid_t>> pids_;
};

class WatchdogListener : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo& info) override {
    Watchdog::get().arm(std::string(info.test_suite_name()) + "." + info.name());
  }
  void OnTestEnd(const ::testing::TestInfo&) override { Watchdog::get().disarm(); }
};

struct WatchdogInstaller {
  WatchdogInstaller() {
    ::testing::UnitTest::GetInstance()->listeners().Append(new WatchdogListener);
  }
} watchdog_installer;

}  // namespace

// ---- Errno ----------------------------------------------------------------------------------

void PrintTo(Errno e, std::ostream* os) {
  *os << errno_name(e.value);
}
std::ostream& operator<<(std::ostream& os, Errno e) {
  return os << errno_name(e.value);
}
Errno errno_of(long rc) {
  return rc < 0 ? Errno(errno) : Errno(0);
}

// ---- processes ------------------------------------------------------------------------------

const std::string& foldfs_binary() {
  static const std::string bin = [] {
    const char* e = ::getenv("FOLDFS_BINARY");
    return std::string(e && *e ? e : FOLDFS_BINARY);
  }();
  return bin;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) s += sep;
    s += parts[i];
  }
  return s;
}

std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f || c == '\\') {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::string RunResult::describe() const {
  std::ostringstream os;
  os << "`" << join(argv) << "` ";
  if (timed_out)
    os << "TIMED OUT (killed)";
  else if (term_signal)
    os << "killed by signal " << term_signal;
  else
    os << "exited " << exit_code;
  os << "\n  stdout: " << (out.empty() ? "(empty)" : printable(out))
     << "\n  stderr: " << (err.empty() ? "(empty)" : printable(err));
  return os.str();
}
std::ostream& operator<<(std::ostream& os, const RunResult& r) {
  return os << r.describe();
}

RunResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  RunResult r;
  r.argv = argv;
  Spawned s = spawn(argv);
  if (s.pid < 0) {
    r.err = "spawn failed: " + s.spawn_error;
    return r;
  }
  int status = 0;
  if (!wait_child(s.pid, s.pidfd, timeout, &status)) {
    ::kill(s.pid, SIGKILL);
    wait_child(s.pid, s.pidfd, 10s, &status);
    r.timed_out = true;
    r.exit_code = -1;
  } else {
    fill_status(r, status);
  }
  r.out = read_all_fd(s.out_fd);
  r.err = read_all_fd(s.err_fd);
  for (int fd : {s.pidfd, s.out_fd, s.err_fd})
    if (fd >= 0) ::close(fd);
  return r;
}

Process::Process(const std::vector<std::string>& argv) : argv_(argv) {
  Spawned s = spawn(argv);
  pid_ = s.pid;
  pidfd_ = s.pidfd;
  out_fd_ = s.out_fd;
  err_fd_ = s.err_fd;
}

Process::~Process() {
  kill();
  for (int fd : {pidfd_, out_fd_, err_fd_})
    if (fd >= 0) ::close(fd);
}

bool Process::running() {
  if (result_ || pid_ < 0) return false;
  return !wait(0ms).has_value();
}

std::optional<RunResult> Process::wait(std::chrono::milliseconds timeout) {
  if (result_) return result_;
  if (pid_ < 0) return std::nullopt;
  int status = 0;
  if (!wait_child(pid_, pidfd_, timeout, &status)) return std::nullopt;
  RunResult r;
  r.argv = argv_;
  fill_status(r, status);
  r.out = out();
  r.err = err();
  result_ = r;
  return result_;
}

std::string Process::out() const {
  return read_all_fd(out_fd_);
}
std::string Process::err() const {
  return read_all_fd(err_fd_);
}

void Process::kill() {
  if (pid_ < 0 || result_) return;
  ::kill(pid_, SIGKILL);
  wait(10s);
}

namespace {

// The child side: credentials, then fn. `c` null: stay root; `umask_value` negative: keep it.
[[noreturn]] void become_and_run(const Caller* c, int umask_value, const std::function<int()>& fn) {
  if (c) {
    if (::setgroups(c->groups.size(), c->groups.data()) != 0) ::_exit(251);
    if (::setresgid(c->gid, c->gid, c->gid) != 0) ::_exit(252);
    if (::setresuid(c->uid, c->uid, c->uid) != 0) ::_exit(253);
  }
  if (umask_value >= 0) ::umask(static_cast<mode_t>(umask_value));
  ::_exit(fn() & 0xff);
}

// Forks, runs fn there, and waits at most `timeout` (pidfd): fn's value, -1 if the child died,
// kTimedOut if it had to be killed.
int fork_and_wait(const Caller* c, int umask_value, const std::function<int()>& fn,
                  std::chrono::milliseconds timeout) {
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) become_and_run(c, umask_value, fn);
  const int pidfd = pidfd_open(pid);
  int status = 0;
  const bool done = wait_child(pid, pidfd, timeout, &status);
  if (!done) {
    ::kill(pid, SIGKILL);
    wait_child(pid, pidfd, 10s, &status);
  }
  if (pidfd >= 0) ::close(pidfd);
  if (!done) return kTimedOut;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

int run_as_caller(const Caller& c, const std::function<int()>& fn, mode_t umask_value,
                  std::chrono::milliseconds timeout) {
  const int r = fork_and_wait(&c, static_cast<int>(umask_value), fn, timeout);
  return r == kTimedOut ? -1 : r;
}

int run_as(uid_t uid, gid_t gid, const std::function<int()>& fn) {
  const Caller c{"", uid, gid, {}};
  const int r = fork_and_wait(&c, -1, fn, 60s);
  return r == kTimedOut ? -1 : r;
}

int run_bounded(const std::function<int()>& fn, std::chrono::milliseconds timeout) {
  return fork_and_wait(nullptr, -1, fn, timeout);
}

std::string run_as_text(const Caller& c, const std::function<std::string()>& fn,
                        mode_t umask_value) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return "<pipe failed>";
  std::string out;
  const int r = fork_and_wait(
      &c, static_cast<int>(umask_value),
      [&] {
        ::close(fds[0]);
        const std::string text = fn();
        for (size_t off = 0; off < text.size();) {
          const ssize_t n = ::write(fds[1], text.data() + off, text.size() - off);
          if (n <= 0) return 254;
          off += static_cast<size_t>(n);
        }
        return 0;
      },
      // The pipe is read after the child exits: it writes little (well under a pipe's 64 KiB).
      60s);
  ::close(fds[1]);
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (r != 0) return out + "<child failed: " + std::to_string(r) + ">";
  return out;
}

// ---- files ----------------------------------------------------------------------------------

namespace {
Errno write_with_flags(const std::string& path, std::string_view content, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return Errno(errno);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return Errno(e);
    }
    off += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return Errno(errno);
  return Errno(0);
}
}  // namespace

Errno write_file(const std::string& path, std::string_view content, mode_t mode) {
  return write_with_flags(path, content, O_WRONLY | O_CREAT | O_TRUNC, mode);
}
Errno append_file(const std::string& path, std::string_view content) {
  return write_with_flags(path, content, O_WRONLY | O_APPEND, 0);
}
Errno touch(const std::string& path, mode_t mode) {
  return write_with_flags(path, "", O_WRONLY | O_CREAT, mode);
}
Errno create_excl(const std::string& path, mode_t mode) {
  return write_with_flags(path, "", O_WRONLY | O_CREAT | O_EXCL, mode);
}

std::optional<std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string s;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      int e = errno;
      ::close(fd);
      errno = e;
      return std::nullopt;
    }
    if (n == 0) break;
    s.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return s;
}

std::vector<std::string> list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return {"<opendir " + printable(path) + ": " + errno_name(errno) + ">"};
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
    errno = 0;
  }
  int e = errno;
  ::closedir(d);
  if (e) names.push_back("<readdir " + printable(path) + ": " + errno_name(e) + ">");
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<struct stat> lstat_of(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return std::nullopt;
  return st;
}
struct stat must_lstat(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    ADD_FAILURE() << "lstat(" << printable(path) << "): " << errno_name(errno);
    std::memset(&st, 0, sizeof st);
  }
  return st;
}

std::optional<struct stat> stat_of(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return st;
}

namespace {
::testing::AssertionResult has_type(const std::string& path, mode_t type, const char* what) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0)
    return ::testing::AssertionFailure()
           << "lstat(" << printable(path) << ") failed: " << errno_name(errno) << " (expected "
           << what << ")";
  if ((st.st_mode & S_IFMT) != type)
    return ::testing::AssertionFailure() << printable(path) << " has mode 0" << std::oct
                                         << st.st_mode << std::dec << ", expected " << what;
  return ::testing::AssertionSuccess();
}
}  // namespace

::testing::AssertionResult IsRegularFile(const std::string& path) {
  return has_type(path, S_IFREG, "a regular file");
}
::testing::AssertionResult IsDirectory(const std::string& path) {
  return has_type(path, S_IFDIR, "a directory");
}
::testing::AssertionResult IsSymlink(const std::string& path) {
  return has_type(path, S_IFLNK, "a symlink");
}
::testing::AssertionResult DoesNotExist(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0)
    return ::testing::AssertionFailure()
           << printable(path) << " exists (mode 0" << std::oct << st.st_mode << std::dec << ", ino "
           << st.st_ino << ", nlink " << st.st_nlink << "), expected ENOENT";
  if (errno != ENOENT)
    return ::testing::AssertionFailure() << "lstat(" << printable(path) << ") failed with "
                                         << errno_name(errno) << ", expected ENOENT";
  return ::testing::AssertionSuccess();
}
::testing::AssertionResult SameInode(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (::lstat(a.c_str(), &sa) != 0)
    return ::testing::AssertionFailure() << "lstat(" << printable(a) << "): " << errno_name(errno);
  if (::lstat(b.c_str(), &sb) != 0)
    return ::testing::AssertionFailure() << "lstat(" << printable(b) << "): " << errno_name(errno);
  if (sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino)
    return ::testing::AssertionFailure() << printable(a) << " is ino " << sa.st_ino << ", "
                                         << printable(b) << " is ino " << sb.st_ino;
  return ::testing::AssertionSuccess();
}

std::string readlink_of(const std::string& path) {
  char buf[8192];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) return "<readlink " + printable(path) + ": " + errno_name(errno) + ">";
  return std::string(buf, static_cast<size_t>(n));
}

XattrResult get_xattr(const std::string& path, const std::string& name) {
  XattrResult r;
  char buf[65536];
  ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), buf, sizeof buf);
  if (n < 0)
    r.error = Errno(errno);
  else
    r.value.assign(buf, static_cast<size_t>(n));
  return r;
}

Errno set_xattr(const std::string& path, const std::string& name, std::string_view value,
                int flags) {
  return errno_of(::lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), flags));
}

Errno remove_xattr(const std::string& path, const std::string& name) {
  return errno_of(::lremovexattr(path.c_str(), name.c_str()));
}

std::vector<std::string> list_xattrs(const std::string& path) {
  char buf[65536];
  ssize_t n = ::llistxattr(path.c_str(), buf, sizeof buf);
  if (n < 0) return {"<llistxattr " + printable(path) + ": " + errno_name(errno) + ">"};
  std::vector<std::string> names;
  for (ssize_t i = 0; i < n;) {
    std::string name(buf + i);
    i += static_cast<ssize_t>(name.size()) + 1;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

::testing::AssertionResult drop_caches() {
  ::sync();
  int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ::testing::AssertionFailure() << "open drop_caches: " << errno_name(errno);
  bool ok = ::write(fd, "2\n", 2) == 2;
  int e = errno;
  ::close(fd);
  if (!ok) return ::testing::AssertionFailure() << "write drop_caches: " << errno_name(e);
  return ::testing::AssertionSuccess();
}

uint64_t machine_cache_drops() {
  std::ifstream vmstat("/proc/vmstat");
  std::string key;
  uint64_t value = 0;
  while (vmstat >> key >> value) {
    if (key == "drop_slab") return value;
  }
  return 0;
}

FlagsResult get_inode_flags(const std::string& path) {
  FlagsResult r;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    r.error = Errno(errno);
    return r;
  }
  int oflags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0);
  int fd = ::open(path.c_str(), oflags);
  if (fd < 0) {
    r.error = Errno(errno);
    return r;
  }
  int flags = 0;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) r.error = Errno(errno);
  r.flags = static_cast<unsigned>(flags);
  ::close(fd);
  return r;
}

Errno set_inode_flags(const std::string& path, unsigned flags) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return Errno(errno);
  int oflags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0);
  int fd = ::open(path.c_str(), oflags);
  if (fd < 0) return Errno(errno);
  int f = static_cast<int>(flags);
  Errno e = ::ioctl(fd, FS_IOC_SETFLAGS, &f) != 0 ? Errno(errno) : Errno(0);
  ::close(fd);
  return e;
}

namespace {
::testing::AssertionResult lsattr_check(const std::string& path, bool want) {
  RunResult r = run({"lsattr", "-d", path});
  if (!r.ok()) return ::testing::AssertionFailure() << "lsattr failed: " << r;
  std::string flags = r.out.substr(0, r.out.find_first_of(" \t\n"));
  bool has = flags.find('F') != std::string::npos;
  if (has != want)
    return ::testing::AssertionFailure() << "lsattr -d " << printable(path) << " shows flags '"
                                         << flags << "': 'F' is " << (has ? "present" : "absent");
  return ::testing::AssertionSuccess() << "flags '" << flags << "'";
}
}  // namespace

::testing::AssertionResult LsattrShowsCasefold(const std::string& path) {
  return lsattr_check(path, true);
}
::testing::AssertionResult LsattrShowsNoCasefold(const std::string& path) {
  return lsattr_check(path, false);
}
RunResult chattr(const std::string& flag, const std::string& path) {
  return run({"chattr", flag, path});
}

// ---- mounts ---------------------------------------------------------------------------------

bool is_mount_point(const std::string& path) {
  bool found = false;
  mountinfo_lookup(path, &found);
  return found;
}

std::string mount_fstype(const std::string& path) {
  bool found = false;
  return mountinfo_lookup(path, &found);
}

std::vector<pid_t> find_daemons(const std::string& mountpoint) {
  std::vector<pid_t> pids;
  DIR* d = ::opendir("/proc");
  if (!d) return pids;
  while (struct dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (!end || *end || pid <= 0 || pid == ::getpid()) continue;
    std::string cmd = read_small("/proc/" + std::string(e->d_name) + "/cmdline");
    bool names_it = false;
    size_t start = 0;
    while (start < cmd.size()) {
      size_t z = cmd.find('\0', start);
      if (z == std::string::npos) z = cmd.size();
      if (cmd.compare(start, z - start, mountpoint) == 0 && z - start == mountpoint.size())
        names_it = true;
      start = z + 1;
    }
    if (names_it && process_alive(static_cast<pid_t>(pid)) &&
        is_foldfs_process(static_cast<pid_t>(pid)))
      pids.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  return pids;
}

const std::string& backing_kind() {
  static const std::string kind = [] {
    const char* v = std::getenv("FOLDFS_IT_BACKING");
    return std::string(v ? v : "");
  }();
  return kind;
}

std::optional<std::string> backing_lacks(BackingFeature feature) {
  const std::string& k = backing_kind();
  const std::string on = "FOLDFS_IT_BACKING=" + k + ": ";
  switch (feature) {
    case BackingFeature::kRenameFlags:
      if (k == "fuse") return on + "bindfs refuses renameat2 flags (EINVAL)";
      break;
    case BackingFeature::kOpenFilesSurviveUnlink:
      if (k == "fuse") return on + "a FUSE backing with hard_remove drops unlinked open files";
      break;
    case BackingFeature::kPersistentHandles:
      if (k == "overlay" || k == "fuse") return on + "the backing filesystem has no file handles";
      if (k == "nested") return on + "node ids of a filesystem inside the tree are not handles";
      break;
    case BackingFeature::kDirectoryLinkCounts:
      if (k == "btrfs") return on + "btrfs gives every directory st_nlink 1";
      break;
  }
  return std::nullopt;
}

Mount::Mount() {
  backing_ = tmp_.path("backing");
  mnt_ = tmp_.path("mnt");
  ::mkdir(backing_.c_str(), 0755);
  ::mkdir(mnt_.c_str(), 0755);
  if (!backing_kind().empty()) mount_backing();
}

namespace {

// Runs a setup command; a failure fails the test (the backing tree is not what it should be).
bool setup_step(const std::vector<std::string>& argv) {
  RunResult r = run(argv, 60s);
  if (!r.ok()) ADD_FAILURE() << "backing filesystem setup failed: " << r;
  return r.ok();
}

}  // namespace

void Mount::mount_backing() {
  const std::string& kind = backing_kind();
  auto image = [&](const std::vector<std::string>& mkfs) {
    const std::string img = tmp_.path("backing.img");
    if (!setup_step({"truncate", "-s", "512M", img})) return false;
    std::vector<std::string> argv = mkfs;
    argv.push_back(img);
    if (!setup_step(argv) || !setup_step({"mount", "-o", "loop", img, backing_})) return false;
    backing_mounts_.push_back(backing_);
    ::chmod(backing_.c_str(), 0755);
    ::rmdir((backing_ + "/lost+found").c_str());  // ext4's: tests expect an empty tree
    return true;
  };
  if (kind == "ext4") {
    image({"mkfs.ext4", "-q", "-F"});
  } else if (kind == "xfs") {
    image({"mkfs.xfs", "-q", "-f"});
  } else if (kind == "btrfs") {
    image({"mkfs.btrfs", "-q", "-f"});
  } else if (kind == "tmpfs") {
    if (setup_step({"mount", "-t", "tmpfs", "-o", "size=1g,mode=0755", "tmpfs", backing_}))
      backing_mounts_.push_back(backing_);
  } else if (kind == "nested") {
    const std::string nest = backing_ + "/nest";
    ::mkdir(nest.c_str(), 0755);
    if (setup_step({"mount", "-t", "tmpfs", "-o", "size=1g,mode=0755", "tmpfs", nest})) {
      backing_mounts_.push_back(nest);
      work_ = "/nest";
    }
  } else if (kind == "overlay") {
    for (const char* d : {"ovl-lower", "ovl-upper", "ovl-work"})
      ::mkdir(tmp_.path(d).c_str(), 0755);
    if (setup_step({"mount", "-t", "overlay", "overlay", "-o",
                    "lowerdir=" + tmp_.path("ovl-lower") + ",upperdir=" + tmp_.path("ovl-upper") +
                        ",workdir=" + tmp_.path("ovl-work"),
                    backing_}))
      backing_mounts_.push_back(backing_);
  } else if (kind == "fuse") {
    const std::string source = tmp_.path("fuse-source");
    ::mkdir(source.c_str(), 0755);
    // Without caches of its own and without .fuse_hidden files: what is left to see is foldfs
    // over a FUSE filesystem, not bindfs's defaults.
    if (setup_step({"bindfs", "-o",
                    "allow_other,hard_remove,attr_timeout=0,entry_timeout=0,negative_timeout=0",
                    "--create-as-user", source, backing_}))
      backing_mounts_.push_back(backing_);
  } else {
    ADD_FAILURE() << "FOLDFS_IT_BACKING=" << kind << ": not a known kind";
  }
}

void Mount::unmount_backing() {
  for (auto it = backing_mounts_.rbegin(); it != backing_mounts_.rend(); ++it) {
    if (!is_mount_point(*it)) continue;
    if (backing_kind() == "fuse") run({"fusermount3", "-u", *it}, 20s);
    if (is_mount_point(*it)) run({"umount", *it}, 20s);
    if (is_mount_point(*it)) run({"umount", "-l", *it}, 20s);  // the loop device goes with it
    if (is_mount_point(*it)) ADD_FAILURE() << "could not unmount the backing " << *it;
  }
  backing_mounts_.clear();
}

std::string Mount::path(std::string_view rel) const {
  return rel.empty() ? mnt_ + work_ : mnt_ + work_ + "/" + std::string(rel);
}
std::string Mount::bpath(std::string_view rel) const {
  return rel.empty() ? backing_ + work_ : backing_ + work_ + "/" + std::string(rel);
}
std::string Mount::tpath(std::string_view rel) const {
  return tmp_.path(rel);
}

bool Mount::mounted() const {
  return is_mount_point(mnt_);
}

void Mount::register_pids() {
  std::vector<pid_t> pids = daemons_;
  if (fg_ && fg_->pid() > 0 && std::find(pids.begin(), pids.end(), fg_->pid()) == pids.end())
    pids.push_back(fg_->pid());
  Watchdog::get().set(this, pids);
}

::testing::AssertionResult Mount::after_mount(const std::string& what) {
  if (!is_mount_point(mnt_))
    return ::testing::AssertionFailure()
           << what << " succeeded but " << mnt_ << " is not in /proc/self/mountinfo";
  // Known to the watchdog before anything touches the mount (which could hang).
  daemons_ = find_daemons(mnt_);
  if (fg_ && std::find(daemons_.begin(), daemons_.end(), fg_->pid()) == daemons_.end())
    daemons_.push_back(fg_->pid());
  register_pids();
  struct stat sm, sp;
  if (::stat(mnt_.c_str(), &sm) != 0)
    return ::testing::AssertionFailure()
           << "stat(" << mnt_ << ") after mounting: " << errno_name(errno);
  if (::stat(tmp_.path().c_str(), &sp) != 0)
    return ::testing::AssertionFailure() << "stat(" << tmp_.path() << "): " << errno_name(errno);
  if (sm.st_dev == sp.st_dev)
    return ::testing::AssertionFailure()
           << what << ": " << mnt_ << " has the same st_dev as its parent: not mounted";
  started_ = true;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult Mount::start(const std::string& opts) {
  std::vector<std::string> argv = {foldfs_binary(), "mount"};
  if (!opts.empty()) {
    argv.push_back("-o");
    argv.push_back(opts);
  }
  argv.push_back(backing_);
  argv.push_back(mnt_);
  return start_command(argv);
}

::testing::AssertionResult Mount::start_command(const std::vector<std::string>& argv) {
  started_ = true;  // even a failed command might have mounted something: always clean up
  start_result_ = run(argv, 30s);
  if (!start_result_.ok())
    return ::testing::AssertionFailure() << "mount command failed: " << start_result_;
  return after_mount("`" + join(argv) + "`");
}

::testing::AssertionResult Mount::start_foreground(const std::vector<std::string>& flags,
                                                   const std::string& opts) {
  started_ = true;
  std::vector<std::string> argv = {foldfs_binary(), "mount"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  if (!opts.empty()) {
    argv.push_back("-o");
    argv.push_back(opts);
  }
  argv.push_back(backing_);
  argv.push_back(mnt_);
  fg_ = std::make_unique<Process>(argv);
  register_pids();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!is_mount_point(mnt_)) {
    if (auto r = fg_->wait(0ms))
      return ::testing::AssertionFailure() << "foreground foldfs exited before mounting: " << *r;
    if (std::chrono::steady_clock::now() > deadline)
      return ::testing::AssertionFailure()
             << "`" << join(argv)
             << "` did not mount within 10 s; stderr so far: " << printable(fg_->err());
    std::this_thread::sleep_for(10ms);
  }
  return after_mount("`" + join(argv) + "`");
}

::testing::AssertionResult Mount::wait_daemons_exit(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<pid_t> alive;
  for (;;) {
    alive.clear();
    for (pid_t p : daemons_) {
      if (fg_ && p == fg_->pid()) {
        if (fg_->running()) alive.push_back(p);
      } else if (process_alive(p)) {
        alive.push_back(p);
      }
    }
    if (alive.empty()) return ::testing::AssertionSuccess();
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(20ms);
  }
  std::vector<std::string> s;
  for (pid_t p : alive) s.push_back(std::to_string(p));
  return ::testing::AssertionFailure()
         << "foldfs daemon pid(s) " << join(s, ",") << " still running "
         << std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()
         << " ms after unmount";
}

::testing::AssertionResult Mount::unmount(UnmountHow how) {
  ::testing::AssertionResult result = ::testing::AssertionSuccess();
  RunResult r = how == UnmountHow::kFusermount ? run({"fusermount3", "-u", mnt_}, 30s)
                                               : run({"umount", mnt_}, 30s);
  if (!r.ok()) result = ::testing::AssertionFailure() << "unmount failed: " << r;
  if (is_mount_point(mnt_)) {
    if (result) result = ::testing::AssertionFailure();
    result << "; " << mnt_ << " is still mounted after unmounting";
  }
  auto w = wait_daemons_exit(10s);
  if (!w) {
    if (result) result = ::testing::AssertionFailure();
    result << "; " << w.message();
  }
  return result;
}

Mount::~Mount() {
  if (started_ || is_mount_point(mnt_)) {
    for (pid_t p : find_daemons(mnt_))
      if (std::find(daemons_.begin(), daemons_.end(), p) == daemons_.end()) daemons_.push_back(p);
    if (is_mount_point(mnt_)) {
      RunResult r = run({"fusermount3", "-u", mnt_}, 20s);
      if (r.timed_out) {
        for (pid_t p : daemons_)
          if (process_alive(p) && is_foldfs_process(p)) ::kill(p, SIGKILL);
      }
      if (is_mount_point(mnt_)) run({"umount", mnt_}, 20s);
      if (is_mount_point(mnt_)) run({"umount", "-l", mnt_}, 20s);
      if (is_mount_point(mnt_)) ADD_FAILURE() << "could not unmount " << mnt_;
    }
    auto w = wait_daemons_exit(10s);
    if (!w) {
      ADD_FAILURE() << w.message() << " (killed)";
      for (pid_t p : daemons_)
        if (process_alive(p) && is_foldfs_process(p)) ::kill(p, SIGKILL);
    }
  }
  Watchdog::get().erase(this);
  fg_.reset();
  if (is_mount_point(mnt_)) {
    // Never delete through a mount: leave the temp dir rather than the backing tree's content.
    std::fprintf(stderr, "itest: leaving %s behind: %s is still mounted\n", tmp_.path().c_str(),
                 mnt_.c_str());
    return;
  }
  unmount_backing();
}

// ---- fstab ----------------------------------------------------------------------------------

namespace {
constexpr const char* kFstab = "/etc/fstab";

bool write_whole(const char* path, const std::string& content) {
  int fd = ::open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  return ::close(fd) == 0 && ok;
}

// Drops lines of earlier, killed runs: fuse.foldfs lines whose backing dir in
// /tmp/foldfs-it.* no longer exists.
std::string without_stale_lines(const std::string& content) {
  std::stringstream in(content);
  std::string line, out;
  while (std::getline(in, line)) {
    std::stringstream ls(line);
    std::string src, dst, type;
    ls >> src >> dst >> type;
    bool stale = type == "fuse.foldfs" && src.rfind("/tmp/foldfs-it.", 0) == 0 &&
                 ::access(src.c_str(), F_OK) != 0;
    if (!stale) out += line + "\n";
  }
  return out;
}
}  // namespace

FstabEntry::FstabEntry(std::string line) : line_(std::move(line)) {
  std::string content = read_small(kFstab);
  std::string cleaned = without_stale_lines(content);
  if (!cleaned.empty() && cleaned.back() != '\n') cleaned += "\n";
  cleaned += line_ + "\n";
  ok_ = write_whole(kFstab, cleaned);
  if (!ok_) ADD_FAILURE() << "could not write " << kFstab << ": " << errno_name(errno);
}

FstabEntry::~FstabEntry() {
  std::string content = read_small(kFstab);
  std::string needle = line_ + "\n";
  size_t pos;
  bool changed = false;
  while ((pos = content.find(needle)) != std::string::npos &&
         (pos == 0 || content[pos - 1] == '\n')) {
    content.erase(pos, needle.size());
    changed = true;
  }
  if (changed && !write_whole(kFstab, content))
    ADD_FAILURE() << "could not restore " << kFstab << ": " << errno_name(errno);
}

double seconds_until(const std::function<bool()>& holds, std::chrono::milliseconds limit) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < limit) {
    if (holds())
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ::usleep(5000);
  }
  return -1;
}

namespace {
constexpr const char* kUringSwitch = "/sys/module/fuse/parameters/enable_uring";
}  // namespace

KernelUringSwitch::KernelUringSwitch(bool on) {
  old_ = read_small(kUringSwitch);
  if (old_.empty()) return;
  if (!write_whole(kUringSwitch, on ? "Y\n" : "N\n"))
    ADD_FAILURE() << "could not write " << kUringSwitch << ": " << errno_name(errno);
}

KernelUringSwitch::~KernelUringSwitch() {
  if (!old_.empty() && !write_whole(kUringSwitch, old_))
    ADD_FAILURE() << "could not restore " << kUringSwitch << ": " << errno_name(errno);
}

// ---- handles --------------------------------------------------------------------------------

struct file_handle* Handle::get() {
  return reinterpret_cast<struct file_handle*>(storage.data());
}

Handle handle_of(const std::string& path) {
  Handle h;
  h.storage.resize(sizeof(struct file_handle) + 128);
  h.get()->handle_bytes = 128;
  int mount_id = 0;
  if (::name_to_handle_at(AT_FDCWD, path.c_str(), h.get(), &mount_id, 0) != 0) {
    h.storage.clear();
    return h;
  }
  h.storage.resize(sizeof(struct file_handle) + h.get()->handle_bytes);
  return h;
}

int open_handle(const std::string& mnt, Handle& h, int flags) {
  const int mount_fd = ::open(mnt.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (mount_fd < 0) return -errno;
  const int fd = ::open_by_handle_at(mount_fd, h.get(), flags | O_CLOEXEC);
  const int saved = errno;
  ::close(mount_fd);
  return fd >= 0 ? fd : -saved;
}

Handle forge_fuse_handle(const std::string& backing_path, const std::string& backing_root) {
  auto backing_handle = [](const std::string& path) {
    backing::FileHandle h;
    const int dir = ::open(path.c_str(), O_PATH | O_CLOEXEC);
    if (dir >= 0) {
      h.assign_from(dir, "");
      ::close(dir);
    }
    return h;
  };
  Handle forged;
  const auto codec = backing::NodeIdCodec::for_root(backing_handle(backing_root));
  const backing::FileHandle target = backing_handle(backing_path);
  const auto node = codec ? codec->encode(target) : std::nullopt;
  if (!node) return forged;
  // The kernel's FUSE export handle (fuse_encode_fh, type 0x81): node id high and low words,
  // then the generation foldfs gives the inode.
  const uint32_t words[3] = {static_cast<uint32_t>(*node >> 32), static_cast<uint32_t>(*node),
                             static_cast<uint32_t>(target.digest())};
  forged.storage.resize(sizeof(struct file_handle) + sizeof(words));
  forged.get()->handle_bytes = sizeof(words);
  forged.get()->handle_type = 0x81;
  std::memcpy(forged.get()->f_handle, words, sizeof(words));
  return forged;
}

bool outside_changes_pushed(const Mount& m) {
  struct stat root, work;
  if (::stat(m.backing().c_str(), &root) != 0 || ::stat(m.bpath("").c_str(), &work) != 0)
    return false;
  return root.st_dev == work.st_dev && stats_of(m)["watching"] == 1;
}

std::map<std::string, uint64_t> stats_of(const Mount& m) {
  std::map<std::string, uint64_t> out;
  RunResult r = run({foldfs_binary(), "stats", m.mnt()});
  EXPECT_TRUE(r.ok()) << r;
  std::istringstream in(r.out);
  std::string name;
  uint64_t value;
  while (in >> name >> value) out[name] = value;
  return out;
}

}  // namespace foldfs::itest
