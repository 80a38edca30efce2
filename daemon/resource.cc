#include "resource.h"

#include <algorithm>
#include <iterator>

#include <fmt/format.h>

#include "log.h"

namespace clusterd {
namespace {

constexpr const char* kActionNames[] = {"none", "start", "stop", "monitor"};
static_assert(std::size(kActionNames) == kActionCount);
constexpr const char* kTargetNames[] = {"offline", "online"};
static_assert(std::size(kTargetNames) == kTargetCount);

std::string describe(const ActionResult& result) {
  return result.reason.empty() ? to_string(result.status) : result.reason;
}

}  // namespace

const char* to_string(Action action) {
  int i = static_cast<int>(action);
  return i >= 0 && i < kActionCount ? kActionNames[i] : "?";
}

const char* to_string(Target target) {
  int i = static_cast<int>(target);
  return i >= 0 && i < kTargetCount ? kTargetNames[i] : "?";
}

Resource::Resource(std::shared_ptr<const ResourceConfig> config,
                   std::shared_ptr<const DriverContext> context, DriverFactory factory,
                   ResourceObserver& observer)
    : config_(std::move(config)),
      context_(std::move(context)),
      factory_(std::move(factory)),
      observer_(observer),
      since_wall_usec_(wall_now_usec()) {}

Resource::Resource(ResourceConfig config, DriverContext context, DriverFactory factory,
                   ResourceObserver& observer)
    : Resource(std::make_shared<const ResourceConfig>(std::move(config)),
               std::make_shared<const DriverContext>(std::move(context)), std::move(factory),
               observer) {}

Resource::~Resource() { detach(); }

pid_t Resource::main_pid() const { return driver_ ? driver_->main_pid() : 0; }

void Resource::enter_state(ResourceState to, std::string reason, Usec wall_usec) {
  bool was_online = state_ == ResourceState::Online;
  state_ = to;
  reason_ = std::move(reason);
  if (to == ResourceState::Failed) last_failure_ = reason_;
  since_wall_usec_ = wall_usec;
  if (to == ResourceState::Online) {
    start_monitors();
  } else if (was_online) {
    stop_monitors();
    if (action_ == Action::Monitor) cancel();
  }
}

Result<void> Resource::ensure_driver() {
  if (driver_) return {};
  auto made = factory_(*config_, *context_);
  if (!made) return std::unexpected(made.error());
  if (!*made) return fail("the driver factory made no driver for resource '{}'", name());
  driver_ = std::move(*made);
  driver_->set_failure_handler(
      [this](std::string reason) { observer_.on_resource_failure(*this, std::move(reason)); });
  return {};
}

Result<void> Resource::start() {
  if (auto made = ensure_driver(); !made) return made;
  run(Action::Start,
      [](ResourceDriver& d, ResourceDriver::Done done) { d.start(std::move(done)); });
  return {};
}

void Resource::stop() {
  if (action_ == Action::Monitor) cancel();
  if (!driver_) {
    // Never started with this definition: nothing can be running.
    action_ = Action::Stop;
    finish(++action_id_, Action::Stop, ActionResult{});
    return;
  }
  run(Action::Stop, [](ResourceDriver& d, ResourceDriver::Done done) { d.stop(std::move(done)); });
}

void Resource::cancel() {
  if (action_ == Action::None) return;
  log(LogLevel::Debug, {{"GROUP", context_->group}, {"RESOURCE", name()}}, "cancelling {}",
      to_string(action_));
  action_ = Action::None;
  ++action_id_;
  if (driver_) driver_->cancel();
}

void Resource::run(Action action, const Call& call) {
  action_ = action;
  std::uint64_t id = ++action_id_;
  // The driver may complete synchronously, inside this call: action_ is set before.
  call(*driver_,
       [this, id, action](ActionResult result) { finish(id, action, std::move(result)); });
}

void Resource::finish(std::uint64_t id, Action action, ActionResult result) {
  if (id != action_id_ || action_ != action) return;  // Cancelled: the answer is stale.
  action_ = Action::None;
  if (action == Action::Monitor)
    last_check_[monitor_level_ == MonitorLevel::IsAlive ? 1 : 0] = to_string(result.status);
  if (action != Action::Monitor) {
    observer_.on_action_done(*this, action, std::move(result));
  } else if (result.status != ActionStatus::Ok && state_ == ResourceState::Online) {
    observer_.on_resource_failure(
        *this, fmt::format("{} check failed: {}", to_string(monitor_level_), describe(result)));
  }
}

void Resource::take_pending_config(
    const std::function<void(std::unique_ptr<ResourceDriver>)>& retire) {
  if (!pending_config_) return;
  config_ = std::move(pending_config_);
  if (driver_) {
    driver_->set_failure_handler(nullptr);
    retire(std::move(driver_));
  }
}

void Resource::detach() {
  stop_monitors();
  restart_delay_.disarm();
  cancel();
  if (driver_) driver_->set_failure_handler(nullptr);
}

void Resource::arm_restart_delay(Duration delay, std::function<void()> fn) {
  auto armed = restart_delay_.arm(context_->loop, delay, timer_name("restart-delay"), std::move(fn));
  if (!armed) {
    log(LogLevel::Err, {{"GROUP", context_->group}, {"RESOURCE", name()}}, "{}",
        armed.error().to_string());
  }
}

void Resource::start_monitors() {
  MonoTime now = mono_now();
  for (MonitorLevel level : {MonitorLevel::LooksAlive, MonitorLevel::IsAlive}) {
    Duration interval = monitor_interval(level);
    monitor_due(level) = interval.count() > 0 ? now + interval : MonoTime{};  // 0 disables it.
  }
  schedule_monitor();
}

void Resource::stop_monitors() {
  monitor_due_[0] = monitor_due_[1] = MonoTime{};
  monitor_timer_.disarm();
}

void Resource::schedule_monitor() {
  MonoTime looks = monitor_due(MonitorLevel::LooksAlive);
  MonoTime is = monitor_due(MonitorLevel::IsAlive);
  MonoTime next = looks.usec == 0 ? is : is.usec == 0 ? looks : std::min(looks, is);
  if (next.usec == 0) return;
  auto armed = monitor_timer_.arm_at(context_->loop, next, timer_name("monitor"),
                                     [this] { on_monitor_due(); });
  if (!armed) {
    log(LogLevel::Err, {{"GROUP", context_->group}, {"RESOURCE", name()}}, "{}",
        armed.error().to_string());
  }
}

// Each check that fell due is scheduled again one interval from now. IsAlive is the thorough
// check and subsumes LooksAlive: when both fall due together it runs (and the LooksAlive check
// is skipped as the driver is busy), instead of being starved by a LooksAlive interval that
// divides its own.
void Resource::on_monitor_due() {
  if (state_ != ResourceState::Online) return;
  MonoTime now = mono_now();
  for (MonitorLevel level : {MonitorLevel::IsAlive, MonitorLevel::LooksAlive}) {
    MonoTime& due = monitor_due(level);
    if (due.usec == 0 || now < due) continue;
    due = now + monitor_interval(level);
    run_monitor(level);
  }
  schedule_monitor();
}

void Resource::run_monitor(MonitorLevel level) {
  if (busy() || !driver_) {
    log(LogLevel::Debug, {{"GROUP", context_->group}, {"RESOURCE", name()}},
        "skipping {} check: {} in progress", to_string(level), to_string(action_));
    return;
  }
  monitor_level_ = level;
  run(Action::Monitor,
      [level](ResourceDriver& d, ResourceDriver::Done done) { d.monitor(level, std::move(done)); });
}

MonoTime& Resource::monitor_due(MonitorLevel level) {
  return monitor_due_[level == MonitorLevel::IsAlive ? 1 : 0];
}

Duration Resource::monitor_interval(MonitorLevel level) const {
  return level == MonitorLevel::IsAlive ? config_->monitor.is_alive : config_->monitor.looks_alive;
}

std::string Resource::timer_name(const char* what) const {
  return fmt::format("{}:{}/{}", what, context_->group, name());
}

}  // namespace clusterd
