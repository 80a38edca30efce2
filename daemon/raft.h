// The consensus core: Raft's rules as a passive, deterministic object (architecture rule 1).
// No I/O, no clock of its own, no threads, in the style of etcd/raft's "Ready" design: the shell
// feeds it time (tick), messages (step) and proposals, and after each input collects a Ready
// that says what to persist, then what to send, then what to apply.
//
// Rules implemented (Raft thesis, Ongaro 2014): terms; one persisted vote per term; the log
// up-to-date check; pre-vote (9.6), so a node that cannot win never raises terms and a rejoining
// node cannot depose a healthy leader; check-quorum (6.2) with a leader lease timed from the send
// time of what a quorum acknowledged; commitment of current-term entries only, by counting
// (3.6.2), helped by a no-op at the start of each term; snapshots and compaction (5). Voters carry
// weights; quorum is more than half of all votes. See docs/consensus.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "clock.h"
#include "error.h"
#include "raft_message.h"

namespace clusterd {

/// A node's role in its current term.
enum class RaftRole { Follower, PreCandidate, Candidate, Leader };
inline constexpr int kRaftRoleCount = 4;

/// "follower", "pre-candidate", "candidate", "leader".
const char* to_string(RaftRole role);

/// Votes per voter. A voter with 0 votes receives the log but never votes, and campaigns only
/// with RaftTiming::zero_vote_candidacy. A voter
/// need not be a RaftNode: the quorum disk is one more id here, answered by the disk arbiter.
using VoterMap = std::map<NodeId, std::uint32_t>;

/// Timing of elections, heartbeats and the lease.
struct RaftTiming {
  /// A follower campaigns after a random time in [min, max) without hearing from a leader. A
  /// leader steps down `election_timeout_min` after its lease start (check-quorum).
  Duration election_timeout_min{1000};
  Duration election_timeout_max{2000};
  /// A leader sends an Append (heartbeat) to each follower this often.
  Duration heartbeat_interval{100};
  /// Subtracted from the lease, for clock-rate differences between nodes (docs/consensus.md).
  Duration lease_margin{0};
  /// At most this many entries in one Append.
  std::size_t max_entries_per_append = 64;
  /// A node with 0 votes campaigns too, asking the voters that have votes (it never counts
  /// itself). For the disk-only quorum (docs/quorum-disk.md): every node has 0 votes, the disk
  /// alone votes, and the node that wins the disk's vote, by holding its reservation, leads.
  bool zero_vote_candidacy = false;
};

/// Whether the configuration is usable: timeouts ordered, heartbeat shorter than the election
/// timeout, `self` a member, at least one vote in total.
Result<void> validate_raft_settings(NodeId self, const VoterMap& voters, const RaftTiming& timing);

/// What is visible about a node from outside: role, term, leader.
struct RaftStatus {
  RaftRole role = RaftRole::Follower;
  Term term = 0;
  std::optional<NodeId> leader;
  friend bool operator==(const RaftStatus&, const RaftStatus&) = default;
};

/// The output of the core since the previous ready(). The shell must handle it in this order:
/// 1. persist `snapshot` (it replaces the stored snapshot and the whole stored log), then
///    `entries` (first discard stored entries with index >= entries.front().index), then
///    `hard_state`, durably;
/// 2. send `messages` (only now: a vote is never answered before it is on disk);
/// 3. restore the state machine from `snapshot` if set, then apply `committed` in order.
struct RaftReady {
  /// A snapshot received from the leader: persist (replacing log and snapshot), then restore.
  std::optional<Snapshot> snapshot;
  /// Log entries to persist, consecutive; they replace stored entries from their first index on.
  std::vector<Entry> entries;
  /// Term, vote and commit index to persist, when they changed.
  std::optional<HardState> hard_state;
  /// Messages to send once the above is durable.
  std::vector<Message> messages;
  /// Newly committed entries to apply, in order.
  std::vector<Entry> committed;
  /// Set when role, term or leader changed.
  std::optional<RaftStatus> status;

  /// True when there is nothing to do.
  bool empty() const;
};

/// Small deterministic random number generator (splitmix64): the same seed gives the same
/// elections on every platform, so a simulator failure replays exactly.
class SplitMix64 {
 public:
  /// Seeds the generator.
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  /// The next 64 random bits.
  std::uint64_t next();
  /// Uniform in [0, bound) (bound > 0; bias negligible for small bounds).
  std::uint64_t below(std::uint64_t bound) { return next() % bound; }

 private:
  std::uint64_t state_;
};

/// One member of the consensus group. Passive: it only changes inside its input methods.
class RaftNode {
 public:
  /// A node `self` of the group `voters`, restarted from `persisted` (empty for a new node) at
  /// time `now`. `seed` drives the randomized election timeouts. The settings must have passed
  /// validate_raft_settings. A restarted node refuses votes for `election_timeout_min` after
  /// `now`, as it may have promised a lease to a leader before it went down.
  RaftNode(NodeId self, VoterMap voters, RaftTiming timing, PersistentState persisted, MonoTime now,
           std::uint64_t seed);

