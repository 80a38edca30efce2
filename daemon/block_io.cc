#include "block_io.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace clusterd {
namespace {

// Whole blocks moved by one device call at most: bounded so that one FUSE request of any size
// never asks a LUN for more than a target accepts in one command (SBC-3 leaves the maximum to
// the target; 1 MiB is what tgt and common targets take).
constexpr std::size_t kMaxBytesPerCall = 1 << 20;

std::uint32_t whole_blocks(std::size_t bytes, std::uint32_t block_size) {
  std::size_t blocks =
      std::min(bytes, std::max<std::size_t>(kMaxBytesPerCall, block_size)) / block_size;
  return static_cast<std::uint32_t>(blocks);
}

std::size_t clamp_length(const BlockDevice& device, std::uint64_t offset, std::size_t length) {
  std::uint64_t size = device_bytes(device);
  if (offset >= size) return 0;
  return static_cast<std::size_t>(std::min<std::uint64_t>(length, size - offset));
}

}  // namespace

std::uint64_t device_bytes(const BlockDevice& device) {
  return device.block_count() * device.block_size();
}

Result<std::size_t> read_bytes(BlockDevice& device, std::uint64_t offset,
                               std::span<std::byte> out) {
  const std::uint32_t bs = device.block_size();
  const std::size_t length = clamp_length(device, offset, out.size());
  std::vector<std::byte> bounce;
  std::size_t done = 0;
  while (done < length) {
    std::uint64_t pos = offset + done;
    std::uint64_t lba = pos / bs;
    std::size_t within = static_cast<std::size_t>(pos % bs);
    if (within == 0 && length - done >= bs) {
      std::uint32_t count = whole_blocks(length - done, bs);
      if (auto ok = device.read(lba, count, out.subspan(done, std::size_t{count} * bs)); !ok)
        return std::unexpected(ok.error());
      done += std::size_t{count} * bs;
      continue;
    }
    bounce.resize(bs);
    if (auto ok = device.read(lba, 1, bounce); !ok) return std::unexpected(ok.error());
    std::size_t n = std::min<std::size_t>(bs - within, length - done);
    std::memcpy(out.data() + done, bounce.data() + within, n);
    done += n;
  }
  return length;
}

Result<std::size_t> write_bytes(BlockDevice& device, std::uint64_t offset,
                                std::span<const std::byte> data) {
  const std::uint32_t bs = device.block_size();
  const std::size_t length = clamp_length(device, offset, data.size());
  if (length == 0 && !data.empty())
    return fail_errno(ENOSPC, "write at byte {} lies past the end of the device", offset);
  std::vector<std::byte> bounce;
  std::size_t done = 0;
  while (done < length) {
    std::uint64_t pos = offset + done;
    std::uint64_t lba = pos / bs;
    std::size_t within = static_cast<std::size_t>(pos % bs);
    if (within == 0 && length - done >= bs) {
      std::uint32_t count = whole_blocks(length - done, bs);
      if (auto ok = device.write(lba, count, data.subspan(done, std::size_t{count} * bs)); !ok)
        return std::unexpected(ok.error());
      done += std::size_t{count} * bs;
      continue;
    }
    bounce.resize(bs);
    if (auto ok = device.read(lba, 1, bounce); !ok) return std::unexpected(ok.error());
    std::size_t n = std::min<std::size_t>(bs - within, length - done);
    std::memcpy(bounce.data() + within, data.data() + done, n);
    if (auto ok = device.write(lba, 1, bounce); !ok) return std::unexpected(ok.error());
    done += n;
  }
  return length;
}

}  // namespace clusterd
