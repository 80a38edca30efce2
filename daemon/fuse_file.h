// One regular file, the LUN, served over FUSE from a BlockDevice, on an sd-event loop. The loop
// device of the disk helper is attached to this file (architecture "Disks": the kernel here has
// no iSCSI initiator). Single-threaded: the BlockDevice is not thread-safe, and one request at a
// time is what a loop device with direct I/O sends per queue anyway.
//
// The process that serves must never touch the loop device or the mount itself: a mount reads
// through loop -> FUSE -> this server, so doing it from the serving thread deadlocks.
#pragma once

#include <sys/stat.h>
#include <systemd/sd-event.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "block_device.h"
#include "error.h"
#include "handle.h"

struct fuse_session;

namespace clusterd {

/// Where and under which name the file appears.
struct FuseFileOptions {
  std::string directory;           ///< The FUSE mount point (an existing directory).
  std::string file_name = "disk";  ///< The one file in it.
};

/// Counters of the requests served, for tests and the helper's messages.
struct FuseFileStats {
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
  std::uint64_t flushes = 0;
  std::uint64_t errors = 0;  ///< Requests answered with EIO because the device failed.
};

/// Marks the calling process as an I/O flusher (prctl PR_SET_IO_FLUSHER): its allocations do
/// not recurse into reclaim that writes back through the loop device it serves, which can
/// deadlock (the kernel's documented use: FUSE servers behind loop devices, Linux 5.6+). Needs
/// CAP_SYS_RESOURCE.
Result<void> set_io_flusher();

/// A mounted FUSE file system with one file, served from `device` on `loop`.
class FuseFile {
 public:
  /// Called once when the kernel side is gone (unmounted by someone, or the connection was
  /// aborted through /sys/fs/fuse/connections/N/abort); the file is no longer served.
  using GoneHandler = std::function<void()>;

  /// Mounts the file system at options.directory and starts serving on `loop`. `device` must
  /// outlive the FuseFile.
  static Result<std::unique_ptr<FuseFile>> mount(sd_event* loop, BlockDevice& device,
                                                 const FuseFileOptions& options,
                                                 GoneHandler on_gone);
  /// Unmounts (if still mounted) and stops serving.
  ~FuseFile();
  FuseFile(const FuseFile&) = delete;
  FuseFile& operator=(const FuseFile&) = delete;

  /// Full path of the served file.
  std::string file_path() const;
  /// Unmounts now (lazily, as libfuse does for root) and stops serving; idempotent.
  void unmount();
  /// True while mounted and served.
  bool serving() const { return source_ != nullptr; }
  /// Requests served so far.
  const FuseFileStats& stats() const { return stats_; }
  /// The first device error answered with EIO, if any.
  const std::optional<Error>& first_error() const { return first_error_; }
  /// The first write or flush the device refused, if any: data the file system above believes
  /// written is lost (a fenced LUN), so the disk cannot be trusted until it is checked again.
  const std::optional<Error>& first_write_error() const { return first_write_error_; }

 private:
  FuseFile(BlockDevice& device, FuseFileOptions options, GoneHandler on_gone);
  Result<void> start(sd_event* loop);
  static int on_readable(sd_event_source* source, int fd, uint32_t events, void* userdata) noexcept;
  void serve_pending();
  void gone();

  // The request handlers (fuse_lowlevel_ops calls these through static trampolines).
  friend struct FuseOps;
  struct stat attributes(std::uint64_t ino) const;
  void note_error(const Error& error, bool lost_write);

  BlockDevice& device_;
  FuseFileOptions options_;
  GoneHandler on_gone_;
  fuse_session* session_ = nullptr;
  bool mounted_ = false;
  EventSourcePtr source_;
  std::vector<std::byte> buffer_;  ///< Read replies (up to one max_read).
  struct Request;                  ///< libfuse's request buffer, reused for every request.
  struct RequestFree {
    void operator()(Request* request) const noexcept;
  };
  std::unique_ptr<Request, RequestFree> request_;
  FuseFileStats stats_;
  std::optional<Error> first_error_;
  std::optional<Error> first_write_error_;
};

}  // namespace clusterd
