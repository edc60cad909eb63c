// fsbench: the filesystem workload driver behind bench/run.sh.
//
// Each subcommand runs one workload against a directory (native, a foldfs mount or a bindfs
// mount: the driver does not know which) and prints one result per line, "NAME VALUE", where
// NAME is given with --as. bench/run.sh collects the lines, and `fsbench report` turns them into
// the tables of docs/benchmarks.md. Every workload checks its own results (a stat that should
// succeed and fails, a short read, ...) and exits 1 on the first surprise: a benchmark that
// measures errors is worse than none.
//
// File names are "Texture_0000042.dds" (19 bytes, like a game's asset names). The other
// spelling of a name is its upper-case form; missing names are "Missing_0000042.dds".
//
// Wine's lookup, without help from the filesystem (dlls/ntdll/unix/file.c, find_file_in_dir):
// stat the exact name; if that fails, ask the directory for FS_CASEFOLD_FL (open, ioctl
// FS_IOC_GETFLAGS, close); when the flag is set the filesystem's answer is final, otherwise read
// the whole directory and compare every name case-insensitively. `wine-lookup` does exactly
// that, with the foldfs engine as the comparison (src/unicode/fold.h).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "unicode/fold.h"

namespace {

using foldfs::unicode::KeyBuffer;
using foldfs::unicode::Strictness;
using foldfs::unicode::Version;

[[noreturn]] void die(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "fsbench: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  std::exit(1);
}

double now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

std::string g_as = "result";  // --as NAME

void emit(const std::string& suffix, double value) {
  std::printf("%s%s %.6g\n", g_as.c_str(), suffix.c_str(), value);
  std::fflush(stdout);
}

// --- names -----------------------------------------------------------------------------------

std::string exact_name(long i) {
  char b[64];
  std::snprintf(b, sizeof b, "Texture_%07ld.dds", i);
  return b;
}
std::string missing_name(long i) {
  char b[64];
  std::snprintf(b, sizeof b, "Missing_%07ld.dds", i);
  return b;
}
// The other spelling used by the metadata workloads: upper case.
std::string other_name(long i) {
  std::string out = exact_name(i);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// The v-th (v >= 0) other spelling of an exact name: the case of its letters set by a bit
// pattern, never the exact name's own pattern. Distinct for v < 1023.
std::string spelling(const std::string& exact, int v) {
  std::string out = exact;
  unsigned own = 0, bit = 0;
  for (char c : exact) {
    if (std::isalpha(static_cast<unsigned char>(c))) own |= (std::isupper(c) ? 1u : 0u) << bit++;
  }
  const unsigned letters = bit;
  unsigned pattern = (static_cast<unsigned>(v) * 37u + 1u) & ((1u << letters) - 1);
  if (pattern == own) pattern = (1u << letters) - 1;  // all upper (never the exact one here)
  bit = 0;
  for (auto& c : out) {
    if (!std::isalpha(static_cast<unsigned char>(c))) continue;
    c = ((pattern >> bit++) & 1) ? std::toupper(c) : std::tolower(c);
  }
  return out;
}

std::string name_for(const std::string& kind, long i) {
  if (kind == "exact") return exact_name(i);
  if (kind == "other") return other_name(i);
  if (kind == "missing") return missing_name(i);
  die("unknown name kind '%s' (exact, other, missing)", kind.c_str());
}

// --- small helpers ---------------------------------------------------------------------------

int open_dir(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) die("open %s: %s", path.c_str(), std::strerror(errno));
  return fd;
}

long to_long(const char* s) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (!end || *end) die("not a number: '%s'", s);
  return v;
}
double to_double(const char* s) {
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  if (!end || *end) die("not a number: '%s'", s);
  return v;
}

// Reads a directory with getdents64 and calls f(name, d_type) for every entry but . and ..;
// f returns false to stop. Returns the number of entries seen.
template <typename F>
long for_each_dirent(int dirfd, F&& f) {
  alignas(8) static thread_local char buf[32768];  // glibc's readdir buffer size
  long count = 0;
  for (;;) {
    const long n = ::syscall(SYS_getdents64, dirfd, buf, sizeof buf);
    if (n < 0) die("getdents64: %s", std::strerror(errno));
    if (n == 0) return count;
    for (long off = 0; off < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf + off);
      off += d->d_reclen;
      if (d->d_name[0] == '.' &&
          (d->d_name[1] == 0 || (d->d_name[1] == '.' && d->d_name[2] == 0))) {
        continue;
      }
      ++count;
      if (!f(std::string_view(d->d_name), d->d_type)) return count;
    }
  }
}

// --- Wine's lookup ---------------------------------------------------------------------------

