// clusterctl's side of the org.clusterd1 API: one peer-to-peer connection, typed calls, and
// waiting for the Changed signal. Every failure carries the exit code it should end with.
#pragma once

#include <systemd/sd-bus.h>

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "bus_view.h"
#include "bus_wire.h"
#include "clock.h"
#include "handle.h"

namespace clusterd {

/// A failure and the exit code that goes with it (ctl_args.h).
struct CtlError {
  int exit_code = 1;
  std::string message;
};

template <typename T>
using CtlResult = std::expected<T, CtlError>;

/// A connection to clusterd.
class CtlClient {
 public:
  /// Connects to the socket at `path`; exit code 3 when nobody answers there.
  static CtlResult<CtlClient> connect(const std::string& path);

  CtlResult<StatusView> status();
  CtlResult<std::vector<NodeView>> nodes();
  CtlResult<std::vector<GroupView>> groups();
  CtlResult<GroupView> group(const std::string& name);
  CtlResult<std::vector<Event>> events(std::uint64_t after);
  /// OnlineGroup/OfflineGroup (`resource` empty) or OnlineResource/OfflineResource.
  CtlResult<void> set_target(bool online, const std::string& group, const std::string& resource);
  CtlResult<ApplyResult> apply(const std::string& text, const std::string& file);
  CtlResult<ApplyResult> reload();
  /// GetCluster: membership and consensus as JSON text.
  CtlResult<std::string> cluster();
  /// GetTimelines: the failover timelines as JSON text.
  CtlResult<std::string> timelines();
  /// ClusterCommand: move/pause/drain/resume/maintenance; the coordinator's answer.
  CtlResult<std::string> command(const std::string& kind, const std::string& group,
                                 const std::string& node, bool on);

  /// The sequence number of the newest event (LastEventSeq).
  CtlResult<std::uint64_t> last_event_seq();

  /// Starts counting Changed signals (call before the action whose effect you wait for).
  CtlResult<void> subscribe();
  /// Changed signals received so far.
  std::uint64_t changes() const { return *changes_; }
  /// Waits until a Changed signal arrives or `deadline` passes (false then); exit code 3 when
  /// the daemon goes away.
  CtlResult<bool> wait_change(MonoTime deadline);
  /// Waits for a Changed signal without a deadline.
  CtlResult<void> wait_change_forever();

 private:
  explicit CtlClient(BusPtr bus) : bus_(std::move(bus)), changes_(new std::uint64_t(0)) {}
  CtlResult<BusMessagePtr> call(const char* method, const char* types, ...);
  CtlResult<bool> wait_until(std::uint64_t timeout_usec, std::uint64_t seen);

  BusPtr bus_;
  std::unique_ptr<std::uint64_t> changes_;  ///< Stable address for the signal callback.
};

/// A negative errno from sd-bus as the error of reading a reply.
CtlError bad_reply(int r);

}  // namespace clusterd
