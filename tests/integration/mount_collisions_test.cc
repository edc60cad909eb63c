// Backing trees that already hold names differing only in case (or normalization) — nothing is
// hidden or lost through the mount — and `foldfs check`, which reports such collisions.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include "harness.h"

namespace foldfs::itest {
namespace {

void Put(const std::string& path, const std::string& content) {
  ASSERT_EQ(write_file(path, content), Errno(0)) << printable(path);
}
void MkdirAt(const std::string& path) {
  ASSERT_EQ(errno_of(::mkdir(path.c_str(), 0755)), Errno(0)) << printable(path);
}

// ---- existing collisions through the mount ---------------------------------------------------

TEST(ExistingCollisions, CasefoldAllListsEveryCollidingNameAndFindsEachExactSpelling) {
  Mount m;
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("FOO"), "upper"));
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("foo"), "lower"));
  ASSERT_TRUE(m.start("casefold=all"));
  EXPECT_EQ(list_dir(m.path("")), (std::vector<std::string>{"FOO", "foo"}));
  EXPECT_EQ(read_file(m.path("FOO")), "upper");
  EXPECT_EQ(read_file(m.path("foo")), "lower");
  EXPECT_FALSE(SameInode(m.path("FOO"), m.path("foo")));
}

TEST(ExistingCollisions, OtherSpellingFindsTheBytewiseFirstName) {
  Mount m;
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("FOO"), "upper"));
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("foo"), "lower"));
  ASSERT_TRUE(m.start("casefold=all"));
  EXPECT_EQ(read_file(m.path("Foo")), "upper");  // "FOO" < "foo" bytewise
  EXPECT_EQ(read_file(m.path("fOO")), "upper");
  EXPECT_TRUE(SameInode(m.path("fOo"), m.path("FOO")));
}

TEST(ExistingCollisions, ThreeWayCollisionResolvesToTheBytewiseFirst) {
  Mount m;
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("foo"), "foo"));
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("fOO"), "fOO"));
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("Foo"), "Foo"));
  ASSERT_TRUE(m.start("casefold=all"));
  EXPECT_EQ(list_dir(m.path("")), (std::vector<std::string>{"Foo", "fOO", "foo"}));
  EXPECT_EQ(read_file(m.path("foo")), "foo");
  EXPECT_EQ(read_file(m.path("fOO")), "fOO");
  EXPECT_EQ(read_file(m.path("Foo")), "Foo");
  EXPECT_EQ(read_file(m.path("FOO")), "Foo");
  EXPECT_EQ(read_file(m.path("foO")), "Foo");
}

TEST(ExistingCollisions, NormalizationVariantsAreBothVisible) {
  Mount m;
  const std::string nfc = "caf\u00e9", nfd = "cafe\u0301";
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath(nfc), "nfc"));
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath(nfd), "nfd"));
  ASSERT_TRUE(m.start("casefold=all"));
  std::vector<std::string> want = {nfc, nfd};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(list_dir(m.path("")), want);
  EXPECT_EQ(read_file(m.path(nfc)), "nfc");
  EXPECT_EQ(read_file(m.path(nfd)), "nfd");
  // "cafe\xcc\x81" < "caf\xc3\xa9" bytewise ('e' < 0xc3).
  EXPECT_EQ(read_file(m.path("CAF\u00c9")), "nfd");
}

TEST(ExistingCollisions, CollidingDirectoriesKeepTheirOwnContents) {
  Mount m;
  ASSERT_NO_FATAL_FAILURE(MkdirAt(m.bpath("Dir")));
  ASSERT_NO_FATAL_FAILURE(MkdirAt(m.bpath("dir")));
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("Dir/a"), "a"));
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("dir/b"), "b"));
  ASSERT_TRUE(m.start("casefold=all"));
  EXPECT_EQ(list_dir(m.path("")), (std::vector<std::string>{"Dir", "dir"}));
  EXPECT_EQ(list_dir(m.path("Dir")), std::vector<std::string>{"a"});
  EXPECT_EQ(list_dir(m.path("dir")), std::vector<std::string>{"b"});
  EXPECT_EQ(list_dir(m.path("DIR")), std::vector<std::string>{"a"});
  EXPECT_EQ(read_file(m.path("dir/B")), "b");
}

