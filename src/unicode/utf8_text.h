// UTF-8 primitives shared by the folding code. Internal to src/unicode. (Not "utf8.h": ICU
// has a unicode/utf8.h, and both live under an include path ending in unicode/.)
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace foldfs::unicode::utf8 {

inline constexpr uint64_t kHighBits = 0x8080808080808080ull;
inline constexpr uint64_t kOnes = 0x0101010101010101ull;

inline uint64_t load_word(const unsigned char* p) {
  uint64_t w;
  std::memcpy(&w, p, sizeof w);
  if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
  return w;
}

inline void store_word(unsigned char* p, uint64_t w) {
  if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
  std::memcpy(p, &w, sizeof w);
}

// Length of the leading run of bytes below 0x80, looked at eight bytes at a time.
inline size_t ascii_prefix_length(const unsigned char* p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t high = load_word(p + i) & kHighBits;
    if (high != 0) return i + static_cast<size_t>(std::countr_zero(high)) / 8;
  }
  while (i < n && p[i] < 0x80) ++i;
  return i;
}

// Lowercases A-Z in eight bytes that are all below 0x80. Adding 0x80 - 'A' to a byte sets its
// high bit iff the byte is >= 'A'; adding 0x80 - ('Z' + 1) sets it iff the byte is > 'Z'. As
// every byte is below 0x80 neither addition carries into the next byte.
inline uint64_t ascii_lower_word(uint64_t w) {
  const uint64_t at_least_a = w + kOnes * (0x80 - 'A');
  const uint64_t above_z = w + kOnes * (0x80 - 'Z' - 1);
  const uint64_t upper = at_least_a & ~above_z & kHighBits;
  return w | (upper >> 2);  // 0x80 >> 2 == 0x20, the case bit
}

inline unsigned char ascii_lower(unsigned char b) {
  return static_cast<unsigned char>(static_cast<unsigned>(b - 'A') < 26u ? b + 0x20 : b);
}

// Lowercases n ASCII bytes from `in` to `out` (which may be the same buffer).
inline void ascii_lower(const unsigned char* in, unsigned char* out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) store_word(out + i, ascii_lower_word(load_word(in + i)));
  if (n >= 8 && i < n) {
    // Redo the last eight bytes instead of a byte loop. Lowercasing is idempotent, so bytes
    // already lowercased in `out` (when out == in) come out the same.
    store_word(out + n - 8, ascii_lower_word(load_word(in + n - 8)));
    return;
  }
  for (; i < n; ++i) out[i] = ascii_lower(in[i]);
}

// Decodes the sequence at *p, which the caller has validated, and advances p past it.
inline char32_t decode_valid(const unsigned char*& p) {
  const unsigned char b = *p;
  if (b < 0xE0) {
    const char32_t cp = (b & 0x1Fu) << 6 | (p[1] & 0x3Fu);
    p += 2;
    return cp;
  }
  if (b < 0xF0) {
    const char32_t cp = (b & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu);
    p += 3;
    return cp;
  }
  const char32_t cp =
      (b & 0x07u) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 | (p[3] & 0x3Fu);
  p += 4;
  return cp;
}

inline size_t encoded_length(char32_t cp) {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

// Encodes cp at out (room for 4 bytes); returns the number of bytes.
inline size_t encode(char32_t cp, unsigned char* out) {
  if (cp < 0x80) {
    out[0] = static_cast<unsigned char>(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = static_cast<unsigned char>(0xC0 | cp >> 6);
    out[1] = static_cast<unsigned char>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = static_cast<unsigned char>(0xE0 | cp >> 12);
    out[1] = static_cast<unsigned char>(0x80 | (cp >> 6 & 0x3F));
    out[2] = static_cast<unsigned char>(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = static_cast<unsigned char>(0xF0 | cp >> 18);
  out[1] = static_cast<unsigned char>(0x80 | (cp >> 12 & 0x3F));
  out[2] = static_cast<unsigned char>(0x80 | (cp >> 6 & 0x3F));
  out[3] = static_cast<unsigned char>(0x80 | (cp & 0x3F));
  return 4;
}

// Whether p[0, n) is well-formed UTF-8 (Unicode Table 3-7): shortest form, no surrogates,
// nothing above U+10FFFF, no truncated sequence, no stray continuation byte.
inline bool is_valid(const unsigned char* p, size_t n) {
  const unsigned char* const end = p + n;
  auto is_tail = [](unsigned char c) { return (c & 0xC0) == 0x80; };
  while (p < end) {
    const unsigned char b = *p;
    if (b < 0x80) {
      p += ascii_prefix_length(p, static_cast<size_t>(end - p));
      continue;
    }
    const auto left = static_cast<size_t>(end - p);
    if (b >= 0xC2 && b <= 0xDF) {
      if (left < 2 || !is_tail(p[1])) return false;
      p += 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      if (left < 3 || !is_tail(p[1]) || !is_tail(p[2])) return false;
      // E0 needs A0..BF second (no overlong), ED needs 80..9F (no surrogates).
      if ((b == 0xE0 && p[1] < 0xA0) || (b == 0xED && p[1] > 0x9F)) return false;
      p += 3;
    } else if (b >= 0xF0 && b <= 0xF4) {
      if (left < 4 || !is_tail(p[1]) || !is_tail(p[2]) || !is_tail(p[3])) return false;
      // F0 needs 90..BF second (no overlong), F4 needs 80..8F (nothing above U+10FFFF).
      if ((b == 0xF0 && p[1] < 0x90) || (b == 0xF4 && p[1] > 0x8F)) return false;
      p += 4;
    } else {
      return false;  // continuation byte, C0/C1 (always overlong) or F5..FF
    }
  }
  return true;
}

}  // namespace foldfs::unicode::utf8
