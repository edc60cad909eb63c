#include "fs/confinement.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <deque>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "backing/dir_reader.h"
#include "backing/file_handle.h"
#include "backing/proc_path.h"
#include "backing/unique_fd.h"

namespace foldfs::fs {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const std::string oct(field.substr(i + 1, 3));
      char* end = nullptr;
      const long v = std::strtol(oct.c_str(), &end, 8);
      if (end == oct.c_str() + 3) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

std::string handle_bytes_of(int dirfd, const char* name) {
  backing::FileHandle h;
  if (h.assign_from(dirfd, name) != 0) return {};
  return std::to_string(h.type()) + ":" + std::string(h.bytes());
}

}  // namespace

bool is_filesystem_root(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  bool root = false;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, devno, mount_root, point;
    f >> id >> parent >> devno >> mount_root >> point;
    // The last mount on a path is the one that shows there.
    if (unescape(point) == path) root = unescape(mount_root) == "/";
  }
  return root;
}

Confinement::Confinement(std::string backing_path, int root_fd, dev_t root_dev, ino_t root_ino)
    : backing_path_(std::move(backing_path)),
      root_fd_(root_fd),
      root_dev_(root_dev),
      root_ino_(root_ino),
      whole_filesystem_(is_filesystem_root(backing_path_)) {}

bool Confinement::contains(int fd, const struct stat& st, const Likely& likely) const {
  if (S_ISDIR(st.st_mode)) return directory_inside(fd);
  if (st.st_dev != root_dev_) return false;  // handles name files of the root's filesystem
  if (whole_filesystem_) return true;
  if (path_inside(fd)) return true;
  // Disconnected: find a name for it inside the tree.
  const std::string handle = handle_bytes_of(fd, "");
  if (handle.empty()) return false;
  long budget = kSearchBudget;
  bool found = false;
  if (likely) {
    likely([&](int dirfd) {
      found = names_file(dirfd, st, handle, &budget, nullptr);
      return found || budget <= 0;
    });
  }
  return found || search_tree(st, handle, &budget);
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

bool Confinement::path_inside(int fd) const {
  char path[PATH_MAX];
  const ssize_t n = ::readlink(backing::ProcPath(fd).c_str(), path, sizeof(path) - 1);
  if (n <= 0) return false;
  const std::string_view p(path, static_cast<size_t>(n));
  const std::string prefix = backing_path_ == "/" ? "/" : backing_path_ + "/";
  return p.substr(0, prefix.size()) == prefix;
}

bool Confinement::names_file(int dirfd, const struct stat& st, const std::string& handle,
                             long* budget, std::vector<std::string>* subdirs) const {
  std::vector<backing::DirEntry> entries;
  if (backing::read_directory(dirfd, &entries) != 0) return false;
  *budget -= static_cast<long>(entries.size());
  for (const auto& e : entries) {
    if (subdirs && (e.type == DT_DIR || e.type == DT_UNKNOWN)) subdirs->push_back(e.name);
    if (e.ino != st.st_ino) continue;
    struct stat named;
    if (::fstatat(dirfd, e.name.c_str(), &named, AT_SYMLINK_NOFOLLOW) == 0 &&
        named.st_dev == st.st_dev && named.st_ino == st.st_ino &&
        handle_bytes_of(dirfd, e.name.c_str()) == handle) {
      return true;
    }
  }
  return false;
}

// Breadth first from the backing root, on the root's filesystem only, never through a symlink.
bool Confinement::search_tree(const struct stat& st, const std::string& handle,
                              long* budget) const {
  std::deque<backing::UniqueFd> pending;
  pending.emplace_back(::openat(root_fd_, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  std::vector<std::string> subdirs;
  while (!pending.empty() && *budget > 0) {
    backing::UniqueFd dir = std::move(pending.front());
    pending.pop_front();
    if (!dir.valid()) continue;
    subdirs.clear();
    if (names_file(dir.get(), st, handle, budget, &subdirs)) return true;
    for (const auto& name : subdirs) {
      backing::UniqueFd sub(
          ::openat(dir.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      struct stat sub_st;
      if (!sub.valid() || ::fstat(sub.get(), &sub_st) != 0 || sub_st.st_dev != root_dev_) continue;
      pending.push_back(std::move(sub));
    }
  }
  return false;
}

}  // namespace foldfs::fs
