#include "bus_view.h"

#include <doctest/doctest.h>

#include <algorithm>

#include "resource_state.h"

namespace clusterd {
namespace {

std::vector<std::string> keys(const nlohmann::json& object) {
  std::vector<std::string> out;
  for (auto it = object.begin(); it != object.end(); ++it) out.push_back(it.key());
  std::sort(out.begin(), out.end());
  return out;
}

GroupStatus web_status() {
  GroupStatus g;
  g.name = "web";
  g.state = GroupState::PartialOnline;
  g.owner = "node1";
  g.reason = "started by test";
  ResourceStatus r;
  r.name = "app";
  r.type = "process";
  r.state = ResourceState::OnlinePending;
  r.restarts = 2;
  r.main_pid = 4242;
  g.resources.push_back(r);
  ResourceStatus d;
  d.name = "dummy";
  d.type = "ocf";
  d.agent = "heartbeat:Dummy";
  d.state = ResourceState::Failed;
  d.reason = "monitor said not running";
  d.main_pid = -1;
  g.resources.push_back(d);
  return g;
}

}  // namespace

// State names come from resource_state.h (whose tests pin the spelling).
TEST_CASE("group_view spells states as the API names them") {
  GroupView g = group_view(web_status());
  CHECK(g.state == to_string(GroupState::PartialOnline));
  REQUIRE(g.resources.size() == 2);
  CHECK(g.resources[0].state == to_string(ResourceState::OnlinePending));
  CHECK(g.resources[0].pid == 4242);
  CHECK(g.resources[1].state == to_string(ResourceState::Failed));
  CHECK(g.resources[1].pid == 0);
  CHECK(g.resources[1].agent == "heartbeat:Dummy");
}

TEST_CASE("node_views: the local node is up, the others unknown") {
  Config c;
  c.nodes = {{"node1", 1, 1, {}, {}}, {"node2", 2, 1, {}, {}}};
  auto nodes = node_views(c, "node2");
  REQUIRE(nodes.size() == 2);
  CHECK(nodes[0] == NodeView{"node1", 1, "unknown"});
  CHECK(nodes[1] == NodeView{"node2", 2, "up"});
}

TEST_CASE("status JSON has exactly the contract's keys") {
  StatusView s{"lab",
               "node1",
               "/etc/clusterd/cluster.yaml",
               {{"node1", 1, "up"}},
               {group_view(web_status())}};
  nlohmann::json j = to_json(s);
  CHECK(keys(j) == std::vector<std::string>{"cluster", "config", "groups", "node", "nodes"});
  CHECK(j["cluster"] == "lab");
  CHECK(keys(j["nodes"][0]) == std::vector<std::string>{"id", "name", "state"});
  CHECK(j["nodes"][0]["id"] == 1);
  const auto& g = j["groups"][0];
  CHECK(keys(g) == std::vector<std::string>{"name", "owner", "reason", "resources", "state"});
  CHECK(g["state"] == to_string(GroupState::PartialOnline));
  const auto& r = g["resources"][0];
  CHECK(keys(r) ==
        std::vector<std::string>{"agent", "last_failure", "last_is_alive", "last_looks_alive", "name", "pid",
                                 "reason", "restarts", "state", "type"});
  CHECK(r["pid"] == 4242);
  CHECK(r["restarts"] == 2);
}

TEST_CASE("resources JSON is flat and names the group") {
  nlohmann::json j = resources_json({group_view(web_status())});
  REQUIRE(j.is_array());
  REQUIRE(j.size() == 2);
  CHECK(j[1]["group"] == "web");
  CHECK(j[1]["name"] == "dummy");
  CHECK(to_json(std::vector<GroupView>{}).is_array());
}

TEST_CASE("event JSON: ISO 8601 UTC with milliseconds") {
  Event e;
  e.seq = 7;
  e.wall_usec = 1714564800123456;  // 2024-05-01T12:00:00.123456Z
  e.kind = "resource";
  e.node = "node1";
  e.group = "web";
  e.resource = "app";
  e.from = "offline";
  e.to = "online-pending";
  e.reason = "requested";
  nlohmann::json j = to_json(e);
  CHECK(keys(j) == std::vector<std::string>{"from", "group", "kind", "node", "reason", "resource",
                                            "seq", "time", "to"});
  CHECK(j["seq"] == 7);
  CHECK(j["time"] == "2024-05-01T12:00:00.123Z");
  CHECK(format_iso8601_ms(0) == "1970-01-01T00:00:00.000Z");
}

}  // namespace clusterd