TEST(ExistingCollisions, EquivalentCreateFailsAndUnlinkRemovesTheBytewiseFirst) {
  Mount m;
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("FOO"), "upper"));
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("foo"), "lower"));
  ASSERT_TRUE(m.start("casefold=all"));
  EXPECT_EQ(create_excl(m.path("Foo")), Errno(EEXIST));
  EXPECT_EQ(errno_of(::mkdir(m.path("fOo").c_str(), 0755)), Errno(EEXIST));
  ASSERT_EQ(errno_of(::unlink(m.path("Foo").c_str())), Errno(0));
  EXPECT_EQ(list_dir(m.path("")), std::vector<std::string>{"foo"});
  EXPECT_EQ(list_dir(m.bpath("")), std::vector<std::string>{"foo"});
  EXPECT_EQ(read_file(m.path("Foo")), "lower");
}

TEST(ExistingCollisions, CollisionsInAFlaggedDirectoryAfterRemount) {
  Mount m;
  ASSERT_TRUE(m.start());
  ASSERT_EQ(errno_of(::mkdir(m.path("cf").c_str(), 0755)), Errno(0));
  RunResult r = chattr("+F", m.path("cf"));
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_TRUE(m.unmount());
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("cf/FOO"), "upper"));
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("cf/foo"), "lower"));
  ASSERT_TRUE(m.start());
  EXPECT_TRUE(LsattrShowsCasefold(m.path("cf")));
  EXPECT_EQ(list_dir(m.path("cf")), (std::vector<std::string>{"FOO", "foo"}));
  EXPECT_EQ(read_file(m.path("cf/foo")), "lower");
  EXPECT_EQ(read_file(m.path("cf/FOO")), "upper");
  EXPECT_EQ(read_file(m.path("cf/Foo")), "upper");
}

TEST(ExistingCollisions, NameCreatedDirectlyInTheBackingTreeWhileMountedIsVisible) {
  Mount m;
  ASSERT_TRUE(m.start("casefold=all"));
  ASSERT_EQ(write_file(m.path("x"), "through mount"), Errno(0));
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("X"), "in backing"));
  EXPECT_EQ(list_dir(m.path("")), (std::vector<std::string>{"X", "x"}));
  EXPECT_EQ(read_file(m.path("x")), "through mount");
  EXPECT_EQ(read_file(m.path("X")), "in backing");
}

// ---- foldfs check -----------------------------------------------------------------------------

RunResult Check(std::vector<std::string> args) {
  std::vector<std::string> argv = {foldfs_binary(), "check"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, 60s);
}

std::vector<std::string> Lines(const std::string& out) {
  std::vector<std::string> lines;
  std::stringstream ss(out);
  std::string l;
  while (std::getline(ss, l)) lines.push_back(l);
  std::sort(lines.begin(), lines.end());
  return lines;
}

TEST(FoldfsCheck, TreeWithoutCollisionsExitsZeroAndPrintsNothing) {
  TempDir t;
  ASSERT_NO_FATAL_FAILURE(Put(t.path("a"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("b"), ""));
  ASSERT_NO_FATAL_FAILURE(MkdirAt(t.path("dir")));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("dir/c"), ""));
  RunResult r = Check({t.path()});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "") << r;
  r = Check({"--casefold=all", t.path()});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "") << r;
}

