// Micro-benchmarks of the per-directory name index (src/names/dir_index.h): resolve() of an
// exact name, of another spelling and of a missing name in indexes of 1k / 100k / 1M names,
// and load() of a full listing. Names are the ones bench/run.sh uses ("Texture_0000042.dds").
// The Colliding benchmarks do the same with n spellings of ONE name ("abcdefghijklmnopqrst" in
// every mix of cases): what a tree made on a case-sensitive filesystem, or an attacker, can put
// in a directory. Load must stay linear and lookups O(1) there too.
// BM_MergeUnionDir merges one directory of a 5-tree union as bench/union.sh lays it out (n names
// spread over 5 parts, the highest also overriding every tenth name of the others), the CPU side
// of a lookup that needs the whole merge; BM_UnionListing the listing a readdir serves.
// The load benchmarks also report the index's heap use per entry (mallinfo2), which is the
// part of the daemon's memory that grows with directory size.
//
//   cmake --build build-b -j2 --target index_bench && build-b/bench/index_bench
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "names/dir_index.h"
#include "names/union_dir.h"

namespace {

using foldfs::names::DirIndex;
using foldfs::names::FoldRules;

std::string exact_name(long i) {
  char b[64];
  std::snprintf(b, sizeof b, "Texture_%07ld.dds", i);
  return b;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

const std::vector<std::string>& listing(long n) {
  static std::map<long, std::vector<std::string>> cache;
  auto& v = cache[n];
  if (v.empty()) {
    v.reserve(n);
    for (long i = 0; i < n; ++i) v.push_back(exact_name(i));
  }
  return v;
}

// The n-th spelling of one 20-letter name: bit i of n upper-cases letter i.
std::string colliding_name(long n) {
  std::string s = "abcdefghijklmnopqrst";
  for (int i = 0; i < 20; ++i)
    if (n & (1L << i)) s[i] = static_cast<char>(s[i] - 'a' + 'A');
  return s;
}

const std::vector<std::string>& colliding_listing(long n) {
  static std::map<long, std::vector<std::string>> cache;
  auto& v = cache[n];
  if (v.empty()) {
    v.reserve(n);
    for (long i = 0; i < n; ++i) v.push_back(colliding_name(i));
  }
  return v;
}

DirIndex& index_of(long n) {
  static std::map<long, std::unique_ptr<DirIndex>> cache;
  auto& p = cache[n];
  if (!p) {
    p = std::make_unique<DirIndex>(FoldRules{});
    p->load(listing(n));
  }
  return *p;
}

// Queries spread over the whole index in random order (a fixed set, cycled).
std::vector<std::string> queries(long n, int kind) {
  std::mt19937_64 rng(n * 3 + kind);
  std::vector<std::string> q;
  for (int k = 0; k < 4096; ++k) {
    const long i = static_cast<long>(rng() % n);
    if (kind == 0)
      q.push_back(exact_name(i));
    else if (kind == 1)
      q.push_back(upper(exact_name(i)));
    else
      q.push_back("Missing_" + exact_name(i).substr(8));
  }
  return q;
}

void run_resolve(benchmark::State& state, int kind) {
  const long n = state.range(0);
  DirIndex& index = index_of(n);
  const auto q = queries(n, kind);
  size_t k = 0;
  for (auto _ : state) {
    auto r = index.resolve(q[k++ & 4095]);
    if (r.has_value() != (kind != 2)) state.SkipWithError("wrong answer");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_ResolveExact(benchmark::State& state) {
  run_resolve(state, 0);
}
void BM_ResolveOtherSpelling(benchmark::State& state) {
  run_resolve(state, 1);
}
void BM_ResolveMiss(benchmark::State& state) {
  run_resolve(state, 2);
}

void run_load(benchmark::State& state, const std::vector<std::string>& names) {
  const long n = state.range(0);
  double bytes = 0;
  for (auto _ : state) {
    const size_t before = mallinfo2().uordblks;
    auto index = std::make_unique<DirIndex>(FoldRules{});
    index->load(names);
    bytes = static_cast<double>(mallinfo2().uordblks - before);
    benchmark::DoNotOptimize(index.get());
    state.PauseTiming();
    index.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.counters["heap_B_per_entry"] = bytes / n;
  state.counters["beyond_name_B"] = bytes / n - static_cast<double>(names[0].size());
}

void BM_Load(benchmark::State& state) {
  run_load(state, listing(state.range(0)));
}
void BM_LoadColliding(benchmark::State& state) {
  run_load(state, colliding_listing(state.range(0)));
}

// Exact names, and spellings that are not stored (they resolve to the smallest), among n
// spellings of one name.
void BM_ResolveColliding(benchmark::State& state) {
  const long n = state.range(0);
  DirIndex index(FoldRules{});
  index.load(colliding_listing(n));
  std::mt19937_64 rng(n);
  std::vector<std::string> q;
  for (int k = 0; k < 4096; ++k) q.push_back(colliding_name(static_cast<long>(rng() % (2 * n))));
  size_t k = 0;
  for (auto _ : state) {
    auto r = index.resolve(q[k++ & 4095]);
    if (!r) state.SkipWithError("wrong answer");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

// The parts of bench/union.sh's Data/Textures: name i in part i % 5, part 0 also every tenth.
std::vector<foldfs::names::UnionPart> union_parts(long n) {
  std::vector<foldfs::names::UnionPart> parts(5);
  for (size_t p = 0; p < parts.size(); ++p) parts[p].tree = p;
  for (long i = 0; i < n; ++i) {
    const size_t p = static_cast<size_t>(i % 5);
    parts[p].entries.push_back(
        {exact_name(i), foldfs::names::UnionKind::kOther, static_cast<uint64_t>(i + 1), 8});
    if (i % 10 == 0 && p != 0) parts[0].entries.push_back(parts[p].entries.back());
  }
  return parts;
}

void BM_MergeUnionDir(benchmark::State& state) {
  const long n = state.range(0);
  const std::vector<foldfs::names::UnionPart> parts = union_parts(n);
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<foldfs::names::UnionPart> copy = parts;  // the listing moves names out
    state.ResumeTiming();
    auto merged = foldfs::names::merge_union_dir(std::move(copy), FoldRules{}, /*sorted=*/false);
    if (merged.entries.size() != static_cast<size_t>(n)) state.SkipWithError("wrong merge");
    benchmark::DoNotOptimize(merged);
  }
  state.SetItemsProcessed(state.iterations() * n);
}

// What a readdir through the union does instead: the listing alone; with range(1), the names
// already hashed where each part was read (as the union does it, a thread per part).
void BM_UnionListing(benchmark::State& state) {
  const long n = state.range(0);
  std::vector<foldfs::names::UnionPart> parts = union_parts(n);
  if (state.range(1)) {
    for (auto& p : parts) foldfs::names::hash_keys(&p, FoldRules{});
  }
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<foldfs::names::UnionPart> copy = parts;
    state.ResumeTiming();
    auto listed = foldfs::names::union_listing(std::move(copy), FoldRules{});
    if (listed.size() != static_cast<size_t>(n)) state.SkipWithError("wrong listing");
    benchmark::DoNotOptimize(listed);
  }
  state.SetItemsProcessed(state.iterations() * n);
}

BENCHMARK(BM_ResolveExact)->Arg(1000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_ResolveOtherSpelling)->Arg(1000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_ResolveMiss)->Arg(1000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_Load)->Arg(1000)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LoadColliding)->Arg(1000)->Arg(20000)->Arg(200000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ResolveColliding)->Arg(1000)->Arg(200000);
BENCHMARK(BM_MergeUnionDir)->Arg(20000)->Arg(200000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UnionListing)
    ->Args({20000, 0})
    ->Args({20000, 1})
    ->Args({200000, 1})
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
