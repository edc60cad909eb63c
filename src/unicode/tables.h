// Layout of the casefold tables. The generator (gen/gen_tables.cc) includes this header to
// write the tables and the runtime (fold.cc) includes it to read them, so the two can never
// disagree on the encoding. docs/unicode.md ("Tables") describes the format and its size.
#pragma once

#include <cstddef>
#include <cstdint>

namespace foldfs::unicode::tables {

inline constexpr char32_t kCodePointLimit = 0x110000;

// Two-stage lookup: kStage1[cp >> kBlockShift] is the number of a block of
// (1 << kBlockShift) entries in kStage2; each kStage2 entry is an index into kProps.
// Identical blocks are stored once, which is what makes the table small: most of the code
// space (unassigned planes, CJK, Hangul) collapses into a handful of shared blocks. There are
// fewer than 256 distinct blocks (the generator checks), so stage 1 entries are one byte.
inline constexpr unsigned kBlockShift = 7;
inline constexpr uint32_t kBlockSize = 1u << kBlockShift;
inline constexpr uint32_t kBlockMask = kBlockSize - 1;

// What the key does with one input code point.
enum class Kind : uint32_t {
  kIdentity = 0,   // the code point stays as it is
  kIgnorable = 1,  // Default_Ignorable_Code_Point: contributes nothing, but stops a reorder run
  kMapped = 2,     // replaced by the items kPool[offset, offset + length)
  kHangul = 3,     // precomposed Hangul syllable: decomposed arithmetically into L V (T)
};

// A property word (kProps entry):
//   bits  0..7   canonical combining class of the code point itself
//   bits  8..9   Kind
//   bits 10..13  mapping length in items (kMapped only)
//   bits 14..31  mapping offset in kPool (kMapped only)
// Index 0 of kProps is always the word 0: identity with ccc 0, the common case.
inline constexpr unsigned kKindShift = 8;
inline constexpr unsigned kLengthShift = 10;
inline constexpr unsigned kOffsetShift = 14;
inline constexpr uint32_t kMaxMappingLength = (1u << (kOffsetShift - kLengthShift)) - 1;
inline constexpr uint32_t kMaxPoolOffset = (1u << (32 - kOffsetShift)) - 1;

constexpr uint32_t make_props(Kind kind, uint8_t ccc, uint32_t length, uint32_t offset) {
  return uint32_t{ccc} | static_cast<uint32_t>(kind) << kKindShift | length << kLengthShift |
         offset << kOffsetShift;
}
constexpr uint8_t props_ccc(uint32_t props) {
  return static_cast<uint8_t>(props);
}
constexpr Kind props_kind(uint32_t props) {
  return static_cast<Kind>((props >> kKindShift) & 3);
}
constexpr uint32_t props_length(uint32_t props) {
  return (props >> kLengthShift) & kMaxMappingLength;
}
constexpr uint32_t props_offset(uint32_t props) {
  return props >> kOffsetShift;
}

// A pool item: one output code point together with its own canonical combining class, so that
// reordering never needs a second table lookup.
constexpr uint32_t make_item(char32_t cp, uint8_t ccc) {
  return cp | uint32_t{ccc} << 24;
}
constexpr char32_t item_code_point(uint32_t item) {
  return item & 0x1FFFFF;
}
constexpr uint8_t item_ccc(uint32_t item) {
  return static_cast<uint8_t>(item >> 24);
}

// Hangul syllable arithmetic (Unicode 3.12, "Conjoining Jamo Behavior").
inline constexpr char32_t kHangulSBase = 0xAC00;
inline constexpr char32_t kHangulLBase = 0x1100;
inline constexpr char32_t kHangulVBase = 0x1161;
inline constexpr char32_t kHangulTBase = 0x11A7;
inline constexpr uint32_t kHangulVCount = 21;
inline constexpr uint32_t kHangulTCount = 28;
inline constexpr uint32_t kHangulNCount = kHangulVCount * kHangulTCount;
inline constexpr uint32_t kHangulSCount = 19 * kHangulNCount;

constexpr bool is_hangul_syllable(char32_t cp) {
  return cp - kHangulSBase < kHangulSCount;
}

// Generated at build time (tables.cc in the build directory).
extern const uint8_t kStage1[];
extern const uint16_t kStage2[];
extern const uint32_t kProps[];
extern const uint32_t kPool[];
// Upper bound of (key bytes / name bytes) over every valid name: a caller buffer of
// name.size() * kMaxKeyBytesPerNameByte bytes always holds the key.
extern const uint32_t kMaxKeyBytesPerNameByte;
// Total size of the four arrays above, in bytes (reported by tests and docs).
extern const size_t kTableBytes;

inline uint32_t props_of(char32_t cp) {
  const uint32_t block = kStage1[cp >> kBlockShift];
  return kProps[kStage2[(block << kBlockShift) | (cp & kBlockMask)]];
}

}  // namespace foldfs::unicode::tables
