#include "resource_manager.h"

#include <algorithm>

#include <doctest/doctest.h>

#include "engine_test_util.h"
#include "handle.h"
#include "log.h"

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using testing::FakeMode;
using testing::FakeWorld;
using testing::run_for;
using testing::run_until;
using S = ResourceState;

ResourceConfig res(std::string name, std::vector<std::string> depends = {}) {
  ResourceConfig r;
  r.name = std::move(name);
  r.type = "fake";
  r.depends = std::move(depends);
  r.monitor.looks_alive = 0ms;  // Health checks only where a test wants them.
  r.monitor.is_alive = 0ms;
  return r;
}

// disk <- ip <- app, and a free-standing "log".
GroupConfig web_group() {
  GroupConfig g;
  g.name = "web";
  g.resources = {res("app", {"ip", "disk"}), res("ip", {"disk"}), res("disk"), res("log")};
  return g;
}

ConfigPtr config_of(std::vector<GroupConfig> groups) {
  auto c = std::make_shared<Config>();
  c->groups = std::move(groups);
  return c;
}

sd_event* new_loop() {
  sd_event* e = nullptr;
  REQUIRE(sd_event_new(&e) >= 0);
  return e;
}

DriverContext base_context() {
  DriverContext c;
  c.node_name = "node1";
  c.cluster_name = "lab";
  return c;
}

struct Fixture {
  Fixture() : loop(new_loop()), world(loop.get()) {
    log_setup(LogLevel::Warning, LogTarget::Stderr);
    rm = std::make_unique<ResourceManager>(loop.get(), history, base_context(), world.factory());
    rm->set_change_listener([this] { ++changes; });
    rm->set_group_failed_listener([this](const std::string& g) { failed_groups.push_back(g); });
  }
  ~Fixture() {
    rm.reset();
    CHECK(world.overlaps().empty());
  }

  void apply(std::vector<GroupConfig> groups) { rm->apply(config_of(std::move(groups))); }

  ResourceStatus resource(const std::string& group, const std::string& name) {
    auto g = rm->group_status(group);
    REQUIRE(g);
    for (auto& r : g->resources)
      if (r.name == name) return r;
    FAIL("no resource ", name);
    return {};
  }
  S state(const std::string& group, const std::string& name) { return resource(group, name).state; }
  GroupState group_state(const std::string& group) { return rm->group_status(group)->state; }

  bool all_in(const std::string& group, S s) {
    auto g = rm->group_status(group);
    return g && std::all_of(g->resources.begin(), g->resources.end(),
                            [s](const ResourceStatus& r) { return r.state == s; });
  }
  bool wait_state(const std::string& group, const std::string& name, S s) {
    return run_until(loop.get(), [&] { return state(group, name) == s; });
  }
  bool wait_all(const std::string& group, S s) {
    return run_until(loop.get(), [&] { return all_in(group, s); });
  }

  /// Resource transitions recorded since `after`, as "name:to".
  std::vector<std::string> transitions(std::uint64_t after = 0) {
    std::vector<std::string> out;
    for (const auto& e : history.since(after))
      if (e.kind == "resource") out.push_back(e.resource + ":" + e.to);
    return out;
  }
  int position(const std::vector<std::string>& v, const std::string& item) {
    auto it = std::find(v.begin(), v.end(), item);
    return it == v.end() ? -1 : static_cast<int>(it - v.begin());
  }

  EventPtr loop;
  EventHistory history;
  FakeWorld world;
  std::unique_ptr<ResourceManager> rm;
  int changes = 0;
  std::vector<std::string> failed_groups;
};

}  // namespace

TEST_CASE_FIXTURE(Fixture, "apply adopts groups offline without touching drivers") {
  apply({web_group()});
  auto all = rm->status();
  REQUIRE(all.size() == 1);
  CHECK(all[0].name == "web");
  CHECK(all[0].state == GroupState::Offline);
  CHECK(all[0].owner == "");
  CHECK(all[0].resources.size() == 4);
  CHECK(all_in("web", S::Offline));
  CHECK(world.calls().empty());
  CHECK_FALSE(rm->group_status("nope"));
}

