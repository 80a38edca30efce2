// The cluster service: membership, consensus, coordinator and node agent of one node, wired on
// the daemon's sd-event loop (docs/membership.md). It owns the heartbeats, the peer transport,
// the Raft node and its storage, the replicated ClusterState and the quorum guard, and drives the
// local ResourceManager from the committed placement records.
#pragma once

#include <systemd/sd-event.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "authkey.h"
#include "bus_view.h"
#include "cluster_state.h"
#include "config.h"
#include "error.h"
#include "event_history.h"
#include "heartbeat_socket.h"
#include "join_rule.h"
#include "peer_transport.h"
#include "qdisk_link.h"
#include "quorum_guard.h"
#include "raft.h"
#include "raft_storage.h"
#include "resource_manager.h"

namespace clusterd {

/// Peer transport message types of the cluster service.
enum class PeerType : std::uint16_t {
  Raft = 1,     ///< Oneway: a Raft message.
  Report = 2,   ///< Request: a node's report about a group, to the leader.
  Command = 3,  ///< Request: an administrator command forwarded to the leader.
  Echo = 4,     ///< Oneway: newest heartbeat sequence heard from the receiver.
  Sync = 5,     ///< Request: the leader's commit index (a node catching up before it acts).
};

/// What the cluster service needs from the daemon.
struct ClusterContext {
  sd_event* loop = nullptr;
  std::string node;       ///< This node's name.
  std::string state_dir;  ///< Raft state, incarnation.
  ConfigPtr config;       ///< The configuration the daemon started with.
  ResourceManager* manager = nullptr;
  EventHistory* history = nullptr;
  /// Applies a committed configuration (YAML text) locally; an error when it does not parse.
  std::function<Result<void>(const std::string& yaml)> apply_config;
};

/// One node's membership and consensus, coordinator when elected.
class ClusterService {
 public:
  /// Loads the key and Raft state, opens the sockets and starts heartbeats and Raft.
  static Result<std::unique_ptr<ClusterService>> start(ClusterContext context);
  ~ClusterService();
  ClusterService(const ClusterService&) = delete;
  ClusterService& operator=(const ClusterService&) = delete;

  /// A local group changed state (ResourceManager change listener).
  void on_local_change();
  /// A local group failed past its restart policy (ResourceManager group-failed listener).
  void on_group_failed(const std::string& group);
  /// The configuration in use changed (applied locally).
  void set_config(ConfigPtr config) { config_ = std::move(config); }
  /// Clean shutdown, once every group is offline: releases the quorum disk if this node holds
  /// it (so the next holder need not outwait a challenge), then sends the leaving heartbeat:
  /// peers drop this node at once.
  void leave();

  /// Sends `command` to the coordinator (here when this node leads); the result sentence.
  /// move/online/offline are answered once the coordinator decided them (accepted: what it
  /// does; refused: why); `done` may run inside this call or later from the loop.
  void submit(ClusterCommand command, std::function<void(Result<std::string>)> done);

  /// Every node with its state (up, down, paused, draining, joining).
  std::vector<NodeView> nodes() const;
  /// Groups as the cluster sees them: local status, with owner and state from the committed
  /// records for groups running elsewhere.
  std::vector<GroupStatus> groups(std::vector<GroupStatus> local) const;
  /// Term, coordinator, quorum, counters and per-node details for `clusterctl nodes --json`.
  nlohmann::json describe() const;
  /// The failover timelines (oldest first).
  nlohmann::json timelines() const;
  /// The committed state.
  const ClusterState& state() const { return state_; }
  /// Whether this node leads.
  bool leading() const { return raft_->status().role == RaftRole::Leader; }

 private:
  explicit ClusterService(ClusterContext context);
  Result<void> open(const ClusterKeys& keys, std::uint64_t incarnation);
  Result<void> start_timer();
  void register_handlers();

  // Consensus.
  void on_raft_message(const PeerMessage& message);
  void process_ready();
  void apply_committed(const Entry& entry);
  void restore(const Snapshot& snapshot);
  void take_committed_config();
  void note_detections();
  void maybe_compact();
  void on_status(const RaftStatus& status);
  Result<Index> propose(EntryType type, Bytes data);

  // Membership.
  void on_detector_event(const DetectorEvent& event);
  void on_echo(const PeerMessage& message);
  NodeState node_state(const NodeConfig& node) const;
  CatchUpFacts catch_up_facts() const;
  void update_join();
  void publish_status();
  void note_node_states(MonoTime now);
  bool heard_by_anyone(std::uint8_t node) const;
  /// Keeps unheard_since_: since when nobody we hear hears each node (while we reach a quorum).
  void note_unheard(MonoTime now);
  /// The down nodes whose groups may start elsewhere now (unheard for at least W).
  std::set<std::string> safe_nodes(MonoTime now);
  std::uint8_t id_of(const std::string& name) const;
  std::string name_of(std::uint8_t id) const;

  // Coordinator.
  void coordinate();
  PlacementInput placement_input(MonoTime now);
  void on_report_request(const PeerMessage& message, PeerReply reply);
  void on_command_request(const PeerMessage& message, PeerReply reply);
  void on_sync_request(const PeerMessage& message, PeerReply reply);
  void sync();
  bool current() const;
  using Answer = std::function<void(Result<std::string>)>;
  void execute(const ClusterCommand& command, Answer done);
  Result<std::string> execute_admin(const ClusterCommand& command);
  void answer_requests(const std::vector<PlacementAction>& actions);
  void drop_requests(const std::string& why);

