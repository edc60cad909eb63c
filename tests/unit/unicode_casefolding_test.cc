// Every line of the UCD's CaseFolding.txt: statuses C and F apply, S and T do not.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <string>

#include "unicode_test_util.h"

namespace foldfs::unicode::testing {
namespace {

struct Folding {
  char32_t cp;
  char status;
  std::u32string mapping;
};

std::vector<Folding> load_case_folding() {
  std::vector<Folding> out;
  const bool opened = for_each_ucd_record(FOLDFS_UCD_DIR "/CaseFolding.txt", [&](const auto& f) {
    if (f.size() < 3) return;
    const std::u32string cp = parse_code_points(f[0]);
    const size_t letter = f[1].find_first_not_of(' ');
    out.push_back({cp.at(0), f[1].at(letter), parse_code_points(f[2])});
  });
  EXPECT_TRUE(opened);
  return out;
}

TEST(UnicodeCaseFoldingTest, CommonAndFullFoldingsApply) {
  size_t checked = 0;
  size_t newer = 0;
  for (const Folding& f : load_case_folding()) {
    if (f.status != 'C' && f.status != 'F') continue;
    if (!assigned_in_12_1(f.cp)) {
      ++newer;
      continue;
    }
    ++checked;
    EXPECT_EQ(key(std::u32string(1, f.cp)), key(f.mapping))
        << describe(std::u32string(1, f.cp)) << " status " << f.status << " -> "
        << describe(f.mapping);
  }
  std::printf("CaseFolding.txt: %zu C/F lines checked, %zu skipped (newer than 12.1)\n", checked,
              newer);
  EXPECT_GT(checked, 1400u);
}

// A character with both an F and an S line folds by F: U+1E9E LATIN CAPITAL LETTER SHARP S
// has "F: 0073 0073" and "S: 00DF".
TEST(UnicodeCaseFoldingTest, FullFoldingWinsOverSimple) {
  std::map<char32_t, std::u32string> full;
  for (const Folding& f : load_case_folding()) {
    if (f.status == 'F') full[f.cp] = f.mapping;
  }
  size_t checked = 0;
  for (const Folding& f : load_case_folding()) {
    if (f.status != 'S' || !assigned_in_12_1(f.cp)) continue;
    ASSERT_TRUE(full.count(f.cp)) << "S line without an F line: " << describe(f.mapping);
    EXPECT_EQ(key(std::u32string(1, f.cp)), key(full[f.cp])) << describe(std::u32string(1, f.cp));
    ++checked;
  }
  EXPECT_GT(checked, 20u);
  EXPECT_EQ(key(U"\u1E9E"), "ss");
}

// Turkic (T) foldings are not applied: I folds to i, not to dotless U+0131; U+0130 keeps its
// dot above (F: 0069 0307) instead of folding to plain i.
TEST(UnicodeCaseFoldingTest, TurkicFoldingsDoNotApply) {
  size_t checked = 0;
  for (const Folding& f : load_case_folding()) {
    if (f.status != 'T') continue;
    EXPECT_NE(key(std::u32string(1, f.cp)), utf8(f.mapping)) << describe(std::u32string(1, f.cp));
    ++checked;
  }
  EXPECT_EQ(checked, 2u);
  EXPECT_EQ(key("I"), "i");
  EXPECT_EQ(hex(key(U"\u0130")), "69cc87");
}

}  // namespace
}  // namespace foldfs::unicode::testing
