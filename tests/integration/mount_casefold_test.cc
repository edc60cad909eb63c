// Casefolded directories through a real mount: every behaviour fstests generic/556 checks on
// ext4, plus the rest of the ext4 semantics of the contract (EEXIST for equivalent names,
// O_CREAT opening the existing file, rename to an equivalent name, "." / ".." look-alikes).
// Default mode (casefold=flag): only directories with `chattr +F` fold.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>

#include "harness.h"

namespace foldfs::itest {
namespace {

using CasefoldTest = MountedTest;

// ---- the four Unicode pairs of generic/556 (and plain ASCII case) ----------------------------

struct NamePair {
  std::string label;
  std::string exact;  // the spelling created
  std::string other;  // an equivalent spelling used to look it up
};

std::vector<NamePair> Pairs() {
  std::vector<NamePair> base = {
      {"Ascii", "file.txt", "FILE.TXT"},
      // NFC lower-case vs upper-case ASCII with a decomposed c-cedilla (generic/556 pt_file)
      {"Portuguese", "cora\u00e7\u00e3o", "CORAC\u0327\u00e3O"},
      // NFD vs NFC e-acute
      {"French", "french_cafe\u0301.txt", "french_caf\u00e9.txt"},
      // YEH BARREE + HAMZA ABOVE vs the precomposed U+06D3, ASCII upper-cased
      {"Arabic", "arabic_\u06d2\u0654.txt", "ARABIC_\u06d3.TXT"},
      // KATAKANA GE vs KE + combining voiced mark
      {"Japanese", "japanese_\u30b2.txt", "japanese_\u30b1\u3099.txt"},
  };
  std::vector<NamePair> all = base;
  for (const auto& p : base) all.push_back({p.label + "Reversed", p.other, p.exact});
  return all;
}

class CasefoldPair : public CasefoldTest, public ::testing::WithParamInterface<NamePair> {};

TEST_P(CasefoldPair, LookupByOtherSpellingFindsFileAndKeepsExactName) {
  const auto& [label, exact, other] = GetParam();
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  ASSERT_EQ(write_file(P("cf/" + exact), "payload"), Errno(0));
  EXPECT_TRUE(IsRegularFile(P("cf/" + other)));
  EXPECT_EQ(read_file(P("cf/" + other)), "payload");
  EXPECT_TRUE(SameInode(P("cf/" + exact), P("cf/" + other)));
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{exact});
  EXPECT_EQ(list_dir(m.bpath("cf")), std::vector<std::string>{exact}) << "on-disk name changed";
}

TEST_P(CasefoldPair, ExclusiveCreateOrMkdirOfOtherSpellingFailsWithEexist) {
  const auto& [label, exact, other] = GetParam();
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  ASSERT_EQ(write_file(P("cf/" + exact), "payload"), Errno(0));
  EXPECT_EQ(create_excl(P("cf/" + other)), Errno(EEXIST));
  EXPECT_EQ(errno_of(::mkdir(P("cf/" + other).c_str(), 0755)), Errno(EEXIST));
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{exact});
  EXPECT_EQ(read_file(P("cf/" + exact)), "payload");
}

TEST_P(CasefoldPair, CreateThenRemoveByExactName) {
  const auto& [label, exact, other] = GetParam();
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  ASSERT_EQ(touch(P("cf/" + exact)), Errno(0));
  ASSERT_TRUE(IsRegularFile(P("cf/" + other)));
  ASSERT_EQ(errno_of(::unlink(P("cf/" + exact).c_str())), Errno(0));
  EXPECT_TRUE(DoesNotExist(P("cf/" + exact)));
  EXPECT_TRUE(DoesNotExist(P("cf/" + other)));
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{});
}

TEST_P(CasefoldPair, CreateThenRemoveByOtherSpelling) {
  const auto& [label, exact, other] = GetParam();
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  ASSERT_EQ(touch(P("cf/" + exact)), Errno(0));
  ASSERT_TRUE(IsRegularFile(P("cf/" + exact)));
  ASSERT_TRUE(IsRegularFile(P("cf/" + other)));
  ASSERT_EQ(errno_of(::unlink(P("cf/" + other).c_str())), Errno(0));
  EXPECT_TRUE(DoesNotExist(P("cf/" + exact))) << "removed by " << printable(other);
  EXPECT_TRUE(DoesNotExist(P("cf/" + other)));
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{});
  EXPECT_EQ(list_dir(m.bpath("cf")), std::vector<std::string>{});
}

