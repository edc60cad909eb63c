#pragma once

namespace foldfs::cli {

// foldfs check [--casefold=all] BACKING   (argv[0] == "check")
// Lists every group of equivalent names in casefolded directories, one line per group:
// DIR<TAB>NAME<TAB>NAME..., DIR relative to BACKING ("." for itself), names sorted bytewise,
// with tab, newline and backslash escaped as \t, \n and \\. Progress goes to stderr.
// Exit status: 0 no collision, 1 collisions found, 2 usage error, 3 no collision found but some
// directories could not be read (the check is incomplete).
int run_check_command(int argc, char** argv);

}  // namespace foldfs::cli
