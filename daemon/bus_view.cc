#include "bus_view.h"

#include <fmt/core.h>
#include <time.h>

namespace clusterd {

std::vector<NodeView> node_views(const Config& config, const std::string& local) {
  std::vector<NodeView> out;
  for (const auto& n : config.nodes)
    out.push_back({n.name, n.id, n.name == local ? "up" : "unknown"});
  return out;
}

GroupView group_view(const GroupStatus& status) {
  GroupView g{status.name, to_string(status.state), status.owner, status.reason, {}};
  for (const auto& r : status.resources) {
    g.resources.push_back({r.name, r.type, r.agent, to_string(r.state), r.reason, r.restarts,
                           static_cast<std::uint32_t>(r.main_pid > 0 ? r.main_pid : 0),
                           r.since_wall_usec, r.last_looks_alive, r.last_is_alive, r.last_failure});
  }
  return g;
}

std::vector<GroupView> group_views(const std::vector<GroupStatus>& status) {
  std::vector<GroupView> out;
  for (const auto& g : status) out.push_back(group_view(g));
  return out;
}

nlohmann::json to_json(const NodeView& node) {
  return {{"name", node.name}, {"id", node.id}, {"state", node.state}};
}

nlohmann::json to_json(const ResourceView& r) {
  return {{"name", r.name},     {"type", r.type},         {"agent", r.agent}, {"state", r.state},
          {"reason", r.reason}, {"restarts", r.restarts}, {"pid", r.pid},
          {"last_looks_alive", r.last_looks_alive}, {"last_is_alive", r.last_is_alive},
          {"last_failure", r.last_failure}};
}

nlohmann::json to_json(const GroupView& group) {
  nlohmann::json resources = nlohmann::json::array();
  for (const auto& r : group.resources) resources.push_back(to_json(r));
  return {{"name", group.name},
          {"state", group.state},
          {"owner", group.owner},
          {"reason", group.reason},
          {"resources", std::move(resources)}};
}

nlohmann::json to_json(const StatusView& status) {
  return {{"cluster", status.cluster},
          {"node", status.node},
          {"config", status.config},
          {"nodes", to_json(status.nodes)},
          {"groups", to_json(status.groups)}};
}

nlohmann::json to_json(const Event& e) {
  return {{"seq", e.seq},      {"time", format_iso8601_ms(e.wall_usec)},
          {"kind", e.kind},    {"node", e.node},
          {"group", e.group},  {"resource", e.resource},
          {"from", e.from},    {"to", e.to},
          {"reason", e.reason}};
}

nlohmann::json resources_json(const std::vector<GroupView>& groups) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& g : groups) {
    for (const auto& r : g.resources) {
      nlohmann::json item = to_json(r);
      item["group"] = g.name;
      out.push_back(std::move(item));
    }
  }
  return out;
}

nlohmann::json to_json(const std::vector<NodeView>& nodes) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& n : nodes) out.push_back(to_json(n));
  return out;
}

nlohmann::json to_json(const std::vector<GroupView>& groups) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& g : groups) out.push_back(to_json(g));
  return out;
}

nlohmann::json to_json(const std::vector<Event>& events) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : events) out.push_back(to_json(e));
  return out;
}

std::string format_iso8601_ms(Usec wall_usec) {
  time_t seconds = static_cast<time_t>(wall_usec / 1000000);
  tm utc{};
  gmtime_r(&seconds, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                     (wall_usec / 1000) % 1000);
}

}  // namespace clusterd
