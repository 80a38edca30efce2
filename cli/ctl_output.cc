#include "ctl_output.h"

#include <fmt/core.h>

#include <algorithm>

namespace clusterd {
namespace {

std::string dash_if_empty(const std::string& s) { return s.empty() ? "-" : s; }

}  // namespace

std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  };
  measure(header);
  for (const auto& row : rows) measure(row);
  auto line = [&](const std::vector<std::string>& row) {
    std::string out;
    for (std::size_t i = 0; i < row.size(); ++i)
      out += i + 1 < row.size() ? fmt::format("{:<{}}  ", row[i], width[i]) : row[i];
    return out + "\n";
  };
  std::string out = line(header);
  for (const auto& row : rows) out += line(row);
  return out;
}

std::string format_nodes(const std::vector<NodeView>& nodes) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& n : nodes) rows.push_back({n.name, std::to_string(n.id), n.state});
  return format_table({"NODE", "ID", "STATE"}, rows);
}

std::string format_groups(const std::vector<GroupView>& groups) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& g : groups)
    rows.push_back(
        {g.name, g.state, dash_if_empty(g.owner), std::to_string(g.resources.size()), g.reason});
  return format_table({"GROUP", "STATE", "OWNER", "RESOURCES", "REASON"}, rows);
}

// A failed resource is stopped for cleanup afterwards; its state then says offline and the
// reason "stopped", so the failure that caused it is shown beside it.
std::string resource_reason(const ResourceView& r) {
  if (r.last_failure.empty() || r.state == "failed" || r.reason == r.last_failure) return r.reason;
  return r.reason + " (last failure: " + r.last_failure + ")";
}

std::string format_resources(const std::vector<GroupView>& groups) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& g : groups) {
    for (const auto& r : g.resources) {
      std::string type = r.agent.empty() ? r.type : r.type + ":" + r.agent;
      rows.push_back({g.name + "/" + r.name, type, r.state, r.pid ? std::to_string(r.pid) : "-",
                      std::to_string(r.restarts), resource_reason(r)});
    }
  }
  return format_table({"RESOURCE", "TYPE", "STATE", "PID", "RESTARTS", "REASON"}, rows);
}

std::string format_status(const StatusView& s) {
  std::string out =
      fmt::format("Cluster {} (node {}, configuration {})\n\n", s.cluster, s.node, s.config);
  out += format_nodes(s.nodes) + "\n";
  if (s.groups.empty()) return out + "No groups are configured.\n";
  return out + format_groups(s.groups) + "\n" + format_resources(s.groups);
}

std::string format_event(const Event& e) {
  std::string subject = e.group;
  if (!e.resource.empty()) subject += "/" + e.resource;
  std::string out = fmt::format("{} #{} {}", format_iso8601_ms(e.wall_usec), e.seq, e.kind);
  if (!subject.empty()) out += " " + subject;
  if (!e.from.empty() || !e.to.empty()) out += fmt::format(": {} -> {}", e.from, e.to);
  if (!e.reason.empty()) out += ": " + e.reason;
  return out;
}

}  // namespace clusterd

namespace clusterd {
namespace {

std::string json_text(const nlohmann::json& j, const char* key) {
  if (!j.contains(key)) return "-";
  const auto& v = j.at(key);
  if (v.is_string()) return dash_if_empty(v.get<std::string>());
  if (v.is_null()) return "-";
  return v.dump();
}

}  // namespace

std::string format_cluster_line(const nlohmann::json& c) {
  if (!c.is_object()) return "";
  bool quorate = c.value("quorate", false);
  return fmt::format("term {}, coordinator {}, quorum {} ({} is {})\n", json_text(c, "term"),
                     json_text(c, "coordinator"), quorate ? "yes" : "NO", json_text(c, "node"),
                     json_text(c, "role"));
}

std::string format_cluster(const nlohmann::json& c) {
  if (!c.is_object()) return "";
  std::string out = format_cluster_line(c);
  std::vector<std::vector<std::string>> rows;
  for (const auto& n : c.value("nodes", nlohmann::json::array()))
    rows.push_back({json_text(n, "name"), json_text(n, "state"), json_text(n, "term"),
                    json_text(n, "coordinator"), json_text(n, "last_heard_ms")});
  out += "\n" + format_table({"NODE", "STATE", "TERM", "FOLLOWS", "HEARD_MS_AGO"}, rows);
  rows.clear();
  for (const auto& h : c.value("heartbeat", nlohmann::json::array()))
    rows.push_back({json_text(h, "name"), json_text(h, "sent"), json_text(h, "accepted"),
                    json_text(h, "dropped")});
  if (!rows.empty())
    out += "\n" + format_table({"NETWORK", "SENT", "ACCEPTED", "DROPPED"}, rows);
  return out;
}

std::string format_timelines(const nlohmann::json& timelines) {
  std::string out;
  for (const auto& t : timelines) {
    out += fmt::format("{} ({}), #{}\n", json_text(t, "group"), json_text(t, "cause"),
                       json_text(t, "id"));
    for (const auto& p : t.value("phases", nlohmann::json::array()))
      out += fmt::format("  {}  {:<16} {}\n", json_text(p, "time"), json_text(p, "phase"),
                         json_text(p, "node"));
  }
  return out.empty() ? "no failover recorded\n" : out;
}

}  // namespace clusterd
