// The umask of the calling thread, apart from the rest of the process.
//
// The daemon creates backing files for many callers at once, each with its own umask. Handing
// the caller's umask to the backing filesystem (rather than masking the mode ourselves) keeps
// the kernel's own rule: the umask applies unless the parent directory has a default ACL, which
// then decides instead. A thread gets a umask of its own by unsharing its fs_struct
// (unshare(CLONE_FS)), which also gives it its own working directory; the daemon never uses
// relative paths from its working directory, so nothing else changes.
#pragma once

#include <sys/types.h>

namespace foldfs::backing {

// Sets the calling thread's umask to `mask`, unsharing it from the process on first use.
// Returns false (and changes nothing) when the thread cannot have a umask of its own.
bool set_thread_umask(mode_t mask);

}  // namespace foldfs::backing
