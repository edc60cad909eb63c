#include "fs/kernel_cache.h"

namespace foldfs::fs {

void KernelCache::forget_everything() {
  if (!forgets()) return;
  epoch_.fetch_add(1);
  if (notifier_->invalidate_all_dentries()) sent_++;
}

void KernelCache::noted(names::KernelDentries& record, const names::FoldedName& name) {
  while (!record.note(epoch_.load(), name.hash(), name.name())) {
    // The record is full: forgetting everything the kernel holds empties it.
    if (!forgets()) return;
    forget_everything();
  }
}

void KernelCache::forget_other_spellings(names::KernelDentries& record, uint64_t listed_at,
                                         const names::FoldedName& name, std::string_view stored) {
  if (!can_forget()) return;
  checked_++;
  const uint64_t epoch = epoch_.load();
  const bool listed_other = listed_at == epoch && !stored.empty() && stored != name.name();
  if (listed_other || record.may_hold_other(epoch, name.hash(), name.name())) {
    forget_everything();
  }
}

}  // namespace foldfs::fs
