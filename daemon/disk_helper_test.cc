#include "disk_helper.h"

#include <doctest/doctest.h>

#include <vector>

#include "disk_server.h"

namespace clusterd {
namespace {

Result<DiskHelperOptions> parse(std::vector<const char*> args) {
  return parse_disk_helper_args(std::span<const char* const>(args.data(), args.size()));
}

TEST_CASE("parse_disk_helper_args: every option, both spellings") {
  auto o = parse({"--file", "/srv/lun", "--fuse-dir=/run/d", "--fuse-name", "lun0",
                  "--mount-point", "/srv/data", "--fstype=ext3", "--options", "noatime",
                  "--mkfs", "--no-fsck", "--ready-fd", "4", "--control-fd=5", "--block-size",
                  "4096"});
  REQUIRE_MESSAGE(o, o.error().to_string());
  CHECK(o->file == "/srv/lun");
  CHECK(o->fuse_dir == "/run/d");
  CHECK(o->fuse_name == "lun0");
  CHECK(o->mount_point == "/srv/data");
  CHECK(o->fstype == "ext3");
  CHECK(o->mount_options == "noatime");
  CHECK(o->mkfs);
  CHECK(!o->fsck);
  CHECK(o->ready_fd == 4);
  CHECK(o->control_fd == 5);
  CHECK(o->block_size == 4096);
}

TEST_CASE("parse_disk_helper_args: defaults and the errors an administrator sees") {
  auto o = parse({"--file", "f", "--fuse-dir", "d"});
  REQUIRE(o);
  CHECK(o->fstype == "ext4");
  CHECK(o->fsck);
  CHECK(o->control_fd == -1);
  CHECK(parse({"--fuse-dir", "d"}).error().message == "--file is required (the disk to serve)");
  CHECK(parse({"--file", "f"}).error().message == "--fuse-dir is required");
  CHECK(parse({"--file", "f", "--fuse-dir", "d", "--mkfs"}).error().message ==
        "--mkfs needs --mount-point");
  CHECK(parse({"--file", "f", "--fuse-dir", "d", "--bogus", "1"}).error().message ==
        "unknown option --bogus");
  CHECK(parse({"--file", "f", "--fuse-dir"}).error().message == "--fuse-dir needs a value");
  CHECK(parse({"--file", "f", "--fuse-dir", "d", "--ready-fd", "x"}).error().message ==
        "--ready-fd wants a number of at least 0, not 'x'");
  CHECK(!parse({"--file", "f", "--fuse-dir", "d", "--block-size", "1000"}));
  CHECK(!parse({"--file", "f", "--fuse-dir", "d", "--fuse-name", "a/b"}));
  CHECK(parse({"--cleanup", "--fuse-dir", "d"})->cleanup);
  CHECK(parse({"--help"})->help);
}

TEST_CASE("disk helper enums: every value has a name") {
  for (auto e : {DiskHelperExit::Stopped, DiskHelperExit::Failed, DiskHelperExit::Usage,
                 DiskHelperExit::StartFailed})
    CHECK(std::string(to_string(e)) != "?");
  for (auto s : {DiskServerState::Starting, DiskServerState::Ready, DiskServerState::Stopping,
                 DiskServerState::Done})
    CHECK(std::string(to_string(s)) != "?");
}

}  // namespace
}  // namespace clusterd