TEST_P(CasefoldPair, RecreatedFileKeepsTheNewSpelling) {
  const auto& [label, exact, other] = GetParam();
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  ASSERT_EQ(touch(P("cf/" + exact)), Errno(0));
  ASSERT_EQ(errno_of(::unlink(P("cf/" + exact).c_str())), Errno(0));
  ASSERT_EQ(touch(P("cf/" + other)), Errno(0));
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{other});
  EXPECT_EQ(list_dir(m.bpath("cf")), std::vector<std::string>{other});
  EXPECT_TRUE(IsRegularFile(P("cf/" + exact)));
}

TEST_P(CasefoldPair, RecreatedDirectoryKeepsTheNewSpelling) {
  const auto& [label, exact, other] = GetParam();
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf/" + exact));
  ASSERT_EQ(errno_of(::rmdir(P("cf/" + exact).c_str())), Errno(0));
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf/" + other));
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{other});
  EXPECT_EQ(list_dir(m.bpath("cf")), std::vector<std::string>{other});
  EXPECT_TRUE(IsDirectory(P("cf/" + exact)));
}

INSTANTIATE_TEST_SUITE_P(Generic556, CasefoldPair, ::testing::ValuesIn(Pairs()),
                         [](const auto& info) { return info.param.label; });

// ---- generic/556, one test per behaviour ------------------------------------------------------

using Generic556 = CasefoldTest;

// Invalid UTF-8: \xc3 cut short. Equal if decoding stopped at the error; they must not be.
const std::string kBlob1 = "corac\xcc\xa7\xc3";
const std::string kBlob2 = "cora\xc3\xa7\xc3";

TEST_F(Generic556, SetAndClearFlagOnEmptyDirectory) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("basic"));
  EXPECT_TRUE(LsattrShowsNoCasefold(P("basic")));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "basic"));
  EXPECT_TRUE(LsattrShowsCasefold(P("basic")));
  RunResult l = run({"lsattr", "-ld", P("basic")});
  EXPECT_NE(l.out.find("Casefold"), std::string::npos) << l;
  ASSERT_NO_FATAL_FAILURE(Chattr("-F", "basic"));
  EXPECT_TRUE(LsattrShowsNoCasefold(P("basic")));
  l = run({"lsattr", "-ld", P("basic")});
  EXPECT_EQ(l.out.find("Casefold"), std::string::npos) << l;
  // Case-sensitive again.
  ASSERT_EQ(touch(P("basic/file.txt")), Errno(0));
  EXPECT_TRUE(DoesNotExist(P("basic/FILE.TXT")));
}

TEST_F(Generic556, InvalidUtf8NamesDoNotMatchEachOther) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("casefold_lookup"));
  ASSERT_EQ(touch(P("casefold_lookup/" + kBlob1)), Errno(0));
  EXPECT_TRUE(DoesNotExist(P("casefold_lookup/" + kBlob2)));
  ASSERT_EQ(touch(P("casefold_lookup/" + kBlob2)), Errno(0));
  EXPECT_FALSE(SameInode(P("casefold_lookup/" + kBlob1), P("casefold_lookup/" + kBlob2)));
  std::vector<std::string> want = {kBlob1, kBlob2};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(list_dir(P("casefold_lookup")), want);
}

TEST_F(Generic556, ClearingFlagOnNonEmptyDirectoryIsRefused) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("casefold_flag_removal"));
  EXPECT_TRUE(LsattrShowsCasefold(P("casefold_flag_removal")));
  ASSERT_EQ(touch(P("casefold_flag_removal/file.txt")), Errno(0));
  RunResult r = chattr("-F", P("casefold_flag_removal"));
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_NE(r.err.find("Directory not empty"), std::string::npos) << r;
  EXPECT_TRUE(LsattrShowsCasefold(P("casefold_flag_removal")));
  EXPECT_TRUE(IsRegularFile(P("casefold_flag_removal/FILE.TXT")));
}

TEST_F(Generic556, MkdirPInheritsFlagAndOtherSpellingsOfThePathWork) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("flag_inheritance"));
  RunResult r = run({"mkdir", "-p", P("flag_inheritance/d1/d2/d3")});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_TRUE(LsattrShowsCasefold(P("flag_inheritance/d1")));
  EXPECT_TRUE(LsattrShowsCasefold(P("flag_inheritance/d1/d2")));
  EXPECT_TRUE(LsattrShowsCasefold(P("flag_inheritance/d1/d2/d3")));
  EXPECT_TRUE(IsDirectory(P("flag_inheritance/D1/D2/D3")));
  EXPECT_EQ(list_dir(P("flag_inheritance")), std::vector<std::string>{"d1"});
  EXPECT_EQ(list_dir(P("flag_inheritance/d1")), std::vector<std::string>{"d2"});
  EXPECT_EQ(list_dir(P("flag_inheritance/d1/d2")), std::vector<std::string>{"d3"});
  ASSERT_EQ(touch(P("flag_inheritance/D1/D2/D3/file.txt")), Errno(0));
  EXPECT_TRUE(IsRegularFile(P("flag_inheritance/d1/d2/d3/FILE.TXT")));
  EXPECT_EQ(list_dir(P("flag_inheritance/d1/d2/d3")), std::vector<std::string>{"file.txt"});
  // mkdir -p through other spellings reuses the existing components.
  r = run({"mkdir", "-p", P("flag_inheritance/D1/d2/D3/d4")});
  ASSERT_TRUE(r.ok()) << r;
  EXPECT_EQ(list_dir(P("flag_inheritance")), std::vector<std::string>{"d1"});
  EXPECT_EQ(list_dir(P("flag_inheritance/d1/d2/d3")), (std::vector<std::string>{"d4", "file.txt"}));
}

