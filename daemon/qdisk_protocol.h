// The control channel between clusterd and its quorum disk arbiter, clusterd-qdisk
// (docs/quorum-disk.md, "The arbiter process"): one frame per SOCK_SEQPACKET datagram, so a
// frame is never split or merged. Every frame starts with the magic "QD", the version and the
// kind; integers are big-endian. Both processes run on the same machine, so the times in frames
// (MonoTime, CLOCK_BOOTTIME) are on one clock.
//
//   daemon -> arbiter: Raft (a Message to kDiskVoterId), Facts (what this node knows of its side),
//                      Checkpoint (the leader's committed state, when its applied index moved),
//                      Release (clean shutdown: hand the disk over and exit);
//   arbiter -> daemon: Raft (a Message from kDiskVoterId, counted only after write-then-confirm),
//                      Held (we hold the reservation since), Confirmed (a check showed us
//                      holding; the time its first command was sent), Lost (we do not hold it
//                      any more, with why), Record (the disk's voter state: at start, for the
//                      checkpoint merge, and after each change, for `clusterctl nodes`),
//                      Released (the answer to Release: what it did; the arbiter then exits).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "clock.h"
#include "error.h"
#include "quorum_disk.h"
#include "raft_message.h"

namespace clusterd {

/// Version written and the only one accepted (both ends come from one build).
inline constexpr std::uint8_t kQdiskProtocolVersion = 2;
/// The largest frame either end sends (a record holds at most one slot).
inline constexpr std::size_t kQdiskMaxFrame = 256 * 1024;

/// Frame kinds.
enum class QdiskKind : std::uint8_t {
  Raft = 1,        ///< Either way: one Raft message.
  Facts = 2,       ///< Daemon: what this node knows of its side.
  Checkpoint = 3,  ///< Daemon (leader): the committed state to write as the disk's checkpoint.
  Held = 4,        ///< Arbiter: we hold the reservation since `at`, won as `reason` says.
  Confirmed = 5,   ///< Arbiter: a check sent at `at` showed us holding.
  Lost = 6,        ///< Arbiter: we do not hold it any more: `reason`.
  Record = 7,      ///< Arbiter: the disk's voter state, and who holds the disk.
  Release = 8,     ///< Daemon (clean shutdown): release and unregister, answer, exit.
  Released = 9,    ///< Arbiter: the answer to Release; `reason` says what was done.
};
inline constexpr int kQdiskKindCount = 9;
/// "raft", "facts", "checkpoint", "held", "confirmed", "lost", "record", "release", "released".
const char* to_string(QdiskKind kind);

/// What the daemon tells the arbiter about its side of the cluster.
struct QdiskFacts {
  NodeId leader = 0;        ///< The leader this node follows in its current term (0: none).
  bool legitimate = false;  ///< The nodes we hear, with the disk, hold a quorum.
  friend bool operator==(const QdiskFacts&, const QdiskFacts&) = default;
};

/// The disk's state as the arbiter last read or wrote it.
struct QdiskRecord {
  bool formatted = false;  ///< False: a blank LUN (no header yet).
  NodeId holder = 0;       ///< Node holding the reservation (0: none, or not a node's key).
  std::uint16_t slots = 0; ///< Nodes 1..slots have a slot (0: not formatted).
  std::optional<DiskVoterState> state;  ///< Nullopt: no record yet.
  friend bool operator==(const QdiskRecord&, const QdiskRecord&) = default;
};

/// One frame: the fields its kind uses are set (as raft_message.h's Message).
struct QdiskFrame {
  QdiskKind kind = QdiskKind::Raft;
  Message message;                  ///< Raft
  QdiskFacts facts;                 ///< Facts
  Snapshot snapshot;                ///< Checkpoint
  std::uint64_t config_version = 0; ///< Checkpoint
  MonoTime at;                      ///< Held, Confirmed
  std::string reason;               ///< Lost, Held, Released
  QdiskRecord record;               ///< Record
  friend bool operator==(const QdiskFrame&, const QdiskFrame&) = default;
};

/// Shorthands that build frames.
QdiskFrame raft_frame(Message message);
QdiskFrame facts_frame(QdiskFacts facts);
QdiskFrame checkpoint_frame(Snapshot snapshot, std::uint64_t config_version);
QdiskFrame held_frame(MonoTime since, std::string how = {});
QdiskFrame confirmed_frame(MonoTime at);
QdiskFrame lost_frame(std::string reason);
QdiskFrame record_frame(QdiskRecord record);
QdiskFrame release_frame();
QdiskFrame released_frame(std::string what);

/// The frame as one datagram.
Bytes encode_frame(const QdiskFrame& frame);
/// Parses one datagram; wrong magic or version, unknown kinds, truncation and trailing bytes are
/// errors of one sentence each.
Result<QdiskFrame> decode_frame(std::span<const std::uint8_t> bytes);

/// Sends one frame on a SOCK_SEQPACKET socket (blocking or not: EAGAIN is an error here).
Result<void> send_frame(int fd, const QdiskFrame& frame);
/// Receives one frame; nullopt when the peer closed the channel, EAGAIN when none is waiting on
/// a non-blocking socket.
Result<std::optional<QdiskFrame>> receive_frame(int fd);

}  // namespace clusterd
