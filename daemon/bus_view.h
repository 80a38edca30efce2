// What the API shows: plain structs for nodes, groups, resources and events, shared by the
// daemon (which fills them) and clusterctl (which decodes and prints them), and their JSON form.
// The JSON keys are a contract with scripts and tests: see docs/dbus-api.md.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "clock.h"
#include "config.h"
#include "event_history.h"
#include "resource_manager.h"

namespace clusterd {

/// One node as the API shows it.
struct NodeView {
  std::string name;
  std::uint32_t id = 0;
  std::string state;  ///< "up" for the local node, "unknown" for the others (no membership yet).
  friend bool operator==(const NodeView&, const NodeView&) = default;
};

/// One resource as the API shows it.
struct ResourceView {
  std::string name;
  std::string type;
  std::string agent;
  std::string state;  ///< to_string(ResourceState).
  std::string reason;
  std::uint32_t restarts = 0;
  std::uint32_t pid = 0;  ///< 0 when there is no main process.
  Usec since_wall_usec = 0;
  std::string last_looks_alive;  ///< Last LooksAlive outcome, "" before the first.
  std::string last_is_alive;     ///< Last IsAlive outcome, "" before the first.
  std::string last_failure;      ///< Reason of the last failure, "" if none.
  friend bool operator==(const ResourceView&, const ResourceView&) = default;
};

/// One group as the API shows it.
struct GroupView {
  std::string name;
  std::string state;  ///< to_string(GroupState).
  std::string owner;  ///< Node running it, "" when nobody does.
  std::string reason;
  std::vector<ResourceView> resources;
  friend bool operator==(const GroupView&, const GroupView&) = default;
};

/// The whole picture: what `clusterctl status` prints.
struct StatusView {
  std::string cluster;
  std::string node;    ///< The node answering.
  std::string config;  ///< Source path of the running configuration.
  std::vector<NodeView> nodes;
  std::vector<GroupView> groups;
  friend bool operator==(const StatusView&, const StatusView&) = default;
};

/// The nodes of `config`; `local` is up, every other node unknown.
std::vector<NodeView> node_views(const Config& config, const std::string& local);
/// A group's status in API form.
GroupView group_view(const GroupStatus& status);
/// Every group's status in API form.
std::vector<GroupView> group_views(const std::vector<GroupStatus>& status);

/// {"name","id","state"}.
nlohmann::json to_json(const NodeView& node);
/// {"name","type","agent","state","reason","restarts","pid"}.
nlohmann::json to_json(const ResourceView& resource);
/// {"name","state","owner","reason","resources":[...]}.
nlohmann::json to_json(const GroupView& group);
/// {"cluster","node","config","nodes":[...],"groups":[...]}.
nlohmann::json to_json(const StatusView& status);
/// {"seq","time","kind","node","group","resource","from","to","reason"}.
nlohmann::json to_json(const Event& event);
/// Flat list of every resource of `groups`, each with a "group" key.
nlohmann::json resources_json(const std::vector<GroupView>& groups);

/// Arrays of the above.
nlohmann::json to_json(const std::vector<NodeView>& nodes);
nlohmann::json to_json(const std::vector<GroupView>& groups);
nlohmann::json to_json(const std::vector<Event>& events);

/// ISO 8601 UTC with milliseconds: "2024-05-01T12:00:00.123Z".
std::string format_iso8601_ms(Usec wall_usec);

}  // namespace clusterd
