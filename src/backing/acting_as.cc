#include "backing/acting_as.h"

#include <grp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace foldfs::backing {
namespace {

// setfsuid/setfsgid return the previous id and cannot report failure: asking with an invalid id
// (-1) changes nothing and returns the current one.
uid_t current_fsuid() {
  return static_cast<uid_t>(::syscall(SYS_setfsuid, static_cast<uid_t>(-1)));
}
gid_t current_fsgid() {
  return static_cast<gid_t>(::syscall(SYS_setfsgid, static_cast<gid_t>(-1)));
}

long set_thread_groups(size_t n, const gid_t* list) {
  return ::syscall(SYS_setgroups, n, list);
}

// The daemon's own groups, read once: the threads never change them except inside ActingAs.
const std::vector<gid_t>& daemon_groups() {
  static const std::vector<gid_t> groups = [] {
    std::vector<gid_t> g(static_cast<size_t>(std::max(0, ::getgroups(0, nullptr))));
    const int n = ::getgroups(static_cast<int>(g.size()), g.data());
    g.resize(static_cast<size_t>(std::max(0, n)));
    return g;
  }();
  return groups;
}

}  // namespace

ActingAs::ActingAs(uid_t uid, gid_t gid, std::span<const gid_t> groups)
    : old_uid_(current_fsuid()), old_gid_(current_fsgid()) {
  daemon_groups();  // read while this thread still has them
  if (set_thread_groups(groups.size(), groups.data()) != 0) return;
  groups_changed_ = true;
  ::syscall(SYS_setfsgid, gid);
  ::syscall(SYS_setfsuid, uid);
  ok_ = current_fsuid() == uid && current_fsgid() == gid;
  if (!ok_) restore();
}

ActingAs::~ActingAs() {
  if (ok_) restore();
}

// The fsuid goes back first: that gives the thread its filesystem capabilities again.
void ActingAs::restore() {
  ::syscall(SYS_setfsuid, old_uid_);
  ::syscall(SYS_setfsgid, old_gid_);
  if (groups_changed_) {
    const auto& mine = daemon_groups();
    set_thread_groups(mine.size(), mine.data());
  }
}

bool can_act_as_others() {
  const uid_t probe = ::geteuid() == 0 ? 1 : 0;
  ActingAs as(probe, static_cast<gid_t>(probe), {});
  return as.ok();
}

}  // namespace foldfs::backing
