// Reliability §1: permissions with several users (allow_other). Every operation must act with
// the caller's rights exactly as the kernel decides them on a local filesystem.
//
// Most tests are differential: one scenario (root prepares files; unprivileged callers with
// supplementary groups try operations; root inspects the result) runs three times — in a plain
// directory of the machine's ext4 /tmp (the reference: what the kernel does natively), through a
// casefold=all,allow_other mount with the exact spellings, and through the same mount with the
// callers spelling every name in another case. The transcripts (one line per attempt: errno;
// per object: type, mode, owner, group, size, content) must be identical. Explicit expectations
// on the reference transcript make sure each scenario exercises both grants and denials.
//
// The callers are plain numeric ids unused on the machine (nothing to create or remove):
//   alice: primary group GA, supplementary group GS      (owner of most objects)
//   bob:   primary group GB, supplementary group GS      (a member of the shared group)
//   dave:  primary group GS, no supplementary group      (the shared group as primary group)
//   carol: primary group GC, no supplementary group      (no relation)
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "reliability_util.h"

extern char** environ;

namespace foldfs::itest {
namespace {

struct People {
  UnusedIds ids;
  gid_t GS = ids.gid(), GA = ids.gid(), GB = ids.gid(), GC = ids.gid();
  Caller alice{"alice", ids.uid(), GA, {GS}};
  Caller bob{"bob", ids.uid(), GB, {GS}};
  Caller dave{"dave", ids.uid(), GS, {}};
  Caller carol{"carol", ids.uid(), GC, {}};
  std::vector<const Caller*> all() const { return {&alice, &bob, &dave, &carol}; }
  std::string uid_name(uid_t u) const {
    for (const Caller* c : all())
      if (c->uid == u) return c->name;
    return u == 0 ? "root" : std::to_string(u);
  }
  std::string gid_name(gid_t g) const {
    if (g == GS) return "GS";
    if (g == GA) return "GA";
    if (g == GB) return "GB";
    if (g == GC) return "GC";
    return g == 0 ? "root" : std::to_string(g);
  }
};

std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}
std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}
std::string octal(mode_t m) {
  char b[16];
  std::snprintf(b, sizeof b, "%04o", static_cast<unsigned>(m & 07777));
  return b;
}
int err(long rc) {
  return rc < 0 ? errno : 0;
}

// Opens with flags and closes: 0 or errno.
int try_open(const std::string& p, int flags, mode_t mode = 0644) {
  const int fd = ::open(p.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}
// Executes p (a "#!/bin/true" script): 0 if it ran, else execve's errno.
int try_exec(const std::string& p) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    char* argv[] = {const_cast<char*>(p.c_str()), nullptr};
    ::execve(p.c_str(), argv, environ);
    ::_exit(errno);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}
int try_write(const std::string& p, const std::string& data, int flags = O_WRONLY) {
  const int fd = ::open(p.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return errno;
  const int e = ::write(fd, data.data(), data.size()) < 0 ? errno : 0;
  ::close(fd);
  return e;
}
int try_list(const std::string& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  char buf[8192];
  const long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
  const int e = n < 0 ? errno : 0;
  ::close(fd);
  return e;
}
int try_flags(const std::string& p, unsigned set, unsigned clear) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return errno;
  int flags = 0;
  int e = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0 ? errno : 0;
  if (e == 0) {
    flags = static_cast<int>((static_cast<unsigned>(flags) | set) & ~clear);
    e = ::ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0 ? errno : 0;
  }
  ::close(fd);
  return e;
}

