#include "cli/check_command.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "backing/casefold_flag.h"
#include "backing/dir_reader.h"
#include "backing/unique_fd.h"
#include "names/dir_index.h"

namespace foldfs::cli {
namespace {

using backing::UniqueFd;

std::string escape(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (c == '\t') out += "\\t";
    else if (c == '\n') out += "\\n";
    else if (c == '\\') out += "\\\\";
    else out.push_back(c);
  }
  return out;
}

// Opens `rel` below `root` without following any symlink and without leaving the tree.
int open_beneath(int root, const std::string& rel) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  const long fd = ::syscall(SYS_openat2, root, rel.c_str(), &how, sizeof(how));
  return fd < 0 ? -errno : static_cast<int>(fd);
}

struct Walk {
  bool all = false;
  uint64_t dirs = 0;
  uint64_t names = 0;
  uint64_t groups = 0;
  uint64_t errors = 0;
  std::chrono::steady_clock::time_point last_progress = std::chrono::steady_clock::now();

  void progress(bool final) {
    const auto now = std::chrono::steady_clock::now();
    if (!final && now - last_progress < std::chrono::seconds(2)) return;
    last_progress = now;
    std::fprintf(stderr, "foldfs check: %s%llu directories, %llu names, %llu collisions\n",
                 final ? "done: " : "", static_cast<unsigned long long>(dirs),
                 static_cast<unsigned long long>(names), static_cast<unsigned long long>(groups));
  }

  void report(const std::string& rel, const std::vector<std::vector<std::string>>& found) {
    for (const auto& group : found) {
      std::string line = escape(rel);
      for (const auto& n : group) line += "\t" + escape(n);
      std::printf("%s\n", line.c_str());
      ++groups;
    }
  }

  void visit(int root, const std::string& rel, std::deque<std::string>* pending) {
    const int fd = open_beneath(root, rel);
    if (fd < 0) {
      std::fprintf(stderr, "foldfs check: cannot open '%s': %s\n", rel.c_str(), std::strerror(-fd));
      ++errors;
      return;
    }
    UniqueFd dir(fd);
    std::vector<backing::DirEntry> entries;
    if (int err = backing::read_directory(dir.get(), &entries); err != 0) {
      std::fprintf(stderr, "foldfs check: cannot read '%s': %s\n", rel.c_str(), std::strerror(err));
      ++errors;
      return;
    }
    ++dirs;
    names += entries.size();
    bool casefold = all;
    if (!casefold) backing::read_casefold_flag(dir.get(), &casefold);
    if (casefold) {
      names::DirIndex index(names::FoldRules{});
      std::vector<std::string> list;
      list.reserve(entries.size());
      for (const auto& e : entries) list.push_back(e.name);
      index.load(list);
      report(rel, index.collisions());
    }
    for (const auto& e : entries) {
      bool is_dir = e.type == DT_DIR;
      if (e.type == DT_UNKNOWN) {
        struct stat st;
        is_dir = ::fstatat(dir.get(), e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                 S_ISDIR(st.st_mode);
      }
      if (is_dir) pending->push_back(rel == "." ? e.name : rel + "/" + e.name);
    }
    progress(false);
  }
};

int usage_error(const char* message) {
  std::fprintf(stderr, "foldfs: %s\nusage: foldfs check [--casefold=all] BACKING\n", message);
  return 2;
}

}  // namespace

int run_check_command(int argc, char** argv) {
  Walk walk;
  std::string backing;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--casefold=all") walk.all = true;
    else if (arg == "--casefold=flag") walk.all = false;
    else if (!arg.empty() && arg[0] == '-') return usage_error(("unknown option '" + arg + "'").c_str());
    else if (backing.empty()) backing = arg;
    else return usage_error("only one BACKING directory");
  }
  if (backing.empty()) return usage_error("need a BACKING directory");
  UniqueFd root(::open(backing.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    std::fprintf(stderr, "foldfs: cannot open '%s': %s\n", backing.c_str(), std::strerror(errno));
    return 2;
  }
  std::deque<std::string> pending{"."};
  while (!pending.empty()) {
    const std::string rel = std::move(pending.front());
    pending.pop_front();
    walk.visit(root.get(), rel, &pending);
  }
  walk.progress(true);
  std::fflush(stdout);
  if (walk.groups > 0) return 1;
  return walk.errors > 0 ? 3 : 0;
}

}  // namespace foldfs::cli
