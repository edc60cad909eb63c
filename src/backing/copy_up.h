// Copy-up: a lower tree's file copied into the upper tree of a union before its first change
// (issue 16, docs/union.md "Writes go to the upper tree only").
//
// What is copied: the data (holes stay holes), the type, mode (setuid, setgid and sticky bits
// included), owner, group, access and modification times, and every extended attribute (ACLs and
// file capabilities included) except overlayfs's own trusted.overlay.* (they describe a tree's
// place in a union, not the file). The change time and inode number are the upper filesystem's.
// Hard links are not kept: each name copied up is a file of its own (as overlayfs without its
// index).
//
// Crash safety: a regular file is built unnamed (O_TMPFILE in the upper directory), filled,
// given its metadata, synced, and only then linked under its name (linkat fails on an existing
// name, never replaces), and the directory is synced: a crash at any point leaves either no name
// or the whole file, never part of one. Other kinds are made under their name by one system call
// with no permission bits and owned by root, then given their owner, attributes, mode and times
// by descriptor: a crash in between leaves a node nobody but root can use (an empty directory
// merges with the lower ones as before), never one with wrong rights.
//
// Confinement: both sides are reached only as one name in a directory descriptor. The lower name
// is taken once, as an O_PATH descriptor that follows no symlink and opens nothing (a FIFO is
// copied as a FIFO, never read), and what is copied is what that descriptor holds, whatever the
// name becomes meanwhile; the lower file's access time is left alone (O_NOATIME). Copies are made
// with the daemon's rights, as overlayfs makes them with its mounter's: the caller whose change
// needs the copy may not be allowed to write the upper directory. In the upper directory a
// regular file gets its name only when it is complete; any other kind is made under its name
// without permission bits, then reached by descriptor after checking that it is still what was
// made (a user who may write the upper directory could swap the name meanwhile; what passes the
// check gives nobody more than the copy itself), and only then handed to its owner.
//
// Needs root (owner and group of another user, trusted.* attributes). Not thread-safe with
// respect to the same upper name: the caller holds the upper directory's namespace lock.
#pragma once

#include <sys/stat.h>

#include <functional>
#include <string>

namespace foldfs::backing {

// Called at named points ("data-copied", "metadata-set", "synced", "linked") so that tests can
// stop the copy there (a crash).
using CopyUpHook = std::function<void(const char* point)>;

// Copies the entry `lower_name` of the directory `lower_dir` to the directory `upper_dir` as
// `upper_name`. Directories are copied without their entries (the upper part of a merged
// directory). Descriptors may be O_PATH. 0 or an errno; EEXIST when `upper_name` exists (nothing
// is touched then), EOPNOTSUPP when the upper filesystem cannot hold part of what must be copied
// (an unnamed file without `work_dir`, an extended attribute): nothing is left under
// `upper_name` then.
// On success *out (if given) is the stat of the upper copy.
//
// `work_dir` (optional, overlayfs's workdir=): a directory on the upper filesystem that only root
// may write. Where the upper filesystem has no unnamed files (FUSE, NFS), a regular file is built
// there under a name starting with kCopyUpWorkPrefix and moved into place (renameat2 with
// RENAME_NOREPLACE, else a link), with the same promise: a crash leaves no name or the whole
// file, and at most a leftover in the work directory, which the mount empties when it starts.
// EXDEV when it is on another filesystem.
int copy_up(int lower_dir, const std::string& lower_name, int upper_dir,
            const std::string& upper_name, struct stat* out = nullptr, const CopyUpHook& hook = {},
            int work_dir = -1);

inline constexpr const char* kCopyUpWorkPrefix = ".foldfs-copy-up.";

// Removes what copies interrupted by a crash left in the work directory `work_dir` (the files
// whose names start with kCopyUpWorkPrefix; nothing else is touched). 0 or an errno.
int clear_copy_up_leftovers(int work_dir);

}  // namespace foldfs::backing