// A POSIX ACL in its xattr form (system.posix_acl_access / _default).
enum AclTag : uint16_t {
  kUserObj = 1,
  kUser = 2,
  kGroupObj = 4,
  kGroup = 8,
  kMask = 16,
  kOther = 32
};
struct AclEntry {
  uint16_t tag;
  uint16_t perm;
  uint32_t id = 0xffffffffu;
};
std::string acl_xattr(std::vector<AclEntry> entries) {
  std::string v(4, '\0');
  const uint32_t version = 2;
  std::memcpy(v.data(), &version, 4);
  for (const AclEntry& e : entries) {
    char b[8];
    std::memcpy(b, &e.tag, 2);
    std::memcpy(b + 2, &e.perm, 2);
    std::memcpy(b + 4, &e.id, 4);
    v.append(b, 8);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------

// One run of a scenario in one directory tree.
class World {
 public:
  World(std::string name, std::string root, bool other_spelling, const People& people)
      : name_(std::move(name)), root_(std::move(root)), spelled_(other_spelling), people_(people) {}

  const std::string& name() const { return name_; }
  // The exact path (root's setup and inspection use it).
  std::string P(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }
  // The path as callers spell it.
  std::string S(const std::string& rel) const { return P(spelled_ ? upper(rel) : rel); }

  // Root prepares something; a failure here is a broken test, not an observation.
  void setup(const std::string& what, int e) {
    if (e != 0) ADD_FAILURE() << name_ << ": setup " << what << ": " << errno_text(e);
  }
  void file(const std::string& rel, const std::string& content, uid_t u, gid_t g, mode_t mode) {
    setup("write " + rel, write_file(P(rel), content, 0600).value);
    setup("chown " + rel, err(::lchown(P(rel).c_str(), u, g)));
    setup("chmod " + rel, err(::chmod(P(rel).c_str(), mode)));
  }
  void dir(const std::string& rel, uid_t u, gid_t g, mode_t mode) {
    setup("mkdir " + rel, err(::mkdir(P(rel).c_str(), 0700)));
    setup("chown " + rel, err(::lchown(P(rel).c_str(), u, g)));
    setup("chmod " + rel, err(::chmod(P(rel).c_str(), mode)));
  }

  // One attempt by a caller: a transcript line "caller: what = ERRNO".
  void as(const Caller& c, const std::string& what, const std::function<int()>& op,
          mode_t umask_value = 022) {
    const int r = run_as_caller(c, op, umask_value);
    add(c.name + ": " + what + " = " + (r < 0 ? "<child failed>" : errno_text(r)));
  }
  // Many attempts in one child: fn returns the lines (each "what = ERRNO\n").
  void batch(const Caller& c, const std::function<std::string()>& fn, mode_t umask_value = 022) {
    std::istringstream in(run_as_text(c, fn, umask_value));
    std::string line;
    while (std::getline(in, line)) add(c.name + ": " + line);
  }
  // Root's view of an object: type, mode, owner, group, size, content.
  void inspect(const std::string& rel) {
    struct stat st;
    if (::lstat(P(rel).c_str(), &st) != 0) {
      add("inspect " + rel + ": " + errno_text(errno));
      return;
    }
    std::string type = S_ISREG(st.st_mode)    ? "file"
                       : S_ISDIR(st.st_mode)  ? "dir"
                       : S_ISLNK(st.st_mode)  ? "symlink"
                       : S_ISFIFO(st.st_mode) ? "fifo"
                       : S_ISSOCK(st.st_mode) ? "socket"
                                              : "other";
    std::string line = "inspect " + rel + ": " + type + " " + octal(st.st_mode) + " " +
                       people_.uid_name(st.st_uid) + ":" + people_.gid_name(st.st_gid);
    if (S_ISREG(st.st_mode)) {
      auto content = read_file(P(rel));
      line += " size=" + std::to_string(st.st_size) +
              " content=" + (content ? printable(*content) : "<unreadable>");
    }
    add(line);
  }
  // Root's listing of a directory, names lowercased (callers may have created other spellings).
  void listing(const std::string& rel) {
    std::vector<std::string> names = list_dir(P(rel));
    for (auto& n : names) n = lower(n);
    std::sort(names.begin(), names.end());
    add("listing " + rel + ": " + join(names, " "));
  }

  void add(const std::string& line) { lines_.push_back(line); }
  const std::vector<std::string>& lines() const { return lines_; }
  // The result recorded for "caller: what", or "<missing>".
  std::string result(const std::string& caller_what) const {
    for (const auto& l : lines_)
      if (l.rfind(caller_what + " = ", 0) == 0) return l.substr(caller_what.size() + 3);
    return "<missing>";
  }

 private:
  std::string name_;
  std::string root_;
  bool spelled_;
  const People& people_;
  std::vector<std::string> lines_;
};

::testing::AssertionResult SameTranscript(const World& ref, const World& other) {
  const auto& a = ref.lines();
  const auto& b = other.lines();
  std::ostringstream diff;
  int shown = 0, differ = 0;
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    const std::string x = i < a.size() ? a[i] : "<none>";
    const std::string y = i < b.size() ? b[i] : "<none>";
    if (x == y) continue;
    ++differ;
    if (shown++ < 40)
      diff << "\n  " << ref.name() << ": " << x << "\n  " << other.name() << ": " << y;
  }
  if (differ == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << differ << " of " << a.size() << " lines differ between " << ref.name() << " and "
         << other.name() << ":" << diff.str();
}

using ScenarioFn = std::function<void(World&, const People&)>;

class Differential : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(m.start("casefold=all,allow_other"));
    native = m.tpath("native");
    ASSERT_EQ(::mkdir(native.c_str(), 0755), 0);
    ASSERT_EQ(::chmod(native.c_str(), 0755), 0);
    for (const char* d : {"exact", "spelled"}) {
      ASSERT_EQ(errno_of(::mkdir(m.path(d).c_str(), 0755)), Errno(0));
      ASSERT_EQ(errno_of(::chmod(m.path(d).c_str(), 0755)), Errno(0));
    }
  }
  void TearDown() override {
    // Should a scenario ever manage to set +i/+a, the temp dir must still be removable.
    for (const std::string& p : {native, m.backing()}) run({"chattr", "-R", "-f", "-i", "-a", p});
  }
  // Runs the scenario in the three worlds and compares; returns the reference transcript.
  World Run(const ScenarioFn& scenario) {
    World ref("native ext4", native, false, people);
    World exact("foldfs", m.path("exact"), false, people);
    World spelled("foldfs other spellings", m.path("spelled"), true, people);
    scenario(ref, people);
    scenario(exact, people);
    scenario(spelled, people);
    EXPECT_TRUE(SameTranscript(ref, exact));
    EXPECT_TRUE(SameTranscript(ref, spelled));
    report_figure(std::string("permission checks compared (") +
                      ::testing::UnitTest::GetInstance()->current_test_info()->name() + ")",
                  static_cast<long long>(ref.lines().size()));
    return ref;
  }
  Mount m;
  People people;
  std::string native;
};

const mode_t kFileModes[] = {0000, 0400, 0200, 0100, 0040, 0020, 0010, 0004, 0002, 0001,
                             0600, 0060, 0006, 0640, 0604, 0664, 0700, 0070, 0007, 0755};

