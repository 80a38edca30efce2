#include "daemon_policy.h"

#include <doctest/doctest.h>

namespace clusterd {
namespace {

Config three_nodes() {
  Config c;
  c.nodes = {{"n1", 1, 1, {}, {}}, {"n2", 2, 1, {}, {}}, {"n3", 3, 1, {}, {}}};
  return c;
}

GroupConfig group(std::string name, std::vector<std::string> preferred = {},
                  std::vector<std::string> possible = {}) {
  GroupConfig g;
  g.name = std::move(name);
  g.preferred_owners = std::move(preferred);
  g.possible_owners = std::move(possible);
  return g;
}

ResourceConfig resource(std::string name, std::string type = "process") {
  ResourceConfig r;
  r.name = std::move(name);
  r.type = std::move(type);
  return r;
}

}  // namespace

TEST_CASE("autostart: the first preferred owner starts the group") {
  Config c = three_nodes();
  c.groups = {group("a", {"n2", "n1"}), group("b", {"n1"})};
  CHECK(autostart_groups(c, "n2") == std::vector<std::string>{"a"});
  CHECK(autostart_groups(c, "n1") == std::vector<std::string>{"b"});
  CHECK(autostart_groups(c, "n3").empty());
}

TEST_CASE("autostart: without preferred owners, the first node that may own it") {
  Config c = three_nodes();
  c.groups = {group("any"), group("restricted", {}, {"n3", "n2"})};
  CHECK(autostart_node(c, c.groups[0]) == "n1");
  // Configuration order of the nodes decides, not the order of possible_owners.
  CHECK(autostart_node(c, c.groups[1]) == "n2");
  c.groups.push_back(group("nobody", {}, {"elsewhere"}));
  CHECK(autostart_node(c, c.groups[2]).empty());
}

TEST_CASE("autostart: false keeps the group offline") {
  Config c = three_nodes();
  c.groups = {group("manual", {"n1"})};
  c.groups[0].autostart = false;
  CHECK(autostart_groups(c, "n1").empty());
}

TEST_CASE("summarize_changes lists additions, removals and changes") {
  Config before = three_nodes();
  before.groups = {group("web", {"n1"}), group("old")};
  before.groups[0].resources = {resource("ip"), resource("app")};
  Config after = before;
  after.nodes.pop_back();
  after.groups.erase(after.groups.begin() + 1);
  after.groups[0].preferred_owners = {"n2"};
  after.groups[0].resources[1].params["command"] = ParamValue{};
  after.groups[0].resources.push_back(resource("log"));
  after.groups.push_back(group("db"));
  CHECK(summarize_changes(before, after) ==
        std::vector<std::string>{"node n3: removed", "group web: changed",
                                 "resource web/app: changed", "resource web/log: added",
                                 "group old: removed", "group db: added (0 resources)"});
  CHECK(summarize_changes(before, before).empty());
}

TEST_CASE("status_line counts groups") {
  std::vector<GroupStatus> groups(3);
  groups[0].state = GroupState::Online;
  groups[1].state = GroupState::Online;
  CHECK(status_line(groups) == "3 groups, 2 online");
  groups[2].state = GroupState::Failed;
  CHECK(status_line(groups) == "3 groups, 2 online, 1 failed");
  CHECK(status_line({}) == "0 groups, 0 online");
  CHECK(status_line({groups[0]}) == "1 group, 1 online");
}

}  // namespace clusterd
