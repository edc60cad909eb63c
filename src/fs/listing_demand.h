// Whether directory listings (readdirplus) give files' attributes.
//
// Attributes cost the daemon two system calls per entry and the kernel an inode per entry, which
// a program that only wants names (`find`) never uses; `ls -l` and programs that open every file
// they list do use them. The score rises when a lookup follows a lean listing of the same
// directory (the program wanted attributes after all) and falls with each lean listing; at or
// above kFull files come with attributes, but every kSample-th listing stays lean to keep
// measuring. Subdirectories always get attributes (the daemon's choice, not this class's).
//
// Thread-safe (atomics); no lock.
#pragma once

#include <atomic>

#include "fs/inode_table.h"

namespace foldfs::fs {

class ListingDemand {
 public:
  static constexpr int kMax = 8;
  static constexpr int kFull = 4;
  static constexpr int kSample = 8;

  // For a listing of `dir` about to be made: whether files get attributes. A lean listing is
  // remembered in `dir` (DirState::listed_lean).
  bool files_get_attributes(DirState& dir);
  // A lookup in `dir`: after a lean listing there, programs want attributes.
  void looked_up_in(DirState& dir);

  int score() const { return score_.load(); }

 private:
  std::atomic<int> score_{0};
  std::atomic<unsigned> listings_{0};
};

}  // namespace foldfs::fs
