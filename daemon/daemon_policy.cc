#include "daemon_policy.h"

#include <fmt/core.h>

#include <algorithm>

namespace clusterd {
namespace {

bool contains(const std::vector<std::string>& list, const std::string& name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

/// True when group-level settings (everything but the resources) differ.
bool group_settings_differ(const GroupConfig& a, const GroupConfig& b) {
  return a.preferred_owners != b.preferred_owners || a.possible_owners != b.possible_owners ||
         a.autostart != b.autostart || !(a.failover == b.failover) || !(a.failback == b.failback);
}

bool node_differs(const NodeConfig& a, const NodeConfig& b) {
  return a.id != b.id || a.votes != b.votes || a.addresses != b.addresses;
}

bool cluster_differs(const Config& a, const Config& b) {
  return a.cluster.name != b.cluster.name || a.cluster.id != b.cluster.id ||
         a.cluster.authkey_path != b.cluster.authkey_path ||
         a.cluster.admin_group != b.cluster.admin_group || a.quorum.mode != b.quorum.mode ||
         a.heartbeat.interval != b.heartbeat.interval || a.heartbeat.misses != b.heartbeat.misses ||
         a.networks.size() != b.networks.size();
}

void diff_nodes(const Config& before, const Config& after, std::vector<std::string>* out) {
  for (const auto& n : before.nodes) {
    const NodeConfig* now = after.find_node(n.name);
    if (now == nullptr)
      out->push_back(fmt::format("node {}: removed", n.name));
    else if (node_differs(n, *now))
      out->push_back(fmt::format("node {}: changed", n.name));
  }
  for (const auto& n : after.nodes) {
    if (before.find_node(n.name) == nullptr) out->push_back(fmt::format("node {}: added", n.name));
  }
}

void diff_resources(const GroupConfig& before, const GroupConfig& after,
                    std::vector<std::string>* out) {
  for (const auto& r : before.resources) {
    const ResourceConfig* now = after.find(r.name);
    if (now == nullptr)
      out->push_back(fmt::format("resource {}/{}: removed", before.name, r.name));
    else if (!(r == *now))
      out->push_back(fmt::format("resource {}/{}: changed", before.name, r.name));
  }
  for (const auto& r : after.resources) {
    if (before.find(r.name) == nullptr)
      out->push_back(fmt::format("resource {}/{}: added", after.name, r.name));
  }
}

void diff_groups(const Config& before, const Config& after, std::vector<std::string>* out) {
  for (const auto& g : before.groups) {
    const GroupConfig* now = after.find_group(g.name);
    if (now == nullptr) {
      out->push_back(fmt::format("group {}: removed", g.name));
      continue;
    }
    if (group_settings_differ(g, *now)) out->push_back(fmt::format("group {}: changed", g.name));
    diff_resources(g, *now, out);
  }
  for (const auto& g : after.groups) {
    if (before.find_group(g.name) == nullptr)
      out->push_back(fmt::format("group {}: added ({} resources)", g.name, g.resources.size()));
  }
}

}  // namespace

std::string autostart_node(const Config& config, const GroupConfig& group) {
  if (!group.preferred_owners.empty()) return group.preferred_owners.front();
  for (const auto& node : config.nodes) {
    if (group.possible_owners.empty() || contains(group.possible_owners, node.name))
      return node.name;
  }
  return "";
}

std::vector<std::string> autostart_groups(const Config& config, const std::string& node) {
  std::vector<std::string> out;
  for (const auto& g : config.groups) {
    if (g.autostart && autostart_node(config, g) == node) out.push_back(g.name);
  }
  return out;
}

std::vector<std::string> summarize_changes(const Config& before, const Config& after) {
  std::vector<std::string> out;
  if (cluster_differs(before, after)) out.push_back("cluster settings: changed");
  diff_nodes(before, after, &out);
  diff_groups(before, after, &out);
  return out;
}

std::string status_line(const std::vector<GroupStatus>& groups) {
  auto count = [&](GroupState state) {
    return std::count_if(groups.begin(), groups.end(),
                         [&](const GroupStatus& g) { return g.state == state; });
  };
  std::string line = fmt::format("{} group{}, {} online", groups.size(),
                                 groups.size() == 1 ? "" : "s", count(GroupState::Online));
  if (auto failed = count(GroupState::Failed); failed > 0)
    line += fmt::format(", {} failed", failed);
  return line;
}

}  // namespace clusterd
