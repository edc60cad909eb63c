#include "backing/file_handle.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>

namespace foldfs::backing {
namespace {

struct HandleBuffer {
  struct file_handle header;
  unsigned char storage[FileHandle::kMaxBytes];
};

}  // namespace

int FileHandle::assign_from(int dirfd, const char* name) {
  HandleBuffer buf;
  buf.header.handle_bytes = kMaxBytes;
  int mount_id = 0;
  const int flags = name[0] == '\0' ? AT_EMPTY_PATH : 0;  // no AT_SYMLINK_FOLLOW: never follow
  if (::name_to_handle_at(dirfd, name, &buf.header, &mount_id, flags) != 0) {
    size_ = 0;
    return errno;
  }
  type_ = buf.header.handle_type;
  size_ = buf.header.handle_bytes;
  std::memcpy(bytes_, buf.header.f_handle, size_);
  return 0;
}

void FileHandle::assign_raw(int type, const unsigned char* bytes, uint32_t size) {
  if (size > kMaxBytes) {
    size_ = 0;
    return;
  }
  type_ = type;
  size_ = size;
  std::memcpy(bytes_, bytes, size);
}

int FileHandle::open(int mount_fd, int flags) const {
  if (size_ == 0) return -ESTALE;
  HandleBuffer buf;
  buf.header.handle_bytes = size_;
  buf.header.handle_type = type_;
  std::memcpy(buf.header.f_handle, bytes_, size_);
  const int fd = ::open_by_handle_at(mount_fd, &buf.header, flags | O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

bool FileHandle::ino32(uint32_t* ino) const {
  constexpr int kIno32Gen = 1;  // FILEID_INO32_GEN
  if (type_ != kIno32Gen || size_ != 8) return false;
  std::memcpy(ino, bytes_, sizeof(*ino));  // native byte order, as the kernel wrote it
  return true;
}

uint64_t FileHandle::digest() const {
  // FNV-1a over type and bytes: stable, and good enough to tell generations apart.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](unsigned char c) { h = (h ^ c) * 1099511628211ull; };
  for (int i = 0; i < 4; ++i) mix(static_cast<unsigned char>(type_ >> (8 * i)));
  for (uint32_t i = 0; i < size_; ++i) mix(bytes_[i]);
  return h == 0 ? 1 : h;
}

}  // namespace foldfs::backing
