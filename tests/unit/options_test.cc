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