// Wine's case-sensitivity probe: open the directory, FS_IOC_GETFLAGS, close. Returns true when
// the directory says it is casefolded; an error (ENOTTY, ENOSYS) means "case-sensitive".
bool probe_casefold(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_NONBLOCK | O_LARGEFILE | O_CLOEXEC);
  if (fd < 0) die("open %s: %s", dir.c_str(), std::strerror(errno));
  unsigned int flags = 0;
  const bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  ::close(fd);
  return ok && (flags & FS_CASEFOLD_FL);
}

// Reads `dir` and compares every name with `name` under casefold rules. Returns whether an
// equivalent name exists.
bool scan_dir(const std::string& dir, std::string_view name) {
  KeyBuffer target;
  target.assign(name, Version::kUtf8_12_1, Strictness::kLenient);
  KeyBuffer key;
  bool found = false;
  const int fd = open_dir(dir);
  for_each_dirent(fd, [&](std::string_view entry, unsigned char) {
    if (entry == name) {
      found = true;
      return false;
    }
    key.assign(entry, Version::kUtf8_12_1, Strictness::kLenient);
    if (key.view() == target.view()) {
      found = true;
      return false;
    }
    return true;
  });
  ::close(fd);
  return found;
}

// Wine's find_file_in_dir: 0 found, 1 not found; *scanned tells whether it read the directory.
int wine_lookup(const std::string& dir, int dirfd, const std::string& name, bool* scanned) {
  *scanned = false;
  struct stat st;
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return 0;
  if (errno != ENOENT) die("stat %s/%s: %s", dir.c_str(), name.c_str(), std::strerror(errno));
  if (probe_casefold(dir)) return 1;  // the filesystem folds: its ENOENT is final
  *scanned = true;
  return scan_dir(dir, name) ? 0 : 1;
}

// --- workloads -------------------------------------------------------------------------------

// create DIR N: N new empty files (open O_CREAT|O_EXCL, close).
void cmd_create(const std::string& dir, long n) {
  const int dfd = open_dir(dir);
  const double t0 = now();
  for (long i = 0; i < n; ++i) {
    const std::string name = exact_name(i);
    const int fd = ::openat(dfd, name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) die("create %s/%s: %s", dir.c_str(), name.c_str(), std::strerror(errno));
    ::close(fd);
  }
  const double t = now() - t0;
  ::close(dfd);
  emit("", n / t);
}

// stat DIR N KIND [BLOCK]: stat names 0..N-1 of KIND (exact and other must exist, missing
// must not). Without BLOCK: one pass, prints lookups/s. With BLOCK: the names go in blocks of
// BLOCK, each stat'ed twice in a row, so that the second lookup of a name comes well within
// the kernel's entry/attribute timeouts whatever the filesystem's speed: prints NAME_1 (first
// lookups/s) and NAME_2 (second lookups/s, "warm").
void cmd_stat(const std::string& dir, long n, const std::string& kind, long block) {
  const bool expect = kind != "missing";
  std::vector<std::string> names;
  names.reserve(n);
  for (long i = 0; i < n; ++i) names.push_back(name_for(kind, i));
  const int dfd = open_dir(dir);
  struct stat st;
  auto one = [&](const std::string& name) {
    const bool ok = ::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (ok != expect || (!ok && errno != ENOENT)) {
      die("stat %s/%s: %s (expected %s)", dir.c_str(), name.c_str(),
          ok ? "found" : std::strerror(errno), expect ? "found" : "ENOENT");
    }
  };
  if (block <= 0) {
    const double t0 = now();
    for (const auto& name : names) one(name);
    const double t = now() - t0;
    ::close(dfd);
    emit("", n / t);
    return;
  }
  double t1 = 0, t2 = 0;
  for (long b = 0; b < n; b += block) {
    const long e = std::min(n, b + block);
    double t0 = now();
    for (long i = b; i < e; ++i) one(names[i]);
    t1 += now() - t0;
    t0 = now();
    for (long i = b; i < e; ++i) one(names[i]);
    t2 += now() - t0;
  }
  ::close(dfd);
  emit("_1", n / t1);
  emit("_2", n / t2);
}

