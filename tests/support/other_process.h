// A change made by another process: fanotify reports it (the outside watch skips the daemon's
// own changes), as it reports a user's program writing the backing tree.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <functional>

namespace foldfs::test_support {

// Runs `change` in a child process and waits for it.
inline void in_other_process(const std::function<void()>& change) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    change();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
}

}  // namespace foldfs::test_support
