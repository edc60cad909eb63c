// key_hash: a 64-bit hash of a key, for the name index's hash table.
//
// Keys are short (a file name's key is at most kMaxKeyBytes), so the hash favours a short
// dependency chain per 8-byte word over wide lanes: xor the word in, multiply by an odd
// constant, fold the high bits down. Each step is a bijection of the state for a given word,
// so two keys of one length that differ in a single word never collide. The length seeds the
// state, which makes the zero padding of the last partial word unambiguous. A final mix
// spreads every input bit over the whole result, as hash tables use both ends of it.
//
// The value depends only on the key's bytes (words are read little-endian on every machine),
// so it is stable across runs and platforms.
#include <cstring>

#include "unicode/fold.h"
#include "unicode/utf8_text.h"

namespace foldfs::unicode {
namespace {

// Random odd constants with about half their bits set.
constexpr uint64_t kSeed = 0x749882321e35049full;
constexpr uint64_t kWordMultiplier = 0x79c8c2926b94b5b5ull;
constexpr uint64_t kFinalMultiplier1 = 0x4242aadbc8f429a5ull;
constexpr uint64_t kFinalMultiplier2 = 0xeb7a79959588532dull;

uint64_t load_u32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  return v;
}

// The n (< 8) bytes at p as a little-endian word, upper bytes zero, without reading past p + n.
uint64_t load_short(const unsigned char* p, size_t n) {
  if (n >= 4) return load_u32(p) | load_u32(p + n - 4) << (8 * (n - 4));  // overlap is harmless
  if (n == 0) return 0;
  return uint64_t{p[0]} | uint64_t{p[n / 2]} << (8 * (n / 2)) | uint64_t{p[n - 1]} << (8 * (n - 1));
}

uint64_t mix_word(uint64_t state, uint64_t word) {
  state = (state ^ word) * kWordMultiplier;
  return state ^ (state >> 29);
}

uint64_t finalize(uint64_t h) {
  h ^= h >> 32;
  h *= kFinalMultiplier1;
  h ^= h >> 29;
  h *= kFinalMultiplier2;
  return h ^ (h >> 32);
}

}  // namespace

uint64_t key_hash(std::string_view key) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(key.data());
  const size_t n = key.size();
  uint64_t h = kSeed ^ (n * kWordMultiplier);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) h = mix_word(h, utf8::load_word(p + i));
  if (const size_t rest = n - i; rest != 0) {
    // With a full word before it, read the last 8 bytes and drop the ones already mixed in:
    // one load instead of assembling the tail byte by byte.
    const uint64_t tail =
        n >= 8 ? utf8::load_word(p + n - 8) >> (64 - 8 * rest) : load_short(p, rest);
    h = mix_word(h, tail);
  }
  return finalize(h);
}

}  // namespace foldfs::unicode
