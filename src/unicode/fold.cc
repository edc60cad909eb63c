// The folding engine: name -> key with the kernel's utf8-12.1 casefold semantics.
//
// A key is produced in three steps that run interleaved in one pass:
//   1. decode the name (validated beforehand, so decoding never checks anything);
//   2. replace each code point by its mapping from the generated tables (tables.h), each
//      resulting code point tagged with its canonical combining class;
//   3. canonical reordering: every maximal run of non-starters (class != 0) is stably sorted
//      by class. Like the kernel, an ignorable code point ends a run even though it produces
//      no output, and classes are those of the output code points (U+0345 folds to U+03B9,
//      a starter, so it ends a run too).
// fold_sorting_runs() does this with a fixed buffer per run; fold_rescanning_runs() does it
// the kernel's way, without a buffer, for runs too long for the buffer (and as a cross-check
// in tests). All-ASCII names, the common case, skip all that: their key is the name
// lowercased, eight bytes at a time.
#include "unicode/fold.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "unicode/fold_internal.h"
#include "unicode/tables.h"
#include "unicode/utf8_text.h"

namespace foldfs::unicode {
namespace {

using tables::item_ccc;
using tables::item_code_point;

// What an Expander yields for an ignorable code point: class 0 (it ends a run) but not a code
// point, so nothing is written for it.
constexpr uint32_t kIgnorableItem = tables::kCodePointLimit;

// Yields the code points of a valid name after mapping, as items (code point | ccc << 24).
// Copyable, so that the rescanning fold can come back to a saved position.
class Expander {
 public:
  Expander(const unsigned char* p, const unsigned char* end) : p_(p), end_(end) {}

  // Stores the next item; false at the end of the name.
  bool next(uint32_t& item) {
    if (pending_ != pending_end_) {
      item = *pending_++;
      return true;
    }
    if (hangul_next_ != hangul_end_) {
      item = hangul_[hangul_next_++];
      return true;
    }
    if (p_ == end_) return false;
    if (*p_ < 0x80) {
      item = utf8::ascii_lower(*p_++);  // ASCII: class 0, folds to lowercase
      return true;
    }
    const char32_t cp = utf8::decode_valid(p_);
    const uint32_t props = tables::props_of(cp);
    switch (tables::props_kind(props)) {
      case tables::Kind::kIdentity:
        item = tables::make_item(cp, tables::props_ccc(props));
        return true;
      case tables::Kind::kIgnorable:
        item = kIgnorableItem;
        return true;
      case tables::Kind::kMapped:
        pending_ = tables::kPool + tables::props_offset(props);
        pending_end_ = pending_ + tables::props_length(props);
        item = *pending_++;
        return true;
      case tables::Kind::kHangul:
        item = start_hangul(cp);
        return true;
    }
    return false;  // unreachable: the switch covers every Kind
  }

 private:
  // Returns the leading consonant of a syllable and queues its vowel and trailing consonant.
  uint32_t start_hangul(char32_t syllable) {
    const uint32_t s = syllable - tables::kHangulSBase;
    const uint32_t t = s % tables::kHangulTCount;
    hangul_[0] = tables::kHangulVBase + (s % tables::kHangulNCount) / tables::kHangulTCount;
    hangul_[1] = tables::kHangulTBase + t;
    hangul_next_ = 0;
    hangul_end_ = t == 0 ? 1 : 2;
    return tables::kHangulLBase + s / tables::kHangulNCount;  // jamo are starters
  }

  const unsigned char* p_;
  const unsigned char* end_;
  const uint32_t* pending_ = nullptr;  // rest of the current mapping, in kPool
  const uint32_t* pending_end_ = nullptr;
  uint32_t hangul_[2] = {0, 0};  // rest of the current Hangul syllable
  uint8_t hangul_next_ = 0;
  uint8_t hangul_end_ = 0;
};

// Appends key bytes to a caller buffer, counting those that do not fit so that the caller
// learns the full length.
class KeyWriter {
 public:
  KeyWriter(char* out, size_t capacity)
      : out_(reinterpret_cast<unsigned char*>(out)), capacity_(capacity) {}

