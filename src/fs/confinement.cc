#include "fs/confinement.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string_view>

#include "backing/proc_path.h"
#include "backing/unique_fd.h"

namespace foldfs::fs {

bool Confinement::contains(int fd, bool is_dir) const {
  return is_dir ? directory_inside(fd) : file_inside(fd);
}

bool Confinement::directory_inside(int fd) const {
  backing::UniqueFd cur(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  for (int depth = 0; cur.valid() && depth < 4096; ++depth) {
    struct stat st;
    if (::fstat(cur.get(), &st) != 0) return false;
    if (st.st_dev == root_dev_ && st.st_ino == root_ino_) return true;
    backing::UniqueFd up(::openat(cur.get(), "..", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat up_st;
    if (!up.valid() || ::fstat(up.get(), &up_st) != 0) return false;
    if (up_st.st_dev == st.st_dev && up_st.st_ino == st.st_ino) return false;  // fs root
    cur = std::move(up);
  }
  return false;
}

bool Confinement::file_inside(int fd) const {
  char path[PATH_MAX];
  const ssize_t n = ::readlink(backing::ProcPath(fd).c_str(), path, sizeof(path) - 1);
  if (n <= 0) return false;
  const std::string_view p(path, static_cast<size_t>(n));
  const std::string prefix = backing_path_ == "/" ? "/" : backing_path_ + "/";
  return p.substr(0, prefix.size()) == prefix;
}

}  // namespace foldfs::fs
