// libFuzzer target over name validation and folding, in both modes.
//
// Checks, for any byte string: no crash or sanitizer report; validity agrees between the
// validator and fold(); a lenient invalid name's key is its raw bytes and a strict one is
// refused; a valid name's key is valid UTF-8, folds the same in both modes and with both
// reordering strategies, and is idempotent (except where the kernel's ignorable quirk leaves
// a run unsorted, see docs/unicode.md); a short buffer receives a prefix of the key;
// key_hash and names_equal agree with the keys.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "unicode/fold.h"
#include "unicode/fold_internal.h"

namespace {

using namespace foldfs::unicode;
constexpr Version kV = Version::kUtf8_12_1;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fold_fuzz: check failed: %s\n", what);
    std::abort();
  }
}

std::string must_fold(std::string_view name) {
  const auto key = fold_to_string(name, kV, Strictness::kLenient);
  check(key.has_value(), "lenient fold refused a name");
  return *key;
}

void check_valid_name(std::string_view name, const std::string& key) {
  const auto strict = fold_to_string(name, kV, Strictness::kStrict);
  check(strict && *strict == key, "strict and lenient keys differ on a valid name");
  check(is_valid_utf8(key), "key is not valid UTF-8");
  std::string rescanned(key.size() + 4, '\0');
  rescanned.resize(detail::fold_by_rescanning(name, rescanned.data(), rescanned.size()));
  check(rescanned == key, "sorting and rescanning folds differ");
  const std::string again = must_fold(key);
  if (detail::is_canonically_ordered(key)) {
    check(again == key, "key(key(x)) != key(x)");
  } else {
    check(again.size() == key.size(), "refolding an unordered key changed its length");
  }
  check(must_fold(again) == again, "key not stable after two folds");
}

void check_invalid_name(std::string_view name, const std::string& key) {
  check(key == name, "lenient key of an invalid name is not its raw bytes");
  check(!fold_to_string(name, kV, Strictness::kStrict).has_value(), "strict accepted invalid name");
  check(!names_equal(name, name, kV, Strictness::kStrict), "refused name equals itself");
}

void check_short_buffer(std::string_view name, const std::string& key) {
  char out[7];
  const FoldResult r = fold(name, kV, Strictness::kLenient, out, sizeof out);
  check(r.length == key.size(), "short buffer: wrong length");
  const size_t written = std::min(sizeof out, key.size());
  check(std::memcmp(out, key.data(), written) == 0, "short buffer: not a prefix of the key");
}

void check_key_buffer(std::string_view name, const std::string& key, bool valid) {
  KeyBuffer kb;
  const FoldStatus s = kb.assign(name, kV, Strictness::kLenient);
  if (key.size() > kMaxKeyBytes) {
    check(s == FoldStatus::kRefused && kb.too_long(), "KeyBuffer: long key not refused");
  } else {
    check(s == (valid ? FoldStatus::kKey : FoldStatus::kRawBytes), "KeyBuffer: wrong status");
    check(kb.view() == key, "KeyBuffer: different key");
  }
}

// The input split in two names: names_equal and the hashes agree with the keys.
void check_pair(std::string_view data) {
  const size_t cut = data.empty() ? 0 : static_cast<unsigned char>(data[0]) % data.size();
  const std::string_view a = data.substr(0, cut);
  const std::string_view b = data.substr(cut);
  const std::string ka = must_fold(a);
  const std::string kb = must_fold(b);
  check(names_equal(a, b, kV, Strictness::kLenient) == (ka == kb), "names_equal (lenient)");
  const bool both_valid = is_valid_utf8(a) && is_valid_utf8(b);
  check(names_equal(a, b, kV, Strictness::kStrict) == (both_valid && ka == kb),
        "names_equal (strict)");
  if (ka == kb) check(key_hash(ka) == key_hash(kb), "equal keys, different hashes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view name(reinterpret_cast<const char*>(data), size);
  const bool valid = is_valid_utf8(name);
  const std::string key = must_fold(name);
  if (valid) {
    check_valid_name(name, key);
  } else {
    check_invalid_name(name, key);
  }
  check_short_buffer(name, key);
  check_key_buffer(name, key, valid);
  check(key_hash(key) == key_hash(std::string(key)), "hash depends on the buffer");
  check_pair(name);
  return 0;
}
