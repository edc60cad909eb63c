#include <gtest/gtest.h>

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

}  // namespace
}  // namespace foldfs::names
