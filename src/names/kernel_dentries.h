// What the kernel's dentry cache may hold for one casefolded directory, per folded key.
//
// The kernel compares names bytewise, so "Foo" and "FOO" are separate kernel dentries even
// when they name one file here. Every reply that lets the kernel cache a dentry (positive or
// negative, with a timeout) is noted under the name's key. Before an operation that changes
// what a key resolves to returns, the filesystem asks may_hold_other(): if the kernel may hold
// a dentry for the key under any spelling other than the one the operation itself used (the
// kernel updates that one on its own), every kernel dentry is invalidated (FUSE epoch).
//
// Coherence contract: entries older than the current invalidation epoch are void (the kernel
// dropped them); note() and may_hold_other() take the epoch the caller observed. Spellings are
// kept as 64-bit hashes (two spellings mistaken for one: odds 2^-64 per pair).
//
// Memory: at most kMaxKeys keys (about 40 bytes each); note() returns false when the record is
// full, and the caller then invalidates everything, which empties it.
//
// Lock order: mutex_ is a leaf lock.
#pragma once

#include <cstdint>
#include <string_view>
#include <unordered_map>

#include "base/thread_safety.h"

namespace foldfs::names {

class KernelDentries {
 public:
  static constexpr size_t kMaxKeys = 1 << 16;

  // Returns false when the record is full and nothing was noted.
  bool note(uint64_t epoch, uint64_t key_hash, std::string_view spelling) EXCLUDES(mutex_);
  bool may_hold_other(uint64_t epoch, uint64_t key_hash, std::string_view spelling)
      EXCLUDES(mutex_);
  // The kernel holds no dentry in the directory any more (it forgot the directory's inode).
  void forget_all() EXCLUDES(mutex_);

 private:
  static constexpr uint64_t kMany = 0;  // several spellings seen (spelling hashes are odd)
  static uint64_t spelling_hash(std::string_view spelling);
  // Takes `epoch` as current if it is newer (forgetting what older epochs noted); false when
  // the caller's epoch is already past.
  bool adopt_epoch(uint64_t epoch) REQUIRES(mutex_);

  Mutex mutex_;
  uint64_t epoch_ GUARDED_BY(mutex_) = 0;
  // key hash -> spelling hash, or kMany
  std::unordered_map<uint64_t, uint64_t> by_key_ GUARDED_BY(mutex_);
};

}  // namespace foldfs::names
