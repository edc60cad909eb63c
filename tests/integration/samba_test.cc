// Windows name rules through a real smbd (issue 14): a private Samba on 127.0.0.1 shares a
// foldfs casefold=all mount with `case sensitive = yes` (Samba asks for each name as the client
// spells it, and foldfs answers for every spelling), driven by smbclient over SMB3. Labels
// "integration" and "samba".
//
// smbd runs in its own session (it signals its whole process group when it stops), with every
// directory it writes under the test's temp dir; every process of it is stopped when the test
// ends, passed or failed, before the mount goes.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

namespace foldfs::itest {
namespace {

const std::string kSmbd = FOLDFS_SMBD;
const std::string kSmbclient = FOLDFS_SMBCLIENT;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A TCP port on 127.0.0.1 that nothing listens on now.
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

bool accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// A private smbd serving `path` as share "fold" with the given extra share lines.
class Smbd {
 public:
  Smbd(const Mount& m, const std::string& path, const std::string& share_lines) {
    dir_ = m.tpath("samba");
    conf_ = dir_ + "/smb.conf";
    port_ = free_port();
    for (const char* sub : {"", "/pid", "/lock", "/state", "/cache", "/private", "/log", "/rpc"})
      ::mkdir((dir_ + sub).c_str(), 0755);
    std::ostringstream c;
    c << "[global]\n  server role = standalone server\n  smb ports = " << port_
      << "\n  interfaces = lo\n  bind interfaces only = yes\n  disable netbios = yes\n"
      << "  pid directory = " << dir_ << "/pid\n  lock directory = " << dir_ << "/lock\n"
      << "  state directory = " << dir_ << "/state\n  cache directory = " << dir_ << "/cache\n"
      << "  private dir = " << dir_ << "/private\n  ncalrpc dir = " << dir_ << "/rpc\n"
      << "  log file = " << dir_ << "/log/log.%m\n  log level = 1\n"
      << "  passdb backend = tdbsam:" << dir_ << "/private/passdb.tdb\n"
      << "  map to guest = Bad User\n  load printers = no\n  printcap name = /dev/null\n"
      << "  disable spoolss = yes\n  rpc start on demand helpers = no\n  usershare path =\n"
      << "[fold]\n  path = " << path << "\n  read only = no\n  guest ok = yes\n"
      << "  force user = root\n"
      << share_lines;
    write_file(conf_, c.str());
  }
  ~Smbd() {
    for (pid_t p : pids()) ::kill(p, SIGTERM);
    if (seconds_until([&] { return pids().empty(); }, 10s) < 0) {
      for (pid_t p : pids()) ::kill(p, SIGKILL);
      ADD_FAILURE() << "smbd still ran 10 s after SIGTERM (killed)";
    }
  }
  Smbd(const Smbd&) = delete;
  Smbd& operator=(const Smbd&) = delete;

  ::testing::AssertionResult start() {
    if (port_ < 0) return ::testing::AssertionFailure() << "no free port";
    proc_ = std::make_unique<Process>(std::vector<std::string>{
        "setsid", kSmbd, "--foreground", "--no-process-group", "--configfile=" + conf_});
    if (seconds_until([&] { return accepts(port_) || !proc_->running(); }, 20s) < 0 ||
        !accepts(port_))
      return ::testing::AssertionFailure() << "smbd does not listen on 127.0.0.1:" << port_ << ": "
                                           << proc_->err() << proc_->out();
    return ::testing::AssertionSuccess();
  }

  // Every process of this smbd: the parent and its children (one per connection).
  std::vector<pid_t> pids() const {
    std::vector<pid_t> out;
    DIR* d = ::opendir("/proc");
    if (d == nullptr) return out;
    while (struct dirent* e = ::readdir(d)) {
      if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
      std::string cmd = read_text(std::string("/proc/") + e->d_name + "/cmdline");
      if (cmd.find("--configfile=" + conf_) != std::string::npos)
        out.push_back(std::stoi(e->d_name));
    }
    ::closedir(d);
    return out;
  }

  std::vector<std::string> client_argv(const std::string& commands) const {
    return {kSmbclient, "//127.0.0.1/fold", "-p", std::to_string(port_), "-N", "-m", "SMB3", "-c",
            commands};
  }
  // One smbclient session running `commands` (separated by ';').
  RunResult client(const std::string& commands) const { return run(client_argv(commands), 120s); }

 private:
  std::string dir_, conf_;
  int port_ = -1;
  std::unique_ptr<Process> proc_;
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

class Samba : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(m_.start("casefold=all"));
    ASSERT_EQ(errno_of(::mkdir(m_.path("share").c_str(), 0755)), Errno(0));
    smbd_ = std::make_unique<Smbd>(m_, m_.path("share"), "  case sensitive = yes\n");
    ASSERT_TRUE(smbd_->start());
    local_ = m_.tpath("local.txt");
    ASSERT_EQ(write_file(local_, "hello"), Errno(0));
  }
  void TearDown() override { smbd_.reset(); }  // before the mount goes

