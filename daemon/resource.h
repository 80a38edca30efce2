// One managed resource: its configuration, its driver, its state, its health-check timers and
// the bookkeeping the group uses to decide what it should do next. A Resource performs actions
// on request and reports their outcome; every decision (ordering, restart policy, state
// transitions) belongs to its Group.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "clock.h"
#include "config.h"
#include "driver.h"
#include "engine_loop.h"
#include "error.h"
#include "resource_state.h"
#include "restart_policy.h"

namespace clusterd {

/// What a resource is doing with its driver right now (at most one thing at a time).
enum class Action { None, Start, Stop, Monitor };
inline constexpr int kActionCount = 4;
/// "none", "start", "stop", "monitor".
const char* to_string(Action action);

/// The state the administrator (or the restart policy) wants a resource in.
enum class Target { Offline, Online };
inline constexpr int kTargetCount = 2;
/// "offline", "online".
const char* to_string(Target target);

/// How the group wants a resource to move; written only by the Group.
struct Intent {
  Target target = Target::Offline;
  bool hold_failed = false;  ///< The policy failed it: it stays failed until an administrator acts.
  bool cleanup_due = false;  ///< Something of it may still run: a stop is owed before it is clean.
  bool recycle = false;      ///< Must go offline before it may start again (a dependency restarts,
                             ///< or its definition changed).
  bool restarting = false;   ///< The restart policy starts it again once it is offline.
  bool removing = false;     ///< Gone from the configuration: dropped once offline.
  std::string reason;        ///< Reason given to its next transition.
};

class Resource;

/// Receives what a Resource's driver reports. Callbacks run on the loop.
class ResourceObserver {
 public:
  /// An action finished (never called for a cancelled action).
  virtual void on_action_done(Resource& resource, Action action, ActionResult result) = 0;
  /// A health check failed or the driver reported a failure on its own.
  virtual void on_resource_failure(Resource& resource, std::string reason) = 0;

 protected:
  ~ResourceObserver() = default;
};

/// A resource of a group on this node. Single-threaded, driven by the loop.
class Resource {
 public:
  /// `config` is the resource's definition, `context` the group's driver context (both shared,
  /// not copied: a daemon runs hundreds of resources); `factory` makes the driver on first start.
  Resource(std::shared_ptr<const ResourceConfig> config,
           std::shared_ptr<const DriverContext> context, DriverFactory factory,
           ResourceObserver& observer);
  /// The same with private copies of `config` and `context` (for tests and single resources).
  Resource(ResourceConfig config, DriverContext context, DriverFactory factory,
           ResourceObserver& observer);
  ~Resource();
  Resource(const Resource&) = delete;
  Resource& operator=(const Resource&) = delete;

  /// The resource's name.
  const std::string& name() const { return config_->name; }
  /// The definition the current driver was made from.
  const ResourceConfig& config() const { return *config_; }
  /// Current state.
  ResourceState state() const { return state_; }
  /// Reason of the last transition.
  const std::string& reason() const { return reason_; }
  /// Why it last failed (kept after the cleanup stop that follows), "" if it never did.
  const std::string& last_failure() const { return last_failure_; }
  /// Wall clock of the last transition.
  Usec since_wall_usec() const { return since_wall_usec_; }
  /// Outcome of the last health check at `level` ("ok", "failed", ...), "" before the first.
  const char* last_check(MonitorLevel level) const {
    return last_check_[level == MonitorLevel::IsAlive ? 1 : 0];
  }
  /// The action in flight, or None.
  Action action() const { return action_; }
  /// True while an action runs on the driver.
  bool busy() const { return action_ != Action::None; }
  /// The driver's main process, 0 when none.
  pid_t main_pid() const;

  /// The group's plans for this resource.
  Intent& intent() { return intent_; }
  const Intent& intent() const { return intent_; }
  /// Failures counted by the restart policy.
  RestartTracker& failures() { return failures_; }
  const RestartTracker& failures() const { return failures_; }

  /// Records a transition the group has checked; schedules the health checks on entering Online
  /// and cancels them on leaving it.
  void enter_state(ResourceState to, std::string reason, Usec wall_usec);
  /// Starts the driver (making it first if needed); an error when no driver can be made.
  Result<void> start();
  /// Stops the driver; completes at once when there is none (nothing can be running).
  void stop();
  /// Aborts the action in flight without reporting it.
  void cancel();

  /// A new definition, taken when the resource is offline and idle.
  void set_pending_config(std::shared_ptr<const ResourceConfig> config) {
    pending_config_ = std::move(config);
  }
  /// An unchanged definition from a newer configuration: shared from there from now on, so the
  /// older configuration can be freed. Drops a pending definition (the change was undone).
  void share_config(std::shared_ptr<const ResourceConfig> same) {
    config_ = std::move(same);
    pending_config_.reset();
  }
  /// True when a new definition waits.
  bool has_pending_config() const { return pending_config_ != nullptr; }
  /// Switches to the pending definition; the old driver is handed to `retire` (it may be in
  /// its own callback now, so it must not be destroyed here).
  void take_pending_config(const std::function<void(std::unique_ptr<ResourceDriver>)>& retire);
  /// Stops listening to the driver (before the resource is retired).
  void detach();

  /// The restart delay: calls `fn` after `delay`. While armed the resource is not started.
  void arm_restart_delay(Duration delay, std::function<void()> fn);
  /// True while a restart delay runs.
  bool delaying() const { return restart_delay_.armed(); }

 private:
  using Call = std::function<void(ResourceDriver&, ResourceDriver::Done)>;

  Result<void> ensure_driver();
  void run(Action action, const Call& call);
  void finish(std::uint64_t id, Action action, ActionResult result);
  void start_monitors();
  void stop_monitors();
  void schedule_monitor();
  void on_monitor_due();
  void run_monitor(MonitorLevel level);
  MonoTime& monitor_due(MonitorLevel level);
  Duration monitor_interval(MonitorLevel level) const;
  std::string timer_name(const char* what) const;

  std::shared_ptr<const ResourceConfig> config_;
  std::shared_ptr<const ResourceConfig> pending_config_;
  std::shared_ptr<const DriverContext> context_;
  DriverFactory factory_;
  ResourceObserver& observer_;
  std::unique_ptr<ResourceDriver> driver_;

  ResourceState state_ = ResourceState::Offline;
  std::string reason_;
  std::string last_failure_;
  Usec since_wall_usec_ = 0;
  const char* last_check_[2] = {"", ""};  ///< By MonitorLevel: to_string(ActionStatus).
  Action action_ = Action::None;
  std::uint64_t action_id_ = 0;  ///< Tells a stale completion (after cancel) from the current.
  MonitorLevel monitor_level_ = MonitorLevel::LooksAlive;  ///< Of the monitor in flight.

  Intent intent_;
  RestartTracker failures_;
  /// When each check falls due next (by MonitorLevel), 0 when it is off. One timer serves
  /// both, armed for the earlier: an event source costs ~300 bytes, and there are hundreds.
  MonoTime monitor_due_[2];
  Timer monitor_timer_;
  Timer restart_delay_;
};

}  // namespace clusterd