// wine-lookup DIR N KIND MAX_SECONDS: Wine's lookup of names of KIND spread over 0..N-1, until
// N lookups or MAX_SECONDS (at least 5 lookups). Prints lookups/s.
void cmd_wine_lookup(const std::string& dir, long n, const std::string& kind, double max_s) {
  const bool expect = kind != "missing";
  const int dfd = open_dir(dir);
  // A stride through the names, so a time-bounded run still samples the whole directory.
  const long stride = 7919;  // prime, coprime with any n not a multiple of it
  long done = 0;
  long scans = 0;
  const double t0 = now();
  double t = 0;
  for (long k = 0; k < n; ++k) {
    const long i = (k * stride) % n;
    const std::string name = name_for(kind, i);
    bool scanned = false;
    const bool found = wine_lookup(dir, dfd, name, &scanned) == 0;
    if (found != expect)
      die("wine lookup %s/%s: unexpected %s", dir.c_str(), name.c_str(), found ? "hit" : "miss");
    scans += scanned;
    ++done;
    t = now() - t0;
    if (done >= 5 && t >= max_s) break;
  }
  ::close(dfd);
  std::fprintf(stderr, "fsbench: %s: %ld lookups, %ld directory scans\n", g_as.c_str(), done,
               scans);
  emit("", done / t);
}

// probe DIR N: Wine's casefold probe N times. Prints probes/s; reports the answer on stderr.
void cmd_probe(const std::string& dir, long n) {
  const bool cf = probe_casefold(dir);
  const double t0 = now();
  for (long i = 0; i < n; ++i) {
    if (probe_casefold(dir) != cf) die("probe of %s changed its answer", dir.c_str());
  }
  const double t = now() - t0;
  std::fprintf(stderr, "fsbench: %s: casefold flag %s\n", g_as.c_str(), cf ? "set" : "not set");
  emit("", n / t);
}

// readdir DIR PASSES: read the whole directory PASSES times. Prints entries/s.
void cmd_readdir(const std::string& dir, long passes) {
  long entries = 0;
  long first = -1;
  const double t0 = now();
  for (long p = 0; p < passes; ++p) {
    const int fd = open_dir(dir);
    const long c = for_each_dirent(fd, [](std::string_view, unsigned char) { return true; });
    ::close(fd);
    if (first < 0) first = c;
    if (c != first) die("readdir %s: %ld entries, then %ld", dir.c_str(), first, c);
    entries += c;
  }
  const double t = now() - t0;
  emit("", entries / t);
}

// unlink DIR N: unlink names 0..N-1.
void cmd_unlink(const std::string& dir, long n) {
  const int dfd = open_dir(dir);
  const double t0 = now();
  for (long i = 0; i < n; ++i) {
    const std::string name = exact_name(i);
    if (::unlinkat(dfd, name.c_str(), 0) != 0) {
      die("unlink %s/%s: %s", dir.c_str(), name.c_str(), std::strerror(errno));
    }
  }
  const double t = now() - t0;
  ::close(dfd);
  emit("", n / t);
}

constexpr size_t kChunk = 1 << 20;

std::unique_ptr<char[]> aligned_chunk() {
  void* p = nullptr;
  if (posix_memalign(&p, 4096, kChunk) != 0) die("out of memory");
  return std::unique_ptr<char[]>(static_cast<char*>(p));
}

// seqwrite FILE MIB: write MIB MiB in 1 MiB writes, fsync, close. Prints MiB/s.
void cmd_seqwrite(const std::string& path, long mib) {
  auto buf = aligned_chunk();
  std::mt19937_64 rng(1);
  for (size_t k = 0; k < kChunk / 8; ++k) reinterpret_cast<uint64_t*>(buf.get())[k] = rng();
  const double t0 = now();
  const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) die("open %s: %s", path.c_str(), std::strerror(errno));
  for (long i = 0; i < mib; ++i) {
    buf[0] = static_cast<char>(i);  // no two chunks alike
    if (::write(fd, buf.get(), kChunk) != static_cast<ssize_t>(kChunk)) {
      die("write %s: %s", path.c_str(), std::strerror(errno));
    }
  }
  if (::fsync(fd) != 0) die("fsync %s: %s", path.c_str(), std::strerror(errno));
  if (::close(fd) != 0) die("close %s: %s", path.c_str(), std::strerror(errno));
  const double t = now() - t0;
  emit("", mib / t);
}

// Reads fd to the end in 1 MiB reads; returns the bytes read.
long long read_all(int fd, char* buf, const std::string& what) {
  long long total = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf, kChunk);
    if (n < 0) die("read %s: %s", what.c_str(), std::strerror(errno));
    if (n == 0) return total;
    total += n;
  }
}

// seqread FILE: read the whole file in 1 MiB reads. Prints MiB/s.
void cmd_seqread(const std::string& path) {
  auto buf = aligned_chunk();
  struct stat st;
  const double t0 = now();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fstat(fd, &st) != 0) die("open %s: %s", path.c_str(), std::strerror(errno));
  const long long total = read_all(fd, buf.get(), path);
  ::close(fd);
  const double t = now() - t0;
  if (total != st.st_size)
    die("read %s: %lld bytes of %lld", path.c_str(), total, static_cast<long long>(st.st_size));
  emit("", total / 1048576.0 / t);
}

