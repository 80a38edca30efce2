// The plain data of the consensus core: log entries, snapshots, persisted state and the messages
// nodes exchange, with their versioned wire encoding (network byte order). No behaviour here
// beyond encoding; the rules live in raft.h.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "error.h"

namespace clusterd {

/// A node (or another voter, such as the quorum disk) in the consensus group.
using NodeId = std::uint32_t;
/// A Raft term: the epoch of one leadership.
using Term = std::uint64_t;
/// A position in the replicated log; 0 is "before the first entry".
using Index = std::uint64_t;
/// Opaque payload bytes.
using Bytes = std::vector<std::uint8_t>;

/// Entry type tag reserved by the core: the empty entry a new leader commits at the start of its
/// term (Raft thesis 6.4). Every other value belongs to the state machine on top.
inline constexpr std::uint16_t kEntryNoop = 0;

/// One log entry: its position, the term it was created in, and an opaque payload with a tag.
struct Entry {
  Term term = 0;
  Index index = 0;
  std::uint16_t type = kEntryNoop;
  Bytes data;
  friend bool operator==(const Entry&, const Entry&) = default;
};

/// The state machine's state as of `index` (whose entry had term `term`), replacing the log up
/// to and including `index`.
struct Snapshot {
  Index index = 0;
  Term term = 0;
  Bytes data;
  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

/// What must be on stable storage before a node speaks: current term, the vote cast in it, and
/// the commit index (so a restart re-applies what was committed without asking anyone).
struct HardState {
  Term term = 0;
  std::optional<NodeId> vote;
  Index commit = 0;
  friend bool operator==(const HardState&, const HardState&) = default;
};

/// Everything a node persisted: a restart constructs the node from exactly this.
struct PersistentState {
  HardState hard;
  Snapshot snapshot;
  /// Entries after `snapshot.index`, consecutive.
  std::vector<Entry> entries;
};

/// Message kinds. Heartbeats are Append messages without entries.
enum class MessageType : std::uint8_t {
  PreVote,          ///< "Would you vote for me in term `term`?" (changes no state)
  PreVoteResponse,  ///< Answer to PreVote; `reject` says no.
  Vote,             ///< RequestVote for term `term`.
  VoteResponse,     ///< Answer to Vote; `reject` says no.
  Append,           ///< AppendEntries (and heartbeat) from the leader.
  AppendResponse,   ///< Answer to Append or InstallSnapshot.
  InstallSnapshot,  ///< The leader's snapshot, for a follower that needs compacted entries.
};
inline constexpr int kMessageTypeCount = 7;

/// "pre-vote", "pre-vote-response", "vote", ...
const char* to_string(MessageType type);

/// One message. A flat struct for every type (the fields a type does not use stay zero); see each
/// field for its meaning per type.
struct Message {
  MessageType type = MessageType::Append;
  NodeId from = 0;
  NodeId to = 0;
  /// Sender's term; for PreVote the term the sender would campaign in; for a granted
  /// PreVoteResponse the term of the request.
  Term term = 0;
  /// Vote/PreVote: candidate's last log index. Append: index of the entry before `entries`.
  /// AppendResponse: the prev index of the Append being answered.
  Index log_index = 0;
  /// Vote/PreVote: candidate's last log term. Append: term of the entry at `log_index`.
  Term log_term = 0;
  /// Append: leader's commit index.
  Index commit = 0;
  /// Append: the entries following `log_index`.
  std::vector<Entry> entries;
  /// *Response: the request was refused.
  bool reject = false;
  /// AppendResponse: on success the follower's match index; on reject its last log index (a hint
  /// for where the leader should back up to).
  Index hint = 0;
  /// Append: the leader's clock when it sent this (opaque to followers). AppendResponse: echoed.
  /// Lets the leader time its lease from the send time of what a quorum acknowledged.
  std::uint64_t lease_stamp = 0;
  /// InstallSnapshot: the snapshot.
  std::optional<Snapshot> snapshot;
  friend bool operator==(const Message&, const Message&) = default;
};

/// Wire format version written by encode_message and the only one decode_message accepts.
inline constexpr std::uint8_t kMessageVersion = 1;

/// The message as bytes: magic "CR", version, then the fields in network byte order.
Bytes encode_message(const Message& message);

/// Parses bytes from the network; rejects wrong magic or version, unknown types or flags,
/// truncation, trailing bytes and inconsistent entries with one sentence each.
Result<Message> decode_message(std::span<const std::uint8_t> bytes);

/// One line for traces: "append 1->2 t3 prev=4/3 n=2 commit=4".
std::string describe(const Message& message);

}  // namespace clusterd
