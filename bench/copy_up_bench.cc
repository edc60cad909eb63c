// Copy-up of one large file (src/backing/copy_up.h) against `cp --preserve=all` of the same file,
// in the same run, between the same two directories (issue 16's row "copy-up of a 1 GiB file
// against cp"). Both are timed until the copy is on disk: copy-up syncs the file and its
// directory before it returns, so `cp` is followed by an fsync of its copy and of the directory
// (the "cp + fsync" row; "cp" alone is shown too). The source is in the page cache (read once
// before), each copy starts after `sync`, and the copy is removed between rounds.
//
//   FOLDFS_BENCH_DIR=/tmp FOLDFS_COPY_UP_MIB=1024 build/bench/copy_up_bench
//
// At the end it prints each row's median and the ratio copy-up ÷ cp + fsync (time; below 1 is
// faster).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backing/copy_up.h"
#include "backing/unique_fd.h"

extern char** environ;

namespace {

using foldfs::backing::UniqueFd;

struct Setup {
  std::string root;
  std::string lower;
  std::string upper;
  size_t bytes = 0;
};

Setup& setup() {
  static Setup s = [] {
    Setup out;
    const char* base = std::getenv("FOLDFS_BENCH_DIR");
    const char* mib = std::getenv("FOLDFS_COPY_UP_MIB");
    out.bytes = static_cast<size_t>(mib ? std::atol(mib) : 1024) << 20;
    std::string tmpl = std::string(base ? base : "/tmp") + "/foldfs-copyup.XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::perror("mkdtemp"), std::exit(1);
    out.root = tmpl;
    out.lower = out.root + "/lower";
    out.upper = out.root + "/upper";
    ::mkdir(out.lower.c_str(), 0755);
    ::mkdir(out.upper.c_str(), 0755);
    // Data that no filesystem compresses or dedups: a pseudo-random stream.
    const UniqueFd fd(::open((out.lower + "/Textures.bsa").c_str(), O_WRONLY | O_CREAT, 0644));
    std::vector<uint64_t> block((1 << 20) / sizeof(uint64_t));
    std::mt19937_64 rng(42);
    for (size_t done = 0; done < out.bytes; done += 1 << 20) {
      for (auto& w : block) w = rng();
      if (::write(fd.get(), block.data(), 1 << 20) != 1 << 20) std::perror("write"), std::exit(1);
    }
    ::fsync(fd.get());
    return out;
  }();
  return s;
}

void warm_source() {
  const UniqueFd fd(::open((setup().lower + "/Textures.bsa").c_str(), O_RDONLY));
  std::vector<char> buf(1 << 20);
  while (::read(fd.get(), buf.data(), buf.size()) > 0) {
  }
}

void sync_path(const std::string& path, int flags) {
  const UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (fd.valid()) ::fsync(fd.get());
}

bool run_cp(const std::string& from, const std::string& to) {
  const char* argv[] = {"cp", "--preserve=all", "--sparse=auto", from.c_str(), to.c_str(), nullptr};
  pid_t pid;
  if (::posix_spawnp(&pid, "cp", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) {
    return false;
  }
  int status = 0;
  return ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

enum class How { kCopyUp, kCp, kCpFsync };

void BM_Copy(benchmark::State& state, How how) {
  const Setup& s = setup();
  const UniqueFd lower(::open(s.lower.c_str(), O_PATH | O_DIRECTORY));
  const UniqueFd upper(::open(s.upper.c_str(), O_PATH | O_DIRECTORY));
  const std::string target = s.upper + "/textures.bsa";
  for (auto _ : state) {
    ::unlink(target.c_str());
    warm_source();
    ::sync();
    const auto start = std::chrono::steady_clock::now();
    bool ok = true;
    if (how == How::kCopyUp) {
      ok = foldfs::backing::copy_up(lower.get(), "Textures.bsa", upper.get(), "textures.bsa") == 0;
    } else {
      ok = run_cp(s.lower + "/Textures.bsa", target);
      if (ok && how == How::kCpFsync) {
        sync_path(target, O_RDONLY);
        sync_path(s.upper, O_RDONLY | O_DIRECTORY);
      }
    }
    const auto end = std::chrono::steady_clock::now();
    if (!ok) state.SkipWithError("the copy failed");
    state.SetIterationTime(std::chrono::duration<double>(end - start).count());
  }
  ::unlink(target.c_str());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * s.bytes));
}

// Collects each row's median to print the ratio after the usual table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median") {
        medians_[r.run_name.function_name] = r.GetAdjustedRealTime();
      }
    }
  }
  void print_ratio() const {
    const auto up = medians_.find("copy_up");
    const auto cp = medians_.find("cp_fsync");
    if (up == medians_.end() || cp == medians_.end() || cp->second <= 0) return;
    const double mib = static_cast<double>(setup().bytes) / (1 << 20);
    std::printf("\nrow\tmedian ms\tMiB/s\n");
    for (const auto& [name, ms] : medians_) {
      std::printf("%s\t%.0f\t%.0f\n", name.c_str(), ms, mib / (ms / 1000));
    }
    std::printf("copy-up / (cp + fsync), time: %.2f\n", up->second / cp->second);
  }

 private:
  std::map<std::string, double> medians_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (const auto& [name, how] :
       {std::pair{"copy_up", How::kCopyUp}, {"cp_fsync", How::kCpFsync}, {"cp", How::kCp}}) {
    benchmark::RegisterBenchmark(name, BM_Copy, how)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(1)
        ->Repetitions(5)
        ->ReportAggregatesOnly(true);
  }
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratio();
  const std::string root = setup().root;
  ::unlink((setup().lower + "/Textures.bsa").c_str());
  ::rmdir(setup().lower.c_str());
  ::rmdir(setup().upper.c_str());
  ::rmdir(root.c_str());
  benchmark::Shutdown();
  return 0;
}
