#include "backing/node_id_codec.h"

#include <cstring>

namespace foldfs::backing {
namespace {

struct Layout {
  int type;
  uint32_t size;
  std::array<uint8_t, 8> positions;
};

// Handle layouts of the kernel's filesystems (see their encode_fh), for handles over 8 bytes.
constexpr Layout kLayouts[] = {
    // xfs, 64-bit inode numbers (XFS_FILEID_TYPE_64FLAG | FILEID_INO32_GEN): ino lo, ino hi, gen.
    {0x81, 12, {0, 1, 2, 3, 8, 9, 10, 11}},
    // tmpfs (shmem_encode_fh, type 1): generation, inode lo, inode hi.
    {1, 12, {0, 1, 2, 3, 4, 5, 6, 7}},
    // btrfs (FILEID_BTRFS_WITHOUT_PARENT): object id (u64), subvolume root id (u64), generation.
    {0x4d, 20, {0, 1, 2, 3, 16, 17, 18, 19}},
};

}  // namespace

std::optional<NodeIdCodec> NodeIdCodec::for_root(const FileHandle& root) {
  if (root.empty()) return std::nullopt;
  NodeIdCodec c;
  c.root_ = root;
  if (root.size() <= 8) {
    for (uint8_t i = 0; i < 8; ++i) c.positions_[i] = i;
    c.carried_ = static_cast<uint8_t>(root.size());
    return c;
  }
  for (const Layout& l : kLayouts) {
    if (l.type == root.type() && l.size == root.size()) {
      c.positions_ = l.positions;
      c.carried_ = 8;
      return c;
    }
  }
  return std::nullopt;
}

std::optional<uint64_t> NodeIdCodec::encode(const FileHandle& h) const {
  if (h.type() != root_.type() || h.size() != root_.size()) return std::nullopt;
  const std::string_view bytes = h.bytes(), fixed = root_.bytes();
  bool carried[FileHandle::kMaxBytes] = {};
  uint64_t id = 0;
  for (uint8_t i = 0; i < carried_; ++i) {
    carried[positions_[i]] = true;
    id |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[positions_[i]])) << (8 * i);
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (!carried[i] && bytes[i] != fixed[i]) return std::nullopt;
  }
  if (id <= 1) return std::nullopt;
  return id;
}

FileHandle NodeIdCodec::decode(uint64_t id) const {
  unsigned char bytes[FileHandle::kMaxBytes];
  std::memcpy(bytes, root_.bytes().data(), root_.size());
  for (uint8_t i = 0; i < carried_; ++i)
    bytes[positions_[i]] = static_cast<unsigned char>(id >> (8 * i));
  FileHandle h;
  h.assign_raw(root_.type(), bytes, root_.size());
  return h;
}

}  // namespace foldfs::backing
