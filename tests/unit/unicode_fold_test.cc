// Hand-picked names, fstests generic/556 pairs, invalid names and the API contract.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "unicode/tables.h"
#include "unicode_test_util.h"

namespace foldfs::unicode::testing {
namespace {

bool same_name(std::string_view a, std::string_view b, Strictness s = Strictness::kLenient) {
  return names_equal(a, b, kV, s);
}

// Both names_equal and the keys agree, so a test of one is a test of the other.
void expect_same_name(std::string_view a, std::string_view b) {
  EXPECT_TRUE(same_name(a, b)) << hex(a) << " vs " << hex(b);
  EXPECT_TRUE(same_name(a, b, Strictness::kStrict)) << hex(a) << " vs " << hex(b);
  EXPECT_EQ(hex(key(a)), hex(key(b)));
  EXPECT_EQ(key_hash(key(a)), key_hash(key(b)));
}

void expect_different_names(std::string_view a, std::string_view b) {
  EXPECT_FALSE(same_name(a, b)) << hex(a) << " vs " << hex(b);
  EXPECT_NE(hex(key(a)), hex(key(b)));
}

// fstests generic/556 (casefold) name pairs.
TEST(UnicodeFoldTest, Generic556Pairs) {
  expect_same_name("cora\u00e7\u00e3o", "CORAC\u0327\u00e3O");
  expect_same_name("french_caf\u00e9.txt", "french_cafe\u0301.txt");
  expect_same_name("arabic_\u06d2\u0654.txt", "ARABIC_\u06d3.TXT");
  expect_same_name("japanese_\u30b2.txt", "japanese_\u30b1\u3099.txt");
  // Invalid: not equal when lenient (keys are raw bytes), refused when strict.
  const std::string a = "corac\xcc\xa7\xc3";
  const std::string b = "cora\xc3\xa7\xc3";
  EXPECT_FALSE(same_name(a, b));
  EXPECT_FALSE(same_name(a, b, Strictness::kStrict));
  char out[64];
  EXPECT_EQ(fold(a, kV, Strictness::kStrict, out, sizeof out).status, FoldStatus::kRefused);
  EXPECT_EQ(fold(b, kV, Strictness::kStrict, out, sizeof out).status, FoldStatus::kRefused);
}

TEST(UnicodeFoldTest, FullCaseFolding) {
  expect_same_name("stra\u00dfe", "STRASSE");  // ß -> ss (F)
  expect_same_name("\u1E9E", "ss");            // ẞ -> ss (F)
  expect_same_name("\u212A", "k");             // KELVIN SIGN
  expect_same_name("\u212A", "K");
  expect_same_name("\u212B", "\u00C5");  // ANGSTROM SIGN vs Å
  expect_same_name("\u212B", "a\u030A");
  expect_same_name("\u00E5", "A\u030A");
  expect_same_name("\uFB01", "fi");  // ﬁ ligature folds (F)
  expect_same_name("\uFB01", "FI");
  expect_same_name("\u03C2", "\u03C3");  // final sigma
  expect_same_name("\u03C3", "\u03A3");
  expect_same_name("\u00B5", "\u03BC");  // MICRO SIGN folds to mu (C)
  expect_same_name("\u00B5", "\u039C");
  expect_same_name("\u0130", "i\u0307");  // İ -> i + dot above (F)
  expect_different_names("\u0130", "i");
  expect_different_names("\u0131", "i");  // ı has no folding
  expect_different_names("\u0131", "I");
  expect_same_name("\u0390", "\u03B9\u0308\u0301");
  expect_same_name("\u1F88", "\u1F00\u03B9");    // Greek with prosgegrammeni (F)
  expect_same_name("\u0587", "\u0565\u0582");    // Armenian ligature ech yiwn (F)
  expect_same_name("\u10C0", "\u2D20");          // Georgian Asomtavruli (C)
  expect_same_name("\U00010400", "\U00010428");  // Deseret, 4-byte UTF-8
}

TEST(UnicodeFoldTest, HangulSyllablesEqualConjoiningJamo) {
  expect_same_name("\uD55C\uAE00", "\u1112\u1161\u11AB\u1100\u1173\u11AF");  // 한글
  expect_same_name("\uAC00", "\u1100\u1161");                                // LV
  expect_same_name("\uAC01", "\u1100\u1161\u11A8");                          // LVT
  expect_same_name("\uD7A3", "\u1112\u1175\u11C2");                          // last syllable
  expect_same_name("\uAC00\u11A8", "\uAC01");  // LV + T: NFD of both is L V T
  EXPECT_EQ(key("\uD7A4"), "\uD7A4");          // just past the syllables: itself
}

TEST(UnicodeFoldTest, IgnorablesAreDropped) {
  expect_same_name("ab", "a\u200Db");      // ZERO WIDTH JOINER
  expect_same_name("ab", "a\u00ADb");      // SOFT HYPHEN
  expect_same_name("ab", "a\u200Bb");      // ZERO WIDTH SPACE
  expect_same_name("ab", "a\uFE0Fb");      // VARIATION SELECTOR-16
  expect_same_name("ab", "a\U000E0100b");  // VARIATION SELECTOR-17
  expect_same_name("ab", "\uFEFFab");      // ZERO WIDTH NO-BREAK SPACE
  expect_same_name("ab", "ab\u034F");      // COMBINING GRAPHEME JOINER
  expect_same_name("ab", "a\U000E0041b");  // TAG LATIN CAPITAL LETTER A
  expect_same_name("", "\u200D\u200C");    // a name of ignorables only has an empty key
  // Reserved code points covered by Default_Ignorable_Code_Point are ignorable too...
  expect_same_name("ab", "a\u2065b");
  expect_same_name("ab", "a\uFFF0b");
  expect_same_name("ab", "a\U000E0FFFb");
  // ...but U+180F MONGOLIAN FREE VARIATION SELECTOR FOUR, ignorable since 14.0, was an
  // ordinary unassigned code point in 12.1.
  expect_different_names("ab", "a\u180Fb");
  expect_same_name("ab", "a\u180Bb");  // FVS1 is from 3.0: ignorable
}

TEST(UnicodeFoldTest, CompatibilityCharactersStayDistinct) {
  expect_different_names("\uFF21", "a");  // FULLWIDTH A folds to fullwidth a, not a
  expect_same_name("\uFF21", "\uFF41");
  expect_different_names("\u2460", "1");  // CIRCLED DIGIT ONE
  expect_different_names("\u00BD", "1/2");
  expect_different_names("\uFB00", "\u0066\u0066\u0301");  // ﬀ folds to ff; ff + acute differs
  expect_same_name("\uFB00", "ff");
  expect_different_names("\u2126", "\u03C9\u0301");
  expect_same_name("\u2126", "\u03C9");   // OHM SIGN: canonical singleton to Ω, folds to ω
  expect_different_names("\u00AA", "a");  // FEMININE ORDINAL: compat only
}

TEST(UnicodeFoldTest, CanonicalReordering) {
  // a + acute (230) + cedilla... below (220): sorted to below first.
  EXPECT_EQ(key(U"a\u0301\u0316"), key(U"a\u0316\u0301"));
  EXPECT_EQ(hex(key(U"a\u0301\u0316")), "61cc96cc81");
  // Equal classes keep their order: they are different names.
  expect_different_names(utf8(U"a\u0301\u0300"), utf8(U"a\u0300\u0301"));
  // Marks mapped inside a decomposition are sorted with the marks that follow:
  // U+1EA0 (A with dot below) + U+0302 vs U+1EAC (A with circumflex and dot below).
  expect_same_name("\u1EA0\u0302", "\u1EAC");
  expect_same_name("\u00C2\u0323", "\u1EAC");
  // U+0344 (230) decomposes to two marks of class 230.
  expect_same_name("a\u0344", "a\u0308\u0301");
}

TEST(UnicodeFoldTest, InvalidNames) {
  const char* const kInvalid[] = {
      "\xC0\x80",          // overlong NUL
      "\xC1\xBF",          // overlong
      "\xE0\x80\x80",      // overlong 3-byte
      "\xE0\x9F\xBF",      // overlong 3-byte
      "\xED\xA0\x80",      // surrogate D800
      "\xED\xBF\xBF",      // surrogate DFFF
      "\xF0\x80\x80\x80",  // overlong 4-byte
      "\xF4\x90\x80\x80",  // above U+10FFFF
      "\xF5\x80\x80\x80",  // lead byte F5
      "\xE2\x82",          // truncated
      "\x80",              // stray continuation
      "a\x80",             // stray continuation after a character
      "\xFF",              // never valid
      "\xFE",
      "ab\xC3",  // truncated at the end
      "\xC3(",   // lead byte followed by ASCII
  };
  for (const std::string name : kInvalid) {
    SCOPED_TRACE(hex(name));
    EXPECT_FALSE(is_valid_utf8(name));
    char out[16];
    std::memset(out, '#', sizeof out);
    const FoldResult strict = fold(name, kV, Strictness::kStrict, out, sizeof out);
    EXPECT_EQ(strict.status, FoldStatus::kRefused);
    EXPECT_EQ(strict.length, 0u);
    EXPECT_EQ(std::string(out, sizeof out), std::string(sizeof out, '#'));  // nothing written
    EXPECT_FALSE(fold_to_string(name, kV, Strictness::kStrict).has_value());
    const FoldResult lenient = fold(name, kV, Strictness::kLenient, out, sizeof out);
    EXPECT_EQ(lenient.status, FoldStatus::kRawBytes);
    EXPECT_EQ(std::string(out, lenient.length), name);
    // A refused name equals nothing, not even itself; a lenient one equals only itself.
    EXPECT_FALSE(same_name(name, name, Strictness::kStrict));
    EXPECT_TRUE(same_name(name, name));
  }
  // The kernel's utf8byte() would fold "A\x80" to "a\x80"; foldfs treats it as invalid: the
  // key is the raw bytes, so it differs from "a\x80".
  EXPECT_EQ(key("A\x80"), "A\x80");
  EXPECT_FALSE(same_name("A\x80", "a\x80"));
}

TEST(UnicodeFoldTest, ValidEdgeCases) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_EQ(key(""), "");
  char out[4];
  const FoldResult r = fold("", kV, Strictness::kStrict, out, 0);
  EXPECT_EQ(r.status, FoldStatus::kKey);
  EXPECT_EQ(r.length, 0u);
  // Unassigned code points and noncharacters are valid and map to themselves.
  for (const char* s : {"\uFFFF", "\uFDD0", "\U0010FFFF", "\U0001FFFE", "\u0378", "\U000E0001"}) {
    EXPECT_TRUE(is_valid_utf8(s)) << hex(s);
  }
  EXPECT_EQ(key("\U0010FFFF"), "\U0010FFFF");
  EXPECT_EQ(key("\u0378"), "\u0378");
  // A character assigned after 12.1 is an unassigned code point for 12.1: U+A7C7 (13.0)
  // does not fold to U+A7C8, nor U+2C2F (14.0) to U+2C5F; U+A7C2 (12.0) does fold.
  EXPECT_EQ(key("\uA7C7"), "\uA7C7");
  EXPECT_EQ(key("\u2C2F"), "\u2C2F");
  EXPECT_EQ(key("\uA7C2"), "\uA7C3");
  // U+0000 is a code point like any other (file names cannot contain it).
  EXPECT_EQ(key(std::string_view("A\0B", 3)), std::string("a\0b", 3));
  // Private use characters map to themselves.
  EXPECT_EQ(key("\uE000"), "\uE000");
}

TEST(UnicodeFoldTest, LongKey) {
  // 127 x U+0390 is a 254-byte name whose key is 762 bytes (3 x 2-byte code points each).
  std::string name;
  for (int i = 0; i < 127; ++i) name += "\u0390";
  ASSERT_EQ(name.size(), 254u);
  KeyBuffer kb;
  ASSERT_EQ(kb.assign(name, kV, Strictness::kStrict), FoldStatus::kKey);
  EXPECT_EQ(kb.view().size(), 762u);
  EXPECT_FALSE(kb.too_long());
  EXPECT_EQ(kb.view(), key(name));
  std::string expected;
  for (int i = 0; i < 127; ++i) expected += "\u03B9\u0308\u0301";
  EXPECT_EQ(kb.view(), expected);
  // 85 Hangul syllables with a trailing consonant: 255 bytes -> 765, the longest possible.
  std::string hangul;
  for (int i = 0; i < 85; ++i) hangul += "\uD7A3";
  ASSERT_EQ(kb.assign(hangul, kV, Strictness::kStrict), FoldStatus::kKey);
  EXPECT_EQ(kb.view().size(), 765u);
  EXPECT_LE(765u, kMaxKeyBytes);
}

TEST(UnicodeFoldTest, KeyBufferLimits) {
  KeyBuffer kb;
  // Longer than NAME_MAX but the key fits: folded.
  const std::string long_ascii(600, 'X');
  EXPECT_EQ(kb.assign(long_ascii, kV, Strictness::kStrict), FoldStatus::kKey);
  EXPECT_EQ(kb.view(), std::string(600, 'x'));
  // Only ignorables: a long name with an empty key.
  std::string ignorables;
  for (int i = 0; i < 500; ++i) ignorables += "\u200B";
  EXPECT_EQ(kb.assign(ignorables, kV, Strictness::kStrict), FoldStatus::kKey);
  EXPECT_EQ(kb.view(), "");
  // A key that does not fit: refused and too_long().
  std::string greek;
  for (int i = 0; i < 200; ++i) greek += "\u0390";  // 400 bytes -> 1200-byte key
  EXPECT_EQ(kb.assign(greek, kV, Strictness::kLenient), FoldStatus::kRefused);
  EXPECT_TRUE(kb.too_long());
  EXPECT_EQ(kb.view(), "");
  // Raw bytes longer than the buffer: too long as well.
  const std::string long_invalid = std::string(1100, 'a') + "\xFF";
  EXPECT_EQ(kb.assign(long_invalid, kV, Strictness::kLenient), FoldStatus::kRefused);
  EXPECT_TRUE(kb.too_long());
  // The flag resets.
  EXPECT_EQ(kb.assign("ok", kV, Strictness::kStrict), FoldStatus::kKey);
  EXPECT_FALSE(kb.too_long());
  EXPECT_EQ(kb.assign("\xFF", kV, Strictness::kStrict), FoldStatus::kRefused);
  EXPECT_FALSE(kb.too_long());
  EXPECT_EQ(kb.assign("\xFF", kV, Strictness::kLenient), FoldStatus::kRawBytes);
  EXPECT_EQ(kb.view(), "\xFF");
  // names_equal still works on names whose keys exceed the buffer.
  std::string greek_decomposed;
  for (int i = 0; i < 200; ++i) greek_decomposed += "\u0399\u0308\u0301";
  EXPECT_TRUE(same_name(greek, greek_decomposed));
  EXPECT_FALSE(same_name(greek, greek_decomposed + "x"));
}

// A short buffer receives the prefix of the key and learns the full length.
TEST(UnicodeFoldTest, ShortBufferGetsThePrefix) {
  const std::string name = "Caf\u00E9 \u0390 \uD55C \U00010400 \u1E9E";
  const std::string full = key(name);
  for (size_t capacity = 0; capacity <= full.size() + 2; ++capacity) {
    std::string out(capacity + 4, '#');
    const FoldResult r = fold(name, kV, Strictness::kStrict, out.data(), capacity);
    EXPECT_EQ(r.status, FoldStatus::kKey);
    EXPECT_EQ(r.length, full.size());
    const size_t written = std::min(capacity, full.size());
    EXPECT_EQ(out.substr(0, written), full.substr(0, written)) << capacity;
    EXPECT_EQ(out.substr(capacity), std::string(4, '#')) << "wrote past capacity " << capacity;
  }
  // Raw bytes too.
  const std::string invalid =
      "abc\xFF"
      "def";
  char out[5];
  const FoldResult r = fold(invalid, kV, Strictness::kLenient, out, sizeof out);
  EXPECT_EQ(r.status, FoldStatus::kRawBytes);
  EXPECT_EQ(r.length, invalid.size());
  EXPECT_EQ(std::string(out, 5), invalid.substr(0, 5));
}

TEST(UnicodeFoldTest, AsciiFastPath) {
  // Every ASCII byte folds to itself except A-Z; check all lengths around the word size.
  for (int c = 0; c < 128; ++c) {
    const char ch = static_cast<char>(c);
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : ch;
    for (size_t n : {1u, 7u, 8u, 9u, 15u, 16u, 17u, 255u}) {
      EXPECT_EQ(key(std::string(n, ch)), std::string(n, lower)) << c << " x " << n;
    }
  }
  EXPECT_EQ(key("Textures_0042.DDS"), "textures_0042.dds");
  EXPECT_EQ(key("@[`{AZaz"), "@[`{azaz");
  // ASCII prefix then non-ASCII: the prefix must be lowercased, the rest folded.
  EXPECT_EQ(key("ABCDEFGHIJ\u00C9"), "abcdefghije\u0301");
  // names_equal's ASCII shortcut.
  EXPECT_TRUE(same_name("README.TXT", "readme.txt"));
  EXPECT_FALSE(same_name("README.TXT", "readme.txt "));
  EXPECT_FALSE(same_name("a@", "a`"));  // '@' and '`' differ by the case bit but are not letters
  EXPECT_FALSE(same_name("[", "{"));
}

TEST(UnicodeFoldTest, NamesEqualExactBytes) {
  EXPECT_TRUE(same_name("same", "same", Strictness::kStrict));
  EXPECT_TRUE(same_name("", "", Strictness::kStrict));
  EXPECT_TRUE(same_name("\u212A", "k"));
  EXPECT_TRUE(same_name("k", "\u212A"));
}

// Runs of marks longer than fold()'s buffer go through the rescanning fold: both strategies
// and a straightforward model give one key.
TEST(UnicodeFoldTest, VeryLongRunsOfMarks) {
  const char32_t kMarks[] = {0x0301, 0x0316, 0x0345, 0x0308, 0x05B0, 0x0F71, 0x1DCE,
                             0x0300, 0x0327, 0x200D, 0x0344, 0x302A, 0x1D166};
  std::mt19937 rng(556);
  for (size_t length :
       {detail::kRunCapacity - 1, detail::kRunCapacity, detail::kRunCapacity + 1, size_t{1000}}) {
    std::u32string cps = U"x";
    for (size_t i = 0; i < length; ++i) cps += kMarks[rng() % std::size(kMarks)];
    const std::string name = utf8(cps);
    const std::string k = key(name);
    std::string rescanned(k.size() + 8, '\0');
    rescanned.resize(detail::fold_by_rescanning(name, rescanned.data(), rescanned.size()));
    EXPECT_EQ(hex(k), hex(rescanned)) << length;
  }
}

TEST(UnicodeFoldTest, TablesAreCompact) {
  std::printf("generated tables: %zu bytes\n", detail::table_bytes());
  EXPECT_LT(detail::table_bytes(), 100u * 1024);
  EXPECT_EQ(tables::kMaxKeyBytesPerNameByte, 3u);
}

}  // namespace
}  // namespace foldfs::unicode::testing