  /// Advances the node's clock to `now` and fires what is due: campaign, heartbeat, step-down.
  /// Call it before step() with the current time too: step() uses the time of the last tick.
  void tick(MonoTime now);
  /// Handles one message addressed to this node. Messages from strangers are ignored.
  void step(const Message& message);
  /// Appends an entry with payload `data` and tag `type` (not kEntryNoop) to the log; leader only.
  /// Returns its index; committed once it comes back in RaftReady::committed with that index
  /// and the term of this call (a new leader may have replaced it). Fails on a non-leader, naming
  /// the leader it knows.
  Result<Index> propose(std::uint16_t type, Bytes data);
  /// Starts an election now (with pre-vote) instead of waiting for the timeout.
  void campaign();
  /// Compacts the log: the state machine's state `data` as of applied entry `index` becomes the
  /// snapshot; entries up to `index` are dropped. Returns the snapshot for the shell to persist
  /// (store it, then drop stored entries up to its index).
  Result<Snapshot> compact(Index index, Bytes data);

  /// The output since the last call; see RaftReady for how to handle it.
  RaftReady ready();
  /// True when ready() would return something.
  bool has_ready() const;

  /// Role, term and known leader.
  RaftStatus status() const { return {role_, term_, leader_}; }
  /// This node's id.
  NodeId id() const { return self_; }
  /// The commit index.
  Index commit_index() const { return commit_; }
  /// Index of the last log entry (or of the snapshot when the log is empty).
  Index last_index() const;
  /// The earliest time tick() has something to do; the shell arms its timer here.
  MonoTime next_deadline() const;
  /// While leader: the time until which no other leader can have been elected (the lease), if a
  /// quorum has acknowledged this leader in this term. Reads served before it are linearizable
  /// and actions taken before it cannot overlap another leader's.
  std::optional<MonoTime> lease_expiry() const;

 private:
  struct Progress {
    Index match = 0;
    Index next = 1;
    bool probing = true;  // one Append at a time until a success shows where we are
    std::optional<std::uint64_t> acked_stamp;  // latest lease stamp echoed in this term
  };

  // Log access over snapshot + entries.
  Index first_index() const { return snapshot_.index + 1; }
  std::optional<Term> term_at(Index index) const;
  Term last_term() const;
  bool log_up_to_date(Index last_index, Term last_term) const;
  void append_local(std::vector<Entry> entries);
  void truncate_and_append(const std::vector<Entry>& entries);

  // Role changes, each resetting what belongs to the role.
  void become_follower(Term term, std::optional<NodeId> leader);
  void become_pre_candidate();
  void become_candidate();
  void become_leader();
  void reset_election_timer();
  void set_term(Term term);
  void set_vote(std::optional<NodeId> vote);

  // Message handling.
  bool step_term(const Message& m);
  void step_vote_request(const Message& m);
  void step_vote_response(const Message& m);
  void heard_from_leader(NodeId leader);
  void step_append(const Message& m);
  void step_snapshot(const Message& m);
  void step_append_response(const Message& m);
  void reply_append(const Message& request, bool reject, Index hint);
  Message& send(MessageType type, NodeId to);  // queued, from us in our term

  // Leader duties.
  void broadcast_append();
  void send_append(NodeId to);
  void maybe_commit();
  void commit_to(Index index);
  std::optional<std::uint64_t> lease_start() const;
  Duration lease_length() const;
  MonoTime check_quorum_deadline() const;
  bool in_lease() const;

  // Elections.
  void request_votes(MessageType type, Term term);
  std::uint64_t weight(NodeId id) const;
  bool is_quorum(std::uint64_t votes) const { return 2 * votes > total_votes_; }
  bool may_campaign() const { return weight(self_) > 0 || timing_.zero_vote_candidacy; }

  NodeId self_;
  VoterMap voters_;
  std::uint64_t total_votes_ = 0;
  RaftTiming timing_;
  SplitMix64 rng_;

  // Persistent state, mirrored in memory.
  Term term_ = 0;
  std::optional<NodeId> vote_;
  Snapshot snapshot_;
  std::vector<Entry> log_;  // entries after snapshot_.index
  Index commit_ = 0;

  // Volatile state.
  RaftRole role_ = RaftRole::Follower;
  std::optional<NodeId> leader_;
  Index applied_ = 0;  // handed out in a Ready
  MonoTime now_;
  MonoTime election_deadline_;
  MonoTime heartbeat_deadline_;
  MonoTime leader_contact_;  // last time a leader spoke to us (or our start): votes wait after it
  MonoTime became_leader_at_;
  std::map<NodeId, bool> votes_received_;  // this election: id -> granted
  std::map<NodeId, Progress> progress_;    // leader only, every member but self

  // Pending output.
  std::optional<Snapshot> ready_snapshot_;
  std::vector<Entry> ready_entries_;
  std::vector<Message> ready_messages_;
  HardState persisted_hard_;
  RaftStatus reported_status_;
};

}  // namespace clusterd