  Mount m_;
  std::unique_ptr<Smbd> smbd_;
  std::string local_;  // a file to upload
};

// Two clients create the same 300 files and 100 folders, one spelling them in upper case and
// the other in lower case, at the same time: each name is made once, and every creation of a
// folder that lost the race is refused as a collision.
TEST_F(Samba, TwoSessionsCreatingTheSameNamesInDifferentCasesMakeEachNameOnce) {
  std::string upper, low;
  for (int i = 0; i < 300; ++i) {
    char n[64];
    std::snprintf(n, sizeof n, "Race_%04d_File.Txt", i);
    upper += "put " + local_ + " " + [&] {
      std::string s = n;
      for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      return s;
    }() + ";";
    low += "put " + local_ + " " + lower(n) + ";";
    if (i % 3 == 0) {
      std::snprintf(n, sizeof n, "Folder_%04d", i);
      upper += "mkdir FOLDER_" + std::string(n + 7) + ";";
      low += "mkdir folder_" + std::string(n + 7) + ";";
    }
  }
  Process a(smbd_->client_argv(upper));
  Process b(smbd_->client_argv(low));
  auto ra = a.wait(180s);
  auto rb = b.wait(180s);
  ASSERT_TRUE(ra && rb) << "the two sessions did not finish in 180 s";
  const std::string out = ra->out + ra->err + rb->out + rb->err;
  // The only errors: the losers of the 100 folder races.
  EXPECT_EQ(count_of(out, "NT_STATUS_OBJECT_NAME_COLLISION making remote directory"), 100) << out;
  EXPECT_EQ(count_of(out, "NT_STATUS"), 100) << out;

  auto names = list_dir(m_.bpath("share"));
  EXPECT_EQ(names.size(), 400u) << join(names);
  std::set<std::string> keys;
  for (const auto& n : names) keys.insert(lower(n));
  EXPECT_EQ(keys.size(), names.size()) << "case duplicates: " << join(names);
  // Through the share, too: 400 entries besides . and ..
  RunResult ls = smbd_->client("ls");
  ASSERT_TRUE(ls.ok()) << ls.describe();
  EXPECT_EQ(count_of(ls.out, "Race_") + count_of(ls.out, "RACE_") + count_of(ls.out, "race_"), 300)
      << ls.out;
  // Every file holds what was written: nothing lost.
  for (const auto& n : names) {
    if (lower(n).rfind("race_", 0) == 0) {
      EXPECT_EQ(read_file(m_.bpath("share/" + n)), "hello") << n;
    }
  }
}

// Lookups, renames and deletes by other spellings act on the one file, and keep Windows' rules
// for names that exist in another spelling.
TEST_F(Samba, RenamesAndLookupsByOtherSpellingsActOnTheOneFile) {
  const std::string got = m_.tpath("got.txt");
  RunResult r = smbd_->client("put " + local_ + " Report.txt; get REPORT.TXT " + got +
                              "; rename report.TXT \"Final Report.Txt\"; mkdir Docs; "
                              "put " +
                              local_ + " DOCS\\Notes.txt");
  EXPECT_EQ(count_of(r.out + r.err, "NT_STATUS"), 0) << r.describe();
  EXPECT_EQ(read_file(got), "hello");
  EXPECT_EQ(list_dir(m_.bpath("share")), (std::vector<std::string>{"Docs", "Final Report.Txt"}));
  EXPECT_EQ(list_dir(m_.bpath("share/Docs")), std::vector<std::string>{"Notes.txt"});

  // The old name is gone; a folder's other spelling collides; a rename onto another spelling of
  // an existing file is refused and changes nothing.
  r = smbd_->client("get report.txt " + got + "; mkdir DOCS; put " + local_ +
                    " Other.txt; rename other.txt \"FINAL REPORT.TXT\"");
  EXPECT_NE(
      (r.out + r.err).find("NT_STATUS_OBJECT_NAME_NOT_FOUND opening remote file \\report.txt"),
      std::string::npos)
      << r.describe();
  EXPECT_NE((r.out + r.err).find("NT_STATUS_OBJECT_NAME_COLLISION making remote directory \\DOCS"),
            std::string::npos)
      << r.describe();
  EXPECT_NE((r.out + r.err).find("NT_STATUS_OBJECT_NAME_COLLISION renaming files"),
            std::string::npos)
      << r.describe();
  EXPECT_EQ(list_dir(m_.bpath("share")),
            (std::vector<std::string>{"Docs", "Final Report.Txt", "Other.txt"}));

  // Deletes by other spellings.
  r = smbd_->client("del \"final REPORT.txt\"; del docs\\NOTES.TXT; rmdir dOcS");
  EXPECT_EQ(count_of(r.out + r.err, "NT_STATUS"), 0) << r.describe();
  EXPECT_EQ(list_dir(m_.bpath("share")), std::vector<std::string>{"Other.txt"});
}

// A case-only rename: Samba with `case sensitive = yes` finds the new spelling already there
// (the kernel sees one file under both names) and refuses it with NAME_COLLISION, changing
// nothing; renaming through a temporary name changes the case (docs/samba.md).
TEST_F(Samba, CaseOnlyRenameIsRefusedAndTwoRenamesChangeTheCase) {
  RunResult r = smbd_->client("put " + local_ + " Hello.txt; rename Hello.txt HELLO.TXT");
  EXPECT_NE((r.out + r.err).find("NT_STATUS_OBJECT_NAME_COLLISION renaming files"),
            std::string::npos)
      << r.describe();
  EXPECT_EQ(list_dir(m_.bpath("share")), std::vector<std::string>{"Hello.txt"});
  r = smbd_->client("rename Hello.txt Hello.txt.renaming; rename Hello.txt.renaming HELLO.TXT");
  EXPECT_EQ(count_of(r.out + r.err, "NT_STATUS"), 0) << r.describe();
  EXPECT_EQ(list_dir(m_.bpath("share")), std::vector<std::string>{"HELLO.TXT"});
  EXPECT_EQ(read_file(m_.bpath("share/HELLO.TXT")), "hello");
}

}  // namespace
}  // namespace foldfs::itest
