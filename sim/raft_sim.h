// Deterministic simulator for the consensus core: N real RaftNodes on virtual time, a simulated
// network that drops, delays, duplicates, reorders and partitions, crashes and restarts from
// exactly what was persisted. Every message goes through the wire encoding. After every event
// it checks the safety properties; a scenario's seed replays it exactly.
//
// A state machine sits on top of each node (StateMachine): today a checksum of the applied
// history, later the placement engine.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "raft.h"

namespace clusterd::sim {

/// The replicated state machine on one node. Called in log order, from committed entries only.
class StateMachine {
 public:
  virtual ~StateMachine() = default;
  /// Applies one committed entry (no-ops included).
  virtual void apply(const Entry& entry) = 0;
  /// Replaces the state with a snapshot taken by snapshot() on some node.
  virtual void restore(const Bytes& snapshot) = 0;
  /// The state as bytes, for compaction.
  virtual Bytes snapshot() const = 0;
};

/// Test state machine: counts entries and chains a hash over them, so two nodes that applied
/// different histories end up with different states.
class ChecksumStateMachine : public StateMachine {
 public:
  void apply(const Entry& entry) override;
  void restore(const Bytes& snapshot) override;
  Bytes snapshot() const override;
  /// Entries applied (including those inside a restored snapshot).
  std::uint64_t count() const { return count_; }
  /// Hash chained over every applied entry.
  std::uint64_t digest() const { return digest_; }

 private:
  std::uint64_t count_ = 0;
  std::uint64_t digest_ = 0;
};

/// Chains `entry` into `digest` (what ChecksumStateMachine does per entry).
std::uint64_t chain_digest(std::uint64_t digest, const Entry& entry);

/// Network behaviour for messages between connected nodes.
struct NetworkFaults {
  double drop = 0;       ///< probability a message is lost
  double duplicate = 0;  ///< probability a message is delivered twice
  Duration min_delay{1};
  Duration max_delay{10};  ///< uniform delay: messages overtake each other (reordering)
};

/// The simulated cluster.
struct SimConfig {
  std::uint64_t seed = 1;
  /// Voters (ids and votes); every voter is a simulated node.
  VoterMap voters{{1, 1}, {2, 1}, {3, 1}};
  RaftTiming timing{.election_timeout_min = Duration(100),
                    .election_timeout_max = Duration(200),
                    .heartbeat_interval = Duration(20),
                    .lease_margin = Duration(0),
                    .max_entries_per_append = 16};
  NetworkFaults faults;
  /// A node compacts its log when this many entries were applied since its snapshot.
  std::uint64_t compact_every = 20;
  /// Timers fire up to this late (event-loop scheduling slop).
  Duration timer_slop{2};
  /// Keep every trace line instead of the most recent ones.
  bool full_trace = false;
  /// Builds a node's state machine; ChecksumStateMachine when empty.
  std::function<std::unique_ptr<StateMachine>()> make_state_machine;
};

/// The simulation. Scripted use: call the fault methods and run_for()/run_until() in between;
/// a safety violation stops the run and is reported by failure().
class Simulation {
 public:
  /// Starts every node (empty storage) at virtual time 0.
  explicit Simulation(SimConfig config);
  ~Simulation();
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;

  /// Virtual time since the start.
  Duration elapsed() const;
  /// Runs events for `d` of virtual time (less if a safety check fails).
  void run_for(Duration d);
  /// Runs until `done()` holds (checked after each event) or `limit` passes; true if it held.
  bool run_until(const std::function<bool()>& done, Duration limit);

  /// Splits the network into `groups`; nodes in no group are cut off from everyone.
  void partition(const std::vector<std::vector<NodeId>>& groups);
  /// Cuts `id` off from everyone.
  void isolate(NodeId id);
  /// Cuts the link between `a` and `b` only (partial partitions: a may still reach c, and c b).
  void cut(NodeId a, NodeId b);
  /// Connects everyone.
  void heal();
  /// Sets drop/duplicate/delay behaviour.
  void set_faults(const NetworkFaults& faults);
  /// Stops node `id` at once; what it had persisted survives.
  void crash(NodeId id);
  /// Starts node `id` again from exactly what it persisted.
  void restart(NodeId id);
  /// True if `id` is running.
  bool is_up(NodeId id) const;

