// Builds foldfs's casefold tables from the Unicode Character Database.
//
//   gen_tables UCD_DIR OUTPUT.cc
//
// The tables reproduce the Linux kernel's "nfdicf" data for utf8-12.1 (fs/unicode): full case
// folding (CaseFolding.txt statuses C and F), canonical decomposition (NFD, not NFKD), every
// Default_Ignorable_Code_Point mapped to nothing, all expanded to a fixpoint. The UCD on the
// build machine may be newer than 12.1, so every property is restricted to code points whose
// DerivedAge is 12.1 or older; docs/unicode.md explains why that reproduces 12.1 exactly.
//
// The generator fails (exit status 1) when the input looks wrong or when an invariant the
// runtime relies on does not hold, e.g. when the key of a 255-byte name could exceed
// kMaxKeyBytes. A failed generator fails the build, which is the point.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "unicode/fold.h"
#include "unicode/tables.h"

namespace {

using foldfs::unicode::kMaxKeyBytes;
using foldfs::unicode::kMaxNameBytes;
namespace tables = foldfs::unicode::tables;
using tables::kCodePointLimit;

using Sequence = std::vector<char32_t>;

// The encoding the tables are for. Ages are packed as major << 8 | minor.
constexpr uint16_t kTargetAge = 12 << 8 | 1;
constexpr const char* kTargetVersion = "12.1";

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "gen_tables: %s\n", message.c_str());
  std::exit(1);
}

bool is_surrogate(char32_t cp) {
  return cp >= 0xD800 && cp <= 0xDFFF;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Calls `record` with the ';'-separated, trimmed fields of every data line of a UCD file
// (comments after '#' removed, blank lines skipped). Returns the number of records.
size_t for_each_record(const std::string& path,
                       const std::function<void(const std::vector<std::string_view>&)>& record) {
  std::ifstream in(path);
  if (!in) fail("cannot open " + path);
  std::string line;
  size_t count = 0;
  std::vector<std::string_view> fields;
  while (std::getline(in, line)) {
    std::string_view data(line);
    if (const size_t hash = data.find('#'); hash != std::string_view::npos) {
      data = data.substr(0, hash);
    }
    if (trim(data).empty()) continue;
    fields.clear();
    size_t start = 0;
    for (;;) {
      const size_t semi = data.find(';', start);
      fields.push_back(trim(data.substr(start, semi - start)));
      if (semi == std::string_view::npos) break;
      start = semi + 1;
    }
    record(fields);
    ++count;
  }
  if (count == 0) fail("no data in " + path);
  return count;
}

char32_t parse_code_point(std::string_view hex, const std::string& context) {
  if (hex.empty() || hex.size() > 6)
    fail("bad code point '" + std::string(hex) + "' in " + context);
  char32_t cp = 0;
  for (const char c : hex) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      fail("bad code point '" + std::string(hex) + "' in " + context);
    }
    cp = cp * 16 + static_cast<char32_t>(digit);
  }
  if (cp >= kCodePointLimit) fail("code point out of range in " + context);
  return cp;
}

struct Range {
  char32_t first;
  char32_t last;
};

// "0041" or "0041..005A".
Range parse_range(std::string_view field, const std::string& context) {
  const size_t dots = field.find("..");
  if (dots == std::string_view::npos) {
    const char32_t cp = parse_code_point(field, context);
    return {cp, cp};
  }
  return {parse_code_point(field.substr(0, dots), context),
          parse_code_point(field.substr(dots + 2), context)};
}

// "0061 0301" -> {0x61, 0x301}.
Sequence parse_sequence(std::string_view field, const std::string& context) {
  Sequence seq;
  while (!(field = trim(field)).empty()) {
    const size_t space = field.find(' ');
    seq.push_back(parse_code_point(field.substr(0, space), context));
    if (space == std::string_view::npos) break;
    field.remove_prefix(space);
  }
  return seq;
}

// "12.1" -> 12 << 8 | 1.
uint16_t parse_age(std::string_view field, const std::string& context) {
  const size_t dot = field.find('.');
  if (dot == std::string_view::npos) fail("bad age in " + context);
  const int major = std::atoi(std::string(field.substr(0, dot)).c_str());
  const int minor = std::atoi(std::string(field.substr(dot + 1)).c_str());
  if (major <= 0 || major > 255 || minor < 0 || minor > 255) fail("bad age in " + context);
  return static_cast<uint16_t>(major << 8 | minor);
}