// mmapread FILE: map the whole file shared and read one byte of every 4 KiB page. Prints MiB/s.
void cmd_mmapread(const std::string& path) {
  struct stat st;
  const double t0 = now();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fstat(fd, &st) != 0) die("open %s: %s", path.c_str(), std::strerror(errno));
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) die("mmap %s: %s", path.c_str(), std::strerror(errno));
  ::madvise(map, size, MADV_SEQUENTIAL);
  unsigned sum = 0;
  const auto* bytes = static_cast<const volatile unsigned char*>(map);
  for (size_t off = 0; off < size; off += 4096) sum += bytes[off];
  ::munmap(map, size);
  ::close(fd);
  const double t = now() - t0;
  if (sum == 1) std::fprintf(stderr, " ");  // keeps the reads
  emit("", static_cast<double>(size) / 1048576.0 / t);
}

// randread FILE SECONDS [same-open]: 4 KiB preads at random aligned offsets for SECONDS.
// With same-open, the file is first read sequentially through the same descriptor (not timed),
// so the page cache of that open file is warm whatever the filesystem does at open().
void cmd_randread(const std::string& path, double seconds, bool same_open) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) != 0) die("open %s: %s", path.c_str(), std::strerror(errno));
  if (same_open) {
    auto buf = aligned_chunk();
    read_all(fd, buf.get(), path);
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
  const uint64_t blocks = static_cast<uint64_t>(st.st_size) / 4096;
  if (blocks == 0) die("%s is smaller than 4 KiB", path.c_str());
  alignas(4096) static char block[4096];
  uint64_t x = 0x9e3779b97f4a7c15ull;
  long ops = 0;
  const double t0 = now();
  double t = 0;
  for (;;) {
    for (int k = 0; k < 64; ++k) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const off_t off = static_cast<off_t>(x % blocks) * 4096;
      if (::pread(fd, block, sizeof block, off) != static_cast<ssize_t>(sizeof block)) {
        die("pread %s at %lld: %s", path.c_str(), static_cast<long long>(off),
            std::strerror(errno));
      }
    }
    ops += 64;
    t = now() - t0;
    if (t >= seconds) break;
  }
  ::close(fd);
  emit("", ops / t);
}

// readtree DIR: read every regular file under DIR. Prints NAME_files (files/s) and NAME_mib
// (MiB/s).
void read_tree(int dirfd, const std::string& path, char* buf, long* files, long long* bytes) {
  std::vector<std::pair<std::string, unsigned char>> entries;
  for_each_dirent(dirfd, [&](std::string_view name, unsigned char type) {
    entries.emplace_back(std::string(name), type);
    return true;
  });
  for (auto& [name, type] : entries) {
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        die("stat %s/%s: %s", path.c_str(), name.c_str(), std::strerror(errno));
      }
      type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_LNK;
    }
    if (type == DT_DIR) {
      const int sub = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (sub < 0) die("open %s/%s: %s", path.c_str(), name.c_str(), std::strerror(errno));
      read_tree(sub, path + "/" + name, buf, files, bytes);
      ::close(sub);
    } else if (type == DT_REG) {
      const int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) die("open %s/%s: %s", path.c_str(), name.c_str(), std::strerror(errno));
      *bytes += read_all(fd, buf, path + "/" + name);
      ::close(fd);
      ++*files;
    }
  }
}

void cmd_readtree(const std::string& dir) {
  auto buf = aligned_chunk();
  long files = 0;
  long long bytes = 0;
  const double t0 = now();
  const int fd = open_dir(dir);
  read_tree(fd, dir, buf.get(), &files, &bytes);
  ::close(fd);
  const double t = now() - t0;
  std::fprintf(stderr, "fsbench: %s: %ld files, %lld bytes in %.3f s\n", g_as.c_str(), files, bytes,
               t);
  emit("_files", files / t);
  emit("_mib", bytes / 1048576.0 / t);
}

// exec COUNT -- CMD...: runs CMD, prints COUNT/seconds (e.g. files/s of a tar extraction).
void cmd_exec(long count, char** argv) {
  const double t0 = now();
  const pid_t pid = ::fork();
  if (pid < 0) die("fork: %s", std::strerror(errno));
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);  // stdout carries results
    if (devnull >= 0) ::dup2(devnull, 1);
    ::execvp(argv[0], argv);
    std::fprintf(stderr, "fsbench: exec %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0) die("waitpid: %s", std::strerror(errno));
  const double t = now() - t0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("%s failed (status %d)", argv[0], status);
  emit("", count / t);
}