TEST_CASE_FIXTURE(Fixture, "a group starts in dependency order and stops in reverse") {
  apply({web_group()});
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(wait_all("web", S::Online));
  CHECK(world.index_of("start disk") < world.index_of("start ip"));
  CHECK(world.index_of("start ip") < world.index_of("start app"));
  auto up = transitions();
  CHECK(position(up, "disk:online") < position(up, "ip:online-pending"));
  CHECK(position(up, "ip:online") < position(up, "app:online-pending"));

  auto g = rm->group_status("web");
  CHECK(g->state == GroupState::Online);
  CHECK(g->owner == "node1");
  CHECK(resource("web", "app").main_pid == 4242);
  CHECK(changes > 0);

  std::uint64_t mark = history.last_seq();
  world.clear_calls();
  REQUIRE(rm->offline_group("web", "test"));
  REQUIRE(wait_all("web", S::Offline));
  CHECK(world.index_of("stop app") < world.index_of("stop ip"));
  CHECK(world.index_of("stop ip") < world.index_of("stop disk"));
  auto down = transitions(mark);
  CHECK(position(down, "app:offline") < position(down, "ip:offline-pending"));
  CHECK(position(down, "ip:offline") < position(down, "disk:offline-pending"));
  CHECK(rm->group_status("web")->owner == "");
  CHECK(group_state("web") == GroupState::Offline);
}

TEST_CASE_FIXTURE(Fixture, "every transition is recorded with node, group and reason") {
  apply({web_group()});
  REQUIRE(rm->online_group("web", "administrator asked"));
  REQUIRE(wait_all("web", S::Online));
  auto events = history.since(0);
  int resource_events = 0;
  std::vector<std::string> group_states;
  for (const auto& e : events) {
    CHECK(e.node == "node1");
    CHECK(e.group == "web");
    CHECK_FALSE(e.reason.empty());
    if (e.kind == "resource") ++resource_events;
    if (e.kind == "group") group_states.push_back(e.to);
  }
  CHECK(resource_events == 8);  // Four resources, two transitions each.
  REQUIRE(group_states.size() >= 2);
  CHECK(group_states.front() == "pending");
  CHECK(group_states.back() == "online");
  CHECK(std::count(group_states.begin(), group_states.end(), "failed") == 0);
  CHECK(resource("web", "disk").reason == "started");
}

TEST_CASE_FIXTURE(Fixture, "independent resources start in parallel") {
  apply({web_group()});
  for (auto n : {"app", "ip", "disk", "log"}) world.behaviour(n).mode = FakeMode::Manual;
  REQUIRE(rm->online_group("web", "test"));
  CHECK(world.waiting("disk"));
  CHECK(world.waiting("log"));
  CHECK(world.count("start ip") == 0);
  CHECK(state("web", "disk") == S::OnlinePending);
  CHECK(state("web", "log") == S::OnlinePending);
  CHECK(group_state("web") == GroupState::Pending);
  world.complete("disk");
  CHECK(world.waiting("ip"));
  CHECK(world.count("start app") == 0);
  world.complete("ip");
  world.complete("app");
  world.complete("log");
  CHECK(all_in("web", S::Online));
}

TEST_CASE_FIXTURE(Fixture, "drivers that complete inside the call work the same") {
  apply({web_group()});
  for (auto n : {"app", "ip", "disk", "log"}) world.behaviour(n).mode = FakeMode::Sync;
  REQUIRE(rm->online_group("web", "test"));
  CHECK(all_in("web", S::Online));
  REQUIRE(rm->offline_group("web", "test"));
  CHECK(all_in("web", S::Offline));
  CHECK(world.index_of("stop app") < world.index_of("stop disk"));
}

