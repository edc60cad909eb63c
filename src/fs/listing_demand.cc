#include "fs/listing_demand.h"

#include <algorithm>

namespace foldfs::fs {

bool ListingDemand::files_get_attributes(DirState& dir) {
  const unsigned n = listings_.fetch_add(1);
  const int score = score_.load();
  if (score >= kFull && n % kSample != 0) return true;
  // A lean listing: it lowers the score unless a lookup follows.
  int s = score;
  while (s > 0 && !score_.compare_exchange_weak(s, s - 1)) {
  }
  dir.listed_lean = true;
  return false;
}

void ListingDemand::looked_up_in(DirState& dir) {
  if (!dir.listed_lean.exchange(false)) return;
  int s = score_.load();
  while (!score_.compare_exchange_weak(s, std::min(kMax, s + kFull))) {
  }
}

}  // namespace foldfs::fs
