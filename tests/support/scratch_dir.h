// A fresh directory for one test, removed with everything in it when the object goes — without
// ever crossing into another filesystem mounted below it (a test's FUSE or tmpfs mount that
// could not be unmounted is left alone rather than emptied).
#pragma once

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <string_view>

namespace foldfs::test_support {

// Deletes a tree without following symlinks or crossing mount points.
inline void remove_tree(const std::string& path) {
  ::nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int flag, struct FTW*) {
        if (flag == FTW_DP || flag == FTW_D || flag == FTW_DNR)
          ::rmdir(p);
        else
          ::unlink(p);
        return 0;
      },
      64, FTW_PHYS | FTW_MOUNT | FTW_DEPTH);
}

class ScratchDir {
 public:
  // Makes BASE/PREFIX.XXXXXX with `mode` (0755: other users' tests must traverse it).
  explicit ScratchDir(std::string_view prefix = "foldfs-test", std::string_view base = "/tmp",
                      mode_t mode = 0755) {
    std::string tmpl = std::string(base) + "/" + std::string(prefix) + ".XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return;
    }
    path_ = tmpl;
    ::chmod(path_.c_str(), mode);
  }
  ~ScratchDir() {
    if (!path_.empty()) remove_tree(path_);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string path(std::string_view rel) const {
    return rel.empty() ? path_ : path_ + "/" + std::string(rel);
  }

 private:
  std::string path_;
};

}  // namespace foldfs::test_support
