// Checks of what one part of the file says about another: node addresses against networks,
// owners against nodes, dependencies against the group's resources. They run after the walk, so
// the order of sections in the file does not matter.
#include <fmt/format.h>

#include <algorithm>

#include "config_builder.h"
#include "group_plan.h"
#include "qdisk_timing.h"

namespace clusterd {
namespace {

std::vector<std::string> node_names(const Config& config) {
  std::vector<std::string> out;
  for (const auto& n : config.nodes) out.push_back(n.name);
  return out;
}

const NetworkConfig* find_network(const Config& config, const std::string& name) {
  for (const auto& n : config.networks)
    if (n.name == name) return &n;
  return nullptr;
}

bool carries_heartbeats(const NetworkConfig& network) {
  return network.role == NetworkRole::Cluster || network.role == NetworkRole::All;
}

}  // namespace

void ConfigBuilder::check_references() {
  check_addresses();
  check_heartbeat_reach();
  check_votes();
  check_quorum_disk();
  for (const auto& group : config_.groups) {
    check_owners(group);
    check_dependencies(group);
    check_cycles(group);
  }
}

void ConfigBuilder::check_addresses() {
  std::vector<std::string> networks;
  for (const auto& n : config_.networks) networks.push_back(n.name);
  // (network, address) -> node that has it: two nodes must not share an address.
  std::map<std::pair<std::string, std::string>, std::string> used;
  for (const auto& node : config_.nodes) {
    const NodeRefs& refs = node_refs_[node.name];
    for (const auto& [network, address] : refs.addresses) {
      auto error = [&](SourcePos at, const std::string& message) {
        sink_.error(at, fmt::format("{}: {}", refs.where, message));
      };
      const NetworkConfig* net = find_network(config_, network.text);
      if (net == nullptr) {
        error(network.pos, fmt::format("address on unknown network '{}'{}", network.text,
                                       networks.empty() ? "; no networks are defined"
                                                        : did_you_mean(network.text, networks)));
        continue;
      }
      auto ip = parse_ip_address(address.text);
      if (!ip) {
        error(address.pos, ip.error().message);
        continue;
      }
      auto subnet = parse_subnet(net->subnet);
      if (subnet && !subnet->contains(*ip))
        error(address.pos, fmt::format("address {} is not in network '{}' ({})", address.text,
                                       net->name, net->subnet));
      auto [it, fresh] = used.emplace(std::pair(net->name, format_ip_address(*ip)), node.name);
      if (!fresh)
        error(address.pos, fmt::format("address {} on network '{}' is already used by node '{}'",
                                       address.text, net->name, it->second));
    }
  }
}

void ConfigBuilder::check_heartbeat_reach() {
  // One node needs nobody to hear it; two or more must share a heartbeat network.
  if (config_.nodes.size() < 2) return;
  for (const auto& node : config_.nodes) {
    bool reachable = std::any_of(node.addresses.begin(), node.addresses.end(), [&](auto& entry) {
      const NetworkConfig* net = find_network(config_, entry.first);
      return net != nullptr && carries_heartbeats(*net);
    });
    if (!reachable)
      sink_.error(node.pos, fmt::format("node '{}': no address on a heartbeat network (role "
                                        "cluster or all), so the other nodes cannot hear it",
                                        node.name));
  }
}

void ConfigBuilder::check_votes() {
  if (config_.nodes.empty() || config_.quorum.mode == QuorumMode::DiskOnly) return;
  std::uint32_t votes = 0;
  for (const auto& node : config_.nodes) votes += node.votes;
  if (votes == 0)
    sink_.error(nodes_pos_, fmt::format("no node has a vote; quorum mode '{}' needs at least one",
                                        to_string(config_.quorum.mode)));
}

void ConfigBuilder::check_quorum_disk() {
  const QuorumConfig& q = config_.quorum;
  if (uses_disk(q.mode) && !quorum_disk_given_) {
    sink_.error(q.pos, fmt::format("quorum: mode '{}' needs quorum.disk (the quorum LUN: portal, "
                                   "target, lun)",
                                   to_string(q.mode)));
    return;
  }
  if (!q.disk) return;
  if (!uses_disk(q.mode)) {
    sink_.error(q.disk->pos, "quorum.disk: a quorum disk votes only with mode "
                             "node-and-disk-majority or disk-only; set the mode or remove the disk");
    return;
  }
  if (auto ok = check_disk_timing(config_); !ok)
    sink_.error(q.disk->pos, fmt::format("quorum.disk: at heartbeat {} ms x {}: {}",
                                         config_.heartbeat.interval.count(),
                                         config_.heartbeat.misses, ok.error().message));
}

void ConfigBuilder::check_owners(const GroupConfig& group) {
  const GroupRefs& refs = group_refs_[group.name];
  auto names = node_names(config_);
  auto check = [&](const std::vector<Located>& owners, std::string_view key) {
    for (const auto& owner : owners)
      if (config_.find_node(owner.text) == nullptr)
        sink_.error(owner.pos, fmt::format("{}: {}: '{}' is not a node{}", refs.where, key,
                                           owner.text, did_you_mean(owner.text, names)));
  };
  check(refs.preferred, "preferred_owners");
  check(refs.possible, "possible_owners");
  if (refs.possible.empty()) return;
  // MSCS: a preferred owner that may not own the group could never be chosen.
  for (const auto& owner : refs.preferred)
    if (!std::count(group.possible_owners.begin(), group.possible_owners.end(), owner.text))
      sink_.error(owner.pos, fmt::format("{}: preferred owner '{}' is not among the possible "
                                         "owners",
                                         refs.where, owner.text));
}

void ConfigBuilder::check_dependencies(const GroupConfig& group) {
  const GroupRefs& refs = group_refs_[group.name];
  auto names = all_resources(group);
  for (const auto& [resource, rrefs] : refs.resources)
    for (const auto& dep : rrefs.depends) {
      if (group.find(dep.text) != nullptr) continue;
      auto other = std::find_if(config_.groups.begin(), config_.groups.end(),
                                [&](const GroupConfig& g) { return g.find(dep.text) != nullptr; });
      if (other != config_.groups.end())
        sink_.error(dep.pos, fmt::format("{}: depends on '{}', which belongs to group '{}'; "
                                         "dependencies must stay inside one group",
                                         rrefs.where, dep.text, other->name));
      else
        sink_.error(dep.pos, fmt::format("{}: depends on unknown resource '{}'{}", rrefs.where,
                                         dep.text, did_you_mean(dep.text, names)));
    }
}

void ConfigBuilder::check_cycles(const GroupConfig& group) {
  const GroupRefs& refs = group_refs_[group.name];
  // Report every cycle: after each one, drop the edge it was reported at and look again.
  GroupConfig remaining = group;
  while (auto cycle = find_dependency_cycle(remaining)) {
    const std::string& from = (*cycle)[0];
    const std::string& to = (*cycle)[1];
    const ResourceRefs& from_refs = refs.resources.at(from);
    auto dep = std::find_if(from_refs.depends.begin(), from_refs.depends.end(),
                            [&](const Located& l) { return l.text == to; });
    SourcePos at = dep != from_refs.depends.end() ? dep->pos : group.find(from)->pos;
    sink_.error(at, fmt::format("{}: dependency cycle: {}", refs.where,
                                fmt::format("{}", fmt::join(*cycle, " -> "))));
    for (auto& r : remaining.resources)
      if (r.name == from) std::erase(r.depends, to);
  }
}

}  // namespace clusterd
