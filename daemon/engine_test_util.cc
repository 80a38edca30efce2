#include "engine_test_util.h"

#include <algorithm>

#include <fmt/format.h>

namespace clusterd::testing {

/// A driver whose answers are scripted by its FakeWorld.
class FakeDriver final : public ResourceDriver {
 public:
  FakeDriver(FakeWorld& world, std::string name) : world_(world), name_(std::move(name)) {
    world_.drivers_[name_] = this;
  }
  ~FakeDriver() override {
    if (world_.drivers_[name_] == this) world_.drivers_.erase(name_);
  }

  void start(Done done) override {
    FakeBehaviour& b = world_.behaviour(name_);
    ActionResult result = b.start;
    if (b.failing_starts > 0) {
      --b.failing_starts;
      result = {ActionStatus::Failed, "scripted start failure", 1};
    }
    act("start " + name_, result, std::move(done));
  }
  void stop(Done done) override {
    act("stop " + name_, world_.behaviour(name_).stop, std::move(done));
  }
  void monitor(MonitorLevel level, Done done) override {
    FakeBehaviour& b = world_.behaviour(name_);
    ActionResult result = b.monitor;
    if (b.failing_monitors > 0) {
      --b.failing_monitors;
      result = {ActionStatus::NotRunning, "scripted: not running", 7};
    }
    const char* what = level == MonitorLevel::IsAlive ? "is-alive" : "looks-alive";
    act(fmt::format("monitor {} {}", name_, what), result, std::move(done));
  }
  void cancel() override {
    if (!in_flight()) return;
    world_.log_call("cancel " + name_);
    pending_ = nullptr;
    timer_.disarm();
  }
  pid_t main_pid() const override { return 4242; }

  bool waiting() const { return static_cast<bool>(pending_) && !timer_.armed(); }
  void complete(ActionResult result) {
    Done done = std::exchange(pending_, nullptr);
    if (done) done(std::move(result));
  }
  void fail(const std::string& reason) { report_failure(reason); }

 private:
  bool in_flight() const { return static_cast<bool>(pending_); }

  void act(const std::string& call, ActionResult result, Done done) {
    world_.log_call(call);
    if (in_flight()) world_.overlaps_.push_back(call);
    FakeBehaviour& b = world_.behaviour(name_);
    switch (b.mode) {
      case FakeMode::Sync:
        done(std::move(result));
        return;
      case FakeMode::Manual:
        pending_ = std::move(done);
        return;
      case FakeMode::Immediate:
        pending_ = std::move(done);
        (void)timer_.arm(world_.loop_, b.delay, "fake-" + name_,
                         [this, result] { complete(result); });
        return;
    }
  }

  FakeWorld& world_;
  std::string name_;
  Done pending_;
  Timer timer_;
};

DriverFactory FakeWorld::factory() {
  return [this](const ResourceConfig& config,
                const DriverContext& context) -> Result<std::unique_ptr<ResourceDriver>> {
    if (std::find(broken.begin(), broken.end(), config.name) != broken.end())
      return fail("resource type '{}' is not known", config.type);
    if (context.loop != loop_ || context.group.empty())
      return fail("driver context of {} is incomplete", config.name);
    ++made_[config.name];
    return std::make_unique<FakeDriver>(*this, config.name);
  };
}

int FakeWorld::count(const std::string& call) const {
  return static_cast<int>(std::count(calls_.begin(), calls_.end(), call));
}

int FakeWorld::index_of(const std::string& call, int from) const {
  for (int i = std::max(from, 0); i < static_cast<int>(calls_.size()); ++i)
    if (calls_[i] == call) return i;
  return -1;
}

bool FakeWorld::waiting(const std::string& name) const {
  auto it = drivers_.find(name);
  return it != drivers_.end() && it->second->waiting();
}

void FakeWorld::complete(const std::string& name, ActionResult result) {
  auto it = drivers_.find(name);
  if (it != drivers_.end()) it->second->complete(std::move(result));
}

void FakeWorld::report_failure(const std::string& name, const std::string& reason) {
  auto it = drivers_.find(name);
  if (it != drivers_.end()) it->second->fail(reason);
}

int FakeWorld::made(const std::string& name) const {
  auto it = made_.find(name);
  return it == made_.end() ? 0 : it->second;
}

}  // namespace clusterd::testing