TEST_CASE_FIXTURE(
    Fixture, "a resource comes online with its dependencies, goes offline with its dependents") {
  apply({web_group()});
  REQUIRE(rm->online_resource("web", "ip", "test"));
  REQUIRE(wait_state("web", "ip", S::Online));
  CHECK(state("web", "disk") == S::Online);
  CHECK(state("web", "app") == S::Offline);
  CHECK(state("web", "log") == S::Offline);
  CHECK(group_state("web") == GroupState::PartialOnline);

  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(wait_all("web", S::Online));
  world.clear_calls();
  REQUIRE(rm->offline_resource("web", "disk", "test"));
  REQUIRE(wait_state("web", "disk", S::Offline));
  CHECK(state("web", "app") == S::Offline);
  CHECK(state("web", "ip") == S::Offline);
  CHECK(state("web", "log") == S::Online);
  CHECK(world.index_of("stop app") < world.index_of("stop ip"));
  CHECK(world.index_of("stop ip") < world.index_of("stop disk"));
  CHECK(world.count("stop log") == 0);
}

TEST_CASE_FIXTURE(Fixture, "requests for unknown groups or resources are errors") {
  apply({web_group()});
  auto r = rm->online_group("db", "test");
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "there is no group 'db'");
  CHECK_FALSE(rm->offline_group("db", "test"));
  auto o = rm->online_resource("web", "nfs", "test");
  REQUIRE_FALSE(o);
  CHECK(o.error().message == "group 'web' has no resource 'nfs'");
  CHECK_FALSE(rm->offline_resource("web", "nfs", "test"));
  CHECK_FALSE(rm->online_resource("db", "ip", "test"));
  CHECK(world.calls().empty());
}

TEST_CASE_FIXTURE(Fixture, "a failed health check restarts the resource") {
  GroupConfig g = web_group();
  g.resources[3].monitor.looks_alive = 5ms;  // log
  apply({g});
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(wait_all("web", S::Online));
  REQUIRE(run_until(loop.get(), [&] { return world.count("monitor log looks-alive") >= 2; }));
  std::uint64_t mark = history.last_seq();
  world.behaviour("log").failing_monitors = 1;
  REQUIRE(run_until(loop.get(), [&] { return world.count("start log") == 2; }));
  REQUIRE(wait_state("web", "log", S::Online));
  CHECK(transitions(mark) == std::vector<std::string>{"log:failed", "log:offline-pending",
                                                      "log:offline", "log:online-pending",
                                                      "log:online"});
  CHECK(resource("web", "log").restarts == 1);
  CHECK(world.count("start disk") == 1);  // Nothing else was touched.
  CHECK(failed_groups.empty());
}

TEST_CASE_FIXTURE(Fixture, "both health checks run on their own intervals") {
  GroupConfig g = web_group();
  g.resources[2].monitor.looks_alive = 5ms;  // disk
  g.resources[2].monitor.is_alive = 15ms;
  apply({g});
  REQUIRE(rm->online_resource("web", "disk", "test"));
  REQUIRE(run_until(loop.get(), [&] {
    return world.count("monitor disk is-alive") >= 2 &&
           world.count("monitor disk looks-alive") >= 3;
  }));
  REQUIRE(rm->offline_resource("web", "disk", "test"));
  REQUIRE(wait_state("web", "disk", S::Offline));
  world.clear_calls();
  run_for(loop.get(), 40ms);
  CHECK(world.calls().empty());  // Checks stop with the resource.
}

TEST_CASE_FIXTURE(Fixture, "the thorough check wins when both fall due together") {
  GroupConfig g = web_group();
  g.resources[2].monitor.looks_alive = 5ms;  // disk: the same interval for both
  g.resources[2].monitor.is_alive = 5ms;
  apply({g});
  REQUIRE(rm->online_resource("web", "disk", "test"));
  REQUIRE(run_until(loop.get(), [&] { return world.count("monitor disk is-alive") >= 3; }));
  CHECK(world.count("monitor disk looks-alive") == 0);
}

