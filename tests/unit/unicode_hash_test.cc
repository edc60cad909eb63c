// key_hash: stable values, consistency with key equality, and enough mixing for a hash table.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <unordered_set>

#include "unicode_test_util.h"

namespace foldfs::unicode::testing {
namespace {

// Hash values may be stored (e.g. in a persistent index), so they must never change by
// accident. These are the values of the current algorithm.
TEST(UnicodeHashTest, ValuesAreStable) {
  EXPECT_EQ(key_hash(""), 0x133c0e7a5e7703bfull);
  EXPECT_EQ(key_hash("a"), 0x171fb9e42e894bd2ull);
  EXPECT_EQ(key_hash("readme.txt"), 0x033b571c933e87aeull);
  EXPECT_EQ(key_hash("textures_0042.dds"), 0xf4ba9bfa329e55c2ull);
}

TEST(UnicodeHashTest, EqualKeysEqualHashes) {
  EXPECT_EQ(key_hash(key("README.TXT")), key_hash(key("readme.txt")));
  EXPECT_EQ(key_hash(key("stra\u00dfe")), key_hash(key("STRASSE")));
  // Same bytes at different addresses and alignments.
  const std::string base = "0123456789abcdefghijklmnopqrstuvwxyz";
  for (size_t offset = 0; offset < 8; ++offset) {
    std::string shifted(offset, '#');
    shifted += base;
    EXPECT_EQ(key_hash(std::string_view(shifted).substr(offset)), key_hash(base));
  }
}

// Zero padding of the last word must not make "a" and "a\0" collide, nor any other pair of
// keys that differ only by trailing zero bytes.
TEST(UnicodeHashTest, LengthMatters) {
  std::string s;
  std::unordered_set<uint64_t> seen;
  for (int n = 0; n <= 40; ++n) {
    EXPECT_TRUE(seen.insert(key_hash(s)).second) << n;
    s += '\0';
  }
}

// Every prefix of every length hashes differently (covers the tail loading code).
TEST(UnicodeHashTest, TailBytesAllCount) {
  std::mt19937_64 rng(7);
  std::string s(40, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  for (size_t n = 1; n <= s.size(); ++n) {
    const std::string_view v(s.data(), n);
    for (size_t i = 0; i < n; ++i) {
      std::string changed(v);
      changed[i] ^= 1;
      EXPECT_NE(key_hash(changed), key_hash(v)) << "length " << n << " byte " << i;
    }
  }
}

TEST(UnicodeHashTest, NoCollisionsOnSimilarNames) {
  std::unordered_set<uint64_t> seen;
  char name[64];
  for (int i = 0; i < 1000000; ++i) {
    const int n = std::snprintf(name, sizeof name, "file_%07d.txt", i);
    ASSERT_TRUE(seen.insert(key_hash(std::string_view(name, static_cast<size_t>(n)))).second)
        << name;
  }
}

// Flipping any input bit flips each output bit with probability close to 1/2.
TEST(UnicodeHashTest, Avalanche) {
  std::mt19937_64 rng(8);
  for (size_t length : {3u, 8u, 13u, 32u}) {
    std::vector<std::vector<int>> flips(length * 8, std::vector<int>(64, 0));
    const int kTrials = 2000;
    for (int t = 0; t < kTrials; ++t) {
      std::string s(length, '\0');
      for (char& c : s) c = static_cast<char>(rng());
      const uint64_t h = key_hash(s);
      for (size_t bit = 0; bit < length * 8; ++bit) {
        s[bit / 8] ^= static_cast<char>(1 << (bit % 8));
        const uint64_t diff = h ^ key_hash(s);
        s[bit / 8] ^= static_cast<char>(1 << (bit % 8));
        for (int o = 0; o < 64; ++o) flips[bit][o] += (diff >> o) & 1;
      }
    }
    double worst = 0;
    for (const auto& row : flips) {
      for (const int count : row) worst = std::max(worst, std::abs(count / double(kTrials) - 0.5));
    }
    EXPECT_LT(worst, 0.06) << "length " << length;
  }
}

// Low and high bits of hashes of sequential names fill buckets evenly (chi-square).
TEST(UnicodeHashTest, BucketsAreEven) {
  constexpr int kBuckets = 1024;
  constexpr int kNames = 200000;
  for (int shift : {0, 54}) {
    std::vector<int> count(kBuckets, 0);
    char name[32];
    for (int i = 0; i < kNames; ++i) {
      const int n = std::snprintf(name, sizeof name, "IMG_%06d.jpg", i);
      ++count[(key_hash(std::string_view(name, static_cast<size_t>(n))) >> shift) % kBuckets];
    }
    const double expected = double(kNames) / kBuckets;
    double chi2 = 0;
    for (const int c : count) chi2 += (c - expected) * (c - expected) / expected;
    // 1023 degrees of freedom: mean 1023, standard deviation about 45.
    EXPECT_LT(chi2, 1023 + 6 * 45) << "shift " << shift;
  }
}

}  // namespace
}  // namespace foldfs::unicode::testing
