#include "file_block_device.h"

#include <doctest/doctest.h>

#include <fstream>
#include <vector>

#include "loop_test_util.h"

namespace clusterd {
namespace {

std::vector<std::byte> filled(std::size_t size, int seed) {
  std::vector<std::byte> data(size);
  for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<std::byte>((i * 7 + seed) & 0xff);
  return data;
}

TEST_CASE("FileBlockDevice: blocks written are read back, also after reopening") {
  testing::TempDir dir;
  std::string path = dir.path() + "/lun";
  auto device = FileBlockDevice::create(path, 64 * 1024, 4096);
  REQUIRE(device);
  CHECK((*device)->block_size() == 4096);
  CHECK((*device)->block_count() == 16);
  auto data = filled(2 * 4096, 3);
  REQUIRE((*device)->write(5, 2, data));
  REQUIRE((*device)->flush());
  device->reset();

  auto again = FileBlockDevice::open(path, 4096);
  REQUIRE(again);
  std::vector<std::byte> out(2 * 4096);
  REQUIRE((*again)->read(5, 2, out));
  CHECK(out == data);
  std::vector<std::byte> zero(4096), first(4096, std::byte{1});
  REQUIRE((*again)->read(0, 1, first));
  CHECK(first == zero);
}

TEST_CASE("FileBlockDevice: ranges past the end and wrong buffer sizes fail with EINVAL") {
  testing::TempDir dir;
  auto device = FileBlockDevice::create(dir.path() + "/lun", 8 * 512);
  REQUIRE(device);
  std::vector<std::byte> block(512), two(1024);
  auto past = (*device)->read(7, 2, two);
  REQUIRE(!past);
  CHECK(past.error().errno_value == EINVAL);
  CHECK(!(*device)->write(8, 1, block));
  CHECK(!(*device)->write(0, 2, block));
  CHECK((*device)->read(7, 1, block));
}

TEST_CASE("FileBlockDevice: refuses missing, tiny and odd-block-size files") {
  testing::TempDir dir;
  CHECK(FileBlockDevice::open(dir.path() + "/none").error().errno_value == ENOENT);
  std::ofstream(dir.path() + "/tiny") << "abc";
  auto tiny = FileBlockDevice::open(dir.path() + "/tiny");
  REQUIRE(!tiny);
  CHECK(tiny.error().message.find("smaller than one block") != std::string::npos);
  CHECK(!FileBlockDevice::open(dir.path() + "/tiny", 1000));
  CHECK(!FileBlockDevice::open(dir.path()));
  CHECK(valid_block_size(512));
  CHECK(valid_block_size(4096));
  CHECK(!valid_block_size(256));
  CHECK(!valid_block_size(3000));
}

}  // namespace
}  // namespace clusterd
