// foldfs fold: prints the casefold key of names, to inspect what the filesystem considers
// the same name and to test the folding engine from scripts.
#include "cli/fold_command.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unicode/fold.h"

namespace foldfs::cli {
namespace {

constexpr const char* kUsage = "usage: foldfs fold [--strict] [--hex] [--] [NAME...]\n";

struct FoldOptions {
  unicode::Strictness strictness = unicode::Strictness::kLenient;
  bool hex_input = false;
  std::vector<std::string_view> names;  // empty: read names from standard input
};

int usage_error(const std::string& message) {
  std::fprintf(stderr, "foldfs fold: %s\n%s", message.c_str(), kUsage);
  return 2;
}

int hex_digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "c3a9" -> "\xc3\xa9"; nullopt unless `hex` is an even number of hex digits.
std::optional<std::string> decode_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string bytes;
  bytes.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int high = hex_digit_value(hex[i]);
    const int low = hex_digit_value(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    bytes += static_cast<char>(high << 4 | low);
  }
  return bytes;
}

std::string encode_hex(std::string_view bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (const unsigned char c : bytes) {
    hex += kDigits[c >> 4];
    hex += kDigits[c & 15];
  }
  return hex;
}

// The output line for one name (without the newline).
std::string key_line(std::string_view name, unicode::Strictness strictness) {
  const auto key = unicode::fold_to_string(name, unicode::Version::kUtf8_12_1, strictness);
  return key ? encode_hex(*key) : "invalid";
}

// Returns the exit status when the command is already finished (--help, usage error).
std::optional<int> parse_options(int argc, char** argv, FoldOptions& options) {
  bool options_ended = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (!options_ended && arg.size() > 1 && arg[0] == '-') {
      if (arg == "--") {
        options_ended = true;
      } else if (arg == "--strict") {
        options.strictness = unicode::Strictness::kStrict;
      } else if (arg == "--hex") {
        options.hex_input = true;
      } else if (arg == "--help" || arg == "-h") {
        std::fputs(kUsage, stdout);
        return 0;
      } else {
        return usage_error("unknown option '" + std::string(arg) + "'");
      }
      continue;
    }
    options.names.push_back(arg);
  }
  return std::nullopt;
}

// One name (from the command line or a line of input) to its output line; false on bad hex.
bool process(std::string_view text, const FoldOptions& options, std::string& line) {
  if (!options.hex_input) {
    line = key_line(text, options.strictness);
    return true;
  }
  const auto bytes = decode_hex(text);
  if (!bytes) return false;
  line = key_line(*bytes, options.strictness);
  return true;
}

bool write_line(const std::string& line) {
  if (std::fwrite(line.data(), 1, line.size(), stdout) == line.size() &&
      std::fputc('\n', stdout) != EOF) {
    return true;
  }
  std::perror("foldfs fold: standard output");
  return false;
}

int fold_arguments(const FoldOptions& options) {
  // Check every argument before printing anything: a usage error prints no keys.
  std::vector<std::string> lines(options.names.size());
  for (size_t i = 0; i < options.names.size(); ++i) {
    if (!process(options.names[i], options, lines[i])) {
      return usage_error("bad hex name '" + std::string(options.names[i]) + "'");
    }
  }
  for (const std::string& line : lines) {
    if (!write_line(line)) return 1;
  }
  return 0;
}

int fold_standard_input(const FoldOptions& options) {
  char* buffer = nullptr;
  size_t capacity = 0;
  std::string line;
  int status = 0;
  for (;;) {
    const ssize_t n = ::getline(&buffer, &capacity, stdin);
    if (n < 0) break;
    std::string_view text(buffer, static_cast<size_t>(n));
    if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    if (!process(text, options, line)) {
      status = usage_error("bad hex name '" + std::string(text) + "'");
      break;
    }
    if (!write_line(line)) {
      status = 1;
      break;
    }
  }
  std::free(buffer);
  if (status == 0 && std::ferror(stdin)) {
    std::perror("foldfs fold: standard input");
    status = 1;
  }
  return status;
}

}  // namespace

int run_fold_command(int argc, char** argv) {
  FoldOptions options;
  if (const auto finished = parse_options(argc, argv, options)) return *finished;
  int status = options.names.empty() ? fold_standard_input(options) : fold_arguments(options);
  if (std::fflush(stdout) != 0 && status == 0) {
    std::perror("foldfs fold: standard output");
    status = 1;
  }
  return status;
}

}  // namespace foldfs::cli