TEST_CASE_FIXTURE(Fixture, "a health check falling due while an action runs is skipped") {
  GroupConfig g = web_group();
  g.resources[3].monitor.looks_alive = 2ms;
  apply({g});
  REQUIRE(rm->online_resource("web", "log", "test"));
  REQUIRE(wait_state("web", "log", S::Online));
  world.behaviour("log").mode = FakeMode::Manual;
  REQUIRE(run_until(loop.get(), [&] { return world.waiting("log"); }));
  run_for(loop.get(), 20ms);  // Several intervals pass while the first check hangs.
  CHECK(world.count("monitor log looks-alive") == 1);
  world.complete("log");
  REQUIRE(run_until(loop.get(), [&] { return world.count("monitor log looks-alive") == 2; }));
  CHECK(state("web", "log") == S::Online);
}

TEST_CASE_FIXTURE(Fixture, "a failed dependency restarts with its dependents around it") {
  apply({web_group()});
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(wait_all("web", S::Online));
  world.clear_calls();
  world.report_failure("ip", "address removed");
  CHECK(state("web", "ip") == S::Failed);
  CHECK(resource("web", "ip").reason == "address removed");
  CHECK(group_state("web") == GroupState::Failed);
  REQUIRE(run_until(loop.get(), [&] { return world.count("start app") == 1; }));
  REQUIRE(wait_all("web", S::Online));
  CHECK(world.calls() == std::vector<std::string>{"stop app", "stop ip", "start ip", "start app"});
  CHECK(resource("web", "ip").restarts == 1);
  CHECK(resource("web", "app").restarts == 0);
  CHECK(group_state("web") == GroupState::Online);
}

TEST_CASE_FIXTURE(Fixture, "a restart with no delay adds no latency") {
  apply({web_group()});
  REQUIRE(rm->online_resource("web", "log", "test"));
  REQUIRE(wait_state("web", "log", S::Online));
  MonoTime killed = mono_now();
  world.report_failure("log", "process exited on signal KILL");
  REQUIRE(run_until(
      loop.get(), [&] { return state("web", "log") == S::Online; }, 1s));
  CHECK(mono_now().ms_since(killed) < 50);
}

TEST_CASE_FIXTURE(Fixture, "the restart delay holds the start back") {
  GroupConfig g = web_group();
  g.resources[3].restart.delay = 60ms;
  apply({g});
  REQUIRE(rm->online_resource("web", "log", "test"));
  REQUIRE(wait_state("web", "log", S::Online));
  world.report_failure("log", "died");
  REQUIRE(wait_state("web", "log", S::Offline));
  MonoTime stopped = mono_now();
  REQUIRE(wait_state("web", "log", S::Online));
  CHECK(mono_now().ms_since(stopped) >= 55);
}

TEST_CASE_FIXTURE(Fixture,
                  "failures past the threshold fail the resource and take its dependents down") {
  GroupConfig g = web_group();
  g.resources[1].restart.threshold = 1;  // ip
  g.resources[1].restart.affects_group = false;
  apply({g});
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(wait_all("web", S::Online));
  world.report_failure("ip", "first");
  REQUIRE(run_until(loop.get(), [&] { return world.count("start ip") == 2; }));
  REQUIRE(wait_all("web", S::Online));
  world.clear_calls();
  world.report_failure("ip", "second");
  REQUIRE(wait_state("web", "app", S::Offline));
  REQUIRE(run_until(loop.get(), [&] { return world.count("stop ip") == 1; }));  // Cleanup.
  run_for(loop.get(), 10ms);
  CHECK(state("web", "ip") == S::Failed);
  CHECK(resource("web", "ip").reason == "second");
  CHECK(resource("web", "ip").restarts == 2);
  CHECK(state("web", "disk") == S::Online);
  CHECK(state("web", "log") == S::Online);
  CHECK(world.count("start ip") == 0);
  CHECK(world.index_of("stop app") < world.index_of("stop ip"));
  CHECK(group_state("web") == GroupState::Failed);
  CHECK(rm->group_status("web")->owner == "node1");
  CHECK(failed_groups.empty());

  // Online by hand forgets the failures and starts again.
  REQUIRE(rm->online_group("web", "retry"));
  REQUIRE(wait_all("web", S::Online));
  CHECK(resource("web", "ip").restarts == 0);
}

