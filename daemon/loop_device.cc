#include "loop_device.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <utility>

namespace clusterd {
namespace {

// LOOP_CTL_GET_FREE and LOOP_CONFIGURE are two steps: another process may configure the same
// device in between (EBUSY). Try again with the next free one a few times.
constexpr int kAttachAttempts = 8;

std::string sysfs_loop(int number, const char* name) {
  std::ifstream in("/sys/block/loop" + std::to_string(number) + "/loop/" + name);
  std::string value;
  std::getline(in, value);
  return value;
}

Result<int> free_loop_number() {
  Fd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!control) return fail_errno(errno, "cannot open /dev/loop-control");
  int number = ioctl(control.get(), LOOP_CTL_GET_FREE);
  if (number < 0) return fail_errno(errno, "cannot find a free loop device");
  return number;
}

loop_config make_config(int backing_fd, const LoopOptions& options) {
  loop_config config{};
  config.fd = static_cast<__u32>(backing_fd);
  config.block_size = options.block_size;
  config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
  if (options.direct_io) config.info.lo_flags |= LO_FLAGS_DIRECT_IO;
  if (options.read_only) config.info.lo_flags |= LO_FLAGS_READ_ONLY;
  return config;
}

// One attempt: EBUSY means someone took the device first.
Result<Fd> configure(int number, int backing_fd, const LoopOptions& options) {
  std::string path = "/dev/loop" + std::to_string(number);
  Fd loop(::open(path.c_str(), (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!loop) return fail_errno(errno, "cannot open {}", path);
  loop_config config = make_config(backing_fd, options);
  if (ioctl(loop.get(), LOOP_CONFIGURE, &config) != 0)
    return fail_errno(errno, "cannot attach {}", path);
  return loop;
}

}  // namespace

std::string loop_backing_file(int number) { return sysfs_loop(number, "backing_file"); }

bool loop_direct_io(int number) { return sysfs_loop(number, "dio") == "1"; }

Result<LoopDevice> LoopDevice::attach(const std::string& file, const LoopOptions& options) {
  Fd backing(::open(file.c_str(), (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!backing) return fail_errno(errno, "cannot open {} for the loop device", file);
  for (int attempt = 0;; ++attempt) {
    auto number = free_loop_number();
    if (!number) return std::unexpected(number.error());
    auto fd = configure(*number, backing.get(), options);
    if (!fd && fd.error().errno_value == EBUSY && attempt + 1 < kAttachAttempts) continue;
    if (!fd) return std::unexpected(fd.error());
    LoopDevice device(*number, std::move(*fd));
    // The kernel silently falls back to buffered I/O when the file cannot do direct I/O; we
    // would then keep every block twice and see a fenced LUN's errors only at writeback.
    if (options.direct_io && !loop_direct_io(*number))
      return fail("loop device {} did not enable direct I/O on {}", device.path(), file);
    return device;
  }
}

LoopDevice& LoopDevice::operator=(LoopDevice&& other) noexcept {
  if (this != &other) {
    (void)detach();
    number_ = std::exchange(other.number_, -1);
    fd_ = std::move(other.fd_);
  }
  return *this;
}

LoopDevice::~LoopDevice() { (void)detach(); }

Result<void> LoopDevice::detach() {
  if (!fd_) return {};
  // With LO_FLAGS_AUTOCLEAR, LOOP_CLR_FD on a device that is still open elsewhere (mounted)
  // only marks it; ENXIO means it is already detached.
  int r = ioctl(fd_.get(), LOOP_CLR_FD, 0);
  int err = errno;
  fd_.reset();
  if (r != 0 && err != ENXIO) return fail_errno(err, "cannot detach {}", path());
  return {};
}

}  // namespace clusterd
