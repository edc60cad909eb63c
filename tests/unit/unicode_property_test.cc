// Properties of the key over many random names (fixed seeds, so failures reproduce).
#include <gtest/gtest.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <random>

#include "unicode_test_util.h"

namespace foldfs::unicode::testing {
namespace {

// Code point pools, built from ICU's view of Unicode 12.1 (independent of foldfs's tables).
struct Pools {
  std::vector<char32_t> assigned;      // every code point assigned in 12.1 (no surrogates)
  std::vector<char32_t> marks;         // non-starters
  std::vector<char32_t> decomposable;  // with a canonical decomposition
  std::vector<char32_t> cased;         // changes under case folding
  std::vector<char32_t> ignorable;     // Default_Ignorable_Code_Point
  std::vector<char32_t> hangul;        // syllables and conjoining jamo

  Pools() {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* nfd = icu::Normalizer2::getNFDInstance(status);
    for (char32_t cp = 0; cp < 0x110000; ++cp) {
      if ((cp >= 0xD800 && cp <= 0xDFFF) || !assigned_in_12_1(cp)) continue;
      const auto c = static_cast<UChar32>(cp);
      assigned.push_back(cp);
      if (icu_ccc(cp) != 0) marks.push_back(cp);
      icu::UnicodeString d;
      if (nfd->getDecomposition(c, d)) decomposable.push_back(cp);
      if (u_hasBinaryProperty(c, UCHAR_CHANGES_WHEN_CASEFOLDED)) cased.push_back(cp);
      if (u_hasBinaryProperty(c, UCHAR_DEFAULT_IGNORABLE_CODE_POINT)) ignorable.push_back(cp);
      if ((cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0x1100 && cp <= 0x11FF)) hangul.push_back(cp);
    }
  }
};

const Pools& pools() {
  static const Pools p;
  return p;
}

// A random name biased towards the interesting parts of Unicode: marks to reorder,
// precomposed letters, case pairs, Hangul, ignorables, plus some plain ASCII.
std::u32string random_name(std::mt19937& rng, bool with_ignorables) {
  const Pools& p = pools();
  auto pick = [&](const std::vector<char32_t>& v) { return v[rng() % v.size()]; };
  std::u32string s;
  const size_t length = 1 + rng() % 12;
  for (size_t i = 0; i < length; ++i) {
    switch (rng() % 10) {
      case 0:
      case 1:
        s += pick(p.marks);
        break;
      case 2:
      case 3:
        s += pick(p.decomposable);
        break;
      case 4:
        s += pick(p.cased);
        break;
      case 5:
        s += pick(p.hangul);
        break;
      case 6:
        s += static_cast<char32_t>(0x20 + rng() % 0x5F);
        break;
      case 7:
        if (with_ignorables) {
          s += pick(p.ignorable);
          break;
        }
        [[fallthrough]];
      default:
        s += pick(p.assigned);
        break;
    }
  }
  return s;
}

// The key by the definition, written as plainly as possible: map every code point, then
// stably sort each run of non-starters, an ignorable ending a run.
std::string model_key(std::u32string_view name) {
  struct Item {
    char32_t cp;
    uint8_t ccc;
    bool stopper_only;
  };
  std::vector<Item> items;
  for (const char32_t cp : name) {
    const detail::CodePointInfo info = detail::lookup(cp);
    if (info.ignorable) {
      items.push_back({0, 0, true});
    } else if (info.maps_to_itself) {
      items.push_back({cp, info.ccc, false});
    } else {
      for (size_t i = 0; i < info.mapping_length; ++i) {
        items.push_back({info.mapping[i], detail::lookup(info.mapping[i]).ccc, false});
      }
    }
  }
  for (size_t i = 0; i < items.size();) {
    size_t j = i;
    while (j < items.size() && items[j].ccc != 0) ++j;
    std::stable_sort(items.begin() + static_cast<ptrdiff_t>(i),
                     items.begin() + static_cast<ptrdiff_t>(j),
                     [](const Item& a, const Item& b) { return a.ccc < b.ccc; });
    i = j + 1;
  }
  std::u32string out;
  for (const Item& it : items) {
    if (!it.stopper_only) out += it.cp;
  }
  return utf8(out);
}

std::string rescanned_key(std::string_view name) {
  std::string out(name.size() * 3 + 4, '\0');
  out.resize(detail::fold_by_rescanning(name, out.data(), out.size()));
  return out;
}

TEST(UnicodePropertyTest, KeyMatchesModelAndBothStrategies) {
  std::mt19937 rng(12001);
  for (int i = 0; i < 30000; ++i) {
    const std::u32string cps = random_name(rng, true);
    const std::string name = utf8(cps);
    const std::string k = key(name);
    ASSERT_EQ(hex(k), hex(model_key(cps))) << describe(cps);
    ASSERT_EQ(hex(k), hex(rescanned_key(name))) << describe(cps);
  }
}

// key(key(x)) == key(x), except where an ignorable split a run of marks (the kernel quirk):
// the key then has an out-of-order run that the next fold sorts. Folding is always stable
// from the second fold on.
TEST(UnicodePropertyTest, KeyIsIdempotent) {
  std::mt19937 rng(12002);
  size_t quirk = 0;
  for (int i = 0; i < 30000; ++i) {
    const bool with_ignorables = i % 2 == 0;
    const std::u32string cps = random_name(rng, with_ignorables);
    const std::string k = key(utf8(cps));
    ASSERT_TRUE(is_valid_utf8(k));
    const std::string kk = key(k);
    if (detail::is_canonically_ordered(k)) {
      ASSERT_EQ(hex(kk), hex(k)) << describe(cps);
    } else {
      ++quirk;
      ASSERT_TRUE(with_ignorables) << "out-of-order key without an ignorable: " << describe(cps);
      ASSERT_EQ(kk.size(), k.size());
    }
    ASSERT_TRUE(detail::is_canonically_ordered(kk)) << describe(cps);
    ASSERT_EQ(hex(key(kk)), hex(kk)) << describe(cps);
  }
  std::printf("idempotence: %zu names where an ignorable split a run of marks\n", quirk);
}

// Canonically equivalent spellings (ICU's NFC and NFD, Unicode 15, which agrees with 12.1 on
// characters assigned in 12.1) have one key, except for the U+0345 quirk.
TEST(UnicodePropertyTest, NfcAndNfdShareAKey) {
  std::mt19937 rng(12003);
  size_t checked = 0;
  size_t excluded = 0;
  for (int i = 0; i < 30000; ++i) {
    const std::u32string cps = random_name(rng, true);
    const std::string name = utf8(cps);
    const std::string nfc = to_nfc(name);
    const std::string nfd = to_nfd(name);
    if (has_ypogegrammeni_out_of_order(cps) || has_ypogegrammeni_out_of_order(code_points(nfc))) {
      ++excluded;
      continue;
    }
    ++checked;
    const std::string k = key(name);
    ASSERT_EQ(hex(k), hex(key(nfc))) << describe(cps);
    ASSERT_EQ(hex(k), hex(key(nfd))) << describe(cps);
    ASSERT_EQ(key_hash(k), key_hash(key(nfc)));
    ASSERT_TRUE(names_equal(name, nfc, kV, Strictness::kStrict)) << describe(cps);
    ASSERT_TRUE(names_equal(nfd, nfc, kV, Strictness::kStrict)) << describe(cps);
  }
  std::printf("NFC/NFD: %zu names checked, %zu excluded (U+0345 before another mark)\n", checked,
              excluded);
  EXPECT_LT(excluded, checked / 20);
}

// names_equal agrees with comparing keys, on pairs that are often but not always equal.
TEST(UnicodePropertyTest, NamesEqualAgreesWithKeys) {
  std::mt19937 rng(12004);
  size_t equal_pairs = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::u32string cps = random_name(rng, true);
    const std::string a = utf8(cps);
    std::string b;
    icu::UnicodeString u = icu::UnicodeString::fromUTF8(a);
    switch (i % 4) {
      case 0:
        u.toUpper().toUTF8String(b);
        break;
      case 1:
        u.toLower().toUTF8String(b);
        break;
      case 2:
        b = to_nfd(a);
        break;
      default:
        b = utf8(random_name(rng, false));
        break;
    }
    const bool keys_equal = key(a) == key(b);
    equal_pairs += keys_equal;
    ASSERT_EQ(names_equal(a, b, kV, Strictness::kLenient), keys_equal) << describe(cps);
    ASSERT_EQ(names_equal(a, b, kV, Strictness::kStrict), keys_equal) << describe(cps);
    if (keys_equal) {
      ASSERT_EQ(key_hash(key(a)), key_hash(key(b)));
    }
  }
  EXPECT_GT(equal_pairs, 5000u);
}

// Reference validity check: ICU's U8_NEXT (ill-formed sequences come back negative).
bool icu_valid(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const auto n = static_cast<int32_t>(s.size());
  for (int32_t i = 0; i < n;) {
    UChar32 c;
    U8_NEXT(p, i, n, c);
    if (c < 0) return false;
  }
  return true;
}

// Random bytes, often invalid: validity agrees with ICU; lenient keys of invalid names are
// the raw bytes; strict ones are refused; valid ones fold identically in both modes.
TEST(UnicodePropertyTest, RandomBytes) {
  std::mt19937 rng(12005);
  const unsigned char kInteresting[] = {0x00, 0x41, 0x61, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0,
                                        0xBF, 0xC0, 0xC1, 0xC2, 0xCC, 0xDF, 0xE0, 0xE1, 0xED,
                                        0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF};
  size_t valid = 0;
  for (int i = 0; i < 200000; ++i) {
    std::string name(rng() % 10, '\0');
    for (char& c : name) {
      c = static_cast<char>(rng() % 2 ? kInteresting[rng() % std::size(kInteresting)]
                                      : rng() % 256);
    }
    const bool ok = icu_valid(name);
    ASSERT_EQ(is_valid_utf8(name), ok) << hex(name);
    const auto lenient = fold_to_string(name, kV, Strictness::kLenient);
    const auto strict = fold_to_string(name, kV, Strictness::kStrict);
    ASSERT_TRUE(lenient.has_value());
    if (ok) {
      ++valid;
      ASSERT_TRUE(strict.has_value());
      ASSERT_EQ(*strict, *lenient);
    } else {
      ASSERT_FALSE(strict.has_value());
      ASSERT_EQ(*lenient, name);
    }
  }
  EXPECT_GT(valid, 20000u);
}

// is_valid_utf8 against ICU on every string of up to three bytes, and every four-byte
// string starting with a four-byte lead byte and a continuation-range second byte.
TEST(UnicodePropertyTest, ValidationIsExhaustivelyRight) {
  std::string s;
  for (int a = 0; a < 256; ++a) {
    s.assign(1, static_cast<char>(a));
    ASSERT_EQ(is_valid_utf8(s), icu_valid(s)) << hex(s);
    for (int b = 0; b < 256; ++b) {
      s.assign({static_cast<char>(a), static_cast<char>(b)});
      ASSERT_EQ(is_valid_utf8(s), icu_valid(s)) << hex(s);
      for (int c = 0; c < 256; ++c) {
        s.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
        if (is_valid_utf8(s) != icu_valid(s)) FAIL() << hex(s);
      }
    }
  }
  for (int a = 0xF0; a <= 0xF7; ++a) {
    for (int b = 0x80; b <= 0xBF; ++b) {
      for (int c = 0x70; c <= 0xC0; ++c) {
        for (int d = 0x70; d <= 0xC0; ++d) {
          s.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
                    static_cast<char>(d)});
          if (is_valid_utf8(s) != icu_valid(s)) FAIL() << hex(s);
        }
      }
    }
  }
}

}  // namespace
}  // namespace foldfs::unicode::testing
