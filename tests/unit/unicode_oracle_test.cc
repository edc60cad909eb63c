// Differential test against the kernel's own fs/unicode code (utf8-norm.c and the shipped
// utf8-12.1 tables from linux-source-6.1), built with -DFOLDFS_KERNEL_ORACLE=ON.
//
// Compared: validity (utf8_validate) on every input, and the key (utf8_casefold) on every
// valid input. Inputs never contain NUL: the kernel stops at a NUL byte, and file names cannot
// contain one. Invalid names are only compared for validity: for them foldfs deliberately
// differs from the kernel's casefold (see docs/unicode.md, "Invalid names").
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernel_oracle.h"
#include "unicode/fold.h"

namespace foldfs::unicode {
namespace {

// Encodes any value below 0x110000 as a UTF-8-shaped byte sequence, surrogates included
// (so that their rejection is compared too).
std::string encode(char32_t cp) {
  std::string s;
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
  return s;
}

std::string hex(std::string_view bytes) {
  std::string s;
  char buf[4];
  for (const unsigned char c : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    s += buf;
  }
  return s;
}

// Compares foldfs with the kernel on one name; returns an empty string when they agree.
std::string disagreement(std::string_view name) {
  const bool kernel_valid = kernel_oracle_is_valid(name.data(), name.size()) != 0;
  if (is_valid_utf8(name) != kernel_valid) {
    return "validity differs (kernel says " + std::string(kernel_valid ? "valid" : "invalid") +
           ") for " + hex(name);
  }
  if (!kernel_valid) return "";
  std::vector<unsigned char> out(name.size() * 4 + 16);
  const long n = kernel_oracle_casefold(name.data(), name.size(), out.data(), out.size());
  if (n < 0) return "kernel refused a valid name " + hex(name);
  const std::string kernel_key(reinterpret_cast<const char*>(out.data()), static_cast<size_t>(n));
  const auto key = fold_to_string(name, Version::kUtf8_12_1, Strictness::kStrict);
  if (!key || *key != kernel_key) {
    return "key of " + hex(name) + ": foldfs " + (key ? hex(*key) : "refused") + ", kernel " +
           hex(kernel_key);
  }
  return "";
}

class Tally {
 public:
  void check(std::string_view name) {
    ++checked_;
    const std::string d = disagreement(name);
    if (d.empty()) return;
    if (++failures_ <= 20) ADD_FAILURE() << d;
  }
  ~Tally() {
    std::printf("kernel oracle: %zu names compared, %zu disagreements\n", checked_, failures_);
    EXPECT_EQ(failures_, 0u);
  }

 private:
  size_t checked_ = 0;
  size_t failures_ = 0;
};

TEST(UnicodeOracleTest, EveryCodePointAlone) {
  Tally tally;
  for (char32_t cp = 1; cp < 0x110000; ++cp) tally.check(encode(cp));
}

// Every code point between a letter and marks of several classes, so that its own class and
// its mapping's classes take part in reordering.
TEST(UnicodeOracleTest, EveryCodePointAmongMarks) {
  Tally tally;
  const std::string before = encode(U'A') + encode(0x0301);
  const std::string after = encode(0x0316) + encode(0x0345) + encode(0x05B0);
  for (char32_t cp = 1; cp < 0x110000; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    tally.check(before + encode(cp) + after);
  }
}

// Random names drawn from the interesting ranges, and random bytes.
TEST(UnicodeOracleTest, RandomNames) {
  struct Range {
    char32_t first;
    char32_t last;
  };
  const Range kRanges[] = {
      {0x20, 0x7E},       {0xA0, 0x24F},      {0x300, 0x36F},     {0x370, 0x3FF},
      {0x400, 0x52F},     {0x591, 0x5C7},     {0x600, 0x6FF},     {0x900, 0x97F},
      {0xF00, 0xFFF},     {0x1100, 0x11FF},   {0x1DC0, 0x1DFF},   {0x1E00, 0x1FFF},
      {0x200B, 0x206F},   {0x20D0, 0x20FF},   {0x2100, 0x218F},   {0x2C00, 0x2D2F},
      {0x3040, 0x30FF},   {0xA640, 0xA7FF},   {0xAC00, 0xD7A3},   {0xFB00, 0xFB4F},
      {0xFE00, 0xFE2F},   {0xFF00, 0xFFEF},   {0xFFF0, 0xFFFF},   {0x10400, 0x1044F},
      {0x1D15E, 0x1D1C0}, {0x1E900, 0x1E94B}, {0xE0000, 0xE01FF}, {0x1, 0x10FFFF},
  };
  Tally tally;
  std::mt19937 rng(6112);
  for (int i = 0; i < 300000; ++i) {
    std::string name;
    const size_t length = 1 + rng() % 24;
    for (size_t j = 0; j < length; ++j) {
      const Range& r = kRanges[rng() % std::size(kRanges)];
      char32_t cp = r.first + rng() % (r.last - r.first + 1);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x0301;
      name += encode(cp);
    }
    tally.check(name);
  }
  for (int i = 0; i < 300000; ++i) {
    std::string bytes(1 + rng() % 12, '\0');
    for (char& c : bytes) c = static_cast<char>(1 + rng() % 255);
    tally.check(bytes);
  }
}

// Long runs of marks (longer than foldfs's sort buffer) and 255-byte names.
TEST(UnicodeOracleTest, LongNames) {
  const char32_t kMarks[] = {0x0301, 0x0316, 0x0345, 0x0308, 0x05B0, 0x0F71,  0x1DCE,
                             0x0300, 0x0327, 0x200D, 0x0344, 0x302A, 0x1D166, 0x0390};
  Tally tally;
  std::mt19937 rng(255);
  for (int i = 0; i < 2000; ++i) {
    std::string name = "x";
    const size_t limit = i % 2 ? 255 : 2000;
    for (;;) {
      const std::string next = encode(kMarks[rng() % std::size(kMarks)]);
      if (name.size() + next.size() > limit) break;
      name += next;
    }
    tally.check(name);
  }
}

}  // namespace
}  // namespace foldfs::unicode