TEST_CASE_FIXTURE(Fixture, "a failure that affects the group takes the whole group down") {
  GroupConfig g = web_group();
  g.resources[1].restart.restart = false;  // ip fails at once and affects the group
  apply({g});
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(wait_all("web", S::Online));
  world.clear_calls();
  std::uint64_t mark = history.last_seq();
  world.report_failure("ip", "link down");
  REQUIRE(run_until(loop.get(), [&] { return !failed_groups.empty(); }));
  CHECK(failed_groups == std::vector<std::string>{"web"});
  CHECK(state("web", "ip") == S::Failed);
  CHECK(state("web", "app") == S::Offline);
  CHECK(state("web", "disk") == S::Offline);
  CHECK(state("web", "log") == S::Offline);
  CHECK(group_state("web") == GroupState::Failed);
  CHECK(world.index_of("stop app") < world.index_of("stop ip"));
  CHECK(world.index_of("stop ip") < world.index_of("stop disk"));
  CHECK(world.count("start ip") == 0);
  auto t = transitions(mark);
  CHECK(position(t, "app:offline") < position(t, "disk:offline-pending"));
  run_for(loop.get(), 10ms);
  CHECK(failed_groups.size() == 1);
}

TEST_CASE_FIXTURE(Fixture, "a failing start is retried per policy, then fails") {
  GroupConfig g = web_group();
  g.resources[3].restart.threshold = 2;
  g.resources[3].restart.affects_group = false;
  apply({g});
  world.behaviour("log").failing_starts = 10;
  REQUIRE(rm->online_resource("web", "log", "test"));
  REQUIRE(wait_state("web", "log", S::Failed));
  run_for(loop.get(), 10ms);
  CHECK(world.count("start log") == 3);
  CHECK(state("web", "log") == S::Failed);
  CHECK(resource("web", "log").reason == "start failed: scripted start failure");
}

TEST_CASE_FIXTURE(Fixture, "a start timeout is a failure") {
  GroupConfig g = web_group();
  g.resources[3].restart.restart = false;
  g.resources[3].restart.affects_group = false;
  apply({g});
  world.behaviour("log").start = {ActionStatus::Timeout, "start timed out after 20 s", -1};
  REQUIRE(rm->online_resource("web", "log", "test"));
  REQUIRE(wait_state("web", "log", S::Failed));
  CHECK(resource("web", "log").reason == "start failed: start timed out after 20 s");
  REQUIRE(run_until(loop.get(), [&] { return world.count("stop log") == 1; }));  // Cleanup.
  CHECK(state("web", "log") == S::Failed);
  // Taken offline afterwards (as the coordinator does with a failed group), the resource still
  // tells why it failed.
  REQUIRE(rm->offline_resource("web", "log", "cleanup"));
  REQUIRE(wait_state("web", "log", S::Offline));
  CHECK(resource("web", "log").reason != resource("web", "log").last_failure);
  CHECK(resource("web", "log").last_failure == "start failed: start timed out after 20 s");
}

TEST_CASE_FIXTURE(Fixture, "a failing stop leaves the resource failed, and the rest goes down") {
  apply({web_group()});
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(wait_all("web", S::Online));
  world.behaviour("app").stop = {ActionStatus::Failed, "agent said no", 1};
  REQUIRE(rm->offline_group("web", "test"));
  REQUIRE(wait_state("web", "disk", S::Offline));
  CHECK(state("web", "app") == S::Failed);
  CHECK(resource("web", "app").reason == "stop failed: agent said no");
  run_for(loop.get(), 10ms);
  CHECK(world.count("stop app") == 1);  // No automatic retries.
  world.behaviour("app").stop = {};
  REQUIRE(rm->offline_resource("web", "app", "retry"));
  REQUIRE(wait_state("web", "app", S::Offline));
  CHECK(world.count("stop app") == 2);
}

TEST_CASE_FIXTURE(Fixture, "offline while online-pending cancels the start") {
  apply({web_group()});
  world.behaviour("disk").mode = FakeMode::Manual;
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(world.waiting("disk"));
  REQUIRE(rm->offline_group("web", "test"));
  CHECK(world.index_of("cancel disk") >= 0);
  CHECK(world.index_of("cancel disk") < world.index_of("stop disk"));
  REQUIRE(world.waiting("disk"));
  world.complete("disk");
  REQUIRE(wait_all("web", S::Offline));
  CHECK(world.count("start ip") == 0);
  CHECK(world.count("start app") == 0);
}