TEST_F(Differential, FileModesForOwnerGroupSupplementaryGroupAndOthers) {
  World ref = Run([](World& w, const People& p) {
    for (mode_t mode : kFileModes) {
      w.file("f" + octal(mode), "#!/bin/true\n", p.alice.uid, p.GS, mode);
      for (const Caller* c : p.all())
        w.file("t" + octal(mode) + c->name, "data", p.alice.uid, p.GS, mode);
    }
    for (const Caller* c : p.all()) {
      w.batch(*c, [&w, c] {
        std::string out;
        for (mode_t mode : kFileModes) {
          const std::string f = "f" + octal(mode), t = "t" + octal(mode) + c->name;
          out += "open(" + f + ", O_RDONLY) = " + errno_text(try_open(w.S(f), O_RDONLY)) + "\n";
          out += "open(" + f + ", O_WRONLY) = " + errno_text(try_open(w.S(f), O_WRONLY)) + "\n";
          out += "open(" + f + ", O_RDWR) = " + errno_text(try_open(w.S(f), O_RDWR)) + "\n";
          for (int m : {R_OK, W_OK, X_OK})
            out += "access(" + f + ", " + std::to_string(m) +
                   ") = " + errno_text(err(::faccessat(AT_FDCWD, w.S(f).c_str(), m, AT_EACCESS))) +
                   "\n";
          out += "exec(" + f + ") = " + errno_text(try_exec(w.S(f))) + "\n";
          out += "open(" + t +
                 ", O_RDONLY|O_TRUNC) = " + errno_text(try_open(w.S(t), O_RDONLY | O_TRUNC)) + "\n";
          out += "open(" + t +
                 ", O_WRONLY|O_TRUNC) = " + errno_text(try_open(w.S(t), O_WRONLY | O_TRUNC)) + "\n";
        }
        return out;
      });
    }
    for (mode_t mode : kFileModes) {
      w.inspect("f" + octal(mode));
      for (const Caller* c : p.all()) w.inspect("t" + octal(mode) + c->name);
    }
  });
  // The scenario really grants and denies by owner, group (primary and supplementary), other.
  EXPECT_EQ(ref.result("alice: open(f0400, O_RDONLY)"), "OK");
  EXPECT_EQ(ref.result("bob: open(f0400, O_RDONLY)"), "EACCES");
  EXPECT_EQ(ref.result("alice: open(f0040, O_RDONLY)"), "EACCES");
  EXPECT_EQ(ref.result("bob: open(f0040, O_RDONLY)"), "OK");
  EXPECT_EQ(ref.result("dave: open(f0040, O_RDONLY)"), "OK");
  EXPECT_EQ(ref.result("carol: open(f0040, O_RDONLY)"), "EACCES");
  EXPECT_EQ(ref.result("carol: open(f0004, O_RDONLY)"), "OK");
  EXPECT_EQ(ref.result("bob: exec(f0010)"), "OK");
  EXPECT_EQ(ref.result("carol: exec(f0010)"), "EACCES");
  EXPECT_EQ(ref.result("bob: open(t0040bob, O_RDONLY|O_TRUNC)"), "EACCES");
  EXPECT_EQ(ref.result("bob: open(t0020bob, O_WRONLY|O_TRUNC)"), "OK");
}

const mode_t kDirModes[] = {0000, 0100, 0400, 0500, 0300, 0700, 0070, 0050,
                            0030, 0007, 0005, 0003, 0711, 0755, 0777, 01777};

TEST_F(Differential, DirectoryModesForSearchListCreateRemoveRename) {
  World ref = Run([](World& w, const People& p) {
    for (mode_t mode : kDirModes) {
      const std::string d = "d" + octal(mode);
      w.dir(d, p.alice.uid, p.GS, 0700);
      w.file(d + "/in", "in", p.alice.uid, p.GS, 0644);
      for (const Caller* c : p.all()) {
        w.file(d + "/rm_" + c->name, "", 0, 0, 0644);
        w.file(d + "/mv_" + c->name, "", 0, 0, 0644);
      }
      w.setup("chmod " + d, err(::chmod(w.P(d).c_str(), mode)));
    }
    for (const Caller* c : p.all()) {
      w.batch(*c, [&w, c] {
        std::string out;
        for (mode_t mode : kDirModes) {
          const std::string d = "d" + octal(mode), n = c->name;
          struct stat st;
          auto line = [&](const std::string& what, int e) {
            out += what + " = " + errno_text(e) + "\n";
          };
          line("list(" + d + ")", try_list(w.S(d)));
          line("stat(" + d + "/in)", err(::lstat(w.S(d + "/in").c_str(), &st)));
          line("read(" + d + "/in)", try_open(w.S(d + "/in"), O_RDONLY));
          line("create(" + d + "/new_" + n + ")",
               try_open(w.S(d + "/new_" + n), O_WRONLY | O_CREAT | O_EXCL, 0644));
          line("mkdir(" + d + "/sub_" + n + ")", err(::mkdir(w.S(d + "/sub_" + n).c_str(), 0755)));
          line("symlink(" + d + "/ln_" + n + ")",
               err(::symlink("in", w.S(d + "/ln_" + n).c_str())));
          line("unlink(" + d + "/rm_" + n + ")", err(::unlink(w.S(d + "/rm_" + n).c_str())));
          line("rename(" + d + "/mv_" + n + ")",
               err(::rename(w.S(d + "/mv_" + n).c_str(), w.S(d + "/mv2_" + n).c_str())));
          line("chdir(" + d + ")", err(::chdir(w.S(d).c_str())));
        }
        return out;
      });
    }
    for (mode_t mode : kDirModes) {
      const std::string d = "d" + octal(mode);
      w.setup("chmod back " + d, err(::chmod(w.P(d).c_str(), 0755)));
      w.listing(d);
      for (const Caller* c : p.all()) {
        w.inspect(d + "/new_" + c->name);
        w.inspect(d + "/sub_" + c->name);
      }
    }
  });
  EXPECT_EQ(ref.result("bob: list(d0050)"), "OK");
  EXPECT_EQ(ref.result("bob: stat(d0400/in)"), "EACCES");
  EXPECT_EQ(ref.result("carol: list(d0070)"), "EACCES");
  EXPECT_EQ(ref.result("alice: create(d0300/new_alice)"), "OK");
  EXPECT_EQ(ref.result("dave: unlink(d0030/rm_dave)"), "OK");
  EXPECT_EQ(ref.result("bob: unlink(d1777/rm_bob)"), "EPERM");  // sticky: root's file
  EXPECT_EQ(ref.result("carol: create(d0005/new_carol)"), "EACCES");
}