// Everything the tables are derived from, already restricted to Unicode 12.1.
struct CharacterData {
  std::vector<uint16_t> age = std::vector<uint16_t>(kCodePointLimit, 0);  // 0: unassigned
  std::vector<uint8_t> ccc = std::vector<uint8_t>(kCodePointLimit, 0);
  // The kernel generator's two mappings: nfdi (canonical decomposition, ignorables removed)
  // and nfdicf (the same plus case folding). A missing entry means "maps to itself".
  std::map<char32_t, Sequence> nfdi;
  std::map<char32_t, Sequence> nfdicf;

  // Assigned in the target version. Code points assigned later are treated as unassigned,
  // which is exactly what a 12.1 table does with them.
  bool assigned_in_target(char32_t cp) const { return age[cp] != 0 && age[cp] <= kTargetAge; }
};

void load_ages(const std::string& ucd, CharacterData& data) {
  const std::string path = ucd + "/DerivedAge.txt";
  for_each_record(path, [&](const std::vector<std::string_view>& f) {
    if (f.size() < 2) fail("short line in " + path);
    const Range r = parse_range(f[0], path);
    const uint16_t age = parse_age(f[1], path);
    for (char32_t cp = r.first; cp <= r.last; ++cp) data.age[cp] = age;
  });
}

void load_combining_classes(const std::string& ucd, CharacterData& data) {
  const std::string path = ucd + "/extracted/DerivedCombiningClass.txt";
  for_each_record(path, [&](const std::vector<std::string_view>& f) {
    if (f.size() < 2) fail("short line in " + path);
    const Range r = parse_range(f[0], path);
    const int ccc = std::atoi(std::string(f[1]).c_str());
    if (ccc < 0 || ccc > 254) fail("combining class out of range in " + path);
    for (char32_t cp = r.first; cp <= r.last; ++cp) {
      if (data.assigned_in_target(cp)) data.ccc[cp] = static_cast<uint8_t>(ccc);
    }
  });
}

// The compatibility tags the kernel's generator skips. A tag outside this list would be taken
// as canonical by the kernel; rather than guess, refuse to build.
bool is_known_compatibility_tag(std::string_view tag) {
  static const char* const kTags[] = {
      "font", "noBreak",  "initial", "medial", "final", "isolated", "circle",   "super",
      "sub",  "vertical", "wide",    "narrow", "small", "square",   "fraction", "compat"};
  return std::any_of(std::begin(kTags), std::end(kTags), [&](const char* t) { return tag == t; });
}

void load_canonical_decompositions(const std::string& ucd, CharacterData& data) {
  const std::string path = ucd + "/UnicodeData.txt";
  for_each_record(path, [&](const std::vector<std::string_view>& f) {
    if (f.size() < 6) fail("short line in " + path);
    const char32_t cp = parse_code_point(f[0], path);
    std::string_view decomposition = f[5];
    if (decomposition.empty() || !data.assigned_in_target(cp)) return;
    if (decomposition.front() == '<') {
      const size_t close = decomposition.find('>');
      if (close == std::string_view::npos) fail("bad decomposition tag in " + path);
      if (!is_known_compatibility_tag(decomposition.substr(1, close - 1))) {
        fail("unknown decomposition tag " + std::string(decomposition.substr(0, close + 1)));
      }
      return;  // compatibility decomposition: NFD ignores it
    }
    data.nfdi[cp] = parse_sequence(decomposition, path);
  });
}

void load_case_folding(const std::string& ucd, CharacterData& data) {
  const std::string path = ucd + "/CaseFolding.txt";
  for_each_record(path, [&](const std::vector<std::string_view>& f) {
    if (f.size() < 3) fail("short line in " + path);
    const char32_t cp = parse_code_point(f[0], path);
    const std::string_view status = f[1];
    // Full case folding: common (C) plus full (F). Simple (S) and Turkic (T) are not used.
    if (status != "C" && status != "F") return;
    if (!data.assigned_in_target(cp)) return;
    Sequence folded = parse_sequence(f[2], path);
    for (const char32_t target : folded) {
      // Case folding stability forbids an old character folding to a newer one; if the UCD
      // ever did that, filtering by age would no longer reproduce the target version.
      if (!data.assigned_in_target(target)) fail("case folding of an old character to a new one");
    }
    data.nfdicf[cp] = std::move(folded);
  });
}

