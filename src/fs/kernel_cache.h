// The kernel's dentry cache as the daemon sees it: what the kernel may hold in casefolded
// directories, and making it forget.
//
// The kernel compares names bytewise, so "Foo" and "FOO" are separate dentries even when they
// name one file here, and a negative "FOO" knows nothing about a later "foo". Every reply that
// lets the kernel cache a dentry in a casefolded directory is noted in that directory's record
// (names::KernelDentries, in DirState) under the name's key. Before a change of a key replies,
// the kernel forgets every dentry of the mount (FUSE_NOTIFY_INC_EPOCH) when it may hold the key
// under a spelling other than the one the change used — the kernel updates that one itself.
//
// Coherence contract (docs/coherence.md): forget_everything() increments the epoch and tells the
// kernel before the operation's reply is sent; the kernel tags a dentry with the epoch it read
// before sending the lookup, so an answer computed concurrently with a change is never cached as
// current. Records made under an older epoch are void.
//
// Lock order: none of its own (KernelDentries' mutex is a leaf).
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

#include "fs/kernel_notifier.h"
#include "names/folded_name.h"
#include "names/kernel_dentries.h"

namespace foldfs::fs {

class KernelCache {
 public:
  // `never_forget`: the naive design the coherence tests must catch (debug_no_invalidation).
  explicit KernelCache(bool never_forget) : never_forget_(never_forget) {}

  void set_notifier(KernelNotifier* notifier) { notifier_ = notifier; }
  KernelNotifier* notifier() const { return notifier_; }
  // Whether the kernel can be made to forget every dentry: only then may it cache other
  // spellings and misses in casefolded directories.
  bool can_forget() const { return notifier_ && notifier_->can_invalidate_all(); }
  // Whether the daemon ever makes it forget (false only in the naive test mode).
  bool forgets() const { return can_forget() && !never_forget_; }
  uint64_t epoch() const { return epoch_.load(); }

  // Makes the kernel revalidate every dentry of the mount. Safe inside a request handler.
  void forget_everything();
  // The kernel may now hold `name` in the directory whose record is `record`.
  void noted(names::KernelDentries& record, const names::FoldedName& name);
  // Before a change of `name` replies: the kernel forgets every dentry if it may hold `name`'s
  // key under another spelling (`stored`: the name the change found in the directory; `listed_at`:
  // the epoch at which a listing last gave the kernel every stored name).
  void forget_other_spellings(names::KernelDentries& record, uint64_t listed_at,
                              const names::FoldedName& name, std::string_view stored);

  uint64_t forgets_sent() const { return sent_.load(); }
  uint64_t changes_checked() const { return checked_.load(); }

 private:
  KernelNotifier* notifier_ = nullptr;
  const bool never_forget_;
  // Invalidations sent so far. Counted before the kernel is told: a lookup handled after the
  // kernel saw the new epoch must note its answer under it too.
  std::atomic<uint64_t> epoch_{0};
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> checked_{0};
};

}  // namespace foldfs::fs
