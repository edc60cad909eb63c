#include "backing/thread_umask.h"

#include <sched.h>
#include <sys/stat.h>

namespace foldfs::backing {

bool set_thread_umask(mode_t mask) {
  enum class State { kUnknown, kOwn, kShared };
  thread_local State state = State::kUnknown;
  thread_local mode_t current = 0;
  if (state == State::kUnknown) {
    state = ::unshare(CLONE_FS) == 0 ? State::kOwn : State::kShared;
    if (state == State::kOwn) {
      ::umask(mask);
      current = mask;
    }
  }
  if (state != State::kOwn) return false;
  if (current != mask) {
    ::umask(mask);
    current = mask;
  }
  return true;
}

}  // namespace foldfs::backing