// Default_Ignorable_Code_Point as the target version saw it: every listed code point that was
// assigned by then, plus the reserved (still unassigned) ones the property covers in advance.
// A code point assigned after the target version was unassigned there, and an unassigned code
// point is only ignorable if it lies in one of those reserved ranges, which are also unassigned
// in the newer data. The kernel applies the property to unassigned code points too.
void load_ignorables(const std::string& ucd, CharacterData& data) {
  const std::string path = ucd + "/DerivedCoreProperties.txt";
  for_each_record(path, [&](const std::vector<std::string_view>& f) {
    if (f.size() < 2 || f[1] != "Default_Ignorable_Code_Point") return;
    const Range r = parse_range(f[0], path);
    for (char32_t cp = r.first; cp <= r.last; ++cp) {
      if (data.age[cp] != 0 && !data.assigned_in_target(cp)) continue;
      data.nfdi[cp] = {};
      data.nfdicf[cp] = {};
    }
  });
}

Sequence hangul_decomposition(char32_t syllable) {
  const uint32_t s = syllable - tables::kHangulSBase;
  Sequence seq = {tables::kHangulLBase + s / tables::kHangulNCount,
                  tables::kHangulVBase + (s % tables::kHangulNCount) / tables::kHangulTCount};
  if (const uint32_t t = s % tables::kHangulTCount; t != 0) seq.push_back(tables::kHangulTBase + t);
  return seq;
}

void add_hangul_syllables(CharacterData& data) {
  for (char32_t cp = tables::kHangulSBase; cp < tables::kHangulSBase + tables::kHangulSCount;
       ++cp) {
    if (data.nfdi.count(cp) || data.nfdicf.count(cp)) fail("Hangul syllable with a mapping");
    data.nfdi[cp] = hangul_decomposition(cp);
    data.nfdicf[cp] = data.nfdi[cp];
  }
}

// Replaces every code point of every mapping by its own mapping until nothing changes.
void expand_to_fixpoint(std::map<char32_t, Sequence>& mappings) {
  for (auto& [cp, mapping] : mappings) {
    for (int round = 0;; ++round) {
      if (round > 32) fail("mapping does not reach a fixpoint");
      Sequence expanded;
      bool changed = false;
      for (const char32_t c : mapping) {
        const auto it = mappings.find(c);
        if (it == mappings.end()) {
          expanded.push_back(c);
        } else {
          expanded.insert(expanded.end(), it->second.begin(), it->second.end());
          changed = true;
        }
      }
      mapping = std::move(expanded);
      if (!changed) break;
    }
  }
}

// The kernel's order: the decompositions are expanded first, a code point without a case
// folding takes its expanded decomposition as its casefold mapping, and then the casefold
// mappings are expanded.
void build_nfdicf(CharacterData& data) {
  expand_to_fixpoint(data.nfdi);
  for (const auto& [cp, mapping] : data.nfdi) data.nfdicf.try_emplace(cp, mapping);
  expand_to_fixpoint(data.nfdicf);
}

CharacterData load(const std::string& ucd) {
  CharacterData data;
  load_ages(ucd, data);
  load_combining_classes(ucd, data);
  load_canonical_decompositions(ucd, data);
  load_case_folding(ucd, data);
  load_ignorables(ucd, data);  // after the mappings: being ignorable overrides them
  add_hangul_syllables(data);
  build_nfdicf(data);
  return data;
}

