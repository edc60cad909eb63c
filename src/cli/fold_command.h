#pragma once

namespace foldfs::cli {

// foldfs fold [--strict] [--hex] [--] [NAME...]   (argv[0] == "fold")
// Prints, for each NAME in order (or each line of standard input when no NAME is given),
// exactly one line: the name's casefold key as lowercase hex (an empty line for an empty key),
// or the word `invalid` when --strict refuses a name that is not valid UTF-8. Without
// --strict an invalid name's key is its raw bytes. With --hex each NAME (or input line) is
// the name's bytes written in hex (any byte string). `--` ends the options.
// Exit status: 0 all names processed, 1 output error, 2 usage error (unknown option, bad hex).
int run_fold_command(int argc, char** argv);

}  // namespace foldfs::cli

// src/cli/main.cc calls it unqualified.
using foldfs::cli::run_fold_command;