TEST_F(Differential, CreatedObjectsBelongToTheCallerAndSetgidDirectoriesGiveTheirGroup) {
  World ref = Run([](World& w, const People& p) {
    w.dir("plain", 0, 0, 0777);
    w.dir("sgid_member", 0, p.GS, 02777);    // alice is in GS
    w.dir("sgid_stranger", 0, p.GB, 02777);  // alice is not in GB
    for (const char* d : {"plain", "sgid_member", "sgid_stranger"}) {
      const std::string D = d;
      for (mode_t um : {022, 077, 0}) {
        const std::string s = "_u" + octal(um);
        w.as(
            p.alice, "create " + D + "/file" + s,
            [&w, D, s] {
              return try_open(w.S(D + "/file" + s), O_WRONLY | O_CREAT | O_EXCL, 0666);
            },
            um);
        w.as(
            p.alice, "mkdir " + D + "/dir" + s,
            [&w, D, s] { return err(::mkdir(w.S(D + "/dir" + s).c_str(), 0777)); }, um);
      }
      w.as(p.alice, "create " + D + "/setgid",
           [&w, D] { return try_open(w.S(D + "/setgid"), O_WRONLY | O_CREAT | O_EXCL, 02755); });
      w.as(p.alice, "create " + D + "/setuid",
           [&w, D] { return try_open(w.S(D + "/setuid"), O_WRONLY | O_CREAT | O_EXCL, 04755); });
      w.as(p.alice, "mkdir " + D + "/setgiddir",
           [&w, D] { return err(::mkdir(w.S(D + "/setgiddir").c_str(), 02755)); });
      w.as(p.alice, "symlink " + D + "/link",
           [&w, D] { return err(::symlink("file_u0022", w.S(D + "/link").c_str())); });
      w.as(p.alice, "mkfifo " + D + "/fifo",
           [&w, D] { return err(::mkfifo(w.S(D + "/fifo").c_str(), 0640)); });
      w.as(p.alice, "mknod socket " + D + "/sock",
           [&w, D] { return err(::mknod(w.S(D + "/sock").c_str(), S_IFSOCK | 0600, 0)); });
      w.as(p.alice, "mknod char device " + D + "/chr", [&w, D] {
        return err(::mknod(w.S(D + "/chr").c_str(), S_IFCHR | 0666, makedev(1, 3)));
      });
      w.as(p.alice, "link " + D + "/hard", [&w, D] {
        return err(::link(w.S(D + "/file_u0022").c_str(), w.S(D + "/hard").c_str()));
      });
      w.as(p.alice, "create in a subdirectory " + D + "/dir_u0022/deep", [&w, D] {
        return try_open(w.S(D + "/dir_u0022/deep"), O_WRONLY | O_CREAT | O_EXCL, 0640);
      });
      w.as(p.bob, "bob creates " + D + "/bobs",
           [&w, D] { return try_open(w.S(D + "/bobs"), O_WRONLY | O_CREAT | O_EXCL, 0640); });
      w.listing(D);
      for (const char* n : {"file_u0022", "file_u0077", "file_u0000", "dir_u0022", "dir_u0077",
                            "dir_u0000", "setgid", "setuid", "setgiddir", "link", "fifo", "sock",
                            "chr", "hard", "dir_u0022/deep", "bobs"})
        w.inspect(D + "/" + n);
    }
  });
  EXPECT_EQ(ref.result("alice: mknod char device plain/chr"), "EPERM");
  EXPECT_EQ(ref.result("alice: create plain/file_u0022"), "OK");
}

