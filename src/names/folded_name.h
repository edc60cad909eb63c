// A name and its casefold key, folded once per request.
//
// A lookup of another spelling needs the key three times: to find the name in the directory's
// index, to record what the kernel may now hold (names::KernelDentries), and to decide whether a
// change must make the kernel forget other spellings. Folding is the costly step, so a request
// folds its name once into a FoldedName and hands that down.
#pragma once

#include <cstdint>
#include <string_view>

#include "unicode/fold.h"

namespace foldfs::names {

struct FoldRules {
  unicode::Version version = unicode::Version::kUtf8_12_1;
  unicode::Strictness strictness = unicode::Strictness::kLenient;
};

class FoldedName {
 public:
  // `name` must outlive this object.
  FoldedName(std::string_view name, FoldRules rules);
  FoldedName(const FoldedName&) = delete;  // key() points into the object
  FoldedName& operator=(const FoldedName&) = delete;

  std::string_view name() const { return name_; }
  // The key: two names are one name exactly when their keys are equal. A name the rules refuse
  // (strict, not valid UTF-8) has its own bytes as key: no valid name folds to invalid bytes, so
  // it equals only itself.
  std::string_view key() const { return key_; }
  uint64_t hash() const { return hash_; }  // unicode::key_hash(key())

 private:
  std::string_view name_;
  unicode::KeyBuffer buffer_;
  std::string_view key_;
  uint64_t hash_;
};

}  // namespace foldfs::names
