// The block device a disk resource's data path serves: an iSCSI LUN (IscsiSession) in the per-disk
// helper, or a plain file in tests. Synchronous on purpose: only the per-disk helper process uses
// it, never the daemon's event loop (docs/architecture: "the event loop never blocks on I/O").
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "error.h"

namespace clusterd {

/// A fixed-size array of blocks. Every call either completes or fails with one sentence; a
/// device that lost its reservation (fenced) fails writes with EIO from then on.
class BlockDevice {
 public:
  virtual ~BlockDevice() = default;

  /// Bytes per block (512 or 4096 for LUNs).
  virtual std::uint32_t block_size() const = 0;
  /// Number of blocks.
  virtual std::uint64_t block_count() const = 0;
  /// Reads `count` blocks starting at `lba` into `out` (exactly count * block_size() bytes).
  virtual Result<void> read(std::uint64_t lba, std::uint32_t count, std::span<std::byte> out) = 0;
  /// Writes `count` blocks starting at `lba` from `data` (exactly count * block_size() bytes).
  virtual Result<void> write(std::uint64_t lba, std::uint32_t count,
                             std::span<const std::byte> data) = 0;
  /// Makes every completed write durable (SYNCHRONIZE CACHE on a LUN, fdatasync on a file).
  virtual Result<void> flush() = 0;
};

}  // namespace clusterd