TEST_F(Differential, ChmodChownUtimesAndPrivilegeBitsFollowTheKernelRules) {
  World ref = Run([](World& w, const People& p) {
    w.dir("d", 0, 0, 0777);
    auto fresh = [&](const std::string& n, gid_t g, mode_t mode) {
      w.file("d/" + n, "payload", p.alice.uid, g, mode);
    };
    fresh("own", p.GS, 0644);
    w.as(p.alice, "alice chmod own 0600", [&] { return err(::chmod(w.S("d/own").c_str(), 0600)); });
    w.as(p.bob, "bob chmod own 0666", [&] { return err(::chmod(w.S("d/own").c_str(), 0666)); });
    w.as(p.alice, "alice chown own to bob",
         [&] { return err(::chown(w.S("d/own").c_str(), p.bob.uid, -1)); });
    w.as(p.alice, "alice chgrp own GA (her primary)",
         [&] { return err(::chown(w.S("d/own").c_str(), -1, p.GA)); });
    w.as(p.alice, "alice chgrp own GS (supplementary)",
         [&] { return err(::chown(w.S("d/own").c_str(), -1, p.GS)); });
    w.as(p.alice, "alice chgrp own GB (not hers)",
         [&] { return err(::chown(w.S("d/own").c_str(), -1, p.GB)); });
    w.as(p.bob, "bob chgrp own GS", [&] { return err(::chown(w.S("d/own").c_str(), -1, p.GS)); });
    w.inspect("d/own");

    // chmod g+s by an owner outside the file's group: the bit is silently dropped.
    fresh("strange_group", p.GB, 0755);
    w.as(p.alice, "alice chmod strange_group 02755",
         [&] { return err(::chmod(w.S("d/strange_group").c_str(), 02755)); });
    w.inspect("d/strange_group");
    fresh("member_group", p.GS, 0755);
    w.as(p.alice, "alice chmod member_group 06755",
         [&] { return err(::chmod(w.S("d/member_group").c_str(), 06755)); });
    w.inspect("d/member_group");

    // Writes, truncation and chown by others drop setuid (and setgid with group exec).
    for (const char* how :
         {"write", "append", "truncate", "otrunc", "chown_root", "chgrp_owner", "owner_write"}) {
      const std::string n = std::string("priv_") + how;
      fresh(n, p.GS, 06777);
      const std::string path = w.S("d/" + n);
      const std::string h = how;
      if (h == "chown_root") {
        w.setup("root chown " + n, err(::chown(w.P("d/" + n).c_str(), p.bob.uid, -1)));
      } else {
        const Caller& who = (h == "chgrp_owner" || h == "owner_write") ? p.alice : p.bob;
        w.as(who, who.name + " " + h + " " + n, [path, h, &p] {
          if (h == "write" || h == "owner_write") return try_write(path, "x");
          if (h == "append") return try_write(path, "x", O_WRONLY | O_APPEND);
          if (h == "truncate") return err(::truncate(path.c_str(), 3));
          if (h == "otrunc") return try_open(path, O_WRONLY | O_TRUNC);
          return err(::chown(path.c_str(), -1, p.GA));
        });
      }
      w.inspect("d/" + n);
    }
    // setgid without group exec is not a privilege bit: kept on write.
    fresh("sgid_noexec", p.GS, 02666);
    w.as(p.bob, "bob write sgid_noexec", [&] { return try_write(w.S("d/sgid_noexec"), "y"); });
    w.inspect("d/sgid_noexec");

    // Times: explicit times only by the owner; "now" by anyone who may write.
    fresh("times", p.GS, 0666);
    fresh("times_ro", p.GS, 0644);
    const struct timespec explicit_times[2] = {{1000000000, 0}, {1000000000, 0}};
    w.as(p.bob, "bob utimensat(times, explicit)",
         [&] { return err(::utimensat(AT_FDCWD, w.S("d/times").c_str(), explicit_times, 0)); });
    w.as(p.bob, "bob utimensat(times, now)",
         [&] { return err(::utimensat(AT_FDCWD, w.S("d/times").c_str(), nullptr, 0)); });
    w.as(p.bob, "bob utimensat(times_ro, now)",
         [&] { return err(::utimensat(AT_FDCWD, w.S("d/times_ro").c_str(), nullptr, 0)); });
    w.as(p.alice, "alice utimensat(times_ro, explicit)",
         [&] { return err(::utimensat(AT_FDCWD, w.S("d/times_ro").c_str(), explicit_times, 0)); });
    struct stat st;
    if (::stat(w.P("d/times_ro").c_str(), &st) == 0)
      w.add("times_ro mtime=" + std::to_string(st.st_mtim.tv_sec));

    // Inode flags: only the owner may change them; immutable needs CAP_LINUX_IMMUTABLE.
    fresh("flags", p.GS, 0666);
    w.as(p.bob, "bob chattr +A flags", [&] { return try_flags(w.S("d/flags"), FS_NOATIME_FL, 0); });
    w.as(p.alice, "alice chattr +A flags",
         [&] { return try_flags(w.S("d/flags"), FS_NOATIME_FL, 0); });
    w.as(p.alice, "alice chattr +i flags",
         [&] { return try_flags(w.S("d/flags"), FS_IMMUTABLE_FL, 0); });
    w.as(p.alice, "alice chattr -A flags",
         [&] { return try_flags(w.S("d/flags"), 0, FS_NOATIME_FL); });
  });
  EXPECT_EQ(ref.result("bob: bob chmod own 0666"), "EPERM");
  EXPECT_EQ(ref.result("alice: alice chgrp own GB (not hers)"), "EPERM");
  EXPECT_EQ(ref.result("alice: alice chgrp own GS (supplementary)"), "OK");
  EXPECT_EQ(ref.result("bob: bob utimensat(times, explicit)"), "EPERM");
  EXPECT_EQ(ref.result("bob: bob utimensat(times, now)"), "OK");
  EXPECT_EQ(ref.result("bob: bob chattr +A flags"), "EPERM");
}

