#include "fs/options.h"

#include <gtest/gtest.h>

namespace foldfs::fs {
namespace {

TEST(MountOptions, ParsesEveryOption) {
  Options o;
  std::string error;
  ASSERT_TRUE(parse_mount_options(
      "casefold=all,strict,ro,allow_other,entry_timeout=2.5,attr_timeout=0,negative_timeout=10", &o,
      &error))
      << error;
  EXPECT_EQ(o.casefold, CasefoldMode::kAll);
  EXPECT_TRUE(o.strict);
  EXPECT_TRUE(o.read_only);
  EXPECT_TRUE(o.allow_other);
  EXPECT_DOUBLE_EQ(o.entry_timeout, 2.5);
  EXPECT_DOUBLE_EQ(o.attr_timeout, 0);
  EXPECT_DOUBLE_EQ(o.negative_timeout, 10);
}

TEST(MountOptions, DeviceNamesAnAbsolutePath) {
  Options o;
  std::string error;
  EXPECT_TRUE(o.device.empty());
  ASSERT_TRUE(parse_mount_options("device=/dev/loop7", &o, &error)) << error;
  EXPECT_EQ(o.device, "/dev/loop7");
  EXPECT_FALSE(parse_mount_options("device=loop7", &o, &error));
  EXPECT_EQ(error, "bad value for device: 'loop7'");
  EXPECT_FALSE(parse_mount_options("device=", &o, &error));
  EXPECT_FALSE(parse_mount_options("device", &o, &error));
}

TEST(MountOptions, TransportFollowsTheKernelUnlessGiven) {
  Options o;
  std::string error;
  EXPECT_EQ(o.uring, Uring::kAuto);
  ASSERT_TRUE(parse_mount_options("uring=on", &o, &error)) << error;
  EXPECT_EQ(o.uring, Uring::kOn);
  ASSERT_TRUE(parse_mount_options("uring=off", &o, &error)) << error;
  EXPECT_EQ(o.uring, Uring::kOff);
  ASSERT_TRUE(parse_mount_options("uring=auto", &o, &error)) << error;
  EXPECT_EQ(o.uring, Uring::kAuto);
  EXPECT_FALSE(parse_mount_options("uring=yes", &o, &error));
  EXPECT_EQ(error, "bad value for uring: 'yes'");
}

TEST(MountOptions, ExtendedAttributesPassThroughUnlessNosys) {
  Options o;
  std::string error;
  EXPECT_EQ(o.xattrs, Xattrs::kPassthrough);
  ASSERT_TRUE(parse_mount_options("xattr=nosys", &o, &error)) << error;
  EXPECT_EQ(o.xattrs, Xattrs::kNosys);
  ASSERT_TRUE(parse_mount_options("xattr=passthrough", &o, &error)) << error;
  EXPECT_EQ(o.xattrs, Xattrs::kPassthrough);
  EXPECT_FALSE(parse_mount_options("xattr=noattr", &o, &error));
  EXPECT_EQ(error, "bad value for xattr: 'noattr'");
}

TEST(MountOptions, FileDataPassthroughIsAutoOrOff) {
  Options o;
  std::string error;
  EXPECT_EQ(o.passthrough, Passthrough::kAuto) << "on where the kernel allows it";
  ASSERT_TRUE(parse_mount_options("passthrough=auto", &o, &error)) << error;
  EXPECT_EQ(o.passthrough, Passthrough::kAuto);
  ASSERT_TRUE(parse_mount_options("passthrough=off", &o, &error)) << error;
  EXPECT_EQ(o.passthrough, Passthrough::kOff);
  EXPECT_FALSE(parse_mount_options("passthrough=on", &o, &error));
  EXPECT_EQ(error, "bad value for passthrough: 'on'");
}

// The cache holds a working set of thousands of files where the limit allows, and leaves room
// for open files and the daemon's own descriptors where it is small.
TEST(MountOptions, DescriptorCacheIsSizedFromTheOpenFileLimitUnlessGiven) {
  Options o;
  std::string error;
  EXPECT_EQ(o.fd_cache_capacity, Options::kAutoFdCache);
  EXPECT_EQ(fd_cache_capacity_for(o, 20000), 9488u);
  EXPECT_EQ(fd_cache_capacity_for(o, 1024), 128u) << "Debian's default soft limit";
  EXPECT_EQ(fd_cache_capacity_for(o, 1u << 20), 65536u) << "systemd's default hard limit";
  ASSERT_TRUE(parse_mount_options("fd_cache=8192", &o, &error)) << error;
  EXPECT_EQ(fd_cache_capacity_for(o, 1024), 8192u) << "given: as given";
  ASSERT_TRUE(parse_mount_options("fd_cache=auto", &o, &error)) << error;
  EXPECT_EQ(o.fd_cache_capacity, Options::kAutoFdCache);
  for (const char* bad : {"fd_cache=15", "fd_cache=1048577", "fd_cache=", "fd_cache=-5",
                          "fd_cache=1e4", "fd_cache"}) {
    EXPECT_FALSE(parse_mount_options(bad, &o, &error)) << bad;
  }
}

TEST(MountOptions, IgnoresGenericMountOptions) {
  Options o;
  std::string error;
  EXPECT_TRUE(parse_mount_options("rw,defaults,noauto,nofail,_netdev,x-systemd.automount,noatime",
                                  &o, &error))
      << error;
}

TEST(MountOptions, RejectsBadInputWithAMessage) {
  const char* bad[] = {"casefold=bogus",
                       "casefold",
                       "entry_timeout=abc",
                       "entry_timeout=-1",
                       "entry_timeout=",
                       "entry_timeout=1e3",
                       "strict=1",
                       "bogus",
                       ",",
                       "ro,",
                       "entry_timeout=inf",
                       "attr_timeout=0x10",
                       "uring",
                       "uring="};
  for (const char* list : bad) {
    Options o;
    std::string error;
    EXPECT_FALSE(parse_mount_options(list, &o, &error)) << list;
    EXPECT_FALSE(error.empty()) << list;
  }
}

}  // namespace
}  // namespace foldfs::fs
