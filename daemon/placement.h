// The placement engine: where every resource group runs, decided by the coordinator as a pure
// function over plain data (architecture rule 1), in the spirit of pacemaker's scheduler. The
// shell around it turns membership, reports and administrator requests into a PlacementInput,
// commits the returned actions through Raft and sends the starts and stops to the nodes.
//
// Safety (architecture rule 5): a group has one placement record, and decide() starts a group
// only when that record says it runs nowhere (offline, failed there, or its owner was lost and
// is confirmed safe). A move is a stop on the old owner and, only once that owner reports the
// group offline, a start on the new one: never two owners. See docs/placement.md.
#pragma once

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "clock.h"
#include "config.h"

namespace clusterd {

/// A node as the coordinator sees it (MSCS node states plus drain and join).
enum class NodeState {
  Up,        ///< Member; may own groups.
  Down,      ///< Not a member (lost or never joined); its groups need recovery.
  Paused,    ///< Member; keeps its groups but takes no new ones (MSCS "paused").
  Draining,  ///< Member; takes no new groups and moves its groups away (WSFC "drain roles").
  Joining,   ///< Joining the membership; not yet allowed to own anything.
};
inline constexpr int kNodeStateCount = 5;
/// "up", "down", "paused", "draining", "joining".
const char* to_string(NodeState state);

/// Where a group is in its life on the cluster.
enum class GroupPhase {
  Offline,   ///< Runs nowhere.
  Starting,  ///< Being brought online on `node`.
  Online,    ///< Online on `node`.
  Stopping,  ///< Being taken offline on `node` (then started on `target`, when set).
  Failed,    ///< Failed past its restart policy: on `node` (awaiting the coordinator), or for
             ///< good when `node` is empty (MSCS: stays failed until an administrator acts).
};
inline constexpr int kGroupPhaseCount = 5;
/// "offline", "starting", "online", "stopping", "failed".
const char* to_string(GroupPhase phase);

/// What the administrator last asked for a group (MSCS PersistentState).
enum class GroupIntent {
  Auto,     ///< Nothing asked: online when `autostart` says so.
  Online,   ///< Brought online by request: keep it online.
  Offline,  ///< Taken offline by request: keep it offline.
};
inline constexpr int kGroupIntentCount = 3;
/// "auto", "online", "offline".
const char* to_string(GroupIntent intent);

/// Why an action (or a phase) came about.
enum class PlacementCause {
  Autostart,       ///< The group should run and runs nowhere.
  OnlineRequest,   ///< Administrator: online GROUP.
  OfflineRequest,  ///< Administrator: offline GROUP.
  MoveRequest,     ///< Administrator: move GROUP [NODE].
  Failover,        ///< The group failed on its node past its restart policy.
  NodeLoss,        ///< The group's node left the membership.
  Failback,        ///< A more preferred owner is available again.
  Drain,           ///< The group's node is draining.
  QuorumLoss,      ///< This partition has no quorum.
  NotPossible,     ///< The group's node is no longer one of its possible owners.
  Removed,         ///< The group is no longer in the configuration.
  Threshold,       ///< The failover threshold is reached within its period.
  NoNode,          ///< No allowed node is available.
};
inline constexpr int kPlacementCauseCount = 13;
/// "autostart", "online-request", ..., "no-node" (used in golden files and logs).
const char* to_string(PlacementCause cause);

/// A group's placement, as committed in the replicated state.
struct PlacementRecord {
  GroupPhase phase = GroupPhase::Offline;
  /// Starting/Online/Stopping: the owner. Failed: where it failed (empty once failed for good).
  std::string node;
  /// Stopping, then Offline: the node chosen to start it next (a move); empty: none chosen.
  std::string target;
  /// Why the group entered this phase (kept from Starting to Online, from Stopping to Offline).
  PlacementCause cause = PlacementCause::Autostart;
  GroupIntent intent = GroupIntent::Auto;
  /// When the phase began (for display and the shell's own deadlines; decide() ignores it).
  MonoTime since;
  friend bool operator==(const PlacementRecord&, const PlacementRecord&) = default;
};

/// What the placement engine remembers: a record per group and the times of past failovers.
struct PlacementState {
  std::map<std::string, PlacementRecord> records;  ///< Missing: offline, intent auto.
  std::map<std::string, std::vector<MonoTime>> failovers;
  friend bool operator==(const PlacementState&, const PlacementState&) = default;
};

/// The membership as the coordinator sees it.
struct ClusterView {
  std::map<std::string, NodeState> nodes;  ///< Missing: down.
  bool maintenance = false;                ///< Freeze automatic decisions; only requests act.
  bool quorate = true;                     ///< false: this partition must stop every group at once.
};

enum class RequestKind { Move, Online, Offline };
inline constexpr int kRequestKindCount = 3;
/// "move", "online", "offline".
const char* to_string(RequestKind kind);

/// An administrator request (clusterctl move/online/offline).
struct PlacementRequest {
  RequestKind kind = RequestKind::Online;
  std::string group;
  std::string node;  ///< Move only: the destination; empty: the best other node.
};

/// Everything decide() looks at.
struct PlacementInput {
  ConfigPtr config;
  ClusterView view;
  PlacementState state;
  std::vector<PlacementRequest> requests;  ///< Each is answered (acted on or refused) once.
  /// Lost nodes confirmed safe: fenced, or past their self-stop deadline (the caller decides).
  std::set<std::string> safe_nodes;
  MonoTime now;  ///< For failover periods.
  int hour = 0;  ///< Local hour of the day, 0..23, for failback windows.
};

enum class ActionKind {
  Start,           ///< Bring `group` online on `node`.
  Stop,            ///< Take `group` offline on `node`; then start it on `target` when set.
  MarkOffline,     ///< The group runs nowhere now (its lost owner is safe, or it failed).
  MarkFailed,      ///< The group stays failed until an administrator acts.
  RecordFailover,  ///< Count a failover of `group` away from `node` (FailoverThreshold).
  SetIntent,       ///< Remember the administrator's online/offline wish (`intent`).
  Wait,            ///< Nothing can be done yet; the reason says why.
  Refuse,          ///< Request number `request` is refused; the reason says why.
};
inline constexpr int kActionKindCount = 8;
/// "start", "stop", "mark-offline", "mark-failed", "record-failover", "set-intent", "wait",
/// "refuse".
const char* to_string(ActionKind kind);

/// One decision. Every action carries a one-sentence reason for logs and clusterctl.
struct PlacementAction {
  ActionKind kind = ActionKind::Wait;
  std::string group;
  std::string node;
  std::string target;
  PlacementCause cause = PlacementCause::Autostart;
  GroupIntent intent = GroupIntent::Auto;  ///< SetIntent only.
  int request = -1;  ///< Index into PlacementInput::requests when answering one, else -1.
  std::string reason;
  friend bool operator==(const PlacementAction&, const PlacementAction&) = default;
};

/// The actions for `input`: requests first (in order), then each group in configuration order.
/// Deterministic; applying the actions and the owners' reports converges (no flapping).
std::vector<PlacementAction> decide(const PlacementInput& input);

/// The state the coordinator commits for `actions` issued at `now`: Start -> starting, Stop ->
/// stopping, MarkOffline/MarkFailed, intents, failover times. Reports from the nodes (online,
/// offline, failed) are applied by the caller.
void apply_actions(const std::vector<PlacementAction>& actions, MonoTime now,
                   PlacementState& state);

/// What a node reports about a group it was asked to start or stop, applied to the record:
/// Online ends Starting, Offline ends Stopping (the chosen target and the cause are kept for
/// the start that follows), Failed means every resource of the group is offline or failed
/// there and nothing of it runs (the engine's contract). A report from a node that does not
/// own the group is stale and ignored; returns whether it was applied.
bool apply_report(const std::string& group, const std::string& node, GroupPhase reported,
                  MonoTime now, PlacementState& state);

/// "start web on node2 (failover)", "stop web on node1 for node2 (failback)",
/// "refuse move web node9: <reason>": the short form used by golden files.
std::string format_action(const PlacementAction& action, const PlacementInput& input);

/// The nodes allowed to own `group`, best first: preferred owners in order, then the other
/// possible owners in configuration order. Only nodes in the configuration are listed.
std::vector<std::string> owner_order(const Config& config, const GroupConfig& group);

/// Whether `hour` (0..23) lies inside the failback window [start, end), which may wrap past
/// midnight; an empty window (start == end) contains no hour.
bool in_failback_window(const FailbackPolicy& policy, int hour);

}  // namespace clusterd