TEST_F(Generic556, NestedSensitiveDirectoryInsideInsensitiveOne) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("sd1"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("sd1/sd1"));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "sd1/sd1"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("sd1/sd1/sd2"));
  ASSERT_NO_FATAL_FAILURE(Chattr("-F", "sd1/sd1/sd2"));
  EXPECT_TRUE(LsattrShowsNoCasefold(P("sd1/sd1/sd2")));
  ASSERT_EQ(touch(P("sd1/sd1/sd2/file.txt")), Errno(0));
  EXPECT_TRUE(IsRegularFile(P("sd1/sd1/sd2/file.txt")));
  EXPECT_TRUE(IsRegularFile(P("sd1/sd1/SD2/file.txt")));
  EXPECT_TRUE(DoesNotExist(P("sd1/sd1/SD2/FILE.TXT")));
}

TEST_F(Generic556, AlternatingNestedFlagsFoldOnlyComponentsInCasefoldedParents) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("nesting"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("nesting/nd1"));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "nesting/nd1"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("nesting/nd1/nd2"));
  ASSERT_NO_FATAL_FAILURE(Chattr("-F", "nesting/nd1/nd2"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("nesting/nd1/nd2/nd3"));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "nesting/nd1/nd2/nd3"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("nesting/nd1/nd2/nd3/nd4"));
  ASSERT_NO_FATAL_FAILURE(Chattr("-F", "nesting/nd1/nd2/nd3/nd4"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("nesting/nd1/nd2/nd3/nd4/nd5"));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "nesting/nd1/nd2/nd3/nd4/nd5"));

  EXPECT_TRUE(IsDirectory(P("nesting/ND1/ND2/nd3/ND4/nd5")));
  EXPECT_TRUE(DoesNotExist(P("nesting/nd1/nd2/nd3/nd4/ND5")));  // nd4 is case-sensitive
  EXPECT_TRUE(IsDirectory(P("nesting/nd1/nd2/nd3/ND4/nd5")));
  EXPECT_TRUE(DoesNotExist(P("nesting/nd1/nd2/ND3/nd4/ND5")));  // nd2 is case-sensitive
}

TEST_F(Generic556, SymlinkToInexactSpellingResolvesAndKeepsItsText) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("symlink"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("symlink/ind1"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("symlink/ind2"));
  ASSERT_NO_FATAL_FAILURE(Chattr("+F", "symlink/ind1"));
  ASSERT_EQ(touch(P("symlink/ind1/target")), Errno(0));
  const std::string text = P("symlink/ind1/TARGET");
  ASSERT_EQ(errno_of(::symlink(text.c_str(), P("symlink/ind2/link").c_str())), Errno(0));
  EXPECT_TRUE(IsSymlink(P("symlink/ind2/link")));
  EXPECT_EQ(readlink_of(P("symlink/ind2/link")), text);
  auto via_link = stat_of(P("symlink/ind2/link"));
  auto target = lstat_of(P("symlink/ind1/target"));
  ASSERT_TRUE(via_link.has_value()) << "following the symlink failed: " << errno;
  ASSERT_TRUE(target.has_value());
  EXPECT_EQ(via_link->st_ino, target->st_ino);
  RunResult r = run({"readlink", "-e", P("symlink/ind2/link")});
  EXPECT_EQ(r.out, text + "\n") << r;
}

TEST_F(Generic556, DeletedNameIsNotReusedWhenRecreatedWithAnotherCase) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("reuse"));
  ASSERT_EQ(touch(P("reuse/fileX")), Errno(0));
  ASSERT_EQ(errno_of(::unlink(P("reuse/fileX").c_str())), Errno(0));
  ASSERT_EQ(touch(P("reuse/FILEX")), Errno(0));
  EXPECT_EQ(list_dir(P("reuse")), std::vector<std::string>{"FILEX"});
}