  void put(char32_t cp) {
    if (length_ + 4 <= capacity_) {
      length_ += utf8::encode(cp, out_ + length_);
      return;
    }
    unsigned char bytes[4];
    const size_t n = utf8::encode(cp, bytes);
    for (size_t i = 0; i < n; ++i, ++length_) {
      if (length_ < capacity_) out_[length_] = bytes[i];
    }
  }

  void put_byte(unsigned char b) {
    if (length_ < capacity_) out_[length_] = b;
    ++length_;
  }

  // n <= 4 bytes of an encoded code point.
  void put_bytes(const unsigned char* bytes, size_t n) {
    if (length_ + 4 <= capacity_) {
      for (size_t i = 0; i < n; ++i) out_[length_ + i] = bytes[i];
      length_ += n;
      return;
    }
    for (size_t i = 0; i < n; ++i) put_byte(bytes[i]);
  }

  void put_ascii_lowered(const unsigned char* in, size_t n) {
    const size_t room = length_ < capacity_ ? capacity_ - length_ : 0;
    utf8::ascii_lower(in, out_ + length_, std::min(n, room));
    length_ += n;
  }

  size_t length() const { return length_; }
  void truncate(size_t length) { length_ = length; }

 private:
  unsigned char* out_;
  size_t capacity_;
  size_t length_ = 0;
};

// Writes the conjoining jamo of a precomposed Hangul syllable (all starters).
void put_hangul(char32_t syllable, KeyWriter& w) {
  const uint32_t s = syllable - tables::kHangulSBase;
  w.put(tables::kHangulLBase + s / tables::kHangulNCount);
  w.put(tables::kHangulVBase + (s % tables::kHangulNCount) / tables::kHangulTCount);
  if (const uint32_t t = s % tables::kHangulTCount; t != 0) w.put(tables::kHangulTBase + t);
}

// Stable insertion sort by combining class. Runs are short (a few marks), and the sort must be
// stable: marks of equal class keep their order, which is what makes them distinct.
void sort_by_class(uint32_t* run, size_t n) {
  for (size_t i = 1; i < n; ++i) {
    const uint32_t item = run[i];
    size_t j = i;
    for (; j > 0 && item_ccc(run[j - 1]) > item_ccc(item); --j) run[j] = run[j - 1];
    run[j] = item;
  }
}

void write_run(uint32_t* run, size_t n, bool in_order, KeyWriter& w) {
  if (!in_order) sort_by_class(run, n);
  for (size_t i = 0; i < n; ++i) w.put(item_code_point(run[i]));
}

// The usual fold: non-starters are collected in a buffer and sorted when their run ends.
// This is the hot loop, so it reads the name directly instead of going through an Expander
// and copies the bytes of a code point that maps to itself (the most common case) instead of
// re-encoding it. Returns false, having written garbage, when a run does not fit in the
// buffer.
bool fold_sorting_runs(const unsigned char* p, const unsigned char* const end, KeyWriter& w) {
  uint32_t run[detail::kRunCapacity];
  size_t run_length = 0;
  bool in_order = true;
  auto end_run = [&] {
    if (run_length != 0) {
      write_run(run, run_length, in_order, w);
      run_length = 0;
      in_order = true;
    }
  };
  auto add_to_run = [&](uint32_t item) {
    if (run_length == detail::kRunCapacity) return false;
    if (run_length != 0 && item_ccc(item) < item_ccc(run[run_length - 1])) in_order = false;
    run[run_length++] = item;
    return true;
  };
  while (p < end) {
    if (*p < 0x80) {
      end_run();
      w.put_byte(utf8::ascii_lower(*p++));
      continue;
    }
    const unsigned char* const start = p;
    const char32_t cp = utf8::decode_valid(p);
    const uint32_t props = tables::props_of(cp);
    if (props == 0) {  // maps to itself, class 0
      end_run();
      w.put_bytes(start, static_cast<size_t>(p - start));
      continue;
    }
    switch (tables::props_kind(props)) {
      case tables::Kind::kIdentity:  // a non-starter that maps to itself
        if (!add_to_run(tables::make_item(cp, tables::props_ccc(props)))) return false;
        break;
      case tables::Kind::kIgnorable:
        end_run();
        break;
      case tables::Kind::kMapped: {
        const uint32_t* item = tables::kPool + tables::props_offset(props);
        const uint32_t* const items_end = item + tables::props_length(props);
        for (; item != items_end; ++item) {
          if (item_ccc(*item) == 0) {
            end_run();
            w.put(*item);
          } else if (!add_to_run(*item)) {
            return false;
          }
        }
        break;
      }
      case tables::Kind::kHangul:
        end_run();
        put_hangul(cp, w);
        break;
    }
  }
  end_run();
  return true;
}

// The kernel's own strategy, which needs no buffer: each run is scanned once to find its
// lowest class, then once per class present, writing the marks of that class.
void fold_rescanning_runs(Expander ex, KeyWriter& w) {
  uint32_t item;
  for (;;) {
    const Expander run_start = ex;
    if (!ex.next(item)) return;
    if (item_ccc(item) == 0) {
      if (item != kIgnorableItem) w.put(item);
      continue;
    }
    uint8_t current = 0;  // the class being written; 0 on the first scan, which writes nothing
    for (;;) {
      uint8_t next_class = 0;  // lowest class above `current` in the run; 0 when none
      Expander scan = run_start;
      Expander run_end = scan;
      for (;;) {
        run_end = scan;  // the position of the starter (or end) that closes the run
        if (!scan.next(item) || item_ccc(item) == 0) break;
        const uint8_t ccc = item_ccc(item);
        if (ccc == current) {
          w.put(item_code_point(item));
        } else if (ccc > current && (next_class == 0 || ccc < next_class)) {
          next_class = ccc;
        }
      }
      if (next_class == 0) {
        ex = run_end;
        break;
      }
      current = next_class;
    }
  }
}

void fold_valid(const unsigned char* p, const unsigned char* end, KeyWriter& w) {
  const size_t start = w.length();
  if (!fold_sorting_runs(p, end, w)) {
    w.truncate(start);
    fold_rescanning_runs(Expander(p, end), w);
  }
}

FoldResult invalid_name(std::string_view name, Strictness strictness, char* out, size_t capacity) {
  if (strictness == Strictness::kStrict) return {FoldStatus::kRefused, 0};
  std::memcpy(out, name.data(), std::min(name.size(), capacity));
  return {FoldStatus::kRawBytes, name.size()};
}

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

bool ascii_equal_ignoring_case(std::string_view a, std::string_view b) {
  const unsigned char* pa = bytes_of(a);
  const unsigned char* pb = bytes_of(b);
  const size_t n = a.size();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    if (utf8::ascii_lower_word(utf8::load_word(pa + i)) !=
        utf8::ascii_lower_word(utf8::load_word(pb + i))) {
      return false;
    }
  }
  for (; i < n; ++i) {
    if (utf8::ascii_lower(pa[i]) != utf8::ascii_lower(pb[i])) return false;
  }
  return true;
}

bool keys_equal_slow(std::string_view a, std::string_view b, Version version,
                     Strictness strictness) noexcept {
  // Only for keys longer than kMaxKeyBytes, which names the filesystem sees never have.
  try {
    const auto ka = fold_to_string(a, version, strictness);
    const auto kb = fold_to_string(b, version, strictness);
    return ka && kb && *ka == *kb;
  } catch (const std::bad_alloc&) {
    return false;
  }
}

}  // namespace

