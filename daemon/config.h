// The cluster model: one validated, immutable Config built from /etc/clusterd/cluster.yaml.
// Names and defaults follow MSCS/WSFC common properties (RestartThreshold, RestartPeriod,
// FailoverThreshold, FailoverPeriod, AutoFailbackType, LooksAlive/IsAlive poll intervals).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "clock.h"

namespace clusterd {

/// A place in a source file; 1-based, 0 when unknown.
struct SourcePos {
  int line = 0;
  int column = 0;
};

/// A parameter value from YAML: a scalar, a list of scalars or a map of scalars.
struct ParamValue {
  enum class Kind { Scalar, List, Map };
  Kind kind = Kind::Scalar;
  std::string scalar;
  std::vector<std::string> list;
  std::vector<std::pair<std::string, std::string>> map;  ///< In file order.
  SourcePos pos;

  friend bool operator==(const ParamValue& a, const ParamValue& b) {
    return a.kind == b.kind && a.scalar == b.scalar && a.list == b.list && a.map == b.map;
  }
};

/// Type-specific parameters of a resource ("params:" in YAML), by name.
using Params = std::map<std::string, ParamValue>;

/// MSCS restart policy of one resource: restart up to `threshold` times within `period`;
/// past that the resource fails, and fails its group when `affects_group`.
struct RestartPolicy {
  bool restart = true;                        ///< false: fail at the first failure.
  std::uint32_t threshold = 3;                ///< MSCS RestartThreshold default.
  Duration period = std::chrono::minutes(15); ///< MSCS RestartPeriod default (900 s).
  Duration delay = Duration(0);               ///< Wait before a restart.
  bool affects_group = true;                  ///< MSCS RestartAction "restart and fail over".
  friend bool operator==(const RestartPolicy&, const RestartPolicy&) = default;
};

/// Health checks: LooksAlive (cheap, frequent) and IsAlive (thorough, rare), as MSCS.
/// A zero interval disables that check.
struct MonitorPolicy {
  Duration looks_alive = std::chrono::seconds(5);  ///< MSCS LooksAlivePollInterval default.
  Duration is_alive = std::chrono::seconds(60);    ///< MSCS IsAlivePollInterval default.
  Duration timeout = std::chrono::seconds(20);     ///< Deadline for one check.
  friend bool operator==(const MonitorPolicy&, const MonitorPolicy&) = default;
};

/// Deadlines for start (online) and stop (offline).
struct ActionTimeouts {
  Duration start = std::chrono::seconds(20);
  Duration stop = std::chrono::seconds(20);
  friend bool operator==(const ActionTimeouts&, const ActionTimeouts&) = default;
};

/// One resource of a group.
struct ResourceConfig {
  std::string name;
  std::string type;                 ///< "process", "ocf", later "ip", "disk", "service", "name".
  std::string agent;                ///< ocf only: "heartbeat:Dummy" (provider:type) or a path.
  Params params;
  std::vector<std::string> depends; ///< Names of resources of the same group.
  MonitorPolicy monitor;
  ActionTimeouts timeouts;
  RestartPolicy restart;
  SourcePos pos;

  friend bool operator==(const ResourceConfig& a, const ResourceConfig& b) {
    return a.name == b.name && a.type == b.type && a.agent == b.agent && a.params == b.params &&
           a.depends == b.depends && a.monitor == b.monitor && a.timeouts == b.timeouts &&
           a.restart == b.restart;
  }
};

/// MSCS AutoFailbackType, plus the failback window (hours of the day, local time).
enum class FailbackMode { Never, Immediate, Window };

struct FailbackPolicy {
  FailbackMode mode = FailbackMode::Never;
  int window_start_hour = 0;  ///< Window mode: failback allowed from this hour ...
  int window_end_hour = 0;    ///< ... until this hour (may wrap past midnight).
  friend bool operator==(const FailbackPolicy&, const FailbackPolicy&) = default;
};

/// MSCS FailoverThreshold/FailoverPeriod: at most `threshold` failovers of the group within
/// `period`; past that the group stays failed.
struct FailoverPolicy {
  std::uint32_t threshold = 10;
  Duration period = std::chrono::hours(6);
  friend bool operator==(const FailoverPolicy&, const FailoverPolicy&) = default;
};

/// A resource group: the unit that moves between nodes.
struct GroupConfig {
  std::string name;
  std::vector<std::string> preferred_owners;  ///< In order of preference.
  std::vector<std::string> possible_owners;   ///< Empty: every node.
  bool autostart = true;  ///< Bring online when the cluster forms (or the daemon starts).
  FailoverPolicy failover;
  FailbackPolicy failback;
  std::vector<ResourceConfig> resources;
  SourcePos pos;

