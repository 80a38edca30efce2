// The quorum guard: whether this node may keep running groups, from the peers' echoes of its
// heartbeat sequence numbers (docs/membership.md, "Quorum and self-fencing"). Pure: the shell
// tells it when each heartbeat went out and what each peer echoed, and asks it for deadlines.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>

#include "clock.h"

namespace clusterd {

/// The self-fencing bound's parts (docs/membership.md).
struct QuorumTiming {
  Duration detection{500};    ///< D: misses * interval, after which peers drop a silent node.
  Duration stop_budget{150};  ///< S: time allowed for the orderly self-stop.
  Duration margin{30};        ///< M: clock-rate differences and loop lateness.
  /// How old the confirmation may be before the self-stop begins: D - S - M.
  Duration stop_after() const { return detection - stop_budget - margin; }
  /// How old it may be before whatever is left is killed: D - M.
  Duration kill_after() const { return detection - margin; }
  /// How long a self-stop that is due waits for the echo of a heartbeat sent at that moment
  /// (and for echoes already queued behind a stalled loop) before it begins: at most half the
  /// stop budget, so the orderly stop keeps the other half and the hard kill stays at D - M.
  Duration echo_grace(Duration interval) const {
    return std::min(stop_budget / 2, std::max(Duration(2), interval / 2));
  }
};

/// Tracks when a quorum last confirmed hearing this node.
class QuorumGuard {
 public:
  /// `self`'s guard among `votes` (node id -> votes, self included).
  QuorumGuard(std::uint8_t self, std::map<std::uint8_t, std::uint32_t> votes, QuorumTiming timing);
  /// Our heartbeat with sequence `sequence` went out at `at`.
  void sent(std::uint64_t sequence, MonoTime at);
  /// Peer `from` says the newest heartbeat it accepted from us had sequence `sequence`.
  void echoed(std::uint8_t from, std::uint64_t sequence);
  /// Peer `from` (a voter without heartbeats: the quorum disk) confirmed us with something we
  /// sent at `at` (docs/quorum-disk.md: c_disk, the send time of a check's first command).
  void confirm(std::uint8_t from, MonoTime at);
  /// A peer echoed our heartbeat `sequence` and said that voter `voter` (the quorum disk,
  /// whose holder that peer is) confirmed the peer's hold `age_usec` before the echo: `voter`
  /// counts as confirming us at that heartbeat's send time minus `age_usec`, which is at or
  /// before the real confirmation (the echo left after our heartbeat did). docs/quorum-disk.md,
  /// "Followers of the holder".
  void relayed(std::uint8_t voter, std::uint64_t sequence, Usec age_usec);
  /// Peer `from` confirms nothing any more (the quorum disk was lost): forget its confirmation.
  void forget(std::uint8_t from);
  /// C: the latest time a quorum of votes confirmed hearing us (self counts at `now`); nullopt
  /// when no quorum ever did.
  std::optional<MonoTime> confirmed(MonoTime now) const;
  /// Whether groups may keep running at `now`: C is younger than stop_after().
  bool quorate(MonoTime now) const;
  /// When the self-stop must begin if nothing new arrives (nullopt: already, or never confirmed).
  std::optional<MonoTime> stop_deadline(MonoTime now) const;
  /// When what is left must be killed, for a self-stop that began at `now`.
  MonoTime kill_deadline(MonoTime now) const;
  /// The timing in use.
  const QuorumTiming& timing() const { return timing_; }

 private:
  /// When our heartbeat `sequence` went out, if it is still remembered.
  std::optional<MonoTime> sent_at(std::uint64_t sequence) const;

  std::uint8_t self_;
  std::map<std::uint8_t, std::uint32_t> votes_;
  std::uint64_t total_ = 0;
  QuorumTiming timing_;
  std::deque<std::pair<std::uint64_t, MonoTime>> sent_;  ///< (sequence, time), oldest first.
  std::map<std::uint8_t, MonoTime> confirmations_;       ///< c_P per peer.
};

}  // namespace clusterd
