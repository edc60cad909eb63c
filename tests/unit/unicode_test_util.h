// Helpers shared by the unicode_*_test.cc files.
#pragma once

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "unicode/fold.h"
#include "unicode/fold_internal.h"

namespace foldfs::unicode::testing {

inline constexpr Version kV = Version::kUtf8_12_1;

inline std::string utf8(std::u32string_view cps) {
  std::string s;
  for (const char32_t cp : cps) {
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | cp >> 6);
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | cp >> 12);
      s += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | cp >> 18);
      s += static_cast<char>(0x80 | (cp >> 12 & 0x3F));
      s += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return s;
}

inline std::u32string code_points(std::string_view valid_utf8) {
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(
      icu::StringPiece(valid_utf8.data(), static_cast<int32_t>(valid_utf8.size())));
  std::u32string out;
  for (int32_t i = 0; i < u.length(); i = u.moveIndex32(i, 1))
    out += static_cast<char32_t>(u.char32At(i));
  return out;
}

inline std::string hex(std::string_view bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  for (const unsigned char c : bytes) {
    s += kDigits[c >> 4];
    s += kDigits[c & 15];
  }
  return s;
}

// "U+0061 U+0301" style, for failure messages.
inline std::string describe(std::u32string_view cps) {
  std::string s;
  char buf[16];
  for (const char32_t cp : cps) {
    std::snprintf(buf, sizeof buf, "%sU+%04X", s.empty() ? "" : " ", static_cast<unsigned>(cp));
    s += buf;
  }
  return s;
}

// The key of a name that must be valid (lenient, so an invalid one shows up as raw bytes).
inline std::string key(std::string_view name) {
  return *fold_to_string(name, kV, Strictness::kLenient);
}
inline std::string key(std::u32string_view cps) {
  return key(utf8(cps));
}

// Assigned in Unicode 12.1, according to ICU (independent of foldfs's own tables).
inline bool assigned_in_12_1(char32_t cp) {
  if (u_charType(static_cast<UChar32>(cp)) == U_UNASSIGNED) return false;
  UVersionInfo age;
  u_charAge(static_cast<UChar32>(cp), age);
  return age[0] < 12 || (age[0] == 12 && age[1] <= 1);
}

inline uint8_t icu_ccc(char32_t cp) {
  return u_getCombiningClass(static_cast<UChar32>(cp));
}

// Each code point replaced by its canonical decomposition, WITHOUT canonical reordering.
inline std::u32string decompose_in_place(std::u32string_view cps) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfd = icu::Normalizer2::getNFDInstance(status);
  std::u32string out;
  for (const char32_t cp : cps) {
    icu::UnicodeString d;
    if (!nfd->getDecomposition(static_cast<UChar32>(cp), d)) {
      out += cp;
      continue;
    }
    for (int32_t i = 0; i < d.length(); i = d.moveIndex32(i, 1))
      out += static_cast<char32_t>(d.char32At(i));
  }
  return out;
}

// The one place where the kernel's key is not invariant under canonical equivalence:
// U+0345 COMBINING GREEK YPOGEGRAMMENI has class 240 but folds to U+03B9, a starter, so
// the key depends on where U+0345 stood among the other marks of its run. NFD moves it
// behind them. True when `cps`, decomposed in place, has U+0345 followed by another mark of
// the same run: then `cps` and its NFD have different keys in the kernel (and in foldfs).
inline bool has_ypogegrammeni_out_of_order(std::u32string_view cps) {
  const std::u32string d = decompose_in_place(cps);
  bool after_ypogegrammeni = false;
  for (const char32_t cp : d) {
    if (icu_ccc(cp) == 0) {
      after_ypogegrammeni = false;
    } else if (after_ypogegrammeni) {
      return true;
    } else if (cp == 0x0345) {
      after_ypogegrammeni = true;
    }
  }
  return false;
}

inline std::string to_nfd(std::string_view s) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = icu::Normalizer2::getNFDInstance(status);
  std::string out;
  n->normalize(
       icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size()))),
       status)
      .toUTF8String(out);
  return out;
}

inline std::string to_nfc(std::string_view s) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(status);
  std::string out;
  n->normalize(
       icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size()))),
       status)
      .toUTF8String(out);
  return out;
}

// Calls `record` with the ';'-separated fields (untrimmed, comment stripped) of each data
// line of a UCD file. Returns false when the file cannot be opened.
inline bool for_each_ucd_record(
    const std::string& path, const std::function<void(const std::vector<std::string>&)>& record) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    if (const size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    if (line.find_first_not_of(" \t\r") == std::string::npos || line[0] == '@') continue;
    std::vector<std::string> fields;
    size_t start = 0;
    for (;;) {
      const size_t semi = line.find(';', start);
      fields.push_back(line.substr(start, semi - start));
      if (semi == std::string::npos) break;
      start = semi + 1;
    }
    record(fields);
  }
  return true;
}

// "0061 0301" -> U"\u0061\u0301".
inline std::u32string parse_code_points(std::string_view field) {
  std::u32string out;
  std::string token;
  for (size_t i = 0; i <= field.size(); ++i) {
    if (i == field.size() || field[i] == ' ' || field[i] == '\t') {
      if (!token.empty()) out += static_cast<char32_t>(std::stoul(token, nullptr, 16));
      token.clear();
    } else {
      token += field[i];
    }
  }
  return out;
}

}  // namespace foldfs::unicode::testing
