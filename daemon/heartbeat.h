// Heartbeat frames: the fixed-size, versioned wire format every node multicasts on each heartbeat
// network, authenticated with HMAC-SHA256 under the heartbeat subkey, and the receiver's checks
// (cluster, authentication, replay). Pure: no sockets, no clock, and no allocation on the
// encode/verify path (fixed buffers), so it runs on every frame at 100 Hz per peer and network.
#pragma once

#include <array>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <vector>

#include "authkey.h"

namespace clusterd {

/// Node ids on the wire are one byte: 1..255 (0 means "none").
inline constexpr std::uint32_t kMaxWireNodeId = 255;
/// A set of node ids 0..255 (bit i = node i; bit 0 is never set).
using NodeSet = std::bitset<256>;

/// "CLHB", the first four bytes of every heartbeat frame.
inline constexpr std::uint32_t kHeartbeatMagic = 0x434c4842;
/// The wire format this code writes and accepts.
inline constexpr std::uint8_t kHeartbeatVersion = 1;
/// Size of the authenticated part of a version-1 frame.
inline constexpr std::size_t kHeartbeatBodySize = 80;
/// Size of the HMAC-SHA256 tag that ends the frame.
inline constexpr std::size_t kHeartbeatMacSize = 32;
/// Size of a whole version-1 frame on the wire.
inline constexpr std::size_t kHeartbeatFrameSize = kHeartbeatBodySize + kHeartbeatMacSize;

/// Frame flag: the sender is shutting down cleanly; peers may drop it at once.
inline constexpr std::uint8_t kHeartbeatLeaving = 0x01;
/// Frame flag: the sender has not caught up with the cluster since it started or last fenced
/// itself (docs/membership.md, "Joining"; the rule is in join_rule.h).
inline constexpr std::uint8_t kHeartbeatJoining = 0x02;

/// One heartbeat. Everything a peer needs for failure detection and, later, view agreement.
struct HeartbeatFrame {
  std::uint32_t cluster_id = 0;      ///< ClusterInfo.id (24 bits used).
  std::uint8_t node_id = 0;          ///< Sender, 1..255.
  std::uint8_t network = 0;          ///< Index of the network (config order) it was sent on.
  std::uint8_t flags = 0;            ///< kHeartbeatLeaving; unknown bits are carried, not refused.
  std::uint64_t incarnation = 0;     ///< Grows with each start of the sender.
  std::uint64_t sequence = 0;        ///< Grows with each heartbeat of this incarnation.
  std::uint64_t term = 0;            ///< Sender's current Raft term.
  std::uint8_t coordinator = 0;      ///< Node the sender follows as coordinator; 0 = none known.
  std::uint64_t config_version = 0;  ///< Committed configuration version the sender runs.
  NodeSet hears;                     ///< Nodes the sender currently hears (itself included).
  friend bool operator==(const HeartbeatFrame&, const HeartbeatFrame&) = default;
};

/// A frame's bytes on the wire.
using HeartbeatBytes = std::array<std::uint8_t, kHeartbeatFrameSize>;

/// Why a received frame was dropped.
enum class HeartbeatDrop {
  Truncated,       ///< Shorter or longer than a frame of its version.
  BadMagic,        ///< Not a heartbeat frame at all.
  BadVersion,      ///< A wire version this code does not speak.
  ForeignCluster,  ///< Another cluster's id (two clusters sharing a group and port).
  BadAuth,         ///< The HMAC does not verify: tampered, or another key.
  BadNode,         ///< Sender id 0, or not a node of the configuration.
  FromSelf,        ///< Our own id: a looped-back frame or a duplicate node id.
  WrongNetwork,    ///< Says it was sent on another network than the one it arrived on.
  OldIncarnation,  ///< An incarnation older than one already heard from the sender.
  Replay,          ///< Same incarnation, sequence not above the last one accepted.
};
inline constexpr int kHeartbeatDropCount = 10;

/// "truncated", "bad-magic", ...
const char* to_string(HeartbeatDrop drop);

/// Per-network counters (for clusterctl and D-Bus later).
struct HeartbeatCounters {
  std::uint64_t sent = 0;         ///< Frames handed to the kernel.
  std::uint64_t send_errors = 0;  ///< Frames the kernel refused (link down, no route, ...).
  std::uint64_t received = 0;     ///< Datagrams read from the socket.
  std::uint64_t accepted = 0;     ///< Frames that passed every check.
  std::array<std::uint64_t, kHeartbeatDropCount> dropped{};  ///< By HeartbeatDrop.

  /// The count for one reason.
  std::uint64_t drops(HeartbeatDrop reason) const {
    return dropped[static_cast<std::size_t>(reason)];
  }
  /// Every drop, whatever the reason.
  std::uint64_t total_dropped() const;
};

/// Writes `frame` into `out` and appends its HMAC under `key`. No allocation.
void encode_heartbeat(const HeartbeatFrame& frame, const SubKey& key, HeartbeatBytes& out);

/// Parses and authenticates a datagram: length, magic, version, cluster id, then the HMAC.
/// Replay is not checked here (that needs state: HeartbeatVerifier). No allocation.
std::expected<HeartbeatFrame, HeartbeatDrop> decode_heartbeat(std::span<const std::uint8_t> in,
                                                              const SubKey& key,
                                                              std::uint32_t cluster_id);

/// The receiving side of one node: authenticates frames, rejects replays per (sender, network),
/// and counts. All state is sized at construction; accept() does not allocate.
class HeartbeatVerifier {
 public:
  /// `self` is our node id, `members` the node ids of the configuration, `networks` how many
  /// heartbeat networks (indices 0..networks-1) there are.
  HeartbeatVerifier(const SubKey& key, std::uint32_t cluster_id, std::uint8_t self,
                    const NodeSet& members, std::size_t networks);

  /// Checks a datagram that arrived on `network`; the frame, or why it was dropped. Counts
  /// either way. Replay state moves forward only for authenticated frames.
  std::expected<HeartbeatFrame, HeartbeatDrop> accept(std::span<const std::uint8_t> in,
                                                      std::size_t network);
  /// Counts a datagram whose receive was refused before it could be checked (oversized).
  void count_oversized(std::size_t network);

  /// Counters of one network.
  const HeartbeatCounters& counters(std::size_t network) const { return counters_[network]; }
  /// Mutable counters, for the sending side of the same network.
  HeartbeatCounters& counters(std::size_t network) { return counters_[network]; }
  /// Number of networks.
  std::size_t networks() const { return counters_.size(); }

 private:
  struct Last {
    std::uint64_t incarnation = 0;
    std::uint64_t sequence = 0;
    bool seen = false;
  };
  std::expected<HeartbeatFrame, HeartbeatDrop> check(std::span<const std::uint8_t> in,
                                                     std::size_t network);
  std::optional<HeartbeatDrop> check_replay(const HeartbeatFrame& frame, std::size_t network);

  SubKey key_;
  std::uint32_t cluster_id_;
  std::uint8_t self_;
  NodeSet members_;
  std::vector<HeartbeatCounters> counters_;
  std::vector<Last> last_;  ///< [network * 256 + node]
};

}  // namespace clusterd
