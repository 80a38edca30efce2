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

std::string format_resources(const std::vector<GroupView>& groups) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& g : groups) {
    for (const auto& r : g.resources) {
      std::string type = r.agent.empty() ? r.type : r.type + ":" + r.agent;
      rows.push_back({g.name + "/" + r.name, type, r.state, r.pid ? std::to_string(r.pid) : "-",
                      std::to_string(r.restarts), r.reason});
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