TEST_CASE_FIXTURE(Fixture, "online while offline-pending comes back online") {
  apply({web_group()});
  REQUIRE(rm->online_resource("web", "disk", "test"));
  REQUIRE(wait_state("web", "disk", S::Online));
  world.behaviour("disk").mode = FakeMode::Manual;
  REQUIRE(rm->offline_resource("web", "disk", "test"));
  REQUIRE(world.waiting("disk"));
  REQUIRE(rm->online_group("web", "changed my mind"));
  CHECK(state("web", "disk") == S::OfflinePending);
  world.behaviour("disk").mode = FakeMode::Immediate;
  world.complete("disk");
  REQUIRE(wait_all("web", S::Online));
  CHECK(world.count("start disk") == 2);
}

TEST_CASE_FIXTURE(Fixture, "a driver factory error fails the resource when asked online") {
  apply({web_group()});
  world.broken = {"ip"};
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(wait_state("web", "ip", S::Failed));
  run_for(loop.get(), 10ms);
  CHECK(resource("web", "ip").reason == "resource type 'fake' is not known");
  CHECK(state("web", "disk") == S::Online);
  CHECK(state("web", "app") == S::Offline);
  CHECK(world.count("start app") == 0);
  CHECK(failed_groups.empty());
}

TEST_CASE_FIXTURE(Fixture, "apply touches only changed resources") {
  apply({web_group()});
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(wait_all("web", S::Online));
  world.clear_calls();

  GroupConfig next = web_group();
  next.resources[3].params["level"].scalar = "debug";  // log changes
  apply({next});
  REQUIRE(run_until(loop.get(), [&] { return world.count("start log") == 1; }));
  REQUIRE(wait_all("web", S::Online));
  CHECK(world.calls() == std::vector<std::string>{"stop log", "start log"});
  CHECK(world.made("log") == 2);  // A new driver for the new definition.
  CHECK(world.made("disk") == 1);

  world.clear_calls();
  apply({next});  // Same again: nothing happens.
  run_for(loop.get(), 10ms);
  CHECK(world.calls().empty());
}

TEST_CASE_FIXTURE(Fixture, "a changed dependency cycles its dependents") {
  apply({web_group()});
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(wait_all("web", S::Online));
  world.clear_calls();
  GroupConfig next = web_group();
  next.resources[1].timeouts.start = 3s;  // ip
  apply({next});
  REQUIRE(run_until(loop.get(), [&] { return world.count("start app") == 1; }));
  REQUIRE(wait_all("web", S::Online));
  CHECK(world.calls() == std::vector<std::string>{"stop app", "stop ip", "start ip", "start app"});
}

TEST_CASE_FIXTURE(Fixture, "apply adds offline and removes after taking offline") {
  apply({web_group()});
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(wait_all("web", S::Online));
  world.clear_calls();
  GroupConfig next = web_group();
  next.resources.pop_back();                 // log removed
  next.resources.push_back(res("metrics"));  // metrics added
  GroupConfig db;
  db.name = "db";
  db.resources = {res("pg")};
  apply({next, db});
  CHECK(state("web", "metrics") == S::Offline);
  REQUIRE(run_until(loop.get(), [&] {
    auto g = rm->group_status("web");
    return g->resources.size() == 4 && g->resources.back().name == "metrics";
  }));
  auto names = rm->group_status("web")->resources;
  CHECK(std::none_of(names.begin(), names.end(),
                     [](const ResourceStatus& r) { return r.name == "log"; }));
  CHECK(world.calls() == std::vector<std::string>{"stop log"});
  CHECK(rm->status().size() == 2);
  CHECK(all_in("db", S::Offline));
  CHECK_FALSE(rm->online_resource("web", "log", "test"));

  // A group that leaves the configuration goes offline, then disappears.
  apply({db});
  REQUIRE(run_until(loop.get(), [&] { return rm->status().size() == 1; }));
  CHECK(rm->status()[0].name == "db");
  CHECK(world.index_of("stop app") < world.index_of("stop disk"));
  CHECK_FALSE(rm->online_group("web", "test"));
}