TEST_F(Differential, StickyDirectoriesHardLinkProtectionAndDirectoryMoves) {
  World ref = Run([](World& w, const People& p) {
    w.dir("tmp", 0, 0, 01777);
    w.dir("carols", p.carol.uid, p.GC, 01777);  // sticky, owned by carol
    for (const char* d : {"tmp", "carols"}) {
      const std::string D = d;
      w.as(
          p.alice, "alice creates " + D + "/a",
          [&w, D] { return try_open(w.S(D + "/a"), O_WRONLY | O_CREAT | O_EXCL, 0666); }, 0);
      w.as(
          p.alice, "alice creates " + D + "/a2",
          [&w, D] { return try_open(w.S(D + "/a2"), O_WRONLY | O_CREAT | O_EXCL, 0666); }, 0);
      w.as(p.alice, "alice mkdir " + D + "/adir",
           [&w, D] { return err(::mkdir(w.S(D + "/adir").c_str(), 0777)); });
      w.as(p.bob, "bob creates " + D + "/b",
           [&w, D] { return try_open(w.S(D + "/b"), O_WRONLY | O_CREAT | O_EXCL, 0666); });
      w.as(p.bob, "bob unlinks " + D + "/a",
           [&w, D] { return err(::unlink(w.S(D + "/a").c_str())); });
      w.as(p.bob, "bob renames " + D + "/a",
           [&w, D] { return err(::rename(w.S(D + "/a").c_str(), w.S(D + "/stolen").c_str())); });
      w.as(p.bob, "bob renames his b over a",
           [&w, D] { return err(::rename(w.S(D + "/b").c_str(), w.S(D + "/a").c_str())); });
      w.as(p.bob, "bob rmdir " + D + "/adir",
           [&w, D] { return err(::rmdir(w.S(D + "/adir").c_str())); });
      w.as(p.bob, "bob writes " + D + "/a (0666)",
           [&w, D] { return try_write(w.S(D + "/a"), "b"); });
      w.as(p.carol, "carol unlinks " + D + "/a2",
           [&w, D] { return err(::unlink(w.S(D + "/a2").c_str())); });
      w.as(p.alice, "alice unlinks " + D + "/b",
           [&w, D] { return err(::unlink(w.S(D + "/b").c_str())); });
      w.as(p.alice, "alice renames her a",
           [&w, D] { return err(::rename(w.S(D + "/a").c_str(), w.S(D + "/a_moved").c_str())); });
      w.listing(D);
    }
    // fs.protected_hardlinks: linking someone else's file needs read and write access to it.
    w.dir("links", 0, 0, 0777);
    w.file("links/private", "p", p.alice.uid, p.GA, 0600);
    w.file("links/shared", "s", p.alice.uid, p.GA, 0666);
    w.file("links/readable", "r", p.alice.uid, p.GA, 0644);
    for (const char* f : {"private", "shared", "readable"}) {
      const std::string F = f;
      w.as(p.bob, "bob links links/" + F, [&w, F] {
        return err(::link(w.S("links/" + F).c_str(), w.S("links/bob_" + F).c_str()));
      });
    }
    w.listing("links");
    // Moving a directory to another parent needs write access to it ("..").
    w.dir("from", 0, 0, 0777);
    w.dir("to", 0, 0, 0777);
    w.dir("from/ro", p.alice.uid, p.GA, 0555);
    w.dir("from/rw", p.alice.uid, p.GA, 0755);
    w.dir("from/others", p.bob.uid, p.GB, 0777);
    w.as(p.alice, "alice moves from/ro to another parent",
         [&w] { return err(::rename(w.S("from/ro").c_str(), w.S("to/ro").c_str())); });
    w.as(p.alice, "alice renames from/ro in place",
         [&w] { return err(::rename(w.S("from/ro").c_str(), w.S("from/ro2").c_str())); });
    w.as(p.alice, "alice moves from/rw to another parent",
         [&w] { return err(::rename(w.S("from/rw").c_str(), w.S("to/rw").c_str())); });
    w.as(p.alice, "alice moves bob's from/others",
         [&w] { return err(::rename(w.S("from/others").c_str(), w.S("to/others").c_str())); });
    w.listing("from");
    w.listing("to");
  });
  EXPECT_EQ(ref.result("bob: bob unlinks tmp/a"), "EPERM");
  EXPECT_EQ(ref.result("bob: bob writes tmp/a (0666)"), "OK");
  EXPECT_EQ(ref.result("carol: carol unlinks carols/a2"), "OK");
  EXPECT_EQ(ref.result("bob: bob links links/private"), "EPERM");
  EXPECT_EQ(ref.result("bob: bob links links/shared"), "OK");
  EXPECT_EQ(ref.result("alice: alice moves from/ro to another parent"), "EACCES");
}

TEST_F(Differential, ExtendedAttributesFollowTheirNamespacesRules) {
  World ref = Run([](World& w, const People& p) {
    w.dir("x", 0, 0, 0777);
    w.file("x/open", "o", p.alice.uid, p.GA, 0666);
    w.file("x/readonly", "r", p.alice.uid, p.GA, 0644);
    w.file("x/private", "p", p.alice.uid, p.GA, 0600);
    w.dir("x/sticky", p.alice.uid, p.GA, 01777);
    w.setup("symlink", err(::symlink("open", w.P("x/link").c_str())));
    w.setup("xattr", set_xattr(w.P("x/private"), "user.k", "v").value);
    w.setup("xattr", set_xattr(w.P("x/readonly"), "user.k", "v").value);
    for (const Caller* c : {&p.alice, &p.bob}) {
      w.batch(*c, [&w] {
        std::string out;
        auto line = [&](const std::string& what, int e) {
          out += what + " = " + errno_text(e) + "\n";
        };
        char buf[256];
        for (const char* f : {"open", "readonly", "private", "sticky", "link"}) {
          const std::string F = std::string("x/") + f;
          line("lsetxattr(" + F + ", user.n)",
               err(::lsetxattr(w.S(F).c_str(), "user.n", "1", 1, 0)));
          line("lgetxattr(" + F + ", user.k)",
               err(::lgetxattr(w.S(F).c_str(), "user.k", buf, sizeof buf)));
          line("llistxattr(" + F + ")", err(::llistxattr(w.S(F).c_str(), buf, sizeof buf)));
          line("lremovexattr(" + F + ", user.k)", err(::lremovexattr(w.S(F).c_str(), "user.k")));
          line("lsetxattr(" + F + ", trusted.n)",
               err(::lsetxattr(w.S(F).c_str(), "trusted.n", "1", 1, 0)));
          line("lgetxattr(" + F + ", trusted.k)",
               err(::lgetxattr(w.S(F).c_str(), "trusted.k", buf, sizeof buf)));
          line("lsetxattr(" + F + ", security.n)",
               err(::lsetxattr(w.S(F).c_str(), "security.n", "1", 1, 0)));
        }
        return out;
      });
    }
    for (const char* f : {"open", "readonly", "private", "sticky"}) {
      std::vector<std::string> names = list_xattrs(w.P(std::string("x/") + f));
      w.add(std::string("xattrs of ") + f + ": " + join(names, ","));
    }
  });
  EXPECT_EQ(ref.result("bob: lsetxattr(x/readonly, user.n)"), "EACCES");
  EXPECT_EQ(ref.result("bob: lgetxattr(x/private, user.k)"), "EACCES");
  EXPECT_EQ(ref.result("alice: lsetxattr(x/private, user.n)"), "OK");
  EXPECT_EQ(ref.result("alice: lsetxattr(x/private, trusted.n)"), "EPERM");
}

