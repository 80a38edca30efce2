// A BlockDevice over a plain file: the LUN of the unit tests and of the disk helper's `--file`
// mode (a disk without iSCSI, e.g. on a single node or in a lab without a target).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "block_device.h"
#include "error.h"
#include "handle.h"

namespace clusterd {

/// A regular file seen as blocks of `block_size` bytes; a trailing partial block is not part
/// of the device. Synchronous pread/pwrite; flush() is fdatasync.
class FileBlockDevice : public BlockDevice {
 public:
  /// Opens an existing file read-write; fails when it is smaller than one block.
  static Result<std::unique_ptr<FileBlockDevice>> open(const std::string& path,
                                                       std::uint32_t block_size = 512);
  /// Creates (or truncates) `path` to `size` bytes of zeros (sparse) and opens it.
  static Result<std::unique_ptr<FileBlockDevice>> create(const std::string& path,
                                                         std::uint64_t size,
                                                         std::uint32_t block_size = 512);

  std::uint32_t block_size() const override { return block_size_; }
  std::uint64_t block_count() const override { return block_count_; }
  Result<void> read(std::uint64_t lba, std::uint32_t count, std::span<std::byte> out) override;
  Result<void> write(std::uint64_t lba, std::uint32_t count,
                     std::span<const std::byte> data) override;
  Result<void> flush() override;

  /// The file's path, for messages.
  const std::string& path() const { return path_; }

 private:
  FileBlockDevice(std::string path, Fd fd, std::uint32_t block_size, std::uint64_t block_count)
      : path_(std::move(path)),
        fd_(std::move(fd)),
        block_size_(block_size),
        block_count_(block_count) {}
  Result<void> check_range(std::uint64_t lba, std::uint32_t count, std::size_t bytes) const;

  std::string path_;
  Fd fd_;
  std::uint32_t block_size_;
  std::uint64_t block_count_;
};

/// True for the block sizes a device may have (a power of two from 512 to 64 KiB).
bool valid_block_size(std::uint32_t block_size);

}  // namespace clusterd
