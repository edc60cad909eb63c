// Folding throughput on realistic file names, foldfs next to ICU doing comparable work
// (UTF-8 -> UTF-16, NFD, full case folding, UTF-16 -> UTF-8), plus key_hash.
//
//   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DFOLDFS_BENCH=ON
//   cmake --build build-rel -j2 --target fold_bench && build-rel/bench/fold_bench
#include <benchmark/benchmark.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>
#include <unicode/ustring.h>

#include <random>
#include <string>
#include <vector>

#include "unicode/fold.h"

namespace {

using foldfs::unicode::kMaxKeyBytes;
using foldfs::unicode::Strictness;
using foldfs::unicode::Version;

template <typename T>
const T& pick(std::mt19937& rng, const std::vector<T>& v) {
  return v[rng() % v.size()];
}

// Names like "Textures_0042.dds", "readme.TXT", "src/Main_Window.cpp": mixed case, digits,
// separators, extensions, a few path-ish names.
std::vector<std::string> ascii_corpus() {
  const std::vector<std::string> stems = {"Textures", "readme",      "Makefile", "IMG",    "DSC",
                                          "report",   "Main_Window", "index",    "Config", "notes",
                                          "Invoice",  "backup",      "LICENSE",  "photo",  "Track"};
  const std::vector<std::string> exts = {".dds",    ".TXT", ".cpp",  ".h", ".JPG", ".png",
                                         ".tar.gz", ".md",  ".json", "",   ".mp3", ".PDF"};
  const std::vector<std::string> dirs = {"", "", "", "src_", "Assets-", "old."};
  std::mt19937 rng(42);
  std::vector<std::string> names;
  char number[16];
  for (int i = 0; i < 10000; ++i) {
    std::snprintf(number, sizeof number, "%04u", static_cast<unsigned>(rng() % 10000));
    const char* sep = (rng() % 3 == 0) ? "-" : "_";
    names.push_back(pick(rng, dirs) + pick(rng, stems) + sep + number + pick(rng, exts));
  }
  return names;
}

// Names in Latin with accents (NFC and some NFD), Greek, Cyrillic, CJK, Hangul and Arabic.
std::vector<std::string> mixed_corpus() {
  const std::vector<std::string> words = {
      "Café",  "Crème_Brûlée", "Ærøskøbing", "Straße",   "Cafe\u0301", "naïve",
      "Ñandú", "Øresund",      "Φωτογραφία", "Ελλάδα",   "ΟΔΥΣΣΕΙΑ",   "Документ",
      "Отчёт", "МОСКВА",       "東京タワー", "写真",     "会議資料",   "한국어",
      "문서",  "서울",         "تقرير",      "المبيعات", "ملف"};
  const std::vector<std::string> exts = {".txt", ".JPG", ".docx", ".pdf", ".png", ""};
  std::mt19937 rng(43);
  std::vector<std::string> names;
  char number[16];
  for (int i = 0; i < 10000; ++i) {
    std::snprintf(number, sizeof number, "_%03u", static_cast<unsigned>(rng() % 1000));
    std::string name = pick(rng, words);
    if (rng() % 2) name += "_" + pick(rng, words);
    names.push_back(name + number + pick(rng, exts));
  }
  return names;
}

const std::vector<std::string>& corpus(int which) {
  static const std::vector<std::string> ascii = ascii_corpus();
  static const std::vector<std::string> mixed = mixed_corpus();
  return which == 0 ? ascii : mixed;
}

int64_t total_bytes(const std::vector<std::string>& names) {
  int64_t n = 0;
  for (const auto& s : names) n += static_cast<int64_t>(s.size());
  return n;
}

void BM_FoldfsFold(benchmark::State& state) {
  const auto& names = corpus(static_cast<int>(state.range(0)));
  char out[kMaxKeyBytes];
  for (auto _ : state) {
    for (const auto& name : names) {
      const auto r =
          foldfs::unicode::fold(name, Version::kUtf8_12_1, Strictness::kStrict, out, sizeof out);
      benchmark::DoNotOptimize(r);
      benchmark::DoNotOptimize(out);
    }
  }
  state.SetBytesProcessed(state.iterations() * total_bytes(names));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(names.size()));
}

