#include <gtest/gtest.h>

#include <algorithm>

#include "names/dir_index.h"
#include "names/kernel_dentries.h"

namespace foldfs::names {
namespace {

TEST(DirIndex, FindsAnySpellingOfAStoredName) {
  DirIndex index(FoldRules{});
  index.load({"Makefile", "Straße", "coração"});
  EXPECT_EQ(index.resolve("MAKEFILE"), "Makefile");
  EXPECT_EQ(index.resolve("STRASSE"), "Straße");
  EXPECT_EQ(index.resolve("CORAC\u0327\u00e3O"), "coração");
  EXPECT_EQ(index.resolve("missing"), std::nullopt);
  EXPECT_EQ(index.size(), 3u);
}

TEST(DirIndex, ExactNameWinsThenTheBytewiseSmallest) {
  DirIndex index(FoldRules{});
  index.load({"foo", "FOO", "Foo"});
  EXPECT_EQ(index.resolve("foo"), "foo");
  EXPECT_EQ(index.resolve("Foo"), "Foo");
  EXPECT_EQ(index.resolve("fOO"), "FOO");
  EXPECT_EQ(index.collisions(), (std::vector<std::vector<std::string>>{{"FOO", "Foo", "foo"}}));
}

TEST(DirIndex, InsertAndErase) {
  DirIndex index(FoldRules{});
  index.insert("ignored");  // incomplete: changes are not recorded
  EXPECT_FALSE(index.complete());
  index.load({});
  index.insert("Name");
  EXPECT_EQ(index.resolve("NAME"), "Name");
  index.erase("Name");
  EXPECT_EQ(index.resolve("NAME"), std::nullopt);
  EXPECT_EQ(index.size(), 0u);
}

TEST(DirIndex, StrictRulesRefusedNamesOnlyMatchThemselves) {
  DirIndex index(FoldRules{unicode::Version::kUtf8_12_1, unicode::Strictness::kStrict});
  index.load({"bad\xff", "BAD\xff"});
  EXPECT_EQ(index.resolve("bad\xff"), "bad\xff");
  EXPECT_EQ(index.resolve("Bad\xff"), std::nullopt);
  EXPECT_TRUE(index.collisions().empty());
}

TEST(DirIndex, LargeDirectoriesStayCompactAndCorrect) {
  DirIndex index(FoldRules{});
  std::vector<std::string> names;
  for (int i = 0; i < 100000; ++i) names.push_back("Texture_" + std::to_string(i) + ".dds");
  index.load(names);
  ASSERT_EQ(index.size(), names.size());
  size_t name_bytes = 0;
  for (const auto& n : names) name_bytes += n.size();
  const double per_name = double(index.memory_bytes() - name_bytes) / names.size();
  EXPECT_LT(per_name, 40.0) << "bytes per name beyond the name itself";
  for (int i = 0; i < 100000; i += 7) {
    EXPECT_EQ(index.resolve("TEXTURE_" + std::to_string(i) + ".DDS"), names[i]);
  }
  for (int i = 0; i < 100000; i += 2) index.erase(names[i]);
  EXPECT_EQ(index.size(), 50000u);
  for (int i = 0; i < 100000; i += 1000) {
    EXPECT_EQ(index.resolve("texture_" + std::to_string(i) + ".dds").has_value(), i % 2 == 1) << i;
  }
  EXPECT_EQ(index.resolve("texture_100000.dds"), std::nullopt);
  for (int i = 0; i < 100000; i += 2) index.insert(names[i]);
  EXPECT_EQ(index.size(), names.size());
  EXPECT_EQ(index.resolve("TEXTURE_4.DDS"), "Texture_4.dds");
}

// Every spelling of one name: a directory made on a case-sensitive filesystem, or one an
// attacker fills to stall the daemon. Loading, finding, adding and removing stay O(1) per name:
// 2^16 spellings load as fast as 2^16 distinct names would (the old index probed the whole
// cluster of equal keys for each name, and took a minute for 200,000 of them).
TEST(DirIndex, ManySpellingsOfOneNameStayFastAndExact) {
  std::vector<std::string> names;
  for (unsigned bits = 0; bits < (1u << 16); ++bits) {
    std::string n = "abcdefghijklmnop";
    for (int i = 0; i < 16; ++i)
      if (bits & (1u << i)) n[i] = static_cast<char>(n[i] - 'a' + 'A');
    names.push_back(n);
  }
  DirIndex index(FoldRules{});
  index.load(names);
  ASSERT_EQ(index.size(), names.size());
  EXPECT_EQ(index.resolve("abcdefghijklmnop"), "abcdefghijklmnop");
  EXPECT_EQ(index.resolve("ABCDEFGHIJKLMNOP"), "ABCDEFGHIJKLMNOP");
  EXPECT_EQ(index.resolve("abcdefghijklmnoP"), "abcdefghijklmnoP");
  // Not stored: another spelling resolves to the bytewise smallest.
  index.erase("ABCDEFGHIJKLMNOP");
  EXPECT_EQ(index.resolve("ABCDEFGHIJKLMNOP"), "ABCDEFGHIJKLMNOp");
  // Removing the names in ascending order (rm *) keeps answering with the smallest left.
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 1; i + 2 < sorted.size(); ++i) index.erase(sorted[i]);
  EXPECT_EQ(index.size(), 2u);
  EXPECT_EQ(index.resolve("ABCDEFGHIJKLMNOP"), sorted[sorted.size() - 2]);
  EXPECT_EQ(index.equivalents(FoldedName("x", FoldRules{})), std::vector<std::string>{});
  EXPECT_EQ(index.equivalents(FoldedName("abcdefghijklmnop", FoldRules{})),
            (std::vector<std::string>{sorted[sorted.size() - 2], sorted.back()}));
  EXPECT_EQ(index.count_equivalents(FoldedName("abcdefghijklmnop", FoldRules{})), 2u);
  EXPECT_EQ(index.count_equivalents(FoldedName("x", FoldRules{})), 0u);
  index.erase(sorted[sorted.size() - 2]);
  EXPECT_EQ(index.resolve("ABCDEFGHIJKLMNOP"), sorted.back());
  EXPECT_TRUE(index.collisions().empty());
  index.insert("ABCDEFGHIJKLMNOP");
  EXPECT_EQ(index.collisions().size(), 1u);
  EXPECT_EQ(index.size(), 2u);
}

TEST(DirIndex, GroupsOfEqualKeysFollowEveryChange) {
  DirIndex index(FoldRules{});
  index.load({"b", "B", "a"});
  EXPECT_EQ(index.resolve("b"), "b");
  index.insert("B");  // already there
  EXPECT_EQ(index.size(), 3u);
  for (int i = 0; i < 20; ++i)
    index.insert(std::string(i % 2 ? "\u212a" : "k") + std::to_string(i));
  index.erase("B");
  EXPECT_EQ(index.resolve("B"), "b");
  index.erase("b");
  EXPECT_EQ(index.resolve("B"), std::nullopt);
  index.insert("B");
  EXPECT_EQ(index.resolve("b"), "B");
  // KELVIN SIGN folds to k: "\u212a1" and "k1" are one name.
  index.insert("K1");
  EXPECT_EQ(index.resolve("k1"), "K1");
  EXPECT_EQ(index.equivalents(FoldedName("k1", FoldRules{})),
            (std::vector<std::string>{"K1", "\u212a1"}));
  EXPECT_EQ(index.count_equivalents(FoldedName("K1", FoldRules{})), 2u);
  EXPECT_EQ(index.count_equivalents(FoldedName("a", FoldRules{})), 1u);
}

TEST(KernelDentries, OnlyOtherSpellingsNeedInvalidation) {
  KernelDentries k;
  k.note(0, 42, "foo");
  EXPECT_FALSE(k.may_hold_other(0, 42, "foo"));
  EXPECT_TRUE(k.may_hold_other(0, 42, "FOO"));
  EXPECT_FALSE(k.may_hold_other(0, 7, "bar"));
  k.note(0, 42, "Foo");
  EXPECT_TRUE(k.may_hold_other(0, 42, "foo"));
}

TEST(KernelDentries, ANewEpochForgetsWhatTheKernelDropped) {
  KernelDentries k;
  k.note(0, 42, "foo");
  EXPECT_FALSE(k.may_hold_other(1, 42, "FOO"));
  // A note made by a lookup that raced with the invalidation is void and must not resurrect.
  k.note(0, 42, "FOO");
  EXPECT_FALSE(k.may_hold_other(1, 42, "foo"));
  // A caller still on an old epoch is answered conservatively.
  EXPECT_TRUE(k.may_hold_other(0, 42, "foo"));
}

// Keys whose hashes share their low bits (a weak table would pile them up), past the record's
// limit: every key
// noted keeps its spelling; once full, new keys are refused (the caller then invalidates
// everything) while known keys still take new spellings; a new epoch makes room again.
TEST(KernelDentries, ManyKeysUpToTheLimitAndNoFurther) {
  KernelDentries k;
  auto key = [](uint64_t i) { return i << 20; };
  for (uint64_t i = 0; i < KernelDentries::kMaxKeys; ++i) {
    ASSERT_TRUE(k.note(0, key(i), "n" + std::to_string(i))) << i;
  }
  EXPECT_FALSE(k.note(0, key(KernelDentries::kMaxKeys), "one too many"));
  EXPECT_FALSE(k.may_hold_other(0, key(KernelDentries::kMaxKeys), "one too many"));
  for (uint64_t i = 0; i < KernelDentries::kMaxKeys; i += 4099) {
    EXPECT_FALSE(k.may_hold_other(0, key(i), "n" + std::to_string(i))) << i;
    EXPECT_TRUE(k.may_hold_other(0, key(i), "N" + std::to_string(i))) << i;
  }
  EXPECT_TRUE(k.note(0, key(7), "N7"));
  EXPECT_TRUE(k.may_hold_other(0, key(7), "n7"));
  EXPECT_TRUE(k.note(1, key(KernelDentries::kMaxKeys), "one too many"));
  EXPECT_FALSE(k.may_hold_other(1, key(7), "N7"));
}

}  // namespace
}  // namespace foldfs::names
