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

/// One piece of a byte range on a device: whole blocks (`blocks` > 0) or part of one block.
struct Extent {
  std::uint64_t lba = 0;
  std::size_t done = 0;    ///< Bytes of the range before this piece.
  std::size_t within = 0;  ///< Offset inside the block (partial pieces).
  std::size_t bytes = 0;   ///< Length of this piece.
  std::uint32_t blocks = 0;
};

/// Calls `fn(extent)` for the pieces of [offset, offset + length), in order; stops at an error.
template <typename Fn>
Result<void> for_each_extent(std::uint32_t bs, std::uint64_t offset, std::size_t length, Fn&& fn) {
  std::size_t done = 0;
  while (done < length) {
    std::uint64_t pos = offset + done;
    Extent e{pos / bs, done, static_cast<std::size_t>(pos % bs), 0, 0};
    if (e.within == 0 && length - done >= bs) {
      e.blocks = whole_blocks(length - done, bs);
      e.bytes = std::size_t{e.blocks} * bs;
    } else {
      e.bytes = std::min<std::size_t>(bs - e.within, length - done);
    }
    if (auto ok = fn(e); !ok) return ok;
    done += e.bytes;
  }
  return {};
}

}  // namespace

std::uint64_t device_bytes(const BlockDevice& device) {
  return device.block_count() * device.block_size();
}

Result<std::size_t> read_bytes(BlockDevice& device, std::uint64_t offset,
                               std::span<std::byte> out) {
  const std::uint32_t bs = device.block_size();
  const std::size_t length = clamp_length(device, offset, out.size());
  std::vector<std::byte> bounce(bs);
  auto ok = for_each_extent(bs, offset, length, [&](const Extent& e) -> Result<void> {
    if (e.blocks > 0) return device.read(e.lba, e.blocks, out.subspan(e.done, e.bytes));
    if (auto r = device.read(e.lba, 1, bounce); !r) return r;
    std::memcpy(out.data() + e.done, bounce.data() + e.within, e.bytes);
    return {};
  });
  if (!ok) return std::unexpected(ok.error());
  return length;
}

Result<std::size_t> write_bytes(BlockDevice& device, std::uint64_t offset,
                                std::span<const std::byte> data) {
  const std::uint32_t bs = device.block_size();
  const std::size_t length = clamp_length(device, offset, data.size());
  if (length == 0 && !data.empty())
    return fail_errno(ENOSPC, "write at byte {} lies past the end of the device", offset);
  std::vector<std::byte> bounce(bs);
  auto ok = for_each_extent(bs, offset, length, [&](const Extent& e) -> Result<void> {
    if (e.blocks > 0) return device.write(e.lba, e.blocks, data.subspan(e.done, e.bytes));
    // Read-modify-write of a partial block.
    if (auto r = device.read(e.lba, 1, bounce); !r) return r;
    std::memcpy(bounce.data() + e.within, data.data() + e.done, e.bytes);
    return device.write(e.lba, 1, bounce);
  });
  if (!ok) return std::unexpected(ok.error());
  return length;
}

}  // namespace clusterd