TEST_F(Generic556, TouchThroughOtherSpellingsReusesExistingNames) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("same_name"));
  RunResult r = run({"mkdir", "-p", P("same_name/same1/same1")});
  ASSERT_TRUE(r.ok()) << r;
  ASSERT_EQ(touch(P("same_name/SAME1/sAME1/sAMe1")), Errno(0));
  EXPECT_TRUE(IsRegularFile(P("same_name/SAME1/sAME1/same1")));
  r = run({"touch", "-c", P("same_name/SAME1/sAME1/same1")});
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(list_dir(P("same_name")), std::vector<std::string>{"same1"});
  EXPECT_EQ(list_dir(P("same_name/same1")), std::vector<std::string>{"same1"});
  EXPECT_EQ(list_dir(P("same_name/same1/same1")), std::vector<std::string>{"sAMe1"});
}

TEST_F(Generic556, MvToEquivalentNameIsRefusedAsTheSameFile) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("rename"));
  ASSERT_EQ(touch(P("rename/rename")), Errno(0));
  RunResult r = run({"mv", P("rename/rename"), P("rename/RENAME")});
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_NE(r.err.find("are the same file"), std::string::npos) << r;
  EXPECT_EQ(list_dir(P("rename")), std::vector<std::string>{"rename"});
}

TEST_F(Generic556, RenameCasefoldedTopLevelDirectoryAfterDropCaches) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("Top"));
  ASSERT_EQ(write_file(P("Top/file.txt"), "a"), Errno(0));
  ASSERT_NO_FATAL_FAILURE(Mkdir("Top/Sub"));
  ASSERT_TRUE(drop_caches());
  ASSERT_EQ(errno_of(::rename(P("Top").c_str(), P("Top2").c_str())), Errno(0));
  ASSERT_TRUE(drop_caches());
  EXPECT_TRUE(DoesNotExist(P("Top")));
  EXPECT_EQ(list_dir(P("")), std::vector<std::string>{"Top2"});
  EXPECT_TRUE(LsattrShowsCasefold(P("Top2")));
  EXPECT_EQ(read_file(P("Top2/FILE.TXT")), "a");
  EXPECT_TRUE(IsDirectory(P("Top2/sub")));
  // The root is case-sensitive (casefold=flag): a case-only rename is a real rename.
  ASSERT_EQ(errno_of(::rename(P("Top2").c_str(), P("top").c_str())), Errno(0));
  ASSERT_TRUE(drop_caches());
  EXPECT_EQ(list_dir(P("")), std::vector<std::string>{"top"});
  EXPECT_TRUE(DoesNotExist(P("Top2")));
  EXPECT_EQ(read_file(P("top/File.Txt")), "a");
  EXPECT_EQ(list_dir(P("top")), (std::vector<std::string>{"Sub", "file.txt"}));
}

TEST_F(Generic556, OpenFdSurvivesRemovalAndMkdirOfOtherSpelling) {
  SKIP_WHERE_THE_BACKING_LACKS(kOpenFilesSurviveUnlink);
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("openfd"));
  int fd = ::open(P("openfd/openfd").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << Errno(errno);
  RunResult r = run({"rm", "-rf", P("openfd/openfd")});
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(errno_of(::mkdir(P("openfd/OPENFD").c_str(), 0755)), Errno(0));
  EXPECT_TRUE(IsDirectory(P("openfd/OPENFD")));
  EXPECT_TRUE(IsDirectory(P("openfd/openfd")));
  EXPECT_EQ(list_dir(P("openfd")), std::vector<std::string>{"OPENFD"});
  EXPECT_EQ(::write(fd, "still", 5), 5) << Errno(errno);
  char buf[16] = {};
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), 5) << Errno(errno);
  EXPECT_STREQ(buf, "still");
  struct stat st;
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_EQ(errno_of(::rmdir(P("openfd/OPENFD").c_str())), Errno(0));
  EXPECT_EQ(::close(fd), 0);
  EXPECT_EQ(list_dir(P("openfd")), std::vector<std::string>{});
}

