// Internals of the folding engine that tests, the fuzzer and tools look at. Not for the
// filesystem: it uses fold.h only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "unicode/fold.h"

namespace foldfs::unicode::detail {

// What the 12.1 tables say about one code point.
struct CodePointInfo {
  uint8_t ccc;           // canonical combining class of the code point itself
  bool ignorable;        // maps to nothing (Default_Ignorable_Code_Point)
  bool maps_to_itself;   // its key is itself
  char32_t mapping[18];  // the code points of its key, in order (when !maps_to_itself)
  size_t mapping_length;
};
CodePointInfo lookup(char32_t cp) noexcept;

// Key of a valid name computed the kernel's way, rescanning each run of combining marks once
// per combining class instead of sorting it in a buffer. fold() falls back to it when a run is
// too long for its buffer; tests compare it with fold() to check both. `name` must be valid
// UTF-8. Returns the key length; writes min(length, capacity) bytes.
size_t fold_by_rescanning(std::string_view name, char* out, size_t capacity) noexcept;

// Number of code points fold() sorts in its run buffer before it falls back to
// fold_by_rescanning().
inline constexpr size_t kRunCapacity = 256;

// Whether every run of non-starters in `key` (valid UTF-8) is in ascending combining class
// order. A key normally is; it is not when an ignorable code point split a run of the name
// (the kernel sorts each side separately), and then key(key) differs from key.
bool is_canonically_ordered(std::string_view key) noexcept;

// Size in bytes of the generated tables.
size_t table_bytes() noexcept;

}  // namespace foldfs::unicode::detail
