// Reliability §5 (part 1): stress-ng's filesystem stressors against a mount, all at once (one
// instance each, so they also race each other), with --verify, for FOLDFS_STRESSNG_SECONDS
// (default 8) per variant: casefold=all; casefold=flag inside a casefolded directory;
// casefold=flag in a plain directory. stress-ng must exit 0 without skipping any stressor, the
// daemon must still be running and serving, and the tree must be left consistent.
// The model-checked random-operation generator and its soak are in reliability_model_test.cc.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "reliability_util.h"

namespace foldfs::itest {
namespace {

// Every stressor of stress-ng 0.15's filesystem class that applies to a FUSE filesystem
// (not fiemap: FUSE has no FS_IOC_FIEMAP, stress-ng skips it; not inode-flags: it tries ext2
// flags no FUSE filesystem forwards, and counts nothing; not the ones that need a block device,
// binderfs or mount privileges of their own).
const char* const kStressors[] = {
    "access",  "chdir",   "chmod",     "chown",   "copy-file",  "dentry",   "dir",
    "dirdeep", "dirmany", "fallocate", "fcntl",   "file-ioctl", "filename", "flock",
    "fpunch",  "fsize",   "fstat",     "getdent", "handle",     "hdd",      "io",
    "iomix",   "link",    "lockf",     "locka",   "lockofd",    "mknod",    "open",
    "rename",  "symlink", "sync-file", "touch",   "utime",      "xattr",
};

struct Variant {
  const char* name;
  const char* options;
  bool casefold_dir;  // chattr +F on the temp dir (casefold=flag)
};

void PrintTo(const Variant& v, std::ostream* os) {
  *os << v.name;
}

class StressNg : public ::testing::TestWithParam<Variant> {};

TEST_P(StressNg, FilesystemStressorsPassWithVerifyAndTheDaemonStillServes) {
  const Variant& v = GetParam();
  Mount m;
  ASSERT_TRUE(m.start_foreground({"-f"}, v.options));
  const std::string dir = m.path("Stress");
  ASSERT_EQ(errno_of(::mkdir(dir.c_str(), 0777)), Errno(0));
  if (v.casefold_dir) {
    ASSERT_EQ(set_inode_flags(dir, kCasefoldFl), Errno(0));
  }

  const long seconds = env_long("FOLDFS_STRESSNG_SECONDS", 8);
  std::vector<std::string> argv = {"stress-ng"};
  for (const char* s : kStressors) {
    argv.push_back(std::string("--") + s);
    argv.push_back("1");
  }
  for (const char* a : {"--hdd-bytes", "32m", "--iomix-bytes", "32m", "--fallocate-bytes", "32m",
                        "--verify", "--metrics-brief", "--temp-path"})
    argv.push_back(a);
  argv.push_back(dir);
  argv.push_back("--timeout");
  argv.push_back(std::to_string(seconds) + "s");
  const RunResult r = run(argv, std::chrono::seconds(seconds * 6 + 120));
  const std::string out = r.out + r.err;
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(out.find("skipping stressor"), std::string::npos) << out;
  EXPECT_NE(out.find("successful run completed"), std::string::npos) << out;

  // Bogo operations per stressor from the metrics table.
  long long bogo = 0;
  int stressors_reported = 0;
  std::istringstream lines(out);
  std::string line;
  const std::regex metric(R"(metrc: \[\d+\] ([a-z-]+) +(\d+) +[0-9.]+ +[0-9.]+)");
  while (std::getline(lines, line)) {
    std::smatch mm;
    if (std::regex_search(line, mm, metric)) {
      bogo += std::stoll(mm[2]);
      ++stressors_reported;
    }
  }
  // stress-ng leaves a stressor out of its metrics when it completed no bogo operation in the
  // time given, which happens to slow ones on a loaded 2-core machine (CI builds in parallel):
  // require half of them at least, and print how many.
  std::printf("stress-ng: %d of %zu stressors reported operations\n", stressors_reported,
              std::size(kStressors));
  EXPECT_GE(stressors_reported * 2, static_cast<int>(std::size(kStressors))) << out;

  // The daemon is alive and serving, and the tree is consistent.
  ASSERT_TRUE(m.foreground()->running()) << "the daemon died: " << m.foreground()->err();
  EXPECT_EQ(write_file(m.path("Stress/After"), "ok"), Errno(0));
  EXPECT_EQ(
      read_file(m.path(v.casefold_dir || std::string(v.options).find("all") != std::string::npos
                           ? "Stress/AFTER"
                           : "Stress/After")),
      "ok");
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"After"}) << "stress-ng left files behind";
  if (v.casefold_dir) {
    EXPECT_EQ(get_inode_flags(dir).flags & kCasefoldFl, kCasefoldFl);
  }
  const bool all = std::string(v.options).find("casefold=all") != std::string::npos;
  std::vector<std::string> check = {foldfs_binary(), "check"};
  if (all) check.push_back("--casefold=all");
  check.push_back(m.backing());
  RunResult c = run(check);
  EXPECT_TRUE(c.ok()) << c;
  ASSERT_TRUE(m.unmount());
  EXPECT_EQ(m.foreground()->err().find("Sanitizer"), std::string::npos) << m.foreground()->err();
  report_figure(std::string("stress-ng ") + v.name + ": stressors x seconds",
                std::to_string(stressors_reported) + " x " + std::to_string(seconds));
  report_figure(std::string("stress-ng ") + v.name + ": bogo operations", bogo);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, StressNg,
    ::testing::Values(Variant{"casefold_all", "casefold=all", false},
                      Variant{"casefold_flag_folded_dir", "casefold=flag", true},
                      Variant{"casefold_flag_plain_dir", "casefold=flag", false}),
    [](const ::testing::TestParamInfo<Variant>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace foldfs::itest
