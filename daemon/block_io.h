// Byte ranges over a BlockDevice: what a file interface (FUSE) needs from a device that only
// moves whole blocks. Partial blocks are read, modified and written back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "block_device.h"
#include "error.h"

namespace clusterd {

/// The device's size in bytes.
std::uint64_t device_bytes(const BlockDevice& device);

/// Reads up to out.size() bytes at byte `offset`; returns how many were read, which is less
/// only at the end of the device (0 at or past it).
Result<std::size_t> read_bytes(BlockDevice& device, std::uint64_t offset, std::span<std::byte> out);

/// Writes `data` at byte `offset`, reading and rewriting the blocks it covers only in part;
/// returns how many bytes were written (less only at the end of the device). Writing at or past
/// the end fails with ENOSPC, as on a block device.
Result<std::size_t> write_bytes(BlockDevice& device, std::uint64_t offset,
                                std::span<const std::byte> data);

}  // namespace clusterd