size_t utf8_length(char32_t cp) {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

size_t utf8_length(const Sequence& seq) {
  size_t n = 0;
  for (const char32_t cp : seq) n += utf8_length(cp);
  return n;
}

// The flat, per-code-point form of the tables before compression.
struct FlatTables {
  std::vector<uint32_t> props = std::vector<uint32_t>(kCodePointLimit, 0);
  std::vector<uint32_t> pool;
  std::map<Sequence, uint32_t> pool_offsets;  // identical mappings share their pool items
};

uint32_t pool_offset_of(const Sequence& mapping, const CharacterData& data, FlatTables& flat) {
  if (const auto it = flat.pool_offsets.find(mapping); it != flat.pool_offsets.end()) {
    return it->second;
  }
  const auto offset = static_cast<uint32_t>(flat.pool.size());
  for (const char32_t c : mapping) flat.pool.push_back(tables::make_item(c, data.ccc[c]));
  flat.pool_offsets.emplace(mapping, offset);
  return offset;
}

FlatTables flatten(const CharacterData& data) {
  FlatTables flat;
  for (char32_t cp = 0; cp < kCodePointLimit; ++cp) {
    const uint8_t ccc = data.ccc[cp];
    const auto it = data.nfdicf.find(cp);
    uint32_t props;
    if (tables::is_hangul_syllable(cp)) {
      props = tables::make_props(tables::Kind::kHangul, ccc, 0, 0);
    } else if (it == data.nfdicf.end()) {
      props = tables::make_props(tables::Kind::kIdentity, ccc, 0, 0);
    } else if (it->second.empty()) {
      props = tables::make_props(tables::Kind::kIgnorable, ccc, 0, 0);
    } else {
      const Sequence& mapping = it->second;
      if (mapping.size() > tables::kMaxMappingLength) fail("mapping too long for the props word");
      const uint32_t offset = pool_offset_of(mapping, data, flat);
      if (offset > tables::kMaxPoolOffset) fail("pool too large for the props word");
      props = tables::make_props(tables::Kind::kMapped, ccc, static_cast<uint32_t>(mapping.size()),
                                 offset);
    }
    flat.props[cp] = props;
  }
  return flat;
}

struct CompressedTables {
  std::vector<uint8_t> stage1;
  std::vector<uint16_t> stage2;
  std::vector<uint32_t> props;  // distinct property words; props[0] == 0
};

CompressedTables compress(const FlatTables& flat) {
  CompressedTables out;
  std::map<uint32_t, uint16_t> props_index;
  auto index_of = [&](uint32_t props) {
    const auto [it, added] =
        props_index.try_emplace(props, static_cast<uint16_t>(out.props.size()));
    if (added) {
      if (out.props.size() > 0xFFFF) fail("too many distinct property words");
      out.props.push_back(props);
    }
    return it->second;
  };
  index_of(0);  // identity with ccc 0 is index 0 by construction

  std::map<std::vector<uint16_t>, uint8_t> block_number;
  for (char32_t start = 0; start < kCodePointLimit; start += tables::kBlockSize) {
    std::vector<uint16_t> block(tables::kBlockSize);
    for (uint32_t i = 0; i < tables::kBlockSize; ++i) block[i] = index_of(flat.props[start + i]);
    const auto [it, added] = block_number.try_emplace(
        block, static_cast<uint8_t>(out.stage2.size() / tables::kBlockSize));
    if (added) {
      if (out.stage2.size() / tables::kBlockSize > 0xFF) fail("too many distinct blocks for u8");
      out.stage2.insert(out.stage2.end(), block.begin(), block.end());
    }
    out.stage1.push_back(it->second);
  }
  return out;
}

// The longest key a name of n bytes can have, for every n up to kMaxNameBytes: a name is a
// concatenation of code points, and a code point of UTF-8 length l contributes at most
// longest[l] key bytes (reordering permutes code points, so it never changes the length).
struct KeyLengthBounds {
  size_t longest_key_of_max_name = 0;  // for a kMaxNameBytes-byte name
  uint32_t bytes_per_name_byte = 0;    // ceil(max over l of longest[l] / l)
};

size_t key_length_of(char32_t cp, const FlatTables& flat) {
  const uint32_t props = flat.props[cp];
  switch (tables::props_kind(props)) {
    case tables::Kind::kIdentity:
      return utf8_length(cp);
    case tables::Kind::kIgnorable:
      return 0;
    case tables::Kind::kHangul:
      return utf8_length(hangul_decomposition(cp));
    case tables::Kind::kMapped:
      break;
  }
  size_t n = 0;
  for (uint32_t i = 0; i < tables::props_length(props); ++i) {
    n += utf8_length(tables::item_code_point(flat.pool[tables::props_offset(props) + i]));
  }
  return n;
}

KeyLengthBounds key_length_bounds(const FlatTables& flat) {
  size_t longest[5] = {0, 0, 0, 0, 0};
  for (char32_t cp = 0; cp < kCodePointLimit; ++cp) {
    if (is_surrogate(cp)) continue;
    const size_t l = utf8_length(cp);
    longest[l] = std::max(longest[l], key_length_of(cp, flat));
  }
  std::vector<size_t> best(kMaxNameBytes + 1, 0);
  for (size_t n = 1; n <= kMaxNameBytes; ++n) {
    for (size_t l = 1; l <= 4 && l <= n; ++l) best[n] = std::max(best[n], best[n - l] + longest[l]);
  }
  KeyLengthBounds bounds;
  bounds.longest_key_of_max_name = best[kMaxNameBytes];
  for (size_t l = 1; l <= 4; ++l) {
    bounds.bytes_per_name_byte =
        std::max(bounds.bytes_per_name_byte, static_cast<uint32_t>((longest[l] + l - 1) / l));
  }
  return bounds;
}

// Invariants fold.cc relies on; checked here so that a data change breaks the build, not the
// filesystem.
void check_invariants(const CharacterData& data, const KeyLengthBounds& bounds) {
  if (bounds.longest_key_of_max_name > kMaxKeyBytes) {
    fail("a " + std::to_string(kMaxNameBytes) + "-byte name can have a " +
         std::to_string(bounds.longest_key_of_max_name) + "-byte key, more than kMaxKeyBytes (" +
         std::to_string(kMaxKeyBytes) + ")");
  }
  for (const auto& [cp, mapping] : data.nfdicf) {
    for (const char32_t c : mapping) {
      // Mappings are final: their code points map to themselves, so the runtime never
      // looks a mapped code point up again.
      if (data.nfdicf.count(c)) fail("mapping not expanded to a fixpoint");
      if (is_surrogate(c)) fail("surrogate in a mapping");
    }
  }
  for (char32_t cp = 0; cp < kCodePointLimit; ++cp) {
    const auto it = data.nfdicf.find(cp);
    // Ignorables stop a reorder run in the kernel because they have ccc 0; one with a non-zero
    // class would need different handling.
    if (it != data.nfdicf.end() && it->second.empty() && data.ccc[cp] != 0) {
      fail("ignorable code point with a non-zero combining class");
    }
  }
}

template <typename T>
void write_array(std::ostream& out, const char* type, const char* name, const std::vector<T>& v) {
  out << "alignas(64) const " << type << " " << name << "[" << v.size() << "] = {";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i % 12 == 0) out << "\n   ";
    out << " 0x" << std::hex << static_cast<uint32_t>(v[i]) << std::dec << ",";
  }
  out << "\n};\n\n";
}

