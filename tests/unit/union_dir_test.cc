// The merge of one directory of a union of trees (src/names/union_dir.h): which tree decides
// each name, what it hides, which directories merge across spellings, whiteouts and opaque
// directories.
#include "names/union_dir.h"

#include <gtest/gtest.h>

namespace foldfs::names {
namespace {

constexpr auto kDir = UnionKind::kDirectory;
constexpr auto kFile = UnionKind::kOther;
constexpr auto kWhiteout = UnionKind::kWhiteout;

UnionPart Part(size_t tree, std::vector<UnionPartEntry> entries, bool opaque = false) {
  return UnionPart{tree, std::move(entries), opaque, {}};
}

const UnionEntry* Find(const UnionDir& d, const std::string& name) {
  for (const UnionEntry& e : d.entries) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

std::vector<std::string> Names(const UnionDir& d) {
  std::vector<std::string> out;
  for (const UnionEntry& e : d.entries) out.push_back(e.name);
  return out;
}

TEST(UnionDir, AHigherTreesNameHidesEverySpellingBelowIt) {
  // tree 0 = the highest (a mod), tree 2 = the game
  const UnionDir d = merge_union_dir(
      {Part(0, {{"Sky.dds", kFile}}), Part(1, {{"SKY.DDS", kFile}, {"Moon.dds", kFile}}),
       Part(2, {{"sky.DDS", kFile}, {"moon.dds", kFile}})},
      FoldRules{});
  EXPECT_EQ(Names(d), (std::vector<std::string>{"Moon.dds", "Sky.dds"}));
  const UnionEntry* sky = Find(d, "Sky.dds");
  ASSERT_NE(sky, nullptr);
  EXPECT_EQ(sky->tree, 0u);
  EXPECT_EQ(sky->hidden, (std::vector<UnionName>{{1, "SKY.DDS"}, {2, "sky.DDS"}}));
  const UnionEntry* moon = Find(d, "Moon.dds");
  ASSERT_NE(moon, nullptr);
  EXPECT_EQ(moon->tree, 1u);
  EXPECT_EQ(moon->hidden, (std::vector<UnionName>{{2, "moon.dds"}}));
  EXPECT_TRUE(d.collisions.empty());
}

TEST(UnionDir, DirectoriesMergeAcrossSpellingsUntilATreeHoldsAFile) {
  const UnionDir d =
      merge_union_dir({Part(0, {{"Data", kDir}}), Part(1, {}), Part(2, {{"DATA", kDir}}),
                       Part(3, {{"data", kFile}}), Part(4, {{"data", kDir}})},
                      FoldRules{});
  ASSERT_EQ(d.entries.size(), 1u);
  const UnionEntry& data = d.entries[0];
  EXPECT_EQ(data.name, "Data");
  EXPECT_TRUE(data.directory);
  EXPECT_EQ(data.parts, (std::vector<UnionName>{{0, "Data"}, {2, "DATA"}}));
  EXPECT_EQ(data.hidden, (std::vector<UnionName>{{3, "data"}, {4, "data"}}))
      << "the file in tree 3 stops the merge: tree 4's directory is hidden";
}

TEST(UnionDir, AFileAboveHidesADirectoryBelow) {
  const UnionDir d =
      merge_union_dir({Part(0, {{"Saves", kFile}}), Part(1, {{"SAVES", kDir}})}, FoldRules{});
  ASSERT_EQ(d.entries.size(), 1u);
  EXPECT_FALSE(d.entries[0].directory);
  EXPECT_TRUE(d.entries[0].parts.empty());
  EXPECT_EQ(d.entries[0].hidden, (std::vector<UnionName>{{1, "SAVES"}}));
}

TEST(UnionDir, AWhiteoutHidesEverySpellingBelowAndIsNotListed) {
  const UnionDir d = merge_union_dir({Part(0, {{"old.esp", kWhiteout}, {"Textures", kDir}}),
                                      Part(1, {{"OLD.ESP", kFile}, {"textures", kWhiteout}}),
                                      Part(2, {{"Old.esp", kFile}, {"TEXTURES", kDir}})},
                                     FoldRules{});
  EXPECT_EQ(Names(d), (std::vector<std::string>{"Textures"}));
  ASSERT_EQ(d.whiteouts.size(), 1u);
  EXPECT_EQ(d.whiteouts[0].whiteout, (UnionName{0, "old.esp"}));
  EXPECT_EQ(d.whiteouts[0].hidden, (std::vector<UnionName>{{1, "OLD.ESP"}, {2, "Old.esp"}}));
  const UnionEntry* textures = Find(d, "Textures");
  ASSERT_NE(textures, nullptr);
  EXPECT_EQ(textures->parts, (std::vector<UnionName>{{0, "Textures"}}))
      << "a whiteout in tree 1 ends the merge: tree 2's directory stays hidden";
}

TEST(UnionDir, ANameBesideAWhiteoutInOneTreeWins) {
  const UnionDir d = merge_union_dir(
      {Part(0, {{"a.txt", kWhiteout}, {"A.TXT", kFile}}), Part(1, {{"a.txt", kFile}})},
      FoldRules{});
  EXPECT_EQ(Names(d), (std::vector<std::string>{"A.TXT"}));
  EXPECT_TRUE(d.whiteouts.empty());
}

TEST(UnionDir, AnOpaquePartHidesEveryPartBelowIt) {
  const UnionDir d = merge_union_dir({Part(0, {{"new", kFile}}), Part(1, {{"mid", kFile}}, true),
                                      Part(2, {{"MID", kFile}, {"low", kFile}})},
                                     FoldRules{});
  EXPECT_EQ(Names(d), (std::vector<std::string>{"mid", "new"}));
  EXPECT_TRUE(Find(d, "mid")->hidden.empty());
}

TEST(UnionDir, CollisionsInsideATreeStayListedAndAreReported) {
  // Inside one tree, equivalent names keep a single-tree mount's rules: each is listed and
  // reached by its exact spelling; other spellings (and lower trees) reach the bytewise
  // smallest, which alone merges with a lower directory.
  const UnionDir d = merge_union_dir(
      {Part(0, {{"Maps", kDir}, {"maps", kDir}}), Part(1, {{"MAPS", kDir}, {"mAPS", kFile}})},
      FoldRules{});
  EXPECT_EQ(Names(d), (std::vector<std::string>{"Maps", "maps"}));
  const UnionEntry* upper = Find(d, "Maps");
  ASSERT_NE(upper, nullptr);
  EXPECT_EQ(upper->parts, (std::vector<UnionName>{{0, "Maps"}, {1, "MAPS"}}));
  EXPECT_EQ(upper->hidden, (std::vector<UnionName>{{1, "mAPS"}}));
  EXPECT_EQ(Find(d, "maps")->parts, (std::vector<UnionName>{{0, "maps"}}));
  ASSERT_EQ(d.collisions.size(), 2u);
  EXPECT_EQ(d.collisions[0].tree, 0u);
  EXPECT_EQ(d.collisions[0].names, (std::vector<std::string>{"Maps", "maps"}));
  EXPECT_EQ(d.collisions[1].tree, 1u);
  EXPECT_EQ(d.collisions[1].names, (std::vector<std::string>{"MAPS", "mAPS"}));
}

TEST(UnionDir, ALowerDirectoryMatchingTheExactSpellingMerges) {
  const UnionDir d = merge_union_dir(
      {Part(0, {{"Data", kDir}}), Part(1, {{"DATA", kDir}, {"Data", kDir}})}, FoldRules{});
  ASSERT_EQ(d.entries.size(), 1u);
  EXPECT_EQ(d.entries[0].parts, (std::vector<UnionName>{{0, "Data"}, {1, "Data"}}));
  EXPECT_EQ(d.entries[0].hidden, (std::vector<UnionName>{{1, "DATA"}}));
}

TEST(UnionDir, FoldingIsTheKernelsNotJustCase) {
  // utf8-12.1: ß folds to ss, and NFD makes precomposed and decomposed one name.
  const UnionDir d = merge_union_dir({Part(0, {{"Straße", kFile}, {"Café", kFile}}),
                                      Part(1, {{"STRASSE", kFile}, {"Cafe\u0301", kFile}})},
                                     FoldRules{});
  EXPECT_EQ(Names(d), (std::vector<std::string>{"Café", "Straße"}));
  EXPECT_EQ(Find(d, "Straße")->hidden, (std::vector<UnionName>{{1, "STRASSE"}}));
  EXPECT_EQ(Find(d, "Café")->hidden, (std::vector<UnionName>{{1, "Cafe\u0301"}}));
}

}  // namespace
}  // namespace foldfs::names