TEST_F(Generic556, OpenFdSurvivesRemovalAndRecreationAsFileOfOtherSpelling) {
  SKIP_WHERE_THE_BACKING_LACKS(kOpenFilesSurviveUnlink);
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("openfd2"));
  ASSERT_EQ(write_file(P("openfd2/openfd"), "data\n"), Errno(0));
  int fd = ::open(P("openfd2/openfd").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << Errno(errno);
  RunResult r = run({"rm", "-rf", P("openfd2/openfd")});
  EXPECT_TRUE(r.ok()) << r;
  ASSERT_EQ(touch(P("openfd2/OPENFD")), Errno(0));
  EXPECT_TRUE(IsRegularFile(P("openfd2/openfd")));
  EXPECT_EQ(list_dir(P("openfd2")), std::vector<std::string>{"OPENFD"});
  char buf[16] = {};
  EXPECT_EQ(::read(fd, buf, sizeof buf), 5) << Errno(errno);
  EXPECT_STREQ(buf, "data\n");
  EXPECT_EQ(append_file(P("openfd2/openfd"), buf), Errno(0));
  EXPECT_EQ(read_file(P("openfd2/OPENFD")), "data\n");
  struct stat st;
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  auto now = lstat_of(P("openfd2/OPENFD"));
  ASSERT_TRUE(now.has_value());
  EXPECT_NE(now->st_ino, st.st_ino);
  EXPECT_EQ(::close(fd), 0);
}

TEST_F(Generic556, HardLinksThroughOtherSpellingsHaveCorrectLinkCounts) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("hard_link"));
  ASSERT_EQ(touch(P("hard_link/h1")), Errno(0));
  ASSERT_EQ(errno_of(::link(P("hard_link/H1").c_str(), P("h1").c_str())), Errno(0));
  auto s1 = lstat_of(P("hard_link/h1"));
  ASSERT_TRUE(s1.has_value());
  EXPECT_EQ(s1->st_nlink, 2u);
  EXPECT_TRUE(SameInode(P("h1"), P("hard_link/h1")));

  ASSERT_EQ(touch(P("h2")), Errno(0));
  ASSERT_EQ(errno_of(::link(P("h2").c_str(), P("hard_link/H2").c_str())), Errno(0));
  auto s2 = lstat_of(P("hard_link/h2"));
  ASSERT_TRUE(s2.has_value());
  EXPECT_EQ(s2->st_nlink, 2u);
  EXPECT_EQ(list_dir(P("hard_link")), (std::vector<std::string>{"H2", "h1"}));
  // The root is case-sensitive: "H1" and "H2" don't exist there.
  EXPECT_TRUE(DoesNotExist(P("H1")));

  ASSERT_EQ(errno_of(::unlink(P("hard_link/h2").c_str())), Errno(0));
  auto s3 = lstat_of(P("h2"));
  ASSERT_TRUE(s3.has_value());
  EXPECT_EQ(s3->st_nlink, 1u);
  EXPECT_EQ(list_dir(P("hard_link")), std::vector<std::string>{"h1"});
}

TEST_F(Generic556, UserXattrsOnDirsAndFilesThroughOtherSpellings) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("xattrs"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("xattrs/x"));
  EXPECT_EQ(set_xattr(P("xattrs/X"), "user.foo", "bar"), Errno(0));
  EXPECT_EQ(get_xattr(P("xattrs/x"), "user.foo").value, "bar");
  RunResult r = run({"getfattr", "--absolute-names", "-n", "user.foo", P("xattrs/x")});
  EXPECT_NE(r.out.find("user.foo=\"bar\""), std::string::npos) << r;

  ASSERT_EQ(touch(P("xattrs/x/f1")), Errno(0));
  EXPECT_EQ(set_xattr(P("xattrs/X/F1"), "user.foo", "bar"), Errno(0));
  XattrResult g = get_xattr(P("xattrs/x/f1"), "user.foo");
  EXPECT_EQ(g.error, Errno(0));
  EXPECT_EQ(g.value, "bar");
  EXPECT_EQ(get_xattr(m.bpath("xattrs/x/f1"), "user.foo").value, "bar")
      << "the xattr is not on the backing file";
  auto names = list_xattrs(P("xattrs/x/F1"));
  EXPECT_NE(std::find(names.begin(), names.end(), "user.foo"), names.end()) << join(names);
  EXPECT_EQ(remove_xattr(P("xattrs/X/f1"), "user.foo"), Errno(0));
  EXPECT_EQ(get_xattr(P("xattrs/x/f1"), "user.foo").error, Errno(ENODATA));
}

TEST_F(Generic556, LargeDirectoryFindsAll2001FilesByUpperCaseNames) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("large"));
  for (int i = 0; i <= 2000; ++i)
    ASSERT_EQ(touch(P("large/file" + std::to_string(i))), Errno(0)) << i;
  int failures = 0;
  std::string first;
  for (int i = 0; i <= 2000; ++i) {
    std::string p = P("large/FILE" + std::to_string(i));
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (failures++ == 0) first = "FILE" + std::to_string(i) + ": " + ::strerrorname_np(errno);
      continue;
    }
    ::close(fd);
  }
  EXPECT_EQ(failures, 0) << "first failure: " << first;
  EXPECT_EQ(list_dir(P("large")).size(), 2001u);
}

