#include "fuse/passthrough.h"

#include <errno.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace foldfs::fuse {
namespace {

// include/uapi/linux/fuse.h (7.40); Debian 12's header predates them.
struct BackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kBackingOpen = _IOW(229, 1, BackingMap);
constexpr unsigned long kBackingClose = _IOW(229, 2, uint32_t);

}  // namespace

int BackingFiles::register_backing(int fd) {
  BackingMap map{};
  map.fd = fd;
  const int id = ::ioctl(dev_fd_, kBackingOpen, &map);
  return id > 0 ? id : -errno;
}

int32_t BackingFiles::opened(uint64_t node, uint64_t fh, int fd) {
  if (!active()) return 0;
  MutexLock lock(mutex_);
  Node& n = nodes_[node];
  if (n.open_files == 0) {
    const int id = register_backing(fd);
    if (id < 0) {
      refused_++;
      last_refusal_ = -id;
    }
    n.backing_id = id > 0 ? id : 0;
  }
  n.open_files++;
  files_[fh] = node;
  if (n.backing_id > 0) opens_++;
  return n.backing_id;
}

void BackingFiles::released(uint64_t fh) {
  MutexLock lock(mutex_);
  auto file = files_.find(fh);
  if (file == files_.end()) return;
  auto node = nodes_.find(file->second);
  files_.erase(file);
  if (node == nodes_.end() || --node->second.open_files > 0) return;
  // The kernel keeps its own reference for the files still using it: closing the id only stops
  // new opens from naming it.
  if (node->second.backing_id > 0) {
    uint32_t id = static_cast<uint32_t>(node->second.backing_id);
    ::ioctl(dev_fd_, kBackingClose, &id);
  }
  nodes_.erase(node);
}

std::string BackingFiles::stats_text() const {
  std::string out;
  out += std::string("passthrough ") + (active() ? "1" : "0") + "\n";
  out += "passthrough_opens " + std::to_string(opens_.load()) + "\n";
  out += "passthrough_refused " + std::to_string(refused_.load()) + "\n";
  out += "passthrough_last_refusal " + std::to_string(last_refusal_.load()) + "\n";
  return out;
}

}  // namespace foldfs::fuse
