// How the filesystem asks the kernel to drop what it caches. Implemented by src/fuse
// (kernel_notifier.cc); tests implement it with models of the kernel's caches.
#pragma once

#include <cstdint>

namespace foldfs::fs {

class KernelNotifier {
 public:
  virtual ~KernelNotifier() = default;
  // Whether invalidate_all_dentries() works on this kernel.
  virtual bool can_invalidate_all() const = 0;
  // Makes the kernel revalidate every dentry it holds for this mount. Safe to call inside a
  // request handler. Returns false when it could not be sent.
  virtual bool invalidate_all_dentries() = 0;
  // Makes the kernel drop the attributes and cached data of `ino`. It may wait for requests on
  // that inode to finish: never call it from a request handler (the watcher's thread does).
  virtual void invalidate_inode(uint64_t ino) { (void)ino; }
};

}  // namespace foldfs::fs