  // Node agent.
  void reconcile();
  void report(const std::string& group, GroupPhase phase);
  void check_quorum(MonoTime now);
  /// `why` empty: the quorum guard's own reason.
  void self_fence(MonoTime now, const std::string& why = {});
  void kill_leftovers();
  void remove_leftover_addresses();

  void tick();
  /// Runs tick() on the loop's next iteration (an event that may change a decision).
  void poke();
  /// Arms the timer for the earliest deadline after `now` (housekeeping at the latest).
  void arm_timer(MonoTime now);
  MonoTime next_wakeup(MonoTime now) const;
  /// Brings the timer forward to `at` if it is armed later.
  void wake_by(MonoTime at);
  void on_frame(const HeartbeatFrame& frame);
  void send_echo(std::uint8_t node, std::uint64_t sequence);
  static int on_timer(sd_event_source* source, uint64_t usec, void* userdata) noexcept;
  void record(const std::string& kind, const std::string& group, const std::string& reason);
  void record_node(const std::string& node, const std::string& from, const std::string& to);
  Duration detection() const { return config_->heartbeat.interval * config_->heartbeat.misses; }

  // The quorum disk voter (docs/quorum-disk.md; cluster_service.cc, "The quorum disk voter").
  Result<void> start_disk(std::uint8_t self);
  Result<void> merge_disk_checkpoint(const DiskVoterState& disk);
  void catch_up_from_disk(const DiskVoterState& disk);
  void add_disk_voter(VoterMap& voters, std::map<std::uint8_t, std::uint32_t>& votes) const;
  void send_to_disk(const Message& message);
  void on_disk_frame(const QdiskFrame& frame);
  void on_disk_lost(const std::string& reason);
  void on_disk_ready(const RaftReady& ready);
  void send_disk_facts();
  void release_disk();
  void check_disk_slot(const QdiskRecord& record);
  /// The disk's votes counted for us now (held and confirmed within the stop delay), and in all.
  std::pair<std::uint64_t, std::uint64_t> disk_votes(MonoTime now) const;
  nlohmann::json describe_disk(MonoTime now) const;

  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  ///< For callbacks that outlive us.
  ClusterContext context_;
  ConfigPtr config_;
  std::unique_ptr<HeartbeatService> heartbeats_;
  std::unique_ptr<PeerTransport> transport_;
  std::optional<RaftStorage> storage_;
  std::unique_ptr<RaftNode> raft_;
  std::unique_ptr<QuorumGuard> guard_;
  ClusterState state_;
  EventSourcePtr timer_;
  /// Per peer: the incarnation and sequence last echoed, and what it last said it hears.
  struct PeerSeen {
    std::uint64_t incarnation = 0;
    std::uint64_t sequence = 0;
    NodeSet hears;
  };
  std::map<std::uint8_t, PeerSeen> seen_;

  // Coordinator state (leader only).
  std::optional<std::pair<Term, Index>> inflight_;  ///< Proposal not yet applied.
  std::optional<Index> term_start_;                 ///< Index of this term's no-op while leading.
  std::vector<PlacementRequest> requests_;
  std::vector<Answer> request_answers_;  ///< One per request: called once it is decided.
  std::map<std::string, MonoTime> unheard_since_;  ///< Down nodes: when nobody heard them.
  std::map<std::uint8_t, MonoTime> detected_;      ///< When a node was detected unreachable.
  MonoTime term_began_;                            ///< When this node last became leader.

  // Membership state as shown (docs/membership.md, "Joining").
  HeartbeatStatus hb_status_;  ///< What our heartbeats say: term, coordinator, version, flags.
  bool joined_ = false;        ///< Caught up since this daemon started or last fenced itself.
  std::map<std::string, NodeState> shown_;           ///< Each node's state, last recorded.
  std::map<std::string, MonoTime> joining_since_;    ///< Nodes joining now: since when.

  // Agent state.
  std::map<std::string, std::uint64_t> started_epoch_;
  struct Reported {
    std::uint64_t epoch = 0;
    GroupPhase phase = GroupPhase::Offline;
    MonoTime at;
  };
  std::map<std::string, Reported> reported_;
  std::set<std::string> failed_;  ///< Groups the manager reported failed, not yet reported.
  bool fenced_ = false;
  /// The leader's commit index when we (re)joined: nothing is started from the committed state
  /// before it is applied here, so a stale record never starts a group that moved meanwhile.
  std::optional<Index> sync_index_;
  bool sync_pending_ = false;
  std::optional<MonoTime> kill_at_;
  /// A self-stop is due but waits until then for the echo of a fresh heartbeat.
  std::optional<MonoTime> fence_grace_;
  std::string fence_reason_;

  // The quorum disk voter (disk modes only).
  std::unique_ptr<QdiskLink> qdisk_;
  QdiskRecord disk_record_;                ///< As the arbiter last reported it.
  bool disk_held_ = false;                 ///< Our arbiter holds the disk.
  std::string disk_taken_;                 ///< How our arbiter last won the disk.
  std::optional<MonoTime> disk_confirmed_; ///< Send time of the last confirming check.
  std::optional<QdiskFacts> disk_facts_;   ///< As last sent.
  Index disk_checkpoint_ = 0;              ///< Applied index last sent as the checkpoint.
  Term applied_term_ = 0;                  ///< Term of the entry at state_.applied.
};

}  // namespace clusterd