  /// The resource called `name`, or nullptr.
  const ResourceConfig* find(const std::string& name) const {
    for (const auto& r : resources)
      if (r.name == name) return &r;
    return nullptr;
  }
};

/// One cluster node.
struct NodeConfig {
  std::string name;
  std::uint32_t id = 0;     ///< 1..255, unique; part of reservation keys.
  std::uint32_t votes = 1;  ///< Quorum votes (0 or 1).
  std::map<std::string, std::string> addresses;  ///< Network name -> this node's address on it.
  SourcePos pos;
};

/// MSCS network roles: client access only, cluster (heartbeat) only, or both.
enum class NetworkRole { Client, Cluster, All };

struct NetworkConfig {
  std::string name;
  std::string subnet;  ///< CIDR, e.g. "192.168.10.0/24" or "fd00::/64".
  NetworkRole role = NetworkRole::All;
  std::string multicast_group;  ///< Heartbeat group; empty: derived default.
  std::uint16_t port = 5405;
  SourcePos pos;
};

enum class QuorumMode { NodeMajority, NodeAndDiskMajority, DiskOnly };

/// The quorum LUN (quorum.disk): one more voter in the disk modes (docs/quorum-disk.md). Its
/// iSCSI parameters mean what they mean for a disk resource.
struct QuorumDiskConfig {
  std::vector<std::string> portals;  ///< "host[:port]", tried in order.
  std::string target;                ///< Target IQN.
  int lun = 1;
  std::uint32_t votes = 1;  ///< The disk's votes in node-and-disk-majority (disk-only: the only ones).
  std::string initiator;    ///< Empty: the node's default initiator IQN.
  SourcePos pos;
  friend bool operator==(const QuorumDiskConfig& a, const QuorumDiskConfig& b) {
    return a.portals == b.portals && a.target == b.target && a.lun == b.lun &&
           a.votes == b.votes && a.initiator == b.initiator;
  }
};

struct QuorumConfig {
  QuorumMode mode = QuorumMode::NodeMajority;
  std::optional<QuorumDiskConfig> disk;  ///< Set exactly in the disk modes.
  SourcePos pos;
};

/// True for the modes in which the quorum disk votes.
inline bool uses_disk(QuorumMode mode) { return mode != QuorumMode::NodeMajority; }

struct HeartbeatConfig {
  Duration interval = Duration(100);
  std::uint32_t misses = 5;  ///< Unreachable after this many intervals without a frame.
};

/// Cluster-wide settings.
struct ClusterInfo {
  std::string name;
  std::uint32_t id = 0;  ///< 1..2^24-1; part of reservation keys and heartbeat frames.
  std::string authkey_path = "/etc/clusterd/authkey";
  std::string admin_group;  ///< Unix group allowed to make changes besides root; empty: root only.
};

/// The whole validated configuration. Immutable once built; shared by pointer.
struct Config {
  std::string source;  ///< File it came from, for messages.
  ClusterInfo cluster;
  std::vector<NodeConfig> nodes;
  std::vector<NetworkConfig> networks;
  QuorumConfig quorum;
  HeartbeatConfig heartbeat;
  std::vector<GroupConfig> groups;

  /// The group called `name`, or nullptr.
  const GroupConfig* find_group(const std::string& name) const {
    for (const auto& g : groups)
      if (g.name == name) return &g;
    return nullptr;
  }
  /// The node called `name`, or nullptr.
  const NodeConfig* find_node(const std::string& name) const {
    for (const auto& n : nodes)
      if (n.name == name) return &n;
    return nullptr;
  }
};

using ConfigPtr = std::shared_ptr<const Config>;

/// Canonical names for the enums (used in YAML, D-Bus and JSON).
const char* to_string(FailbackMode mode);
const char* to_string(NetworkRole role);
const char* to_string(QuorumMode mode);

/// Every value of each enum, in declaration order: what the loader accepts, and what the
/// completeness tests walk.
inline constexpr FailbackMode kFailbackModes[] = {FailbackMode::Never, FailbackMode::Immediate,
                                                  FailbackMode::Window};
inline constexpr NetworkRole kNetworkRoles[] = {NetworkRole::Client, NetworkRole::Cluster,
                                                NetworkRole::All};
inline constexpr QuorumMode kQuorumModes[] = {QuorumMode::NodeMajority,
                                              QuorumMode::NodeAndDiskMajority,
                                              QuorumMode::DiskOnly};

}  // namespace clusterd
