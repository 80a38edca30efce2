#include "config_builder.h"

#include <fmt/format.h>

#include <limits>

#include "disk_driver.h"

namespace clusterd {
namespace {

// Cluster ids are 24 bits: they share the 8-byte reservation key with the node id.
constexpr std::uint64_t kMaxClusterId = (1u << 24) - 1;
constexpr std::uint64_t kMaxNodeId = 255;
// The design's lower bound for heartbeats is about 10 ms; above 10 s failover would be too slow
// to be of use.
constexpr Duration kMinHeartbeat{5};
constexpr Duration kMaxHeartbeat = std::chrono::seconds(10);

}  // namespace

std::string item_label(std::string_view kind, const YAML::Node& node, std::size_t index) {
  if (node.IsMap())
    if (auto name = scalar_of(node["name"]); name && !name->empty())
      return fmt::format("{} '{}'", kind, *name);
  return fmt::format("{} #{}", kind, index + 1);
}

bool check_item_present(DiagnosticSink& sink, const std::string& where, const YAML::Node& node) {
  if (!node.IsNull()) return true;
  sink.error(position_of(node),
             fmt::format("{}: expected a mapping of keys to values, got nothing", where));
  return false;
}

Config ConfigBuilder::build(const YAML::Node& root, std::string source) {
  config_.source = std::move(source);
  MapReader top(sink_, "", "", root, {1, 1},
                {"cluster", "nodes", "networks", "heartbeat", "quorum", "groups"});
  if (!top.valid()) return config_;
  if (auto f = top.require("cluster")) read_cluster(*f);
  // Networks first: node addresses are checked against them.
  if (auto f = top.get("networks")) read_networks(*f);
  if (auto f = top.require("nodes")) read_nodes(*f);
  if (auto f = top.get("heartbeat")) read_heartbeat(*f);
  if (auto f = top.get("quorum")) read_quorum(*f);
  if (auto f = top.get("groups")) read_groups(*f);
  check_references();
  return config_;
}

void ConfigBuilder::read_cluster(const Field& field) {
  MapReader map(field, {"name", "id", "authkey", "admin_group"});
  ClusterInfo& c = config_.cluster;
  if (auto f = map.require("name"))
    if (auto v = read_name(*f)) c.name = *v;
  if (auto f = map.require("id"))
    if (auto v = read_integer(*f, 1, kMaxClusterId)) c.id = static_cast<std::uint32_t>(*v);
  if (auto f = map.get("authkey"))
    if (auto v = read_path(*f)) c.authkey_path = *v;
  if (auto f = map.get("admin_group"))
    if (auto v = read_string(*f)) c.admin_group = *v;
}

void ConfigBuilder::read_nodes(const Field& field) {
  nodes_pos_ = field.key_pos;
  auto items = read_sequence(field);
  for (std::size_t i = 0; i < items.size(); ++i) read_node(items[i], i);
  if (items.empty() && (field.value.IsNull() || field.value.IsSequence()))
    field.error("at least one node is required");
}

void ConfigBuilder::read_node(const YAML::Node& node, std::size_t index) {
  std::string where = item_label("node", node, index);
  if (!check_item_present(sink_, where, node)) return;
  MapReader map(sink_, where, "", node, position_of(node), {"name", "id", "votes", "addresses"});
  if (!map.valid()) return;
  NodeConfig n;
  n.pos = map.pos();
  auto name_field = map.require("name");
  auto name = name_field ? read_name(*name_field) : std::nullopt;
  if (auto f = map.require("id"))
    if (auto v = read_integer(*f, 1, kMaxNodeId)) {
      n.id = static_cast<std::uint32_t>(*v);
      for (const auto& other : config_.nodes)
        if (other.id == n.id)
          f->error(fmt::format("id {} is already used by node '{}'", n.id, other.name));
    }
  if (auto f = map.get("votes"))
    if (auto v = read_integer(*f, 0, 1)) n.votes = static_cast<std::uint32_t>(*v);
  NodeRefs refs{where, {}};
  if (auto f = map.get("addresses")) refs.addresses = read_string_map(*f);
  for (const auto& [network, address] : refs.addresses) n.addresses[network.text] = address.text;
  if (!name) return;
  if (const NodeConfig* first = config_.find_node(*name)) {
    name_field->error(
        fmt::format("duplicate node name '{}' (first defined at line {})", *name, first->pos.line));
    return;
  }
  n.name = *name;
  config_.nodes.push_back(std::move(n));
  node_refs_[*name] = std::move(refs);
}

void ConfigBuilder::read_networks(const Field& field) {
  auto items = read_sequence(field);
  for (std::size_t i = 0; i < items.size(); ++i) read_network(items[i], i);
}

void ConfigBuilder::read_network(const YAML::Node& node, std::size_t index) {
  std::string where = item_label("network", node, index);
  if (!check_item_present(sink_, where, node)) return;
  MapReader map(sink_, where, "", node, position_of(node),
                {"name", "subnet", "role", "multicast", "port"});
  if (!map.valid()) return;
  NetworkConfig n;
  n.pos = map.pos();
  auto name_field = map.require("name");
  auto name = name_field ? read_name(*name_field) : std::nullopt;
  std::optional<Subnet> subnet;
  if (auto f = map.require("subnet"))
    if (auto text = read_string(*f)) {
      if (auto parsed = parse_subnet(*text)) {
        subnet = *parsed;
        n.subnet = *text;
      } else {
        f->error(parsed.error().message);
      }
    }
  if (auto f = map.get("role"))
    if (auto v = read_enum<NetworkRole>(*f, kNetworkRoles)) n.role = *v;
  if (auto f = map.get("multicast"))
    if (auto text = read_string(*f)) {
      auto ip = parse_ip_address(*text);
      if (!ip)
        f->error(ip.error().message);
      else if (!ip->is_multicast())
        f->error(fmt::format("'{}' is not a multicast address", *text));
      else if (subnet && ip->family != subnet->address.family)
        f->error(
            fmt::format("'{}' is not of the same address family as subnet '{}'", *text, n.subnet));
      else
        n.multicast_group = *text;
    }
  if (auto f = map.get("port"))
    if (auto v = read_integer(*f, 1, 65535)) n.port = static_cast<std::uint16_t>(*v);
  if (!name) return;
  for (const auto& other : config_.networks)
    if (other.name == *name) {
      name_field->error(fmt::format("duplicate network name '{}' (first defined at line {})", *name,
                                    other.pos.line));
      return;
    }
  n.name = *name;
  config_.networks.push_back(std::move(n));
}

void ConfigBuilder::read_heartbeat(const Field& field) {
  MapReader map(field, {"interval", "misses"});
  HeartbeatConfig& h = config_.heartbeat;
  if (auto f = map.get("interval"))
    if (auto v = read_duration(*f, kMinHeartbeat, kMaxHeartbeat)) h.interval = *v;
  if (auto f = map.get("misses"))
    // One lost frame must never be enough to declare a node dead.
    if (auto v = read_integer(*f, 2, 1000)) h.misses = static_cast<std::uint32_t>(*v);
}

void ConfigBuilder::read_quorum(const Field& field) {
  MapReader map(field, {"mode", "disk"});
  config_.quorum.pos = field.key_pos;
  if (auto f = map.get("mode"))
    if (auto v = read_enum<QuorumMode>(*f, kQuorumModes)) config_.quorum.mode = *v;
  if (auto f = map.get("disk")) {
    quorum_disk_given_ = true;
    read_quorum_disk(*f);
  }
}

namespace {

// A quorum.disk value as a disk resource parameter: one value, or (portal) a list of them.
std::optional<ParamValue> disk_param(const Field& field) {
  ParamValue value;
  value.pos = field.pos();
  if (!field.value.IsSequence()) {
    auto text = read_string(field);
    if (!text) return std::nullopt;
    value.scalar = *text;
    return value;
  }
  value.kind = ParamValue::Kind::List;
  for (const auto& item : field.value) {
    if (!item.IsScalar()) {
      field.error_at(position_of(item), fmt::format("{}: list entries must be single values",
                                                    field.label));
      return std::nullopt;
    }
    value.list.push_back(item.Scalar());
  }
  return value;
}

// Where parse_disk_params' sentence points: the parameter it starts with, else `fallback`.
SourcePos blamed(const Params& params, const std::string& message, SourcePos fallback) {
  for (const auto& [key, value] : params)
    if (message.starts_with(key + ":") || message.starts_with(key + " ")) return value.pos;
  return fallback;
}

}  // namespace

void ConfigBuilder::read_quorum_disk(const Field& field) {
  MapReader map(field, {"portal", "target", "lun", "votes", "initiator"});
  if (!map.valid()) return;
  QuorumDiskConfig disk;
  disk.pos = field.pos();
  if (auto f = map.get("votes"))
    if (auto v = read_integer(*f, 1, 255)) disk.votes = static_cast<std::uint32_t>(*v);
  Params params;
  for (const char* key : {"portal", "target", "lun", "initiator"})
    if (auto f = map.get(key))
      if (auto value = disk_param(*f)) params[key] = std::move(*value);
  // The iSCSI parameters mean what they mean for a disk resource: the same parser checks them
  // (a quorum LUN has no mount point; the placeholder only satisfies the resource's rule).
  Params as_resource = params;
  as_resource["mount_point"].scalar = "/quorum-disk";
  auto parsed = parse_disk_params(as_resource);
  if (!parsed) {
    field.error_at(blamed(params, parsed.error().message, field.pos()),
                   fmt::format("{}: {}", field.label, parsed.error().message));
    return;
  }
  disk.portals = parsed->portals;
  disk.target = parsed->target;
  disk.lun = parsed->lun;
  disk.initiator = parsed->initiator;
  config_.quorum.disk = std::move(disk);
}

}  // namespace clusterd
