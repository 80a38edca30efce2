// The replicated state machine of the cluster: what Raft commits and every node applies in the
// same order (docs/membership.md). Pure data and a deterministic apply(); entries and snapshots
// are JSON (the state is small).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "clock.h"
#include "error.h"
#include "placement.h"
#include "raft_message.h"

namespace clusterd {

/// Tags of the state machine's Raft entries (kEntryNoop = 0 belongs to the core).
enum class EntryType : std::uint16_t {
  Placement = 1,  ///< Actions decided by the coordinator.
  Report = 2,     ///< A node's report about a group it was told to start or stop.
  Config = 3,     ///< A new configuration version with its YAML text.
  Admin = 4,      ///< Node pause/drain/resume, maintenance mode.
  Timeline = 5,   ///< One phase of a failover or move, with its time.
};

/// Administrator flags of a node.
enum class NodeFlag { None, Paused, Draining };
inline constexpr int kNodeFlagCount = 3;
/// "none", "paused", "draining".
const char* to_string(NodeFlag flag);

/// One phase of a failover or a move, as recorded (wall clock, for people).
struct TimelinePhase {
  std::string phase;  ///< "detected", "view-installed", "decided", "safe", "offline", "online"...
  std::string node;   ///< The node the phase concerns.
  Usec at_wall_usec = 0;
  friend bool operator==(const TimelinePhase&, const TimelinePhase&) = default;
};

/// The phases of one failover or move of a group.
struct Timeline {
  std::uint64_t id = 0;  ///< Raft index of the entry that opened it.
  std::string group;
  std::string cause;  ///< to_string(PlacementCause) of the decision.
  std::vector<TimelinePhase> phases;
  friend bool operator==(const Timeline&, const Timeline&) = default;
};

/// Everything the cluster agrees on.
struct ClusterState {
  std::uint64_t config_version = 0;  ///< 0: no configuration committed yet.
  std::string config_yaml;
  PlacementState placement;
  std::map<std::string, NodeFlag> admin;  ///< Missing: NodeFlag::None.
  bool maintenance = false;
  std::vector<Timeline> timelines;  ///< Oldest first, at most kMaxTimelines.
  /// Per group: Raft index of the entry that last changed its record (the record's epoch).
  std::map<std::string, std::uint64_t> epochs;
  Index applied = 0;
  friend bool operator==(const ClusterState&, const ClusterState&) = default;
};

/// How many failover timelines the state keeps.
inline constexpr std::size_t kMaxTimelines = 64;

/// A report from a node about a group (what `Report` entries carry).
struct GroupReport {
  std::string group;
  std::string node;
  GroupPhase phase = GroupPhase::Online;
  friend bool operator==(const GroupReport&, const GroupReport&) = default;
};

/// An administrator change (what `Admin` entries carry): a node flag, or maintenance.
struct AdminChange {
  std::string node;  ///< Empty: the change is `maintenance`.
  NodeFlag flag = NodeFlag::None;
  bool maintenance = false;
};

/// An administrator command for the coordinator.
struct ClusterCommand {
  std::string kind;   ///< "move", "online", "offline", "pause", "drain", "resume", "maintenance",
                      ///< "apply".
  std::string group;  ///< move/online/offline.
  std::string node;   ///< move destination; pause/drain/resume node.
  bool on = false;    ///< maintenance.
  std::string text;   ///< apply: the YAML.
};

/// Entry payloads.
Bytes encode_placement(const std::vector<PlacementAction>& actions, Usec wall_usec);
Bytes encode_report(const GroupReport& report, Usec wall_usec);
Bytes encode_config(std::uint64_t version, const std::string& yaml);
Bytes encode_admin(const AdminChange& change);
Bytes encode_timeline(const std::string& group, const TimelinePhase& phase);

/// Applies one committed entry. Malformed payloads are ignored with a returned error (every node
/// ignores the same entry, so the state stays the same everywhere). Returns what changed, as a
/// sentence for the event history, or "" when nothing did.
Result<std::string> apply_entry(ClusterState& state, const Entry& entry);

/// The whole state as snapshot bytes, and back.
Bytes encode_state(const ClusterState& state);
Result<ClusterState> decode_state(std::span<const std::uint8_t> bytes);

/// The record of `group` (offline/auto when none).
PlacementRecord record_of(const ClusterState& state, const std::string& group);

/// The microseconds of a wall-clock time, as the MonoTime the placement types carry: placement
/// times in the replicated state are wall clock so that they mean the same on every node.
inline MonoTime placement_time(Usec wall_usec) { return MonoTime{wall_usec}; }

}  // namespace clusterd
