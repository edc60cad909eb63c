#include "fs/node_ids.h"

#include <errno.h>
#include <fcntl.h>

#include "backing/proc_path.h"

namespace foldfs::fs {

NodeIds::NodeIds(const struct stat& root, const backing::FileHandle& root_handle,
                 backing::UniqueFd root_fd)
    : root_dev_(root.st_dev),
      root_ino_(root.st_ino),
      root_fd_(std::move(root_fd)),
      codec_(backing::NodeIdCodec::for_root(root_handle)) {}

NodeIds::Identity NodeIds::identify(const struct stat& st, const backing::FileHandle& handle) {
  if (is_root(st)) return {kRootId, 0};
  Identity out;
  out.generation = handle.empty() ? 0 : static_cast<uint32_t>(handle.digest());
  if (codec_ && st.st_dev == root_dev_) {
    if (auto id = codec_->encode(handle)) {
      out.id = *id;
      return out;
    }
  }
  MutexLock lock(mutex_);
  out.id = (static_cast<uint64_t>(device_index(st.st_dev) + 1) << 56) ^ st.st_ino;
  if (out.id <= kRootId) out.id |= 1ull << 63;
  return out;
}

std::optional<backing::FileHandle> NodeIds::handle_of(uint64_t id) const {
  if (!codec_ || id == kRootId) return std::nullopt;
  return codec_->decode(id);
}

std::optional<uint64_t> NodeIds::id_of(const backing::FileHandle& handle) {
  if (handle.empty()) return std::nullopt;
  if (codec_) {
    if (auto id = codec_->encode(handle)) return id;
  }
  const int raw = handle.open(root_fd_.get(), O_PATH | O_NOFOLLOW);
  if (raw < 0) return std::nullopt;
  backing::UniqueFd fd(raw);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return std::nullopt;
  return identify(st, handle).id;
}

size_t NodeIds::device_index(dev_t dev) {
  size_t index = 0;
  while (index < devices_.size() && devices_[index].dev != dev) ++index;
  if (index == devices_.size()) devices_.push_back(Device{dev, backing::UniqueFd()});
  return index;
}

// The directory is opened for reading through its descriptor's /proc link (never by name).
void NodeIds::note_directory(dev_t dev, int fd) {
  if (dev == root_dev_ || fd < 0) return;
  MutexLock lock(mutex_);
  Device& d = devices_[device_index(dev)];
  if (!d.fd.valid()) {
    d.fd.reset(::open(backing::ProcPath(fd).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }
}

int NodeIds::open(const backing::FileHandle& handle, dev_t dev, int flags) const {
  int mount_fd = -1;
  if (dev == root_dev_) {
    mount_fd = root_fd_.get();
  } else {
    MutexLock lock(mutex_);
    for (const auto& d : devices_) {
      if (d.dev == dev) mount_fd = d.fd.get();  // never closed while this object lives
    }
  }
  if (mount_fd < 0) return -ESTALE;
  return handle.open(mount_fd, flags);
}

}  // namespace foldfs::fs
