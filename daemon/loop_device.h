// Loop devices: a file (the disk helper's FUSE file) as a block device, with direct I/O so that
// the page cache is not kept twice and a fenced LUN's EIO reaches the file system at once.
#pragma once

#include <cstdint>
#include <string>

#include "error.h"
#include "handle.h"

namespace clusterd {

/// How to attach.
struct LoopOptions {
  std::uint32_t block_size = 512;  ///< Logical block size of the loop device (the LUN's).
  bool direct_io = true;           ///< Required by default: attach fails without it.
  bool read_only = false;
};

/// An attached loop device (/dev/loopN), detached when destroyed. Attached with
/// LO_FLAGS_AUTOCLEAR: once detach is asked for, the kernel frees the device at its last close,
/// so a device still held by a mount is freed when that mount goes.
class LoopDevice {
 public:
  /// Attaches `file` to a free loop device (LOOP_CTL_GET_FREE + LOOP_CONFIGURE).
  static Result<LoopDevice> attach(const std::string& file, const LoopOptions& options);
  LoopDevice(LoopDevice&& other) noexcept = default;
  LoopDevice& operator=(LoopDevice&& other) noexcept;
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
  ~LoopDevice();

  /// "/dev/loopN".
  std::string path() const { return "/dev/loop" + std::to_string(number_); }
  /// N.
  int number() const { return number_; }
  /// True while this object holds the device.
  bool attached() const { return static_cast<bool>(fd_); }
  /// Asks the kernel to detach (LOOP_CLR_FD) and closes our descriptor; the device is free
  /// once nobody else holds it open. Idempotent.
  Result<void> detach();

 private:
  LoopDevice(int number, Fd fd) : number_(number), fd_(std::move(fd)) {}
  int number_ = -1;
  Fd fd_;
};

/// The file backing loop device N ("" when it is not attached), from sysfs.
std::string loop_backing_file(int number);
/// True when loop device N does direct I/O to its file, from sysfs.
bool loop_direct_io(int number);

}  // namespace clusterd
