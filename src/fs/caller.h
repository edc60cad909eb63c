// Who is calling, and acting as them.
//
// Every change of the backing tree's names is made with the caller's filesystem ids
// (backing/acting_as.h says why): the backing filesystem then checks the caller's rights on
// exactly what each system call acts on, and a new node is the caller's from its first system
// call.
#pragma once

#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

#include <functional>
#include <vector>

#include "backing/acting_as.h"

namespace foldfs::fs {

// Who is calling: from the FUSE request.
struct Context {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  mode_t umask = 0;  // applied by foldfs (the kernel leaves it to us: POSIX ACLs)
  // Fills the caller's supplementary groups; false when they cannot be had. Asked only where an
  // operation needs them (they come from /proc: two opens and reads); null means none.
  std::function<bool(std::vector<gid_t>*)> supplementary_groups;
  // Whether the caller holds CAP_FSETID in the daemon's user namespace (writing then keeps
  // setuid/setgid bits); false when it cannot be known. Asked only when the kernel asks for
  // privileges to be dropped (a /proc read); null means it does not.
  std::function<bool()> holds_cap_fsetid;
};

// The daemon's own ids, and whether it may take its callers'.
class Callers {
 public:
  Callers() : daemon_uid_(::geteuid()), daemon_gid_(::getegid()) {}
  // Learns whether this process may act as other users (it must be root). Call once.
  void probe() { can_act_ = backing::can_act_as_others(); }
  bool can_act_as_others() const { return can_act_; }
  // The owner a node made for `ctx` gets.
  uid_t owner_for(const Context& ctx) const { return can_act_ ? ctx.uid : daemon_uid_; }

  // Runs `op` (0 or an errno) with the caller's ids: first without supplementary groups
  // (fetching them costs two /proc reads), and when the backing filesystem refuses (EACCES,
  // EPERM: a refused call changed nothing) again with them. `groups_first`: the groups decide
  // more than access (whether a new file keeps its setgid bit): fetch them before the first try.
  // A daemon that cannot act as others (not root) runs `op` with its own ids.
  template <typename Op>
  int as(const Context& ctx, bool groups_first, Op&& op) const {
    if (!can_act_ || (ctx.uid == daemon_uid_ && ctx.gid == daemon_gid_)) return op();
    // root keeps its capabilities whatever its groups: they decide nothing for it.
    const bool groups_matter = ctx.uid != 0 && ctx.supplementary_groups != nullptr;
    std::vector<gid_t> groups;
    bool fetched = false;
    auto fetch = [&] {
      fetched = true;
      return ctx.supplementary_groups(&groups) && !groups.empty();
    };
    if (groups_first && groups_matter) fetch();
    for (;;) {
      int err;
      {
        backing::ActingAs as(ctx.uid, ctx.gid, groups);
        if (!as.ok()) return EPERM;
        err = op();
      }
      if ((err == EACCES || err == EPERM) && groups_matter && !fetched && fetch()) continue;
      return err;
    }
  }

 private:
  const uid_t daemon_uid_;
  const gid_t daemon_gid_;
  bool can_act_ = false;
};

}  // namespace foldfs::fs
