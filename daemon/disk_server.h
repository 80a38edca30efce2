// The disk helper's main process: opens the LUN, serves it over FUSE, drives the mounter process
// and answers the daemon (see disk_helper.h for the protocol). Everything on one sd-event loop,
// so that FUSE requests caused by the mounter's work (mount, fsck, check, unmount) are served
// while that work runs.
#pragma once

#include <sys/signalfd.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "block_device.h"
#include "disk_helper.h"
#include "error.h"
#include "fuse_file.h"
#include "handle.h"

namespace clusterd {

/// The line the helper sends unasked on its control fd when it fails after "ready", before it
/// stops in order: "failed <sentence>".
inline constexpr std::string_view kFailedLine = "failed ";

/// Where the helper is in its life.
enum class DiskServerState {
  Starting,  ///< The mounter attaches, checks and mounts.
  Ready,     ///< Mounted; health checks are answered.
  Stopping,  ///< The mounter unmounts and detaches; then the device is flushed.
  Done,      ///< Finished: exit_status() is set.
};
/// "starting", "ready", "stopping", "done".
const char* to_string(DiskServerState state);
/// True when the transition table lists `from` -> `to`.
bool transition_allowed(DiskServerState from, DiskServerState to);

/// The server side of clusterd-disk.
class DiskServer {
 public:
  /// `channel` is the server's end of the socket to the mounter process `mounter`.
  DiskServer(sd_event* loop, const DiskHelperOptions& options, Fd channel, pid_t mounter);
  ~DiskServer();
  DiskServer(const DiskServer&) = delete;
  DiskServer& operator=(const DiskServer&) = delete;

  /// Opens the device, mounts the FUSE file and asks the mounter to start.
  Result<void> start(const BlockDeviceOpener& open);
  /// Starts an orderly stop (as SIGTERM does).
  void stop(std::string_view why);
  /// The state.
  DiskServerState state() const { return state_; }
  /// Set once the server is Done.
  std::optional<DiskHelperExit> exit_status() const { return exit_; }
  /// Tells the daemon (ready fd, else control fd) that the start failed.
  void announce_failure(const Error& error);

 private:
  enum class Expect { Start, Check, Stop };

  Result<void> watch();
  Result<void> refuse_existing_mounts() const;
  void send_mounter(std::string_view command, Expect expect);
  bool read_mounter();
  void on_mounter_message(std::string_view message);
  void on_start_reply(std::string_view message);
  void on_mounter_exit(const siginfo_t& info);
  void on_control_line(std::string_view line);
  void check();
  void restore();
  void on_fenced();
  void on_fuse_gone();
  void finish();
  void set_state(DiskServerState next, std::string_view why);
  void announce(const std::string& line);
  void answer(const std::string& line);
  void record_failure(std::string message);

  static int on_channel(sd_event_source*, int, uint32_t, void* userdata) noexcept;
  static int on_control(sd_event_source*, int, uint32_t, void* userdata) noexcept;
  static int on_child(sd_event_source*, const siginfo_t* info, void* userdata) noexcept;
  static int on_signal(sd_event_source*, const signalfd_siginfo*, void* userdata) noexcept;

  sd_event* loop_;
  const DiskHelperOptions& options_;
  Fd channel_;
  pid_t mounter_;
  std::unique_ptr<BlockDevice> device_;
  ReservationGuard* guard_ = nullptr;  ///< device_'s reservation (iSCSI mode), else null.
  std::unique_ptr<FuseFile> fuse_;
  DiskServerState state_ = DiskServerState::Starting;
  std::deque<Expect> expected_;     ///< Replies the mounter owes, oldest first.
  std::string control_input_;       ///< Bytes of an incomplete command line.
  bool stop_from_control_ = false;  ///< "stop" came on the control fd: answer it there.
  bool stop_done_ = false;          ///< The mounter answered "stopped".
  bool start_failed_ = false;
  bool announced_ = false;
  bool served_ = false;             ///< "ready" was announced: failures are told at once.
  std::optional<std::string> failure_;  ///< Why the helper fails (the first reason).
  std::optional<DiskHelperExit> exit_;
  EventSourcePtr channel_source_;
  EventSourcePtr control_source_;
  EventSourcePtr child_source_;
  EventSourcePtr sigterm_source_;
  EventSourcePtr sigint_source_;
};

}  // namespace clusterd
