// Durable Raft state in the state directory: hard state, snapshot and log in one small JSON file
// (STATE_DIR/raft.json), replaced atomically (write, fsync, rename, fsync of the directory)
// before any message of the same Ready is sent. See docs/membership.md.
#pragma once

#include <string>

#include "error.h"
#include "raft.h"

namespace clusterd {

/// Name of the file inside the state directory.
inline constexpr const char* kRaftStateFile = "raft.json";

/// The Raft state of one node, kept in memory and on disk.
class RaftStorage {
 public:
  /// Reads `state_dir`/raft.json; a missing file is a new node. A malformed file is an error:
  /// a silent reset could forget a vote.
  static Result<RaftStorage> open(const std::string& state_dir);

  /// What was persisted (for RaftNode's constructor).
  const PersistentState& state() const { return state_; }
  /// Records what `ready` asks to persist and writes the file if anything changed; must
  /// succeed before ready.messages are sent.
  Result<void> persist(const RaftReady& ready);
  /// Replaces the snapshot (after RaftNode::compact) and drops the entries it covers.
  Result<void> compact(const Snapshot& snapshot);

 private:
  explicit RaftStorage(std::string path) : path_(std::move(path)) {}
  Result<void> write() const;

  std::string path_;
  PersistentState state_;
};

}  // namespace clusterd
