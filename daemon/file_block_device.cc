#include "file_block_device.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace clusterd {

bool valid_block_size(std::uint32_t block_size) {
  return block_size >= 512 && block_size <= 65536 && (block_size & (block_size - 1)) == 0;
}

Result<std::unique_ptr<FileBlockDevice>> FileBlockDevice::open(const std::string& path,
                                                               std::uint32_t block_size) {
  if (!valid_block_size(block_size))
    return fail("block size {} is not a power of two from 512 to 65536", block_size);
  Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) return fail_errno(errno, "cannot open disk file {}", path);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return fail_errno(errno, "cannot stat disk file {}", path);
  if (!S_ISREG(st.st_mode)) return fail("disk file {} is not a regular file", path);
  std::uint64_t blocks = static_cast<std::uint64_t>(st.st_size) / block_size;
  if (blocks == 0)
    return fail("disk file {} is smaller than one block of {} bytes", path, block_size);
  return std::unique_ptr<FileBlockDevice>(
      new FileBlockDevice(path, std::move(fd), block_size, blocks));
}

Result<std::unique_ptr<FileBlockDevice>> FileBlockDevice::create(const std::string& path,
                                                                 std::uint64_t size,
                                                                 std::uint32_t block_size) {
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return fail_errno(errno, "cannot create disk file {}", path);
  if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
    return fail_errno(errno, "cannot size disk file {} to {} bytes", path, size);
  return open(path, block_size);
}

Result<void> FileBlockDevice::check_range(std::uint64_t lba, std::uint32_t count,
                                          std::size_t bytes) const {
  if (bytes != static_cast<std::size_t>(count) * block_size_)
    return fail_errno(EINVAL, "buffer of {} bytes for {} blocks of {} bytes", bytes, count,
                      block_size_);
  if (lba > block_count_ || count > block_count_ - lba)
    return fail_errno(EINVAL, "blocks {}+{} lie beyond the end of {} ({} blocks)", lba, count,
                      path_, block_count_);
  return {};
}

Result<void> FileBlockDevice::read(std::uint64_t lba, std::uint32_t count,
                                   std::span<std::byte> out) {
  if (auto ok = check_range(lba, count, out.size()); !ok) return ok;
  std::size_t done = 0;
  while (done < out.size()) {
    ssize_t n = pread(fd_.get(), out.data() + done, out.size() - done,
                      static_cast<off_t>(lba * block_size_ + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(errno, "cannot read block {} of {}", lba, path_);
    if (n == 0) return fail_errno(EIO, "{} ended early at block {}", path_, lba);
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Result<void> FileBlockDevice::write(std::uint64_t lba, std::uint32_t count,
                                    std::span<const std::byte> data) {
  if (auto ok = check_range(lba, count, data.size()); !ok) return ok;
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = pwrite(fd_.get(), data.data() + done, data.size() - done,
                       static_cast<off_t>(lba * block_size_ + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(errno, "cannot write block {} of {}", lba, path_);
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Result<void> FileBlockDevice::flush() {
  if (fdatasync(fd_.get()) != 0) return fail_errno(errno, "cannot flush {}", path_);
  return {};
}

}  // namespace clusterd