bool is_valid_utf8(std::string_view name) noexcept {
  return utf8::is_valid(bytes_of(name), name.size());
}

FoldResult fold(std::string_view name, Version /*version*/, Strictness strictness, char* out,
                size_t capacity) noexcept {
  const unsigned char* p = bytes_of(name);
  const size_t n = name.size();
  const size_t ascii = utf8::ascii_prefix_length(p, n);
  // Validate before writing anything: a refused name leaves `out` untouched.
  if (ascii != n && !utf8::is_valid(p + ascii, n - ascii)) {
    return invalid_name(name, strictness, out, capacity);
  }
  KeyWriter w(out, capacity);
  // ASCII characters are starters that fold to lowercase ASCII, so the prefix is final and
  // the rest of the name can be folded on its own.
  w.put_ascii_lowered(p, ascii);
  if (ascii != n) fold_valid(p + ascii, p + n, w);
  return {FoldStatus::kKey, w.length()};
}

std::optional<std::string> fold_to_string(std::string_view name, Version version,
                                          Strictness strictness) {
  std::string key(name.size() * tables::kMaxKeyBytesPerNameByte, '\0');
  FoldResult r = fold(name, version, strictness, key.data(), key.size());
  if (r.status == FoldStatus::kRefused) return std::nullopt;
  if (r.length > key.size()) {  // cannot happen while the generator's bound holds
    key.resize(r.length);
    r = fold(name, version, strictness, key.data(), key.size());
  }
  key.resize(r.length);
  return key;
}

