// One resource group on this node: its resources, their targets and one reconcile() that, after
// every event, computes what to start and stop next from targets and current states (with the
// pure ordering of group_plan.h), applies the restart policy on failures and records every
// transition through one set_state().
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "driver.h"
#include "engine_loop.h"
#include "event_history.h"
#include "group_plan.h"
#include "resource.h"
#include "resource_manager.h"
#include "resource_state.h"

namespace clusterd {

/// What every group of one ResourceManager shares; owned by the manager.
struct Engine {
  Engine(sd_event* loop_, EventHistory& history_, DriverContext base_, DriverFactory factory_)
      : loop(loop_),
        history(history_),
        base(std::move(base_)),
        factory(std::move(factory_)),
        deferred(loop_) {}

  sd_event* loop;
  EventHistory& history;
  DriverContext base;  ///< Copied per group, with .group set.
  DriverFactory factory;
  Deferred deferred;              ///< Callbacks "from the loop" and retirement of objects.
  std::function<void()> changed;  ///< After every state change.
  std::function<void(const std::string&)> group_failed;  ///< A group failed and is down here.
  std::function<void(Group&)> settled;                   ///< After each reconcile round.
};

/// A resource group on this node. Single-threaded, driven by the loop.
class Group final : private ResourceObserver {
 public:
  /// Adopts `config` (shared with the Config it belongs to, not copied): every resource
  /// offline, nothing started.
  Group(std::shared_ptr<const GroupConfig> config, Engine& engine);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  /// The group's name.
  const std::string& name() const { return config_->name; }
  /// Derived from the resources' states.
  GroupState state() const { return state_; }

  /// Wants every resource online (resets failure counters and clears held failures).
  void online(const std::string& reason);
  /// Wants every resource offline.
  void offline(const std::string& reason);
  /// Wants `resource` and what it depends on online; an error when there is no such resource.
  Result<void> online_resource(const std::string& resource, const std::string& reason);
  /// Wants `resource` and what depends on it offline; an error when there is no such resource.
  Result<void> offline_resource(const std::string& resource, const std::string& reason);

  /// Takes a new definition of the group: see ResourceManager::apply.
  void apply(std::shared_ptr<const GroupConfig> next);
  /// The group left the configuration: everything goes offline, then the manager drops it.
  void remove();
  /// True once remove() was called (and no apply() brought the group back).
  bool removing() const { return removing_; }
  /// True when nothing moves: no action runs (health checks aside), every resource is offline
  /// or failed, and nothing more will happen without a new request or failure.
  bool quiescent() const;

  /// The group as the API shows it.
  GroupStatus status() const;

 private:
  void on_action_done(Resource& resource, Action action, ActionResult result) override;
  void on_resource_failure(Resource& resource, std::string reason) override;

  void reconcile();
  void stop_step();
  void start_step();
  void finish_round();
  bool wants_stop(const Resource& r) const;
  bool wants_start(const Resource& r) const;
  ResourceState stop_view(const Resource& r) const;
  ResourceState start_view(const Resource& r) const;
  void begin_stop(Resource& r);
  void begin_start(Resource& r);
  void on_started(Resource& r, const ActionResult& result);
  void on_stopped(Resource& r, const ActionResult& result);
  void after_offline(Resource& r);

  void handle_failure(Resource& r, const std::string& reason);
  void restart(Resource& r, const std::string& reason);
  void fail_resource(Resource& r);
  void fail_group(Resource& r);
  void fail_permanently(Resource& r, const std::string& reason);

  bool set_state(Resource& r, ResourceState to, const std::string& reason);
  void update_group_state(const std::string& reason);
  void record(const std::string& kind, const std::string& resource, const char* from,
              const char* to, const std::string& reason, Usec wall_usec);

  void set_targets(const std::vector<std::string>& names, Target target, const std::string& reason);
  void mark_removed(Resource& r);
  void change_definition(Resource& r, std::shared_ptr<const ResourceConfig> next);
  void recycle_from(const std::string& name, const std::string& reason);
  void drop_removed_resources();
  std::shared_ptr<const GroupConfig> planning_config() const;
  std::unique_ptr<Resource> make_resource(std::shared_ptr<const ResourceConfig> config);
  Resource* find(const std::string& name) const;
  std::vector<std::string> others(const std::vector<std::string>& names,
                                  const std::string& except) const;

  Engine& engine_;
  std::shared_ptr<const GroupConfig> definition_;  ///< As configured; shares the Config.
  /// What plans are made with: definition_, or while removed resources are still going offline,
  /// a copy of it with them appended.
  std::shared_ptr<const GroupConfig> config_;
  std::shared_ptr<const DriverContext> context_;  ///< Shared by the group's resources.
  std::vector<std::unique_ptr<Resource>> resources_;  ///< In config_ order.
  GroupState state_ = GroupState::Offline;
  std::string reason_;
  bool removing_ = false;
  bool failing_ = false;  ///< The policy failed the group: tell the listener once it is down.
  bool reconciling_ = false;
  bool again_ = false;
};

}  // namespace clusterd