void BM_FoldfsKeyBuffer(benchmark::State& state) {
  const auto& names = corpus(static_cast<int>(state.range(0)));
  foldfs::unicode::KeyBuffer kb;
  for (auto _ : state) {
    for (const auto& name : names) {
      benchmark::DoNotOptimize(kb.assign(name, Version::kUtf8_12_1, Strictness::kStrict));
      benchmark::DoNotOptimize(kb.view().data());
    }
  }
  state.SetBytesProcessed(state.iterations() * total_bytes(names));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(names.size()));
}

// ICU doing the same job: decode UTF-8, NFD, full case fold, encode UTF-8. Buffers are
// reused across names so that ICU is not charged for allocations foldfs does not make.
void BM_IcuNfdFoldCase(benchmark::State& state) {
  const auto& names = corpus(static_cast<int>(state.range(0)));
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfd = icu::Normalizer2::getNFDInstance(status);
  icu::UnicodeString source;
  icu::UnicodeString normalized;
  char out[kMaxKeyBytes];
  for (auto _ : state) {
    for (const auto& name : names) {
      source.setTo(icu::UnicodeString::fromUTF8(
          icu::StringPiece(name.data(), static_cast<int32_t>(name.size()))));
      status = U_ZERO_ERROR;
      nfd->normalize(source, normalized, status);
      normalized.foldCase();
      int32_t length = 0;
      u_strToUTF8(out, sizeof out, &length, normalized.getBuffer(), normalized.length(), &status);
      benchmark::DoNotOptimize(length);
      benchmark::DoNotOptimize(out);
    }
  }
  if (U_FAILURE(status)) state.SkipWithError("ICU failed");
  state.SetBytesProcessed(state.iterations() * total_bytes(names));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(names.size()));
}

void BM_KeyHash(benchmark::State& state) {
  std::vector<std::string> keys;
  for (const auto& name : corpus(static_cast<int>(state.range(0)))) {
    keys.push_back(
        *foldfs::unicode::fold_to_string(name, Version::kUtf8_12_1, Strictness::kStrict));
  }
  for (auto _ : state) {
    for (const auto& k : keys) benchmark::DoNotOptimize(foldfs::unicode::key_hash(k));
  }
  state.SetBytesProcessed(state.iterations() * total_bytes(keys));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(keys.size()));
}

void BM_NamesEqualCaseVariant(benchmark::State& state) {
  const auto& names = corpus(static_cast<int>(state.range(0)));
  std::vector<std::string> upper;
  for (const auto& name : names) {
    std::string u;
    icu::UnicodeString::fromUTF8(name).toUpper().toUTF8String(u);
    upper.push_back(u);
  }
  for (auto _ : state) {
    for (size_t i = 0; i < names.size(); ++i) {
      benchmark::DoNotOptimize(foldfs::unicode::names_equal(names[i], upper[i], Version::kUtf8_12_1,
                                                            Strictness::kStrict));
    }
  }
  state.SetBytesProcessed(state.iterations() * total_bytes(names));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(names.size()));
}

// Argument 0: ASCII corpus; 1: mixed-script corpus.
BENCHMARK(BM_FoldfsFold)->ArgName("mixed")->Arg(0)->Arg(1);
BENCHMARK(BM_IcuNfdFoldCase)->ArgName("mixed")->Arg(0)->Arg(1);
BENCHMARK(BM_FoldfsKeyBuffer)->ArgName("mixed")->Arg(0)->Arg(1);
BENCHMARK(BM_NamesEqualCaseVariant)->ArgName("mixed")->Arg(0)->Arg(1);
BENCHMARK(BM_KeyHash)->ArgName("mixed")->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
