// Durable Raft state in the state directory: hard state, snapshot and log as one small JSON
// document, written alternately into two slot files (STATE_DIR/raft.0, raft.1) with a generation
// number and a checksum, one fdatasync per write, before any message of the same Ready is sent.
// Reading takes the valid slot with the highest generation: a write torn by a crash was never
// acted upon (its Ready's messages were not sent), so the other slot is the truth. No rename and
// no directory fsync: the failover path pays one data sync per Ready. See docs/membership.md.
#pragma once

#include <string>

#include "error.h"
#include "handle.h"
#include "raft.h"

namespace clusterd {

/// Names of the two slot files inside the state directory.
inline constexpr const char* kRaftSlotFiles[2] = {"raft.0", "raft.1"};
/// The single file of earlier releases, read once if no slot is valid yet.
inline constexpr const char* kRaftLegacyFile = "raft.json";

/// The Raft state of one node, kept in memory and on disk.
class RaftStorage {
 public:
  /// Reads the newest valid slot of `state_dir` (or an earlier release's raft.json); nothing
  /// there is a new node. Slots that exist but none valid is an error: a silent reset could
  /// forget a vote.
  static Result<RaftStorage> open(const std::string& state_dir);

  /// What was persisted (for RaftNode's constructor).
  const PersistentState& state() const { return state_; }
  /// Records what `ready` asks to persist and writes a slot if anything durable changed; must
  /// succeed before ready.messages are sent. A Ready that only advances the commit index is
  /// kept in memory (the commit index is a lower bound on disk: a restarted node relearns it
  /// from the coordinator), which saves a sync per commit on the failover path.
  Result<void> persist(const RaftReady& ready);
  /// Replaces the snapshot (after RaftNode::compact) and drops the entries it covers.
  Result<void> compact(const Snapshot& snapshot);

 private:
  explicit RaftStorage(std::string dir) : dir_(std::move(dir)) {}
  Result<void> write();

  std::string dir_;
  PersistentState state_;
  std::uint64_t generation_ = 0;  ///< Of the newest slot written or read.
  Fd slots_[2];                   ///< Opened on first write.
};

}  // namespace clusterd