size_t table_bytes(const CompressedTables& t, const FlatTables& flat) {
  return t.stage1.size() + t.stage2.size() * 2 + t.props.size() * 4 + flat.pool.size() * 4;
}

void write_source(const std::string& path, const CompressedTables& t, const FlatTables& flat,
                  const KeyLengthBounds& bounds) {
  std::ostringstream out;
  out << "// Generated by src/unicode/gen/gen_tables.cc from the Unicode Character Database,\n"
      << "// restricted to Unicode " << kTargetVersion << ". Do not edit.\n"
      << "// stage1 " << t.stage1.size() << " x u8, stage2 " << t.stage2.size() << " x u16 ("
      << t.stage2.size() / tables::kBlockSize << " blocks), props " << t.props.size()
      << " x u32, pool " << flat.pool.size() << " x u32: " << table_bytes(t, flat) << " bytes.\n"
      << "// Longest key of a " << kMaxNameBytes << "-byte name: " << bounds.longest_key_of_max_name
      << " bytes.\n"
      << "#include \"unicode/tables.h\"\n\n"
      << "namespace foldfs::unicode::tables {\n\n";
  write_array(out, "uint8_t", "kStage1", t.stage1);
  write_array(out, "uint16_t", "kStage2", t.stage2);
  write_array(out, "uint32_t", "kProps", t.props);
  write_array(out, "uint32_t", "kPool", flat.pool);
  out << "const uint32_t kMaxKeyBytesPerNameByte = " << bounds.bytes_per_name_byte << ";\n"
      << "const size_t kTableBytes = " << table_bytes(t, flat) << ";\n\n"
      << "}  // namespace foldfs::unicode::tables\n";
  // Write to a temporary name and rename, so an interrupted build never leaves half a file.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream file(tmp, std::ios::trunc);
    file << out.str();
    if (!file.flush()) fail("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename " + tmp);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) fail("usage: gen_tables UCD_DIR OUTPUT.cc");
  const CharacterData data = load(argv[1]);
  const FlatTables flat = flatten(data);
  const KeyLengthBounds bounds = key_length_bounds(flat);
  check_invariants(data, bounds);
  const CompressedTables compressed = compress(flat);
  write_source(argv[2], compressed, flat, bounds);
  std::printf(
      "gen_tables: Unicode %s casefold tables, %zu bytes; longest key of a %zu-byte name: %zu "
      "bytes\n",
      kTargetVersion, table_bytes(compressed, flat), kMaxNameBytes, bounds.longest_key_of_max_name);
  return 0;
}
