// The "joining" node state (docs/membership.md, "Joining"): when a node has caught up with the
// cluster, judged alike on every node from what each node announces in its heartbeats, and how
// long the coordinator holds its decisions for a node that is about to catch up. Pure.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "clock.h"
#include "heartbeat.h"
#include "cluster_state.h"
#include "placement.h"
#include "raft.h"

namespace clusterd {


/// What a node knows of its own progress, for caught_up().
struct CatchUpFacts {
  bool leader_known = false;        ///< It follows (or is) a coordinator of its current term.
  bool fenced = false;              ///< It fenced itself and no quorum confirmed it since.
  std::optional<Index> sync_index;  ///< The coordinator's last index, as answered to its sync.
  Index applied = 0;                ///< What it has applied.
};

/// Whether a node has caught up right now: it knows the coordinator of its term, that
/// coordinator answered its sync inside its lease, and it has applied up to the answer.
bool caught_up(const CatchUpFacts& facts);

/// Whether a node has joined: `joined` (so far) or caught up now. Once joined a node stays so
/// until it restarts or fences itself (the caller resets it then): a new election makes it
/// sync again before it acts, but it was a member all along and is not joining again.
bool joined(bool joined_so_far, const CatchUpFacts& facts);

/// The flags of this node's heartbeats: kHeartbeatJoining until it has joined.
std::uint8_t join_flags(bool joined);

/// What a node knows about one node (itself or a peer) to tell its state.
struct NodeFacts {
  bool self = false;
  bool reachable = false;  ///< Peers: heard within the timeout (ignored for self).
  bool joined = false;     ///< Self: joined(); peers: their newest frame lacks kHeartbeatJoining.
  NodeFlag admin = NodeFlag::None;
};

/// The rule every node applies: a peer it does not hear is down; a node that has not joined
/// is joining (whatever its admin flag: it may own nothing yet); else paused or draining when
/// so flagged, else up.
NodeState judge_node(const NodeFacts& facts);

/// Whether the coordinator should hold its decisions at `now`: some node is joining and has
/// been for less than `grace`, counted from when it was first seen joining or from the start
/// of the coordinator's term, whichever is later. `joining_since` maps each node now joining
/// to when it was first seen so. Without the hold a new coordinator would place every group
/// before the nodes that were heard all along had time to sync with it (one round trip), so
/// groups would start on less preferred nodes; with the bound a node stuck joining (a one-way
/// cut) does not stall the cluster.
bool hold_for_joining(const std::map<std::string, MonoTime>& joining_since, MonoTime term_start,
                      MonoTime now, Duration grace);

/// When that hold ends (the latest node's bound), nullopt when nobody is joining; the shell
/// arms its timer for it.
std::optional<MonoTime> joining_hold_end(const std::map<std::string, MonoTime>& joining_since,
                                         MonoTime term_start, Duration grace);

}  // namespace clusterd
