// The failure detector: from heartbeat arrivals and the passage of (monotonic) time, which peers
// are reachable, on which networks, and what each of them says it hears. Pure: the shell feeds
// it accepted frames and the time, and turns its events into logs, timers and membership input.
//
// A link (peer, network) is up while a frame arrived on it within `misses * interval`; a node is
// reachable while any of its links is up (MSCS: reachable over any cluster network).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "clock.h"
#include "error.h"
#include "heartbeat.h"

namespace clusterd {

/// How often heartbeats go out and how many may be missed before a link counts as down.
struct DetectorTiming {
  Duration interval = Duration(100);  ///< Architecture default.
  std::uint32_t misses = 5;           ///< Architecture default.

  /// misses * interval: silence longer than this takes a link down.
  Duration timeout() const { return interval * misses; }
  /// Checks the ranges this implementation supports: interval 5 ms..10 s, misses 2..1000.
  Result<void> validate() const;
};

/// What changed.
enum class DetectorEventKind {
  LinkUp,           ///< First frame from a peer on a network after silence.
  LinkDown,         ///< No frame from a peer on a network for the timeout.
  NodeReachable,    ///< The first of a peer's links came up.
  NodeUnreachable,  ///< A peer's last link went down (or it announced it is leaving).
  NodeRestarted,    ///< A frame carried a higher incarnation: the peer's daemon restarted.
};
inline constexpr int kDetectorEventKindCount = 5;

/// "link-up", "link-down", "node-reachable", "node-unreachable", "node-restarted".
const char* to_string(DetectorEventKind kind);

/// One state change, with the time it was detected.
struct DetectorEvent {
  DetectorEventKind kind = DetectorEventKind::LinkUp;
  std::uint8_t node = 0;
  std::optional<std::size_t> network;  ///< Link events only.
  MonoTime at;                         ///< When the change was detected.
  std::optional<MonoTime> last_heard;  ///< Down events: the last frame before the silence.
  bool leaving = false;                ///< NodeUnreachable: the peer said it was shutting down.
  friend bool operator==(const DetectorEvent&, const DetectorEvent&) = default;
};

/// The latest frame from a peer, as it reported itself (for view agreement later).
struct PeerView {
  std::uint64_t incarnation = 0;
  std::uint64_t sequence = 0;
  std::uint64_t term = 0;
  std::uint8_t coordinator = 0;
  std::uint64_t config_version = 0;
  std::uint8_t flags = 0;
  NodeSet hears;  ///< The nodes the peer says it hears.
  MonoTime at;    ///< When that frame arrived.
};

/// Per-node, per-network reachability on virtual or real monotonic time.
class FailureDetector {
 public:
  /// `self` is our id; `peers` the other nodes (ids 1..255); `networks` heartbeat networks.
  FailureDetector(std::uint8_t self, const std::vector<std::uint8_t>& peers,
                  std::size_t networks, DetectorTiming timing);

  /// An authenticated frame from a peer arrived on `network` at `at`; appends the changes to
  /// `events` (in order: restarted, link up, reachable). Frames from unknown nodes, older
  /// incarnations or a peer that announced leaving in this incarnation change nothing.
  void heard(const HeartbeatFrame& frame, std::size_t network, MonoTime at,
             std::vector<DetectorEvent>& events);
  /// Time is now `now`: takes down every link silent for the timeout and appends the changes.
  void expire(MonoTime now, std::vector<DetectorEvent>& events);
  /// The earliest time expire() could change something; nullopt when every link is down.
  std::optional<MonoTime> next_deadline() const;

  /// Reachable nodes, ourselves included.
  NodeSet reachable() const;
  /// True when `node` is ourselves or reachable.
  bool reachable(std::uint8_t node) const;
  /// True when the link to `node` on `network` is up.
  bool link_up(std::uint8_t node, std::size_t network) const;
  /// When `node` was last heard on `network`; nullopt if never.
  std::optional<MonoTime> last_heard(std::uint8_t node, std::size_t network) const;
  /// What `node` last said about itself; nullptr before its first frame.
  const PeerView* view(std::uint8_t node) const;
  /// The timing in use.
  const DetectorTiming& timing() const { return timing_; }

 private:
  struct Link {
    std::optional<MonoTime> last;
    bool up = false;
  };
  struct Peer {
    bool member = false;
    bool reachable = false;
    std::optional<std::uint64_t> left_incarnation;  ///< Announced leaving in this incarnation.
    std::optional<PeerView> view;
    std::vector<Link> links;
  };

  bool stale(const Peer& peer, const HeartbeatFrame& frame) const;
  void note_incarnation(Peer& peer, const HeartbeatFrame& frame, MonoTime at,
                        std::vector<DetectorEvent>& events);
  void leave(Peer& peer, std::uint8_t node, MonoTime at, std::vector<DetectorEvent>& events);
  void mark_unreachable_if_silent(Peer& peer, std::uint8_t node, MonoTime at, bool leaving,
                                  std::vector<DetectorEvent>& events);

  std::uint8_t self_;
  std::size_t networks_;
  DetectorTiming timing_;
  std::vector<Peer> peers_;  ///< Indexed by node id, 256 entries.
};

}  // namespace clusterd
