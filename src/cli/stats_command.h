#pragma once

namespace foldfs::cli {

// foldfs stats MOUNTPOINT   (argv[0] == "stats"): prints the daemon's counters, one
// "name value" per line. Exit status 0, 1 when MOUNTPOINT is not a foldfs mount, 2 usage.
int run_stats_command(int argc, char** argv);

}  // namespace foldfs::cli
