// Acting as the caller: the calling thread's filesystem ids and supplementary groups.
//
// Why the daemon changes the backing tree with the caller's ids rather than as root: a node made
// as root must be handed to its caller afterwards (chown, then chmod to restore the privilege
// bits chown clears), and doing that by name reaches the name a second time. A user who can
// write the backing directory swaps the name for a symlink, a hard link or another directory
// between the two calls, and root then changes whatever it finds (issue 17: a file outside the
// backing tree became setuid and world-writable). Made with the caller's fsuid, fsgid and groups,
// a node belongs to its caller from the first system call on, and the backing filesystem checks
// the caller's rights on exactly the objects that call acts on: no check-then-act window is left
// anywhere, and nothing needs to be done to the node by name afterwards.
//
// The ids are the thread's own: setfsuid, setfsgid and setgroups are made as raw system calls,
// which change only the calling thread's credentials (glibc's setgroups() would change every
// thread of the process). While the fsuid is not 0 the kernel clears the thread's filesystem
// capabilities (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID,
// CAP_MKNOD, ...), so the thread has exactly the caller's rights; they come back when the fsuid
// returns to 0. Descriptors opened before the switch keep working: open_by_handle_at, which needs
// CAP_DAC_READ_SEARCH, must be done before.
#pragma once

#include <sys/types.h>

#include <span>

namespace foldfs::backing {

class ActingAs {
 public:
  // Switches the calling thread to these ids. On failure (a daemon without CAP_SETUID and
  // CAP_SETGID) nothing is changed and ok() is false.
  ActingAs(uid_t uid, gid_t gid, std::span<const gid_t> groups);
  // Back to the ids the thread had.
  ~ActingAs();
  ActingAs(const ActingAs&) = delete;
  ActingAs& operator=(const ActingAs&) = delete;

  bool ok() const { return ok_; }

 private:
  void restore();
  bool ok_ = false;
  bool groups_changed_ = false;
  uid_t old_uid_;
  gid_t old_gid_;
};

// Whether this process may act as other users (it can set its filesystem ids and groups).
bool can_act_as_others();

}  // namespace foldfs::backing