// ---- strict mode ----------------------------------------------------------------------------

class Generic556Strict : public CasefoldTest {
  std::string MountOptions() const override { return "strict"; }
};

TEST_F(Generic556Strict, InvalidNamesAreRefusedWithEinvalInCasefoldedDir) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("strict"));
  ASSERT_EQ(touch(P("strict/ok")), Errno(0));
  for (const std::string& bad : {kBlob1, kBlob2, std::string("\xff")}) {
    SCOPED_TRACE(printable(bad));
    const std::string p = P("strict/" + bad);
    EXPECT_EQ(touch(p), Errno(EINVAL));
    EXPECT_EQ(errno_of(::mkdir(p.c_str(), 0755)), Errno(EINVAL));
    EXPECT_EQ(errno_of(::symlink("ok", p.c_str())), Errno(EINVAL));
    EXPECT_EQ(errno_of(::mknod(p.c_str(), S_IFIFO | 0644, 0)), Errno(EINVAL));
    EXPECT_EQ(errno_of(::link(P("strict/ok").c_str(), p.c_str())), Errno(EINVAL));
    EXPECT_EQ(errno_of(::rename(P("strict/ok").c_str(), p.c_str())), Errno(EINVAL));
  }
  RunResult r = run({"touch", P("strict/" + kBlob1)});
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_NE(r.err.find("Invalid argument"), std::string::npos) << r;
  EXPECT_EQ(list_dir(P("strict")), std::vector<std::string>{"ok"});
  EXPECT_EQ(list_dir(m.bpath("strict")), std::vector<std::string>{"ok"});
}

// Looking up is not creating: as on ext4 with strict encoding, only making a name that is not
// valid UTF-8 is refused (EINVAL); looking one up answers ENOENT, and one that exists (made
// outside the mount) is found by its exact bytes.
TEST_F(Generic556Strict, LookingUpAnInvalidNameIsNotAnErrorButMakingOneIs) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("strict"));
  ASSERT_EQ(touch(P("strict/ok")), Errno(0));
  for (const std::string& bad : {kBlob1, std::string("\xff")}) {
    SCOPED_TRACE(printable(bad));
    const std::string p = P("strict/" + bad);
    struct stat st;
    EXPECT_EQ(errno_of(::lstat(p.c_str(), &st)), Errno(ENOENT));
    EXPECT_EQ(errno_of(::open(p.c_str(), O_RDONLY | O_CLOEXEC)), Errno(ENOENT));
    EXPECT_EQ(errno_of(::access(p.c_str(), F_OK)), Errno(ENOENT));
    EXPECT_EQ(errno_of(::unlink(p.c_str())), Errno(ENOENT));
    EXPECT_EQ(errno_of(::rmdir(p.c_str())), Errno(ENOENT));
    EXPECT_EQ(errno_of(::rename(p.c_str(), P("strict/new").c_str())), Errno(ENOENT));
    EXPECT_EQ(errno_of(::open(p.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644)), Errno(EINVAL));
    EXPECT_EQ(errno_of(::rename(P("strict/ok").c_str(), p.c_str())), Errno(EINVAL));
  }
  // Made outside the mount: found by its exact bytes, and can be removed.
  ASSERT_EQ(write_file(m.bpath("strict/" + kBlob1), "outside"), Errno(0));
  // Outside changes reach the kernel's cache a moment later (docs/coherence.md).
  EXPECT_GE(seconds_until([&] { return read_file(P("strict/" + kBlob1)) == "outside"; }, 2s), 0);
  EXPECT_EQ(errno_of(::unlink(P("strict/" + kBlob1).c_str())), Errno(0));
  EXPECT_EQ(list_dir(m.bpath("strict")), std::vector<std::string>{"ok"});
}

TEST_F(Generic556Strict, InvalidNamesAreAllowedInCaseSensitiveDir) {
  ASSERT_NO_FATAL_FAILURE(Mkdir("plain"));
  EXPECT_EQ(touch(P("plain/" + kBlob1)), Errno(0));
  EXPECT_EQ(errno_of(::mkdir(P("plain/" + kBlob2).c_str(), 0755)), Errno(0));
  std::vector<std::string> want = {kBlob1, kBlob2};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(list_dir(P("plain")), want);
}

class Generic556StrictAll : public CasefoldTest {
  std::string MountOptions() const override { return "casefold=all,strict"; }
};

