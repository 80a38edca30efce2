#include "resource.h"

#include <set>

#include <doctest/doctest.h>

#include "engine_test_util.h"
#include "handle.h"

namespace clusterd {
namespace {

using namespace std::chrono_literals;

// A driver that keeps every Done, even after cancel(), to prove stale answers are ignored.
class StubbornDriver final : public ResourceDriver {
 public:
  void start(Done done) override { dones.push_back(std::move(done)); }
  void stop(Done done) override { dones.push_back(std::move(done)); }
  void monitor(MonitorLevel, Done done) override { dones.push_back(std::move(done)); }
  void cancel() override { ++cancels; }
  void fail(std::string reason) { report_failure(std::move(reason)); }
  std::vector<Done> dones;
  int cancels = 0;
};

struct Recorder final : ResourceObserver {
  void on_action_done(Resource&, Action action, ActionResult result) override {
    done.push_back(std::string(to_string(action)) + ":" + to_string(result.status));
  }
  void on_resource_failure(Resource&, std::string reason) override {
    failures.push_back(std::move(reason));
  }
  std::vector<std::string> done;
  std::vector<std::string> failures;
};

sd_event* new_loop() {
  sd_event* e = nullptr;
  REQUIRE(sd_event_new(&e) >= 0);
  return e;
}

ResourceConfig config(const std::string& name) {
  ResourceConfig c;
  c.name = name;
  c.type = "stub";
  c.monitor.looks_alive = 0ms;
  c.monitor.is_alive = 0ms;
  return c;
}

}  // namespace

TEST_CASE("every Action and Target has a distinct name") {
  std::set<std::string> names;
  for (int i = 0; i < kActionCount; ++i) names.insert(to_string(static_cast<Action>(i)));
  CHECK(names.size() == kActionCount);
  CHECK(names.count("?") == 0);
  CHECK(std::string(to_string(static_cast<Action>(kActionCount))) == "?");
  names.clear();
  for (int i = 0; i < kTargetCount; ++i) names.insert(to_string(static_cast<Target>(i)));
  CHECK(names.size() == kTargetCount);
  CHECK(names.count("?") == 0);
}

TEST_CASE("a cancelled action's late answer is ignored") {
  EventPtr loop(new_loop());
  Recorder rec;
  StubbornDriver* driver = nullptr;
  DriverContext ctx;
  ctx.loop = loop.get();
  ctx.group = "g";
  Resource r(
      config("a"), ctx,
      [&](const ResourceConfig&, const DriverContext&) -> Result<std::unique_ptr<ResourceDriver>> {
        auto d = std::make_unique<StubbornDriver>();
        driver = d.get();
        return d;
      },
      rec);
  REQUIRE(r.start());
  CHECK(r.action() == Action::Start);
  r.cancel();
  CHECK(driver->cancels == 1);
  CHECK_FALSE(r.busy());
  driver->dones[0](ActionResult{});
  CHECK(rec.done.empty());
  r.stop();
  driver->dones[1](ActionResult{});
  CHECK(rec.done == std::vector<std::string>{"stop:" + std::string(to_string(ActionStatus::Ok))});
  driver->dones[1](ActionResult{});  // A second answer to the same action.
  CHECK(rec.done.size() == 1);
}

TEST_CASE("stop without a driver completes at once; factory errors surface") {
  EventPtr loop(new_loop());
  Recorder rec;
  DriverContext ctx;
  ctx.loop = loop.get();
  Resource r(
      config("a"), ctx,
      [](const ResourceConfig&, const DriverContext&) -> Result<std::unique_ptr<ResourceDriver>> {
        return fail("no such type");
      },
      rec);
  r.stop();
  CHECK(rec.done.size() == 1);
  auto started = r.start();
  REQUIRE_FALSE(started);
  CHECK(started.error().message == "no such type");
  CHECK_FALSE(r.busy());
}

TEST_CASE("unsolicited failures reach the observer until detached") {
  EventPtr loop(new_loop());
  Recorder rec;
  StubbornDriver* driver = nullptr;
  DriverContext ctx;
  ctx.loop = loop.get();
  Resource r(
      config("a"), ctx,
      [&](const ResourceConfig&, const DriverContext&) -> Result<std::unique_ptr<ResourceDriver>> {
        auto d = std::make_unique<StubbornDriver>();
        driver = d.get();
        return d;
      },
      rec);
  REQUIRE(r.start());
  driver->fail("exited");
  CHECK(rec.failures == std::vector<std::string>{"exited"});
  r.detach();
  driver->fail("again");
  CHECK(rec.failures.size() == 1);
}

TEST_CASE("Timer fires once per arming and not after disarm") {
  EventPtr loop(new_loop());
  Timer t;
  int fired = 0;
  REQUIRE(t.arm(loop.get(), 1ms, "test", [&] { ++fired; }));
  CHECK(t.armed());
  REQUIRE(testing::run_until(
      loop.get(), [&] { return fired == 1; }, 1s));
  CHECK_FALSE(t.armed());
  testing::run_for(loop.get(), 5ms);
  CHECK(fired == 1);
  REQUIRE(t.arm(loop.get(), 1ms, "test", [&] { ++fired; }));
  t.disarm();
  testing::run_for(loop.get(), 5ms);
  CHECK(fired == 1);
}

TEST_CASE("Deferred runs posted work later, in order") {
  EventPtr loop(new_loop());
  Deferred d(loop.get());
  std::vector<int> order;
  d.post([&] {
    order.push_back(1);
    d.post([&] { order.push_back(3); });
  });
  d.post([&] { order.push_back(2); });
  CHECK(order.empty());
  REQUIRE(testing::run_until(
      loop.get(), [&] { return order.size() == 3; }, 1s));
  CHECK(order == std::vector<int>{1, 2, 3});
}

}  // namespace clusterd