long rss_kib(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  die("no VmRSS for pid %ld (is the daemon running?)", pid);
}

// scale DIR BACKING N L PID: in DIR (a casefolded directory of N files named
// exact_name(0..N-1), whose backing directory is BACKING), first one lookup that makes the
// daemon load the directory (timed alone: NAME_first_ms), then 3 rounds of lookups of L
// distinct files by 4 spellings each, every spelling new to the kernel so that each lookup
// reaches the daemon (NAME: lookups/s, the median round). Before the timed lookups the L files
// are stat'ed in BACKING (not timed), so that the rate measures foldfs, not the backing
// filesystem reading inode tables from disk (cold, that dominates and grows with the
// directory). The daemon's RSS before and after gives NAME_bytes_per_entry (RSS growth / N)
// and, minus the name length, NAME_overhead_per_entry.
void cmd_scale(const std::string& dir, const std::string& backing, long n, long l, long pid) {
  constexpr int kRounds = 3, kSpellings = 4;
  std::mt19937_64 rng(7);
  std::vector<long> sample(n);
  std::iota(sample.begin(), sample.end(), 0);
  std::shuffle(sample.begin(), sample.end(), rng);
  if (l + 1 > n) l = n - 1;
  const long first = sample[l];  // not in the timed sample
  sample.resize(l);
  std::vector<std::vector<std::string>> rounds(kRounds);
  for (int r = 0; r < kRounds; ++r) {
    for (int v = 0; v < kSpellings; ++v) {
      for (long i : sample) rounds[r].push_back(spelling(exact_name(i), r * kSpellings + v));
    }
  }
  const long rss0 = rss_kib(pid);
  const int dfd = open_dir(dir);
  struct stat st;
  double t0 = now();
  const std::string f = other_name(first);
  if (::fstatat(dfd, f.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    die("stat %s/%s: %s", dir.c_str(), f.c_str(), std::strerror(errno));
  }
  const double first_s = now() - t0;
  const int bfd = open_dir(backing);
  for (long i : sample) {
    const std::string name = exact_name(i);
    if (::fstatat(bfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      die("stat %s/%s: %s", backing.c_str(), name.c_str(), std::strerror(errno));
    }
  }
  ::close(bfd);
  std::vector<double> rates;
  for (const auto& names : rounds) {
    t0 = now();
    for (const auto& name : names) {
      if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        die("stat %s/%s: %s", dir.c_str(), name.c_str(), std::strerror(errno));
      }
    }
    rates.push_back(names.size() / (now() - t0));
  }
  ::close(dfd);
  std::sort(rates.begin(), rates.end());
  const long rss1 = rss_kib(pid);
  const double per_entry = (rss1 - rss0) * 1024.0 / n;
  emit("", rates[kRounds / 2]);
  emit("_first_ms", first_s * 1e3);
  emit("_rss_kib", rss1);
  emit("_bytes_per_entry", per_entry);
  emit("_overhead_per_entry", per_entry - static_cast<double>(exact_name(0).size()));
}

// --- report ----------------------------------------------------------------------------------

struct Results {
  std::map<std::string, double> v;  // "config metric" -> value
  bool has(const std::string& c, const std::string& m) const { return v.count(c + " " + m); }
  double get(const std::string& c, const std::string& m) const {
    auto it = v.find(c + " " + m);
    return it == v.end() ? NAN : it->second;
  }
};

Results load_results(const std::string& path) {
  Results r;
  std::ifstream in(path);
  if (!in) die("cannot read %s", path.c_str());
  std::string config, metric;
  double value;
  while (in >> config >> metric >> value) r.v[config + " " + metric] = value;
  return r;
}

std::string fmt_rate(double x) {
  if (std::isnan(x)) return "n/a";
  char b[32];
  if (x >= 1e6)
    std::snprintf(b, sizeof b, "%.2fM", x / 1e6);
  else if (x >= 1e4)
    std::snprintf(b, sizeof b, "%.1fk", x / 1e3);
  else if (x >= 100)
    std::snprintf(b, sizeof b, "%.0f", x);
  else
    std::snprintf(b, sizeof b, "%.1f", x);
  return b;
}
std::string fmt_ratio(double x) {
  if (std::isnan(x) || std::isinf(x)) return "";
  char b[32];
  if (x >= 10)
    std::snprintf(b, sizeof b, "%.0f×", x);
  else
    std::snprintf(b, sizeof b, "%.2f×", x);
  return b;
}

struct Row {
  std::string metric;
  std::string label;
  std::string chart;  // label in the chart; "" = not charted
  std::string unit;
  bool metadata;  // counts for "every metadata workload under casefold=all >= bindfs"
};

const char* kConfigs[] = {"native", "off", "all", "bindfs"};

// report RESULTS MDOUT DATOUT: the results table (markdown) and the chart data.
// Writes the targets as markdown to MDOUT too, and as "PASS|FAIL name ratio" lines to stdout.
void cmd_report(const std::string& results, const std::string& md_out, const std::string& dat) {
  const Results r = load_results(results);
  char b[512];
  const std::vector<Row> rows = {
      {"create", "create (open O_CREAT+close), one dir", "create", "files/s", true},
      {"stat_exact_1", "stat, exact name, cold", "stat exact cold", "ops/s", true},
      {"stat_exact_2", "stat, exact name, warm", "stat exact warm", "ops/s", true},
      {"stat_exact_again", "stat, exact name, whole dir again", "stat exact again", "ops/s", true},
      {"stat_other_1", "stat, other spelling, 1st", "", "ops/s", true},
      {"stat_other_2", "stat, other spelling, warm", "", "ops/s", true},
      {"stat_missing_1", "stat, missing name, 1st", "stat missing 1st", "ops/s", true},
      {"stat_missing_2", "stat, missing name, warm", "stat missing warm", "ops/s", true},
      {"wine_other", "Wine lookup, other spelling", "Wine lookup other", "ops/s", true},
      {"wine_missing", "Wine lookup, missing name", "Wine lookup missing", "ops/s", true},
      {"readdir", "readdir", "readdir", "entries/s", true},
      {"unlink", "unlink", "unlink", "files/s", true},
      {"tar_extract", "extract tarball (tar x)", "tar x", "entries/s", true},
      {"find", "find, cold", "find cold", "entries/s", true},
      {"readtree_files", "read every file, cold", "read tree files/s", "files/s", false},
      {"readtree_mib", "read every file, cold", "read tree MiB/s", "MiB/s", false},
      {"rm", "rm -rf", "rm -rf", "entries/s", true},
      {"probe", "Wine probe (open+FS_IOC_GETFLAGS+close)", "Wine probe", "ops/s", true},
      {"wine_miss_1k", "Wine miss, 1,000-entry dir (stat+probe+scan/trust)", "Wine miss 1k dir",
       "ops/s", true},
      {"seqwrite", "sequential write + fsync", "seq write", "MiB/s", false},
      {"seqread", "sequential read, cold", "seq read cold", "MiB/s", false},
      {"seqread_warm", "sequential read, warm, new open", "seq read warm", "MiB/s", false},
      {"randread_cold", "4 KiB random read, cold", "rand read cold", "IOPS", false},
      {"randread_warm", "4 KiB random read, warm, new open", "rand read warm", "IOPS", false},
      {"randread_warm_same", "4 KiB random read, warm, same open", "rand read warm same open",
       "IOPS", false},
  };
  std::ofstream md(md_out);
  std::ofstream chart(dat);
  // "dev": foldfs all over /dev/fuse, measured when "all" runs over io_uring.
  const bool has_dev = std::any_of(r.v.begin(), r.v.end(),
                                   [](const auto& kv) { return kv.first.rfind("dev ", 0) == 0; });
  md << "| workload | unit | native | foldfs off | foldfs all | "
     << (has_dev ? "foldfs all, /dev/fuse | " : "") << "bindfs | scan (Wine, native) "
     << "| all÷native | all÷bindfs | all÷off | off÷native | off÷bindfs |"
     << (has_dev ? " dev÷bindfs |" : "") << "\n"
     << "| --- | --- | ---: | ---: | ---: | " << (has_dev ? "---: | " : "")
     << "---: | ---: | ---: | ---: | ---: | ---: | ---: |" << (has_dev ? " ---: |" : "") << "\n";
  auto scan_for = [&](const std::string& m) {
    if (m == "stat_other_1" || m == "stat_other_2") return r.get("native", "wine_other");
    if (m == "stat_missing_1" || m == "stat_missing_2") return r.get("native", "wine_missing");
    if (m == "wine_miss_1k") return r.get("native", "wine_miss_1k");
    return static_cast<double>(NAN);
  };
  chart << "# label off/native all/native bindfs/native\n";
  for (const auto& row : rows) {
    double v[4];
    bool any = false;
    for (int c = 0; c < 4; ++c) {
      v[c] = r.get(kConfigs[c], row.metric);
      any |= !std::isnan(v[c]);
    }
    if (!any) continue;
    const double scan = scan_for(row.metric);
    const double native = v[0], off = v[1], all = v[2], bind = v[3];
    const double dev = r.get("dev", row.metric);
    md << "| " << row.label << " | " << row.unit << " | " << fmt_rate(native) << " | "
       << fmt_rate(off) << " | " << fmt_rate(all) << " | " << (has_dev ? fmt_rate(dev) + " | " : "")
       << fmt_rate(bind) << " | " << (std::isnan(scan) ? "" : fmt_rate(scan)) << " | "
       << fmt_ratio(all / native) << " | " << fmt_ratio(all / bind) << " | " << fmt_ratio(all / off)
       << " | " << fmt_ratio(off / native) << " | " << fmt_ratio(off / bind) << " |"
       << (has_dev ? " " + fmt_ratio(dev / bind) + " |" : "") << "\n";
    if (!std::isnan(native) && !row.chart.empty()) {
      std::snprintf(b, sizeof b, "\"%s\" %g %g %g\n", row.chart.c_str(), off / native, all / native,
                    bind / native);
      chart << b;
    }
  }
  md << "\n\"n/a\": the workload means nothing there (another spelling of a name does not "
        "exist in a case-sensitive directory). Wine lookup rows: what Wine does without help "
        "(stat, then the casefold probe, then a directory scan when the flag is absent); "
        "under foldfs casefold=all the probe says casefolded and the scan never happens. "
        "The scan column repeats the native Wine figure next to the foldfs rows it "
        "replaces.\n\n";

  // Scaling.
  md << "Other-spelling lookups in one large casefolded directory (foldfs casefold=all; "
        "distinct files × 4 spellings, median of 3 rounds; daemon RSS from /proc/PID/status):\n\n"
        "| entries | lookups/s | first lookup (loads the index) | daemon RSS | RSS growth per "
        "entry | beyond the name |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n";
  std::vector<std::string> sizes;
  for (const auto& [k, val] : r.v) {
    if (k.rfind("scale ", 0) == 0 && k.find("_first_ms") != std::string::npos) {
      sizes.push_back(k.substr(6, k.find("_first_ms") - 6));
    }
  }
  std::sort(sizes.begin(), sizes.end(), [](const std::string& a, const std::string& b2) {
    return std::stol(a.substr(1)) < std::stol(b2.substr(1));
  });
  for (const auto& s : sizes) {
    std::snprintf(b, sizeof b, "| %s | %s | %.1f ms | %.1f MiB | %.0f B | %.0f B |\n",
                  fmt_rate(std::stod(s.substr(1))).c_str(), fmt_rate(r.get("scale", s)).c_str(),
                  r.get("scale", s + "_first_ms"), r.get("scale", s + "_rss_kib") / 1024.0,
                  r.get("scale", s + "_bytes_per_entry"),
                  r.get("scale", s + "_overhead_per_entry"));
    md << b;
  }

  // Targets.
  struct Target {
    std::string name;
    double ratio;
    double threshold;
  };
  std::vector<Target> targets;
  auto add = [&](const std::string& name, double num, double den, double threshold) {
    targets.push_back({name, num / den, threshold});
  };
  const double exact_warm_off = r.get("off", "stat_exact_2");
  add("warm other-spelling lookup (all) ≥ 0.8× warm exact lookup (off)",
      r.get("all", "stat_other_2"), exact_warm_off, 0.8);
  add("warm missing-name lookup (all) ≥ 0.8× warm exact lookup (off)",
      r.get("all", "stat_missing_2"), exact_warm_off, 0.8);
  for (const auto& row : rows) {
    if (!row.metadata || !r.has("bindfs", row.metric) || !r.has("all", row.metric)) continue;
    add("metadata: " + row.label + " (all) ≥ bindfs", r.get("all", row.metric),
        r.get("bindfs", row.metric), 1.0);
  }
  for (const char* m : {"create", "tar_extract", "find", "readtree_files", "rm"}) {
    const Row* row = nullptr;
    for (const auto& x : rows)
      if (x.metric == m) row = &x;
    add(std::string(row->label) + " (all) within 1.1× of off", r.get("all", m), r.get("off", m),
        1 / 1.1);
  }
  for (const char* m : {"seqwrite", "seqread"}) {
    for (const char* c : {"all", "off"}) {
      add(std::string(m) + " (" + c + ") ≥ bindfs", r.get(c, m), r.get("bindfs", m), 1.0);
      add(std::string(m) + " (" + c + ") ≥ 0.5× native", r.get(c, m), r.get("native", m), 0.5);
    }
  }
  for (const char* c : {"all", "off"}) {
    add(std::string("warm random read, new open (") + c + ") ≥ 0.9× native",
        r.get(c, "randread_warm"), r.get("native", "randread_warm"), 0.9);
  }
  if (!sizes.empty()) {
    add("other-spelling lookups, " + fmt_rate(std::stod(sizes.back().substr(1))) +
            "-entry dir ≥ 0.66× " + fmt_rate(std::stod(sizes.front().substr(1))) + "-entry dir",
        r.get("scale", sizes.back()), r.get("scale", sizes.front()), 0.66);
    const double over = r.get("scale", sizes.back() + "_overhead_per_entry");
    targets.push_back({"daemon memory ≤ 150 B per entry beyond the name (" +
                           fmt_rate(std::stod(sizes.back().substr(1))) +
                           " entries; ratio = " + "150 B ÷ measured)",
                       150.0 / std::max(over, 1e-9), 1.0});
  }
  add("Wine probe + miss, 1,000-entry dir (all) ≥ 5× scan baseline (native)",
      r.get("all", "wine_miss_1k"), r.get("native", "wine_miss_1k"), 5.0);

  md << "\nTargets (ratio measured in this run; PASS when ratio ≥ threshold):\n\n"
        "| target | ratio | threshold | |\n| --- | ---: | ---: | --- |\n";
  for (const auto& t : targets) {
    const bool pass = t.ratio >= t.threshold;
    std::snprintf(b, sizeof b, "| %s | %.2f | %.2f | %s |\n", t.name.c_str(), t.ratio, t.threshold,
                  std::isnan(t.ratio) ? "n/a"
                  : pass              ? "PASS"
                                      : "**FAIL**");
    md << b;
    std::printf("%s %.2f (threshold %.2f) %s\n",
                std::isnan(t.ratio) ? "N/A "
                : pass              ? "PASS"
                                    : "FAIL",
                t.ratio, t.threshold, t.name.c_str());
  }
}

void usage() {
  std::fprintf(
      stderr,
      "usage: fsbench [--as NAME] COMMAND ARGS\n"
      "  create DIR N | stat DIR N exact|other|missing [BLOCK] | unlink DIR N\n"
      "  wine-lookup DIR N exact|other|missing MAX_SECONDS | probe DIR N\n"
      "  readdir DIR PASSES | readtree DIR | exec COUNT -- CMD...\n"
      "  seqwrite FILE MIB | seqread FILE | mmapread FILE | randread FILE SECONDS [same-open]\n"
      "  scale DIR BACKING N LOOKUPS DAEMON_PID | report RESULTS MD_OUT CHART_DAT\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int i = 1;
  if (i + 1 < argc && std::strcmp(argv[i], "--as") == 0) {
    g_as = argv[i + 1];
    i += 2;
  }
  if (i >= argc) usage();
  const std::string cmd = argv[i++];
  const int nargs = argc - i;
  char** a = argv + i;
  if (cmd == "create" && nargs == 2)
    cmd_create(a[0], to_long(a[1]));
  else if (cmd == "stat" && (nargs == 3 || nargs == 4))
    cmd_stat(a[0], to_long(a[1]), a[2], nargs == 4 ? to_long(a[3]) : 0);
  else if (cmd == "unlink" && nargs == 2)
    cmd_unlink(a[0], to_long(a[1]));
  else if (cmd == "wine-lookup" && nargs == 4)
    cmd_wine_lookup(a[0], to_long(a[1]), a[2], to_double(a[3]));
  else if (cmd == "probe" && nargs == 2)
    cmd_probe(a[0], to_long(a[1]));
  else if (cmd == "readdir" && nargs == 2)
    cmd_readdir(a[0], to_long(a[1]));
  else if (cmd == "readtree" && nargs == 1)
    cmd_readtree(a[0]);
  else if (cmd == "exec" && nargs >= 3 && std::strcmp(a[1], "--") == 0)
    cmd_exec(to_long(a[0]), a + 2);
  else if (cmd == "seqwrite" && nargs == 2)
    cmd_seqwrite(a[0], to_long(a[1]));
  else if (cmd == "seqread" && nargs == 1)
    cmd_seqread(a[0]);
  else if (cmd == "mmapread" && nargs == 1)
    cmd_mmapread(a[0]);
  else if (cmd == "randread" && (nargs == 2 || (nargs == 3 && std::strcmp(a[2], "same-open") == 0)))
    cmd_randread(a[0], to_double(a[1]), nargs == 3);
  else if (cmd == "scale" && nargs == 5)
    cmd_scale(a[0], a[1], to_long(a[2]), to_long(a[3]), to_long(a[4]));
  else if (cmd == "report" && nargs == 3)
    cmd_report(a[0], a[1], a[2]);
  else
    usage();
  return 0;
}