TEST_F(Generic556StrictAll, InvalidNamesAreRefusedEverywhere) {
  EXPECT_EQ(touch(P(kBlob1)), Errno(EINVAL));
  EXPECT_EQ(errno_of(::mkdir(P("\xff").c_str(), 0755)), Errno(EINVAL));
  ASSERT_NO_FATAL_FAILURE(Mkdir("sub"));
  EXPECT_EQ(touch(P("sub/" + kBlob2)), Errno(EINVAL));
  EXPECT_EQ(list_dir(P("")), std::vector<std::string>{"sub"});
  EXPECT_EQ(list_dir(P("sub")), std::vector<std::string>{});
}

// ---- more ext4 casefold semantics -------------------------------------------------------------

using CasefoldSemantics = CasefoldTest;

TEST_F(CasefoldSemantics, CreateWithoutExclOpensTheExistingFileAndKeepsItsName) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  ASSERT_EQ(write_file(P("cf/Name.txt"), "original"), Errno(0));
  int fd = ::open(P("cf/NAME.TXT").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << Errno(errno);
  char buf[32] = {};
  EXPECT_EQ(::read(fd, buf, sizeof buf), 8);
  EXPECT_STREQ(buf, "original");
  ::close(fd);
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{"Name.txt"});
  // O_TRUNC through another spelling truncates the same file.
  ASSERT_EQ(write_file(P("cf/name.TXT"), "new"), Errno(0));
  EXPECT_EQ(read_file(P("cf/Name.txt")), "new");
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{"Name.txt"});
}

TEST_F(CasefoldSemantics, SymlinkLinkAndMknodOfAnEquivalentNameFailWithEexist) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  ASSERT_EQ(touch(P("cf/taken")), Errno(0));
  ASSERT_EQ(touch(P("other")), Errno(0));
  EXPECT_EQ(errno_of(::symlink("x", P("cf/TAKEN").c_str())), Errno(EEXIST));
  EXPECT_EQ(errno_of(::link(P("other").c_str(), P("cf/Taken").c_str())), Errno(EEXIST));
  EXPECT_EQ(errno_of(::mknod(P("cf/tAKEN").c_str(), S_IFIFO | 0644, 0)), Errno(EEXIST));
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{"taken"});
}

TEST_F(CasefoldSemantics, RenameToAnEquivalentNameSucceedsAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  ASSERT_EQ(write_file(P("cf/name"), "v"), Errno(0));
  EXPECT_EQ(errno_of(::rename(P("cf/name").c_str(), P("cf/NAME").c_str())), Errno(0));
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{"name"});
  EXPECT_EQ(list_dir(m.bpath("cf")), std::vector<std::string>{"name"});
  EXPECT_EQ(read_file(P("cf/Name")), "v");
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf/dir"));
  EXPECT_EQ(errno_of(::rename(P("cf/dir").c_str(), P("cf/DIR").c_str())), Errno(0));
  EXPECT_EQ(list_dir(P("cf")), (std::vector<std::string>{"dir", "name"}));
}

TEST_F(CasefoldSemantics, RenameOntoAnEquivalentNameOfAnotherFileReplacesIt) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  ASSERT_EQ(write_file(P("cf/a.txt"), "A"), Errno(0));
  ASSERT_EQ(write_file(P("cf/b.txt"), "B"), Errno(0));
  EXPECT_EQ(errno_of(::rename(P("cf/b.txt").c_str(), P("cf/A.TXT").c_str())), Errno(0));
  EXPECT_EQ(read_file(P("cf/a.txt")), "B");
  EXPECT_TRUE(DoesNotExist(P("cf/b.txt")));
  EXPECT_EQ(list_dir(P("cf")).size(), 1u) << join(list_dir(P("cf")));
  EXPECT_EQ(list_dir(m.bpath("cf")).size(), 1u) << join(list_dir(m.bpath("cf")));
}

TEST_F(CasefoldSemantics, RenameBetweenDirectoriesThroughOtherSpellings) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf/src"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf/dst"));
  ASSERT_EQ(write_file(P("cf/src/file"), "moved"), Errno(0));
  ASSERT_EQ(errno_of(::rename(P("cf/SRC/FILE").c_str(), P("cf/Dst/NewName").c_str())), Errno(0));
  EXPECT_EQ(list_dir(P("cf/src")), std::vector<std::string>{});
  EXPECT_EQ(list_dir(P("cf/dst")), std::vector<std::string>{"NewName"});
  EXPECT_EQ(read_file(P("cf/DST/newname")), "moved");
}