  /// Proposes a command with payload `data` on node `id`.
  Result<Index> propose(NodeId id, Bytes data);
  /// The running node that believes it leads in the highest term, if any.
  std::optional<NodeId> leader() const;
  /// The core of a running node (nullptr when down).
  const RaftNode* node(NodeId id) const;
  /// The state machine of a running node (nullptr when down).
  const StateMachine* state_machine(NodeId id) const;
  /// True if node `id` is up and applied an entry whose payload is `data`.
  bool applied(NodeId id, const Bytes& data) const;
  /// Virtual time at which `id` last changed role (for bounds on step-down).
  Duration last_role_change(NodeId id) const;
  /// Ids of all voters.
  std::vector<NodeId> ids() const;
  /// Seeded randomness shared with scenario scripts (so the script replays with the seed).
  SplitMix64& rng() { return rng_; }

  /// Empty while every check passed; else the first violation.
  const std::string& failure() const { return failure_; }
  /// The trace (the most recent lines unless full_trace).
  std::vector<std::string> trace() const { return {trace_.begin(), trace_.end()}; }
  /// Appends a line to the trace.
  void note(const std::string& line);
  /// Counters: "events", "messages", "dropped", "elections", "applied".
  const std::map<std::string, std::uint64_t>& stats() const { return stats_; }

 private:
  struct Node;
  struct Event {
    Usec at = 0;
    std::uint64_t seq = 0;  // ties broken by scheduling order: deterministic
    std::function<void()> run;
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  void schedule(Usec at, std::function<void()> run);
  bool run_one(Usec limit);
  MonoTime clock_of(const Node& n) const;
  bool connected(NodeId a, NodeId b) const;
  void set_link(NodeId a, NodeId b, bool up);
  void check_leaders_step_down();
  void transmit(const Message& m);
  void deliver(NodeId to, const Bytes& bytes);
  void on_tick(NodeId id, std::uint64_t generation);
  void drain(Node& n);
  void persist(Node& n, const RaftReady& r);
  void apply(Node& n, const RaftReady& r);
  void maybe_compact(Node& n);
  void check_entry(Node& n, const Entry& e);
  void check_state(Node& n);
  void check_status(Node& n, const RaftStatus& s);
  void check_leases();
  void arm_timer(Node& n);
  void violation(const std::string& what);
  Node& at(NodeId id);
  const Node& at(NodeId id) const;

  SimConfig config_;
  SplitMix64 rng_;
  Usec now_ = 0;
  std::uint64_t next_seq_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::map<NodeId, std::unique_ptr<Node>> nodes_;
  std::set<std::pair<NodeId, NodeId>> cut_;  // links that are down, (lower id, higher id)
  NetworkFaults faults_;

  // What the checks remember.
  std::vector<Entry> history_;          // the one committed history, index i at [i - 1]
  std::vector<std::uint64_t> digests_;  // ChecksumStateMachine digest after entry i at [i]
  std::map<Term, NodeId> leaders_;
  std::map<std::pair<NodeId, Term>, NodeId> votes_;

  std::string failure_;
  std::deque<std::string> trace_;
  std::map<std::string, std::uint64_t> stats_;
};

/// A random scenario: chaos (partitions, crashes, loss, duplication) for `chaos`, then a quorum
/// is connected on a clean network and must elect a leader and commit within `settle`.
struct ScenarioOptions {
  std::uint64_t seed = 1;
  int nodes = 5;
  /// Give voters random weights 1..3 (quorum by votes) instead of one vote each.
  bool weighted = false;
  Duration chaos{2000};
  Duration settle{3000};
  bool full_trace = false;
};

/// The outcome of one scenario.
struct ScenarioResult {
  bool ok = true;
  std::string failure;
  std::vector<std::string> trace;
  std::map<std::string, std::uint64_t> stats;
};

/// Runs one random scenario; the same options give the same run.
ScenarioResult run_scenario(const ScenarioOptions& options);

}  // namespace clusterd::sim
