#include "group_plan.h"

#include <doctest/doctest.h>

namespace clusterd {
namespace {

ResourceConfig res(std::string name, std::vector<std::string> depends = {}) {
  ResourceConfig r;
  r.name = std::move(name);
  r.type = "process";
  r.depends = std::move(depends);
  return r;
}

// disk <- ip <- app, and a free-standing "log" resource.
GroupConfig web_group() {
  GroupConfig g;
  g.name = "web";
  g.resources = {res("app", {"ip", "disk"}), res("ip", {"disk"}), res("disk"), res("log")};
  return g;
}

}  // namespace

TEST_CASE("next_to_start walks dependencies upwards, independent resources together") {
  GroupConfig g = web_group();
  auto all = all_resources(g);
  StateMap s;
  CHECK(next_to_start(g, s, all) == std::vector<std::string>{"disk", "log"});
  s["disk"] = ResourceState::OnlinePending;
  s["log"] = ResourceState::OnlinePending;
  CHECK(next_to_start(g, s, all).empty());
  s["disk"] = ResourceState::Online;
  CHECK(next_to_start(g, s, all) == std::vector<std::string>{"ip"});
  s["ip"] = ResourceState::Online;
  CHECK(next_to_start(g, s, all) == std::vector<std::string>{"app"});
}

TEST_CASE("next_to_stop walks dependencies downwards") {
  GroupConfig g = web_group();
  auto all = all_resources(g);
  StateMap s{{"app", ResourceState::Online}, {"ip", ResourceState::Online},
             {"disk", ResourceState::Online}, {"log", ResourceState::Online}};
  CHECK(next_to_stop(g, s, all) == std::vector<std::string>{"app", "log"});
  s["app"] = ResourceState::OfflinePending;
  CHECK(next_to_stop(g, s, all) == std::vector<std::string>{"log"});
  s["app"] = ResourceState::Offline;
  s["log"] = ResourceState::Offline;
  CHECK(next_to_stop(g, s, all) == std::vector<std::string>{"ip"});
  s["ip"] = ResourceState::Failed;
  CHECK(next_to_stop(g, s, all) == std::vector<std::string>{"ip", "disk"});
}

TEST_CASE("targets limit what moves") {
  GroupConfig g = web_group();
  StateMap s;
  CHECK(next_to_start(g, s, with_dependencies(g, "ip")) == std::vector<std::string>{"disk"});
  s = {{"app", ResourceState::Online}, {"ip", ResourceState::Online},
       {"disk", ResourceState::Online}};
  CHECK(next_to_stop(g, s, with_dependents(g, "ip")) == std::vector<std::string>{"app"});
}

TEST_CASE("closures") {
  GroupConfig g = web_group();
  auto deps = with_dependencies(g, "app");
  CHECK(deps.size() == 3);
  auto users = with_dependents(g, "disk");
  CHECK(users.size() == 3);
  CHECK(with_dependents(g, "log") == std::vector<std::string>{"log"});
}

TEST_CASE("find_dependency_cycle") {
  GroupConfig g = web_group();
  CHECK_FALSE(find_dependency_cycle(g));
  g.resources[2].depends = {"app"};  // disk -> app -> ip -> disk
  auto cycle = find_dependency_cycle(g);
  REQUIRE(cycle);
  CHECK(cycle->front() == cycle->back());
  CHECK(cycle->size() == 4);
  GroupConfig self;
  self.resources = {res("a", {"a"})};
  CHECK(find_dependency_cycle(self) == std::vector<std::string>{"a", "a"});
}

}  // namespace clusterd