// POSIX ACLs: the backing ext4 has them. foldfs does not negotiate FUSE_CAP_POSIX_ACL, so the
// kernel checks only the mode bits: ACL entries are stored and shown (getfacl) but not enforced.
// With an ACL the group mode bits are the mask, so a member of the owning group is granted the
// mask's rights even when the ACL's group entry denies them, and a named user is refused. This
// test documents the reference behaviour and fails while that is so (finding, issue 6 §1).
TEST_F(Differential, PosixAclsAreEnforcedAsOnTheBackingFilesystem) {
  World ref = Run([](World& w, const People& p) {
    w.dir("acl", 0, 0, 0755);
    // alice's file: owner rw, carol (named user) rw, owning group GS nothing, mask rw.
    w.file("acl/f", "secret", p.alice.uid, p.GS, 0600);
    const std::string access = acl_xattr(
        {{kUserObj, 6}, {kUser, 6, p.carol.uid}, {kGroupObj, 0}, {kMask, 6}, {kOther, 0}});
    w.as(p.alice, "alice sets an ACL on acl/f", [&w, access] {
      return err(::setxattr(w.S("acl/f").c_str(), "system.posix_acl_access", access.data(),
                            access.size(), 0));
    });
    w.as(p.bob, "bob sets an ACL on acl/f", [&w, access] {
      return err(::setxattr(w.S("acl/f").c_str(), "system.posix_acl_access", access.data(),
                            access.size(), 0));
    });
    w.inspect("acl/f");
    for (const Caller* c : p.all()) {
      w.as(*c, "read acl/f", [&w] { return try_open(w.S("acl/f"), O_RDONLY); });
      w.as(*c, "write acl/f", [&w] { return try_open(w.S("acl/f"), O_WRONLY); });
    }
    // A directory with a default ACL: new files inherit it, and the umask is not applied.
    w.dir("acl/inherit", p.alice.uid, p.GA, 0777);
    const std::string def = acl_xattr(
        {{kUserObj, 7}, {kUser, 7, p.carol.uid}, {kGroupObj, 5}, {kMask, 7}, {kOther, 0}});
    w.setup("default acl", err(::setxattr(w.P("acl/inherit").c_str(), "system.posix_acl_default",
                                          def.data(), def.size(), 0)));
    w.as(p.alice, "alice creates acl/inherit/new",
         [&w] { return try_open(w.S("acl/inherit/new"), O_WRONLY | O_CREAT | O_EXCL, 0666); });
    w.inspect("acl/inherit/new");
    w.as(p.carol, "carol writes acl/inherit/new",
         [&w] { return try_open(w.S("acl/inherit/new"), O_WRONLY); });
    w.as(p.bob, "bob reads acl/inherit/new",
         [&w] { return try_open(w.S("acl/inherit/new"), O_RDONLY); });
  });
  EXPECT_EQ(ref.result("carol: read acl/f"), "OK");
  EXPECT_EQ(ref.result("bob: read acl/f"), "EACCES");
  EXPECT_EQ(ref.result("bob: bob sets an ACL on acl/f"), "EPERM");
}

// ---- not differential ------------------------------------------------------------------------

