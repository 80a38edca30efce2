// The disk helper's mounter process: everything that does I/O through the loop device (attach,
// mkfs, fsck, mount, check, unmount), driven by the server over a SOCK_SEQPACKET socket, one
// command at a time. It must not be the FUSE server (a mount reads through it), and it must not
// hold /dev/fuse or the LUN's session (when the server dies, the kernel aborts the FUSE
// connection only once every descriptor of /dev/fuse is closed).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "disk_helper.h"
#include "error.h"
#include "handle.h"
#include "loop_device.h"

namespace clusterd {

// Messages between server and mounter (one per datagram).
inline constexpr std::string_view kMounterStart = "start";  ///< server -> mounter
inline constexpr std::string_view kMounterCheck = "check";  ///< server -> mounter
inline constexpr std::string_view kMounterStop = "stop";    ///< server -> mounter
inline constexpr std::string_view kReplyReady = "ready ";   ///< + loop device path
inline constexpr std::string_view kReplyOk = "ok";
inline constexpr std::string_view kReplyStopped = "stopped";
inline constexpr std::string_view kReplyError = "error ";  ///< + one sentence

/// The mounter's side: a blocking loop over its socket until "stop" or the server's end.
class DiskMounter {
 public:
  DiskMounter(const DiskHelperOptions& options, Fd channel)
      : options_(options), channel_(std::move(channel)) {}
  /// Serves commands; returns the process's exit status (0 after a clean stop).
  int run();

 private:
  Result<std::string> start();
  Result<void> check();
  Result<void> stop();
  void abandon();
  Result<void> prepare_filesystem();
  void reply(std::string_view text);

  const DiskHelperOptions& options_;
  Fd channel_;
  std::optional<LoopDevice> loop_;
  bool mounted_ = false;
};

}  // namespace clusterd
