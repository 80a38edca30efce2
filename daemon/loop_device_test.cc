#include "loop_device.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "disk_test_util.h"
#include "loop_test_util.h"

namespace clusterd {
namespace {

// Loop devices are not namespaced: every test here detaches what it attached.
bool skip() {
  std::string why = testing::datapath_unavailable();
  if (!why.empty()) MESSAGE("skipped: " << why);
  return !why.empty();
}

bool detached_within(int number, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (loop_backing_file(number).empty()) return true;
    usleep(1000);  // polling a sysfs file: the kernel offers no event for it
  }
  return false;
}

TEST_CASE("LoopDevice: attaches a file with direct I/O, reads and writes reach it, detaches") {
  if (skip()) return;
  testing::TempDir dir;
  std::string file = dir.path() + "/backing";
  REQUIRE(testing::write_pattern_file(file, 1 << 20, 7) == 0);
  int number = -1;
  {
    auto loop = LoopDevice::attach(file, {});
    REQUIRE_MESSAGE(loop, loop.error().to_string());
    number = loop->number();
    CHECK(loop_direct_io(number));
    CHECK(loop_backing_file(number) == file);
    CHECK(testing::has_pattern(loop->path(), 1 << 20, 7));

    Fd fd(::open(loop->path().c_str(), O_WRONLY | O_CLOEXEC));
    REQUIRE(fd);
    std::vector<char> block(512, 'x');
    REQUIRE(pwrite(fd.get(), block.data(), block.size(), 4096) == 512);
    REQUIRE(fsync(fd.get()) == 0);
    Fd backing(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    char c = 0;
    REQUIRE(pread(backing.get(), &c, 1, 4096 + 511) == 1);
    CHECK(c == 'x');
  }
  CHECK(detached_within(number, std::chrono::seconds(5)));
}

TEST_CASE("LoopDevice: detach is idempotent; a missing file is a clear error") {
  if (skip()) return;
  testing::TempDir dir;
  std::string file = dir.path() + "/backing";
  REQUIRE(testing::write_pattern_file(file, 64 * 1024, 1) == 0);
  auto loop = LoopDevice::attach(file, {.block_size = 4096});
  REQUIRE(loop);
  int number = loop->number();
  CHECK(loop->detach());
  CHECK(!loop->attached());
  CHECK(loop->detach());
  CHECK(detached_within(number, std::chrono::seconds(5)));

  auto missing = LoopDevice::attach(dir.path() + "/none", {});
  REQUIRE(!missing);
  CHECK(missing.error().errno_value == ENOENT);
}

}  // namespace
}  // namespace clusterd