FoldStatus KeyBuffer::assign(std::string_view name, Version version,
                             Strictness strictness) noexcept {
  const FoldResult r = fold(name, version, strictness, buf_, kMaxKeyBytes);
  too_long_ = r.status != FoldStatus::kRefused && r.length > kMaxKeyBytes;
  if (r.status == FoldStatus::kRefused || too_long_) {
    len_ = 0;
    return FoldStatus::kRefused;
  }
  len_ = r.length;
  return r.status;
}

bool names_equal(std::string_view a, std::string_view b, Version version,
                 Strictness strictness) noexcept {
  if (a == b) return strictness == Strictness::kLenient || is_valid_utf8(a);
  const bool a_ascii = utf8::ascii_prefix_length(bytes_of(a), a.size()) == a.size();
  const bool b_ascii = utf8::ascii_prefix_length(bytes_of(b), b.size()) == b.size();
  // Two ASCII names: the keys are the names lowercased, so no buffer is needed. (One ASCII
  // name is not enough: U+212A KELVIN SIGN folds to "k".)
  if (a_ascii && b_ascii) return a.size() == b.size() && ascii_equal_ignoring_case(a, b);
  KeyBuffer ka;
  KeyBuffer kb;
  const FoldStatus sa = ka.assign(a, version, strictness);
  const FoldStatus sb = kb.assign(b, version, strictness);
  if (ka.too_long() || kb.too_long()) return keys_equal_slow(a, b, version, strictness);
  if (sa == FoldStatus::kRefused || sb == FoldStatus::kRefused) return false;
  return ka.view() == kb.view();
}

namespace detail {

CodePointInfo lookup(char32_t cp) noexcept {
  CodePointInfo info{};
  if (cp >= tables::kCodePointLimit) {
    info.maps_to_itself = true;
    return info;
  }
  const uint32_t props = tables::props_of(cp);
  info.ccc = tables::props_ccc(props);
  switch (tables::props_kind(props)) {
    case tables::Kind::kIdentity:
      info.maps_to_itself = true;
      break;
    case tables::Kind::kIgnorable:
      info.ignorable = true;
      break;
    case tables::Kind::kMapped:
    case tables::Kind::kHangul: {
      unsigned char encoded[4];
      const size_t n = utf8::encode(cp, encoded);
      Expander ex(encoded, encoded + n);
      uint32_t item;
      while (ex.next(item) && info.mapping_length < std::size(info.mapping)) {
        info.mapping[info.mapping_length++] = item_code_point(item);
      }
      break;
    }
  }
  return info;
}

size_t fold_by_rescanning(std::string_view name, char* out, size_t capacity) noexcept {
  KeyWriter w(out, capacity);
  fold_rescanning_runs(Expander(bytes_of(name), bytes_of(name) + name.size()), w);
  return w.length();
}

bool is_canonically_ordered(std::string_view key) noexcept {
  const unsigned char* p = bytes_of(key);
  const unsigned char* const end = p + key.size();
  uint8_t previous = 0;
  while (p < end) {
    const char32_t cp = *p < 0x80 ? *p++ : utf8::decode_valid(p);
    const uint8_t ccc = tables::props_ccc(tables::props_of(cp));
    if (ccc != 0 && ccc < previous) return false;
    previous = ccc;
  }
  return true;
}

size_t table_bytes() noexcept {
  return tables::kTableBytes;
}

}  // namespace detail
}  // namespace foldfs::unicode
