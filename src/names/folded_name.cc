#include "names/folded_name.h"

namespace foldfs::names {

FoldedName::FoldedName(std::string_view name, FoldRules rules) : name_(name) {
  const auto status = buffer_.assign(name, rules.version, rules.strictness);
  key_ = status == unicode::FoldStatus::kRefused ? name : buffer_.view();
  hash_ = unicode::key_hash(key_);
}

}  // namespace foldfs::names
