#include "filesystem.h"

#include <doctest/doctest.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>

namespace clusterd {
namespace {

TEST_CASE("parse_mount_options: generic options become flags, the rest file system data") {
  auto options = parse_mount_options("noatime,nodev,errors=remount-ro,ro,rw,data=ordered");
  REQUIRE(options);
  CHECK(options->flags == (MS_NOATIME | MS_NODEV));
  CHECK(options->data == "errors=remount-ro,data=ordered");
  CHECK(parse_mount_options("")->flags == 0);
  CHECK(parse_mount_options("defaults,nofail,x-systemd.device-timeout=5")->data.empty());
  CHECK(parse_mount_options("ro")->flags == MS_RDONLY);
}

TEST_CASE("parse_mount_options: refuses empty items and options that are not about the disk") {
  CHECK(!parse_mount_options("noatime,,nodev"));
  CHECK(!parse_mount_options("noatime,"));
  auto bind = parse_mount_options("bind");
  REQUIRE(!bind);
  CHECK(bind.error().message == "mount option 'bind' is not allowed for a disk");
  CHECK(!parse_mount_options("remount,ro"));
}

TEST_CASE("parse_mountinfo: fields, optional fields, escaped mount points") {
  const char* text =
      "36 35 98:0 / /mnt1 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
      "40 36 0:52 / /srv/my\\040disk rw,nosuid shared:7 master:3 - fuse.clusterd-disk "
      "clusterd-disk rw,user_id=0\n"
      "garbage line\n"
      "41 36 7:3 / /srv/data rw - ext4 /dev/loop3 rw\n";
  auto mounts = parse_mountinfo(text);
  REQUIRE(mounts.size() == 3);
  CHECK(mounts[0].device == makedev(98, 0));
  CHECK(mounts[0].options == "rw,noatime");
  CHECK(mounts[0].super_options == "rw,errors=continue");
  CHECK(mounts[1].mount_point == "/srv/my disk");
  CHECK(mounts[1].fstype == "fuse.clusterd-disk");
  CHECK(minor(mounts[1].device) == 52);
  CHECK(find_mount(mounts, "/srv/data")->source == "/dev/loop3");
  CHECK(!find_mount(mounts, "/srv"));
}

TEST_CASE("read_only_super: ro or ext4's emergency_ro, not an option that merely contains ro") {
  MountEntry entry;
  entry.super_options = "rw,emergency_ro";
  CHECK(read_only_super(entry));
  entry.super_options = "ro,errors=continue";
  CHECK(read_only_super(entry));
  entry.super_options = "rw,errors=remount-ro";
  CHECK(!read_only_super(entry));
}

TEST_CASE("parse_mountinfo: the topmost of stacked mounts wins") {
  auto mounts = parse_mountinfo(
      "41 36 7:3 / /srv/data rw - ext4 /dev/loop3 rw\n"
      "42 41 7:4 / /srv/data rw - ext4 /dev/loop4 rw\n");
  CHECK(find_mount(mounts, "/srv/data")->source == "/dev/loop4");
}

TEST_CASE("e2fsck_reason: e2fsck's verdict rather than its advice") {
  CHECK(e2fsck_reason(
            "/dev/loop0: \nThe superblock could not be read\n    e2fsck -b 32768 <device>\n"
            "\ne2fsck: Bad magic number in super-block while trying to open /dev/loop0\n") ==
        "e2fsck: Bad magic number in super-block while trying to open /dev/loop0");
  CHECK(e2fsck_reason("/dev/loop0: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.\n") ==
        "/dev/loop0: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.");
}

TEST_CASE("filesystem enums: every value has a name") {
  for (auto mode : {UnmountMode::Normal, UnmountMode::Lazy})
    CHECK(std::string(to_string(mode)) != "?");
  for (auto outcome : {FsckOutcome::Clean, FsckOutcome::Repaired, FsckOutcome::Skipped})
    CHECK(std::string(to_string(outcome)) != "?");
}

}  // namespace
}  // namespace clusterd