// The mount is nosuid and nodev: with allow_other, a setuid-root program or a device node that
// someone placed in the backing tree gives no privilege through the mount.
TEST(MountSecurity, SetuidProgramsAndDeviceNodesGiveNoPrivilege) {
  Mount m;
  People people;
  ASSERT_TRUE(m.start("casefold=all,allow_other"));
  std::string options;
  {
    RunResult r = run({"findmnt", "-n", "-o", "OPTIONS", m.mnt()});
    ASSERT_TRUE(r.ok()) << r;
    options = r.out;
  }
  EXPECT_NE(options.find("nosuid"), std::string::npos) << options;
  EXPECT_NE(options.find("nodev"), std::string::npos) << options;

  // A setuid-root copy of id(1) in the backing tree.
  auto id_binary = read_file("/usr/bin/id");
  ASSERT_TRUE(id_binary.has_value());
  ASSERT_EQ(write_file(m.bpath("id"), *id_binary, 0755), Errno(0));
  ASSERT_EQ(::chmod(m.bpath("id").c_str(), 04755), 0);
  const std::string id_path = m.path("ID");  // another spelling, for good measure
  const std::string out = run_as_text(people.carol, [&] {
    int fds[2];
    if (::pipe(fds) != 0) return std::string("pipe failed");
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(fds[1], 1);
      char* argv[] = {const_cast<char*>(id_path.c_str()), const_cast<char*>("-u"), nullptr};
      ::execve(id_path.c_str(), argv, environ);
      ::_exit(127);
    }
    ::close(fds[1]);
    char buf[64] = {};
    const ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
    ::waitpid(pid, nullptr, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("no output");
  });
  EXPECT_EQ(out, std::to_string(people.carol.uid) + "\n") << "a setuid-root program ran as root";

  // A device node (like /dev/null) made directly in the backing tree cannot be opened.
  ASSERT_EQ(::mknod(m.bpath("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  EXPECT_EQ(try_open(m.path("NULL"), O_RDONLY), EACCES);
  EXPECT_EQ(run_as_caller(people.carol, [&] { return try_open(m.path("null"), O_WRONLY); }),
            EACCES);
}

// Permission changes made through the mount apply to the very next access by anyone; changes
// made directly in the backing tree apply within attr_timeout (docs/guarantees.md).
TEST(MountSecurity, PermissionChangesApplyAtOnceThroughTheMountAndWithinAttrTimeoutOutside) {
  Mount m;
  People people;
  ASSERT_TRUE(m.start("casefold=all,allow_other,attr_timeout=1"));
  ASSERT_EQ(write_file(m.path("f"), "x", 0644), Errno(0));
  ASSERT_EQ(::chmod(m.path("f").c_str(), 0644), 0);
  const std::string f = m.path("F");
  auto bob_reads = [&] { return run_as_caller(people.bob, [&] { return try_open(f, O_RDONLY); }); };
  ASSERT_EQ(bob_reads(), 0);
  ASSERT_EQ(::chmod(m.path("f").c_str(), 0600), 0);
  EXPECT_EQ(bob_reads(), EACCES) << "a chmod through the mount was not applied at once";
  ASSERT_EQ(::chmod(m.path("f").c_str(), 0644), 0);
  EXPECT_EQ(bob_reads(), 0);
  ASSERT_EQ(::chown(m.path("f").c_str(), people.alice.uid, people.GA), 0);
  ASSERT_EQ(::chmod(m.path("f").c_str(), 0640), 0);
  EXPECT_EQ(bob_reads(), EACCES);
  ASSERT_EQ(::chown(m.path("f").c_str(), -1, people.GS), 0);
  EXPECT_EQ(bob_reads(), 0) << "a chgrp through the mount was not applied at once";

  // Directly in the backing tree: seen once the kernel's attributes expire (attr_timeout=1).
  ASSERT_EQ(::chmod(m.bpath("f").c_str(), 0600), 0);
  const double seen = seconds_until([&] { return bob_reads() == EACCES; }, 5s);
  ASSERT_GE(seen, 0) << "an outside chmod was never seen";
  EXPECT_LT(seen, 1.5) << "an outside chmod was not seen within attr_timeout (1 s)";
}

// open(O_CREAT) of a name the kernel believes absent (it holds a negative dentry) is sent as
// FUSE_CREATE; if the name exists by then (made outside the mount meanwhile), the daemon must
// not hand the caller a file it may not open: the kernel marks what CREATE returns as newly
// created and skips its permission check. The reference is ext4: EACCES. In outside=revalidate
// the kernel keeps such a negative dentry for negative_timeout; in outside=watch only until the
// daemon has processed the change (the loop races a fresh name each time; a bypass shows up
// about once in a thousand rounds here).
class CreateOverAnOutsideName : public ::testing::TestWithParam<const char*> {};

TEST_P(CreateOverAnOutsideName, ChecksTheCallersPermissions) {
  Mount m;
  People people;
  const std::string outside = GetParam();
  ASSERT_TRUE(m.start("allow_other,negative_timeout=30,outside=" + outside));
  ASSERT_EQ(errno_of(::mkdir(m.path("pub").c_str(), 0777)), Errno(0));
  ASSERT_EQ(::chmod(m.path("pub").c_str(), 01777), 0);
  // revalidate: the window is negative_timeout, the first round shows it. watch: the window is
  // the time the daemon takes to process the change's fanotify event; thousands of rounds.
  const int rounds =
      outside == "revalidate" ? 10 : static_cast<int>(env_long("FOLDFS_CREATE_RACE_ROUNDS", 3000));
  int bypassed = 0, read_secret = 0;
  for (int i = 0; i < rounds; ++i) {
    const std::string name = "pub/s" + std::to_string(i);
    const std::string through = m.path(name), backing = m.bpath(name);
    ASSERT_EQ(run_as_caller(people.bob,
                            [&] {
                              struct stat st;
                              return err(::lstat(through.c_str(), &st));
                            }),
              ENOENT);
    // alice's private file appears directly in the backing tree.
    const int fd = ::open(backing.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "secret", 6), 6);
    ASSERT_EQ(::fchown(fd, people.alice.uid, people.GA), 0);
    ::close(fd);
    const int r = run_as_caller(people.bob, [&] {
      const int f = ::open(through.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (f < 0) return errno;
      char buf[8] = {};
      const bool leaked = ::read(f, buf, sizeof buf) == 6 && std::string(buf) == "secret";
      ::close(f);
      return leaked ? 200 : 0;
    });
    bypassed += r == 0 || r == 200;
    read_secret += r == 200;
    EXPECT_TRUE(r == EACCES) << "round " << i << ": bob's open(O_RDWR|O_CREAT) of alice's 0600 "
                             << "file gave "
                             << (r == 200 ? std::string("its content") : errno_text(r));
    if (r != EACCES) break;
  }
  report_figure("O_CREAT over a name made outside (" + outside + "): permission bypasses",
                std::to_string(bypassed) + " (content read " + std::to_string(read_secret) + ")");
}

INSTANTIATE_TEST_SUITE_P(OutsideModes, CreateOverAnOutsideName,
                         ::testing::Values("revalidate", "watch"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

// chattr +F/-F: only the owner (or root) may change a directory's casefold flag.
TEST(MountSecurity, OnlyTheOwnerMayChangeTheCasefoldFlag) {
  Mount m;
  People people;
  ASSERT_TRUE(m.start("allow_other"));
  ASSERT_EQ(errno_of(::mkdir(m.path("pub").c_str(), 0777)), Errno(0));
  ASSERT_EQ(::chmod(m.path("pub").c_str(), 0777), 0);
  const std::string d = m.path("pub/alices");
  ASSERT_EQ(run_as_caller(people.alice, [&] { return err(::mkdir(d.c_str(), 0777)); }), 0);
  EXPECT_EQ(run_as_caller(people.bob, [&] { return try_flags(d, kCasefoldFl, 0); }), EPERM);
  EXPECT_EQ(get_inode_flags(d).flags & kCasefoldFl, 0u);
  EXPECT_EQ(run_as_caller(people.alice, [&] { return try_flags(d, kCasefoldFl, 0); }), 0);
  EXPECT_EQ(get_inode_flags(d).flags & kCasefoldFl, kCasefoldFl);
  EXPECT_EQ(run_as_caller(people.bob, [&] { return try_flags(d, 0, kCasefoldFl); }), EPERM);
  EXPECT_EQ(get_inode_flags(d).flags & kCasefoldFl, kCasefoldFl);
  // The new directory and files of another user in alice's casefolded dir belong to that user.
  ASSERT_EQ(::chmod(d.c_str(), 0777), 0);
  EXPECT_EQ(run_as_caller(people.bob, [&] { return touch(d + "/Bobs").value; }), 0);
  auto st = lstat_of(m.bpath("pub/alices/Bobs"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->st_uid, people.bob.uid);
  EXPECT_EQ(
      run_as_caller(people.carol, [&] { return errno_of(::unlink((d + "/BOBS").c_str())).value; }),
      0)
      << "0777 directory without sticky bit: anyone may unlink";
}

}  // namespace
}  // namespace foldfs::itest
