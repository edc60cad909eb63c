// Node ids that are backing file handles, squeezed into 64 bits.
//
// The kernel names a FUSE inode it no longer holds by its 64-bit node id alone: open_by_handle_at
// on the mount, or an NFS server's file handle, after the kernel dropped the inode or the daemon
// restarted, arrives as FUSE_LOOKUP of "." with that node id, and the kernel compares only the
// generation of the reply with the one in its handle. So every bit the daemon needs to find the
// file again must be in the node id: the node id IS the backing handle.
//
// A backing handle has more bytes than that on most filesystems, but only some of them differ
// between files of one filesystem: ext4 (8 bytes: inode, generation) fits whole; xfs (12: a 64-bit
// inode number and a generation) fits while the inode number's high half is zero; tmpfs (12:
// generation, inode number) likewise; btrfs (20: object id, subvolume id, generation) while the
// object id fits 32 bits and the file is in the backing root's subvolume. A layout names the eight
// bytes that carry the id; every other byte is taken from the backing root's handle, and a handle
// whose other bytes differ from the root's does not fit (its file gets a node id that does not
// survive a restart). decode(encode(h)) == h for every handle that fits, so a node id never names
// another file than the one it was made from.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "backing/file_handle.h"

namespace foldfs::backing {

class NodeIdCodec {
 public:
  // The codec for the filesystem whose root (the backing root) has handle `root`; nullopt when no
  // layout fits that filesystem's handles.
  static std::optional<NodeIdCodec> for_root(const FileHandle& root);

  // The node id of `h` (never 0 or 1, the FUSE root), or nullopt when it does not fit.
  std::optional<uint64_t> encode(const FileHandle& h) const;
  // The handle `id` was made from (by encode() of this codec).
  FileHandle decode(uint64_t id) const;

 private:
  NodeIdCodec() = default;
  FileHandle root_;
  std::array<uint8_t, 8> positions_{};  // handle bytes carried by the id, low byte first
  uint8_t carried_ = 0;                 // how many positions are used (handles under 8 bytes)
};

}  // namespace foldfs::backing
