// Name folding with the Linux kernel's casefold semantics (fs/unicode, "utf8-12.1").
//
// Two names are the same name in a casefolded directory if and only if their keys are equal.
// A key is the name's NFD decomposition with full case folding (CaseFolding.txt statuses C and
// F), every Default_Ignorable_Code_Point removed, canonically reordered exactly as the kernel's
// utf8byte() does it (see docs/unicode.md for the details that differ from textbook NFD).
//
// All functions are pure, thread-safe, and never throw. The hot path (fold into a caller
// buffer) does not allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace foldfs::unicode {

// The encoding version: the only one the kernel ships today is 12.1.0.
enum class Version : uint8_t { kUtf8_12_1 };

// Strict: names that are not valid UTF-8 are refused (the filesystem answers EINVAL).
// Lenient: such a name's key is its raw bytes, so it only equals a byte-identical name.
enum class Strictness : uint8_t { kLenient, kStrict };

enum class FoldStatus : uint8_t {
  kKey,       // valid UTF-8: the key was produced
  kRefused,   // invalid UTF-8 in strict mode: no key
  kRawBytes,  // invalid UTF-8 in lenient mode: the key is the name's bytes
};

struct FoldResult {
  FoldStatus status;
  // Length of the whole key in bytes. Only min(length, capacity) bytes were written; when
  // length > capacity the caller retries with a buffer of at least `length` bytes.
  size_t length;
};

// The largest key a name of at most kMaxNameBytes (255, NAME_MAX) bytes can have.
inline constexpr size_t kMaxNameBytes = 255;
inline constexpr size_t kMaxKeyBytes = 1024;

// Whether `name` is valid for the kernel's utf8_validate(): well-formed, shortest-form UTF-8,
// no surrogates, nothing above U+10FFFF. The empty name is valid.
bool is_valid_utf8(std::string_view name) noexcept;

// Folds `name` into out[0, capacity). Outcomes (documented above on FoldStatus):
//   kKey      valid name; out holds the key
//   kRefused  invalid name and Strictness::kStrict; nothing written, length 0
//   kRawBytes invalid name and Strictness::kLenient; out holds the name's bytes
FoldResult fold(std::string_view name, Version version, Strictness strictness, char* out,
                size_t capacity) noexcept;

// Convenience wrapper that allocates; std::nullopt means refused (strict and invalid).
std::optional<std::string> fold_to_string(std::string_view name, Version version,
                                          Strictness strictness);

// 64-bit hash of a key. Equal keys give equal hashes.
uint64_t key_hash(std::string_view key) noexcept;

// A key held in a fixed buffer: what the name index and the filesystem use on the hot path.
// Holds the key of any name of at most kMaxNameBytes bytes without allocating.
class KeyBuffer {
 public:
  // Returns the status; on kRefused the buffer is empty. Names longer than kMaxNameBytes are
  // folded too as long as their key fits; otherwise the status is kRefused and too_long() true.
  FoldStatus assign(std::string_view name, Version version, Strictness strictness) noexcept;
  std::string_view view() const noexcept { return {buf_, len_}; }
  bool too_long() const noexcept { return too_long_; }

 private:
  char buf_[kMaxKeyBytes];
  size_t len_ = 0;
  bool too_long_ = false;
};

// Compares two names under casefold rules. Returns true when their keys are equal. An exact
// byte match is checked first: it is cheaper and covers most lookups. A refused name (strict,
// invalid) equals nothing, not even itself.
bool names_equal(std::string_view a, std::string_view b, Version version,
                 Strictness strictness) noexcept;

}  // namespace foldfs::unicode
