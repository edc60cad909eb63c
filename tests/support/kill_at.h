// A crash at a named point of an operation: the operation runs in a child process with a hook
// that stops it at that point, and the child is killed there (SIGKILL). For the operations that
// take a hook (backing::copy_up's CopyUpHook).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>

namespace foldfs::test_support {

using StopHook = std::function<void(const char* point)>;

// Runs `operation(hook)` in a child process and kills the child once the hook is called with
// `point`. Returns whether it got there within 20 s (the child is killed either way).
inline bool kill_at(const char* point, const std::function<void(const StopHook&)>& operation) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return false;
  const pid_t child = ::fork();
  if (child < 0) return false;
  if (child == 0) {
    operation([&](const char* at) {
      if (std::strcmp(at, point) != 0) return;
      (void)!::write(ready[1], "!", 1);
      ::sleep(30);  // killed long before
    });
    ::_exit(0);
  }
  ::close(ready[1]);
  struct pollfd p = {ready[0], POLLIN, 0};
  const bool reached = ::poll(&p, 1, 20000) == 1;
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(ready[0]);
  return reached;
}

}  // namespace foldfs::test_support
