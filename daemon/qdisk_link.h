// The daemon's side of the quorum disk arbiter (docs/quorum-disk.md, "The arbiter process"):
// spawns clusterd-qdisk with a SOCK_SEQPACKET socketpair as its fd 3, reads its frames on the
// event loop and hands them to the cluster service, and starts it again when it dies (the disk
// then counts as silent, never as granted). At start it waits, blocking and with a deadline, for
// the arbiter's first Record: the checkpoint the node merges before it builds its RaftNode.
#pragma once

#include <systemd/sd-event.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "child.h"
#include "clock.h"
#include "error.h"
#include "handle.h"
#include "qdisk_arbiter.h"
#include "qdisk_protocol.h"

namespace clusterd {

/// clusterd-qdisk beside the running executable when it exists (a build tree), else the
/// installed libexecdir/clusterd/clusterd-qdisk.
std::string default_qdisk_helper();

/// One arbiter process and its channel.
class QdiskLink {
 public:
  /// Called for every frame the arbiter sends (on the loop).
  using FrameHandler = std::function<void(const QdiskFrame&)>;
  /// Called when the arbiter exits, with why (its last line, or how it ended).
  using ExitHandler = std::function<void(const std::string& why)>;

  /// Spawns `argv` (clusterd-qdisk with --control-fd 3) and waits up to `first_record` for its
  /// first Record, which initial_record() then returns; when it does not come the link still
  /// runs (initial_record() empty) and the error is logged.
  static Result<std::unique_ptr<QdiskLink>> start(sd_event* loop, std::vector<std::string> argv,
                                                  Duration first_record, FrameHandler on_frame,
                                                  ExitHandler on_exit);
  ~QdiskLink();
  QdiskLink(const QdiskLink&) = delete;
  QdiskLink& operator=(const QdiskLink&) = delete;

  /// The Record the arbiter sent first, if it came in time.
  const std::optional<QdiskRecord>& initial_record() const { return initial_; }
  /// Sends a frame; false when the arbiter is not running (the frame is dropped, as a lost
  /// network message would be: Raft sends again).
  bool send(const QdiskFrame& frame);
  /// True while the arbiter runs.
  bool running() const { return child_ && child_->running() && channel_; }
  /// How many times it was started.
  int starts() const { return starts_; }
  /// Clean shutdown: asks the arbiter to release the disk and unregister, and waits (blocking,
  /// at most `limit`) for its answer, which it returns; other frames are dropped. The arbiter
  /// exits after answering and is not started again; the link is done afterwards.
  Result<std::string> release(Duration limit);

 private:
  QdiskLink(sd_event* loop, std::vector<std::string> argv, FrameHandler on_frame,
            ExitHandler on_exit);
  Result<void> spawn();
  Result<void> wait_first(Duration limit);
  /// Blocks (start and shutdown only) until the arbiter sends a frame; nullopt when it closed
  /// the channel; `silent` names what did not come by `end`, for the error.
  Result<std::optional<QdiskFrame>> receive_by(MonoTime end, Duration limit, const char* silent);
  void on_child_exit(const ChildExit& exit);
  void schedule_restart();
  static int on_channel(sd_event_source*, int fd, uint32_t, void* userdata) noexcept;
  static int on_restart(sd_event_source*, uint64_t, void* userdata) noexcept;

  sd_event* loop_;
  std::vector<std::string> argv_;
  FrameHandler on_frame_;
  ExitHandler on_exit_;
  std::unique_ptr<Child> child_;
  Fd channel_;
  EventSourcePtr channel_source_;
  EventSourcePtr restart_timer_;
  std::optional<QdiskRecord> initial_;
  int starts_ = 0;
  bool released_ = false;
};

}  // namespace clusterd
