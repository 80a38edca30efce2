// Test support for the disk data path: a private mount namespace (so no test leaves a mount on
// the host), a fenceable BlockDevice (the natural seam: a LUN whose reservation was preempted
// fails its writes with EIO), processes under a deadline, and a running clusterd-disk.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "block_device.h"
#include "clock.h"
#include "disk_helper.h"
#include "error.h"
#include "handle.h"

namespace clusterd::testing {

/// Why the data path tests cannot run here, or "" when they can (root, /dev/fuse, loop devices).
std::string datapath_unavailable();

/// Puts the calling (single-threaded) process into a new mount namespace with every mount
/// private, and back into the original one on destruction. Mounts made inside vanish with the
/// namespace, even when the test dies.
class PrivateMountNamespace {
 public:
  static Result<std::unique_ptr<PrivateMountNamespace>> enter();
  ~PrivateMountNamespace();
  PrivateMountNamespace(const PrivateMountNamespace&) = delete;
  PrivateMountNamespace& operator=(const PrivateMountNamespace&) = delete;

 private:
  explicit PrivateMountNamespace(Fd original) : original_(std::move(original)) {}
  Fd original_;
};

/// A switch in memory shared across fork(): the test throws it while a child process serves.
class FenceSwitch {
 public:
  FenceSwitch();
  ~FenceSwitch();
  FenceSwitch(const FenceSwitch&) = delete;
  FenceSwitch& operator=(const FenceSwitch&) = delete;
  void fence() { flag_->store(true); }
  bool fenced() const { return flag_->load(); }

 private:
  std::atomic<bool>* flag_;
};

/// `inner`, except that once the switch is thrown every write fails with EIO, as on a LUN whose
/// reservation another node preempted.
class FenceableBlockDevice : public BlockDevice {
 public:
  FenceableBlockDevice(std::unique_ptr<BlockDevice> inner, const FenceSwitch& fence)
      : inner_(std::move(inner)), fence_(fence) {}
  std::uint32_t block_size() const override { return inner_->block_size(); }
  std::uint64_t block_count() const override { return inner_->block_count(); }
  Result<void> read(std::uint64_t lba, std::uint32_t count, std::span<std::byte> out) override {
    return inner_->read(lba, count, out);
  }
  Result<void> write(std::uint64_t lba, std::uint32_t count,
                     std::span<const std::byte> data) override;
  Result<void> flush() override { return inner_->flush(); }

 private:
  std::unique_ptr<BlockDevice> inner_;
  const FenceSwitch& fence_;
};

/// Waits for child `pid` to exit; its exit status (128+N for signal N), nullopt after `limit`
/// (the child is then left running).
std::optional<int> wait_for_exit(pid_t pid, Duration limit);

/// Runs `body` in a forked child and returns its exit status; SIGKILLs it and returns nullopt
/// when it is not done within `limit` (for I/O that might hang on a dead data path).
std::optional<int> run_in_child(const std::function<int()>& body, Duration limit);

/// A clusterd-disk in a child process with its control socket (also its readiness fd).
class HelperProcess {
 public:
  /// Executes build/daemon/clusterd-disk with `args` plus --control-fd.
  static Result<std::unique_ptr<HelperProcess>> spawn(const std::vector<std::string>& args);
  /// Forks and runs run_disk_helper(options, open) in the child (for a test BlockDevice).
  static Result<std::unique_ptr<HelperProcess>> fork(DiskHelperOptions options,
                                                     const BlockDeviceOpener& open);
  /// SIGKILLs the process group if still running, and reaps.
  ~HelperProcess();

  pid_t pid() const { return pid_; }
  /// The next line from the control socket, waiting at most `limit`.
  Result<std::string> read_line(Duration limit = std::chrono::seconds(20));
  /// Sends one command line.
  Result<void> send(const std::string& line);
  /// Waits for the exit; the exit status, or a signal as 128+N; nullopt on timeout.
  std::optional<int> wait(Duration limit = std::chrono::seconds(20));
  /// Closes our end of the control socket (as a daemon that died would).
  void close_control() { control_.reset(); }
  /// Sends `sig` to the helper's process group (server and mounter).
  void kill_group(int sig);

 private:
  HelperProcess(pid_t pid, Fd control) : pid_(pid), control_(std::move(control)) {}
  pid_t pid_;
  Fd control_;
  std::string input_;
  bool reaped_ = false;
};

/// build/daemon/clusterd-disk beside the test binary.
std::string disk_helper_path();

/// Writes `size` bytes of a pattern (seeded by `seed`) to `path`, fsyncs; errno on failure.
int write_pattern_file(const std::string& path, std::size_t size, unsigned seed);
/// True when `path` holds exactly the pattern written by write_pattern_file.
bool has_pattern(const std::string& path, std::size_t size, unsigned seed);

}  // namespace clusterd::testing