TEST_CASE_FIXTURE(Fixture, "a new configuration frees the old one once nothing uses it") {
  ConfigPtr first = config_of({web_group()});
  std::weak_ptr<const Config> old = first;
  rm->apply(std::move(first));
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(wait_all("web", S::Online));

  // Unchanged definitions move over to the new configuration at once.
  ConfigPtr second = config_of({web_group()});
  std::weak_ptr<const Config> middle = second;
  rm->apply(std::move(second));
  CHECK(old.expired());

  // A changed and a removed resource keep theirs until they are offline.
  GroupConfig next = web_group();
  next.resources[0].timeouts.start = 3s;  // app changes
  next.resources.pop_back();              // log goes
  world.behaviour("app").mode = FakeMode::Manual;
  rm->apply(config_of({next}));
  REQUIRE(run_until(loop.get(), [&] { return world.waiting("app"); }));
  CHECK_FALSE(middle.expired());
  world.complete("app");
  REQUIRE(run_until(loop.get(), [&] { return middle.expired(); }));
  CHECK(rm->group_status("web")->resources.size() == 3);
}

TEST_CASE_FIXTURE(Fixture, "a change undone before it was taken is forgotten") {
  apply({web_group()});
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(wait_all("web", S::Online));
  world.behaviour("log").mode = FakeMode::Manual;
  GroupConfig next = web_group();
  next.resources[3].params["level"].scalar = "debug";  // log changes ...
  apply({next});
  REQUIRE(run_until(loop.get(), [&] { return world.waiting("log"); }));
  apply({web_group()});  // ... and back, while it stops.
  world.complete("log");
  REQUIRE(run_until(loop.get(), [&] { return world.waiting("log"); }));
  world.complete("log");
  REQUIRE(wait_all("web", S::Online));
  CHECK(world.made("log") == 1);  // Still the driver of the one definition it has.
}

TEST_CASE_FIXTURE(Fixture, "shutdown takes every group offline, then calls done") {
  GroupConfig db;
  db.name = "db";
  db.resources = {res("pg", {"vol"}), res("vol")};
  apply({web_group(), db});
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(rm->online_group("db", "test"));
  REQUIRE(
      run_until(loop.get(), [&] { return all_in("web", S::Online) && all_in("db", S::Online); }));
  world.clear_calls();
  bool done = false;
  rm->shutdown([&] {
    done = true;
    CHECK(all_in("web", S::Offline));
    CHECK(all_in("db", S::Offline));
  });
  CHECK_FALSE(done);
  REQUIRE(run_until(loop.get(), [&] { return done; }));
  CHECK(world.index_of("stop app") < world.index_of("stop disk"));
  CHECK(world.index_of("stop pg") < world.index_of("stop vol"));
  auto refused = rm->online_group("web", "too late");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message == "the resource manager is shutting down");
}

TEST_CASE_FIXTURE(Fixture, "shutdown with nothing online calls done from the loop") {
  apply({web_group()});
  int done = 0;
  rm->shutdown([&] { ++done; });
  CHECK(done == 0);
  REQUIRE(run_until(
      loop.get(), [&] { return done == 1; }, 1s));
  run_for(loop.get(), 5ms);
  CHECK(done == 1);
}

TEST_CASE_FIXTURE(Fixture, "destroying the manager mid-action cancels everything") {
  GroupConfig g = web_group();
  g.resources[2].monitor.looks_alive = 1ms;
  apply({g});
  world.behaviour("log").mode = FakeMode::Manual;
  REQUIRE(rm->online_group("web", "test"));
  REQUIRE(wait_state("web", "disk", S::Online));
  rm.reset();
  run_for(loop.get(), 10ms);  // No timer of a destroyed resource may fire.
  CHECK_FALSE(world.waiting("log"));
}

}  // namespace clusterd