TEST_F(CasefoldSemantics, DirectoryLinkCountsAreCorrect) {
  SKIP_WHERE_THE_BACKING_LACKS(kDirectoryLinkCounts);
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf/a"));
  ASSERT_NO_FATAL_FAILURE(Mkdir("cf/B"));
  ASSERT_EQ(touch(P("cf/file")), Errno(0));
  auto st = lstat_of(P("cf"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_nlink, 4u);
  ASSERT_EQ(errno_of(::rmdir(P("cf/b").c_str())), Errno(0));
  st = lstat_of(P("cf"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_nlink, 3u);
  EXPECT_EQ(list_dir(P("cf")), (std::vector<std::string>{"a", "file"}));
}

TEST_F(CasefoldSemantics, IgnorableCodePointsAreDroppedWhenMatching) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  ASSERT_EQ(write_file(P("cf/report"), "r"), Errno(0));
  EXPECT_EQ(read_file(P("cf/re\u200Bport")), "r");  // ZERO WIDTH SPACE
  EXPECT_EQ(read_file(P("cf/RE\u00ADPORT")), "r");  // SOFT HYPHEN
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{"report"});
}

TEST_F(CasefoldSemantics, FullCaseFoldingMatchesSharpS) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  ASSERT_EQ(write_file(P("cf/stra\u00dfe"), "s"), Errno(0));
  EXPECT_EQ(read_file(P("cf/STRASSE")), "s");
  EXPECT_EQ(read_file(P("cf/strasse")), "s");
  EXPECT_EQ(create_excl(P("cf/Strasse")), Errno(EEXIST));
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{"stra\u00dfe"});
}

// ---- names whose key is "." or ".." -----------------------------------------------------------

using CasefoldDotNames = CasefoldTest;

TEST_F(CasefoldDotNames, NameFoldingToDotDotIsAnOrdinaryFile) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  const std::string zws_dotdot = "\u200B..";
  EXPECT_TRUE(DoesNotExist(P("cf/" + zws_dotdot))) << "resolved to the parent directory";
  ASSERT_EQ(write_file(P("cf/" + zws_dotdot), "not the parent"), Errno(0));
  EXPECT_TRUE(IsRegularFile(P("cf/" + zws_dotdot)));
  EXPECT_EQ(read_file(P("cf/..\u200D")), "not the parent");  // equivalent spelling
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{zws_dotdot});
  EXPECT_EQ(list_dir(m.bpath("cf")), std::vector<std::string>{zws_dotdot});
  EXPECT_TRUE(SameInode(P("cf/.."), P("")));  // the real ".." is untouched
  EXPECT_TRUE(IsDirectory(P("cf/..")));
  EXPECT_EQ(errno_of(::unlink(P("cf/" + zws_dotdot).c_str())), Errno(0));
  EXPECT_TRUE(IsDirectory(P("cf")));
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{});
}

TEST_F(CasefoldDotNames, NameFoldingToDotIsAnOrdinaryDirectory) {
  ASSERT_NO_FATAL_FAILURE(MakeCasefoldedDir("cf"));
  const std::string dot_zwj = ".\u200D";
  EXPECT_TRUE(DoesNotExist(P("cf/" + dot_zwj))) << "resolved to the directory itself";
  ASSERT_EQ(errno_of(::mkdir(P("cf/" + dot_zwj).c_str(), 0755)), Errno(0));
  EXPECT_TRUE(IsDirectory(P("cf/" + dot_zwj)));
  EXPECT_FALSE(SameInode(P("cf/" + dot_zwj), P("cf")));
  ASSERT_EQ(write_file(P("cf/\u200C./inside"), "x"), Errno(0));  // equivalent spelling
  EXPECT_EQ(list_dir(P("cf/" + dot_zwj)), std::vector<std::string>{"inside"});
  EXPECT_EQ(list_dir(P("cf")), std::vector<std::string>{dot_zwj});
  EXPECT_TRUE(DoesNotExist(P("cf/inside")));
}

class CasefoldAllDotNames : public CasefoldTest {
  std::string MountOptions() const override { return "casefold=all"; }
};

TEST_F(CasefoldAllDotNames, DotLookalikesAtTheRootAreOrdinaryNames) {
  EXPECT_TRUE(DoesNotExist(P("\u200B..")));
  EXPECT_TRUE(DoesNotExist(P("\u200B.")));
  ASSERT_EQ(touch(P("\u200B..")), Errno(0));
  ASSERT_EQ(touch(P("\u200B.")), Errno(0));
  EXPECT_TRUE(IsRegularFile(P("..\u200D")));
  EXPECT_TRUE(IsRegularFile(P(".\u200D")));
  EXPECT_EQ(list_dir(P("")), (std::vector<std::string>{"\u200B.", "\u200B.."}));
  EXPECT_EQ(list_dir(m.bpath("")), (std::vector<std::string>{"\u200B.", "\u200B.."}));
}

}  // namespace
}  // namespace foldfs::itest
