#include "block_io.h"

#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "file_block_device.h"
#include "loop_test_util.h"

namespace clusterd {
namespace {

// Counts calls and can fail them: what block_io asks of the device is part of its contract.
class CountingDevice : public BlockDevice {
 public:
  explicit CountingDevice(std::unique_ptr<BlockDevice> inner) : inner_(std::move(inner)) {}
  std::uint32_t block_size() const override { return inner_->block_size(); }
  std::uint64_t block_count() const override { return inner_->block_count(); }
  Result<void> read(std::uint64_t lba, std::uint32_t count, std::span<std::byte> out) override {
    ++reads;
    if (fail_reads) return fail_errno(EIO, "read failed");
    return inner_->read(lba, count, out);
  }
  Result<void> write(std::uint64_t lba, std::uint32_t count,
                     std::span<const std::byte> data) override {
    ++writes;
    return inner_->write(lba, count, data);
  }
  Result<void> flush() override { return inner_->flush(); }
  int reads = 0;
  int writes = 0;
  bool fail_reads = false;

 private:
  std::unique_ptr<BlockDevice> inner_;
};

struct Fixture {
  testing::TempDir dir;
  std::unique_ptr<CountingDevice> device;
  std::vector<std::byte> model;  // what the device must hold

  explicit Fixture(std::uint32_t block_size = 512, std::uint64_t blocks = 64) {
    auto file = FileBlockDevice::create(dir.path() + "/lun", block_size * blocks, block_size);
    REQUIRE(file);
    device = std::make_unique<CountingDevice>(std::move(*file));
    model.resize(block_size * blocks);
  }
};

TEST_CASE("block_io: random unaligned writes and reads match a byte model") {
  for (std::uint32_t bs : {512u, 4096u}) {
    Fixture f(bs, 32);
    std::mt19937 random(bs);
    for (int round = 0; round < 200; ++round) {
      std::size_t offset = random() % f.model.size();
      std::size_t length = random() % (3 * bs) + 1;
      std::vector<std::byte> data(length);
      for (auto& b : data) b = static_cast<std::byte>(random());
      auto written = write_bytes(*f.device, offset, data);
      REQUIRE(written);
      std::size_t expect = std::min(length, f.model.size() - offset);
      REQUIRE(*written == expect);
      std::copy_n(data.begin(), expect, f.model.begin() + static_cast<long>(offset));

      std::size_t read_offset = random() % f.model.size();
      std::vector<std::byte> out(random() % (3 * bs) + 1);
      auto got = read_bytes(*f.device, read_offset, out);
      REQUIRE(got);
      REQUIRE(*got == std::min(out.size(), f.model.size() - read_offset));
      CHECK(std::equal(out.begin(), out.begin() + static_cast<long>(*got),
                       f.model.begin() + static_cast<long>(read_offset)));
    }
  }
}

TEST_CASE("block_io: aligned transfers go straight to the device, no read-modify-write") {
  Fixture f(512, 64);
  std::vector<std::byte> data(8 * 512, std::byte{9});
  REQUIRE(write_bytes(*f.device, 4 * 512, data));
  CHECK(f.device->writes == 1);
  CHECK(f.device->reads == 0);
  REQUIRE(write_bytes(*f.device, 100, std::span(data).first(10)));
  CHECK(f.device->reads == 1);  // the partial block was read first
  CHECK(f.device->writes == 2);
}

TEST_CASE("block_io: the end of the device: short reads, ENOSPC for writes past it") {
  Fixture f(512, 4);
  std::vector<std::byte> out(1024);
  CHECK(*read_bytes(*f.device, 2048 - 100, out) == 100);
  CHECK(*read_bytes(*f.device, 2048, out) == 0);
  CHECK(*write_bytes(*f.device, 2048 - 10, out) == 10);
  auto past = write_bytes(*f.device, 2048, out);
  REQUIRE(!past);
  CHECK(past.error().errno_value == ENOSPC);
  CHECK(device_bytes(*f.device) == 2048);
}

TEST_CASE("block_io: a device error is returned, for reads and for read-modify-write") {
  Fixture f(512, 4);
  f.device->fail_reads = true;
  std::vector<std::byte> data(10);
  CHECK(!read_bytes(*f.device, 0, data));
  auto partial = write_bytes(*f.device, 3, data);
  REQUIRE(!partial);
  CHECK(partial.error().errno_value == EIO);
  CHECK(f.device->writes == 0);
}

}  // namespace
}  // namespace clusterd