TEST(FoldfsCheck, WithoutCasefoldAllOnlyFlaggedDirectoriesCount) {
  TempDir t;
  ASSERT_NO_FATAL_FAILURE(Put(t.path("FOO"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("foo"), ""));
  RunResult r = Check({t.path()});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "") << r;
  r = Check({"--casefold=all", t.path()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(r.out, ".\tFOO\tfoo\n") << r;
}

TEST(FoldfsCheck, DirectoriesFlaggedThroughTheMountAreChecked) {
  Mount m;
  ASSERT_TRUE(m.start());
  ASSERT_EQ(errno_of(::mkdir(m.path("cf").c_str(), 0755)), Errno(0));
  ASSERT_EQ(errno_of(::mkdir(m.path("plain").c_str(), 0755)), Errno(0));
  RunResult c = chattr("+F", m.path("cf"));
  ASSERT_TRUE(c.ok()) << c;
  ASSERT_TRUE(m.unmount());
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("cf/foo"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("cf/FOO"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("plain/bar"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(m.bpath("plain/BAR"), ""));
  RunResult r = Check({m.backing()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(r.out, "cf\tFOO\tfoo\n") << r;
  r = Check({"--casefold=all", m.backing()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(Lines(r.out), (std::vector<std::string>{"cf\tFOO\tfoo", "plain\tBAR\tbar"})) << r;
}

TEST(FoldfsCheck, NestedDirectoryIsReportedRelativeToTheBackingDir) {
  TempDir t;
  ASSERT_NO_FATAL_FAILURE(MkdirAt(t.path("a")));
  ASSERT_NO_FATAL_FAILURE(MkdirAt(t.path("a/b")));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("a/b/X"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("a/b/x"), ""));
  RunResult r = Check({"--casefold=all", t.path()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(r.out, "a/b\tX\tx\n") << r;
}

TEST(FoldfsCheck, OneLinePerGroupWithNamesSortedBytewise) {
  TempDir t;
  for (const char* n : {"foo", "FOO", "Foo", "b", "B", "unique"})
    ASSERT_NO_FATAL_FAILURE(Put(t.path(n), ""));
  ASSERT_NO_FATAL_FAILURE(MkdirAt(t.path("s")));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("s/q"), ""));
  ASSERT_NO_FATAL_FAILURE(MkdirAt(t.path("s/Q")));
  RunResult r = Check({"--casefold=all", t.path()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(Lines(r.out), (std::vector<std::string>{".\tB\tb", ".\tFOO\tFoo\tfoo", "s\tQ\tq"}))
      << r;
}

TEST(FoldfsCheck, UnicodeEquivalentsAndIgnorablesCollide) {
  TempDir t;
  ASSERT_NO_FATAL_FAILURE(Put(t.path("caf\u00e9"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("cafe\u0301"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("ab"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("a\u200Bb"), ""));
  RunResult r = Check({"--casefold=all", t.path()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(Lines(r.out), (std::vector<std::string>{".\tab\ta\u200Bb", ".\tcafe\u0301\tcaf\u00e9"}))
      << r;
}

TEST(FoldfsCheck, InvalidUtf8NamesCollideOnlyWhenIdentical) {
  TempDir t;
  ASSERT_NO_FATAL_FAILURE(Put(t.path("corac\xcc\xa7\xc3"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("cora\xc3\xa7\xc3"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("\xff"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("\xfe"), ""));
  RunResult r = Check({"--casefold=all", t.path()});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "") << r;
}

TEST(FoldfsCheck, TabsNewlinesAndBackslashesInNamesAreEscaped) {
  TempDir t;
  ASSERT_NO_FATAL_FAILURE(Put(t.path("a\tb"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("A\tB"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("x\ny"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("X\nY"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("p\\q"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("P\\Q"), ""));
  ASSERT_NO_FATAL_FAILURE(MkdirAt(t.path("d\te")));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("d\te/m"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("d\te/M"), ""));
  RunResult r = Check({"--casefold=all", t.path()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(Lines(r.out), (std::vector<std::string>{
                              ".\tA\\tB\ta\\tb",
                              ".\tP\\\\Q\tp\\\\q",
                              ".\tX\\nY\tx\\ny",
                              "d\\te\tM\tm",
                          }))
      << r;
}

TEST(FoldfsCheck, DoesNotFollowSymlinks) {
  TempDir t;
  ASSERT_NO_FATAL_FAILURE(Put(t.path("K"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("k"), ""));
  ASSERT_EQ(::symlink(".", t.path("self").c_str()), 0);  // a loop if followed
  TempDir outside;
  ASSERT_NO_FATAL_FAILURE(Put(outside.path("Z"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(outside.path("z"), ""));
  ASSERT_EQ(::symlink(outside.path().c_str(), t.path("out").c_str()), 0);
  RunResult r = Check({"--casefold=all", t.path()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(r.out, ".\tK\tk\n") << r;
}

TEST(FoldfsCheck, DoesNotModifyTheTree) {
  TempDir t;
  ASSERT_NO_FATAL_FAILURE(Put(t.path("FOO"), "1"));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("foo"), "2"));
  RunResult r = Check({"--casefold=all", t.path()});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(list_dir(t.path()), (std::vector<std::string>{"FOO", "foo"}));
  EXPECT_EQ(read_file(t.path("FOO")), "1");
  EXPECT_EQ(read_file(t.path("foo")), "2");
}

// ---- foldfs check over a union of trees (docs/union.md) ----------------------------------------

// A game, two mods overriding it in other spellings, an upper tree with a whiteout, a directory
// made opaque, and a collision inside one mod: the report names each, with the trees as given.
TEST(FoldfsCheck, AUnionReportsWhatCaseInsensitivityChangesAcrossTrees) {
  TempDir t;
  for (const char* d :
       {"up", "up/Logs", "mod2", "mod2/data", "mod1", "mod1/DATA", "mod1/DATA/textures", "game",
        "game/Data", "game/Data/Textures", "game/Logs"}) {
    ASSERT_NO_FATAL_FAILURE(MkdirAt(t.path(d)));
  }
  for (const char* file :
       {"game/Data/Textures/sky.DDS", "game/Data/Textures/moon.dds", "mod1/DATA/textures/Sky.dds",
        "game/Data/Readme.txt", "mod2/data/README.TXT", "mod2/data/readme.txt", "game/Gone.esp"}) {
    ASSERT_NO_FATAL_FAILURE(Put(t.path(file), file));
  }
  ASSERT_EQ(errno_of(::mknod(t.path("up/gone.esp").c_str(), S_IFCHR | 0600, 0)), Errno(0));
  // up/Logs is opaque: game/Logs/OLD.LOG is not part of the union, so old.log hides nothing.
  ASSERT_NO_FATAL_FAILURE(Put(t.path("up/Logs/old.log"), "upper"));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("game/Logs/OLD.LOG"), "below an opaque directory"));
  ASSERT_EQ(errno_of(::setxattr(t.path("up/Logs").c_str(), "trusted.overlay.opaque", "y", 1, 0)),
            Errno(0));
  RunResult r = Check({"--upperdir=" + t.path("up"), "--lowerdir=" + t.path("mod2") + ":" +
                                                         t.path("mod1") + ":" + t.path("game")});
  EXPECT_EQ(r.exit_code, 1) << "a collision inside mod2\n" << r;
  const std::string up = t.path("up"), m2 = t.path("mod2"), m1 = t.path("mod1"), g = t.path("game");
  EXPECT_EQ(
      Lines(r.out),
      Lines("removes\t.\t" + up + "\tgone.esp\t" + g + "\tGone.esp\n" + "merges\t.\t" + m2 +
            "\tdata\t" + m1 + "\tDATA\n" + "merges\t.\t" + m2 + "\tdata\t" + g + "\tData\n" +
            "collision\tdata\t" + m2 + "\tREADME.TXT\treadme.txt\n" + "hides\tdata\t" + m2 +
            "\tREADME.TXT\t" + g + "\tReadme.txt\n" + "merges\tdata\t" + m1 + "\ttextures\t" + g +
            "\tTextures\n" + "hides\tdata/textures\t" + m1 + "\tSky.dds\t" + g + "\tsky.DDS\n"))
      << r;
  // Without the collision the same union exits 0; the other lines remain.
  ASSERT_EQ(errno_of(::unlink(t.path("mod2/data/readme.txt").c_str())), Errno(0));
  r = Check({"--upperdir=" + up, "--lowerdir=" + m2 + ":" + m1 + ":" + g});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(Lines(r.out).size(), 6u) << r;
}

TEST(FoldfsCheck, AUnionTakesOverlayfsListsAndNoBacking) {
  TempDir t;
  ASSERT_NO_FATAL_FAILURE(MkdirAt(t.path("a:b")));
  ASSERT_NO_FATAL_FAILURE(MkdirAt(t.path("c")));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("a:b/File"), ""));
  ASSERT_NO_FATAL_FAILURE(Put(t.path("c/FILE"), ""));
  RunResult r = Check({"--lowerdir=" + t.path("a\\:b") + ":" + t.path("c")});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "hides\t.\t" + t.path("a:b") + "\tFile\t" + t.path("c") + "\tFILE\n") << r;
  EXPECT_EQ(Check({"--lowerdir=" + t.path("c"), t.path("c")}).exit_code, 2);
  EXPECT_EQ(Check({"--upperdir=" + t.path("c")}).exit_code, 2);
  EXPECT_EQ(Check({"--lowerdir=" + t.path("missing")}).exit_code, 2);
}

TEST(FoldfsCheck, MissingBackingArgumentIsAUsageError) {
  RunResult r = Check({});
  EXPECT_EQ(r.exit_code, 2) << r;
  r = Check({"--casefold=all"});
  EXPECT_EQ(r.exit_code, 2) << r;
}

}  // namespace
}  // namespace foldfs::itest
