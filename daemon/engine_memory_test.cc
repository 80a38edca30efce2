// The engine's memory per resource (issue 2: a daemon with 100 groups x 3 process resources must
// stay small). Measures what the engine itself keeps on the heap, with a driver that allocates
// nothing of its own, so a regression in the engine shows here before it shows in the benchmark.
#include <malloc.h>

#include <doctest/doctest.h>

#include "driver.h"
#include "event_history.h"
#include "loop_test_util.h"
#include "log.h"
#include "resource_manager.h"

namespace clusterd {
namespace {

using testing::run_until;

constexpr int kGroups = 100;
constexpr int kPerGroup = 3;
constexpr int kResources = kGroups * kPerGroup;

// Generous: the engine needs about 1.5 KiB today (it needed 5 KiB before issue 2).
constexpr std::size_t kMaxBytesPerResource = 3 * 1024;

/// Answers every action with Ok from the loop; holds nothing but its pending answer.
class IdleDriver final : public ResourceDriver {
 public:
  explicit IdleDriver(sd_event* loop) : loop_(loop) {}
  void start(Done done) override { answer(std::move(done)); }
  void stop(Done done) override { answer(std::move(done)); }
  void monitor(MonitorLevel, Done done) override { answer(std::move(done)); }
  void cancel() override { deferred_.cancel(); }

 private:
  void answer(Done done) {
    deferred_.post(loop_, [done = std::move(done)] { done(ActionResult{}); });
  }
  sd_event* loop_;
  DeferredCall deferred_;
};

Result<std::unique_ptr<ResourceDriver>> make_idle_driver(const ResourceConfig&,
                                                         const DriverContext& context) {
  return std::unique_ptr<ResourceDriver>(new IdleDriver(context.loop));
}

// The benchmark's configuration (bench/footprint.py): a chain of three `process` resources per
// group, default health-check intervals (so every resource has its timers armed).
ConfigPtr bench_config() {
  auto config = std::make_shared<Config>();
  config->cluster.name = "bench";
  for (int g = 0; g < kGroups; ++g) {
    GroupConfig group;
    group.name = "g" + std::to_string(g);
    group.preferred_owners = {"node1"};
    for (int r = 0; r < kPerGroup; ++r) {
      ResourceConfig rc;
      rc.name = "r" + std::to_string(r);
      rc.type = "process";
      rc.params["command"].scalar = "/bin/sleep";
      rc.params["args"] = ParamValue{ParamValue::Kind::List, "", {"infinity"}, {}, {}};
      if (r > 0) rc.depends = {"r" + std::to_string(r - 1)};
      group.resources.push_back(std::move(rc));
    }
    config->groups.push_back(std::move(group));
  }
  return config;
}

bool all_online(const ResourceManager& manager) {
  for (const auto& g : manager.status())
    if (g.state != GroupState::Online) return false;
  return true;
}

std::size_t heap_in_use() { return mallinfo2().uordblks; }

}  // namespace

TEST_CASE("the engine keeps little heap per resource once every group is online") {
  log_setup(LogLevel::Warning, LogTarget::Stderr);
  EventPtr loop = testing::new_loop();
  ConfigPtr config = bench_config();  // The daemon's configuration exists either way.
  DriverContext context;
  context.node_name = "node1";
  context.cluster_name = "bench";
  context.state_dir = "/var/lib/clusterd-benchmark/state";

  std::size_t before = heap_in_use();
  {
    EventHistory history;
    ResourceManager manager(loop.get(), history, context, make_idle_driver);
    manager.apply(config);
    bool requested = true;
    for (const auto& g : config->groups)
      requested = manager.online_group(g.name, "autostart").has_value() && requested;
    REQUIRE(requested);
    REQUIRE(run_until(loop.get(), [&] { return all_online(manager); }));

    std::size_t per_resource = (heap_in_use() - before) / kResources;
    INFO("heap per resource: ", per_resource, " bytes");
    CHECK(per_resource < kMaxBytesPerResource);
  }
}

}  // namespace clusterd
