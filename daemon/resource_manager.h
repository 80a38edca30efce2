// The local resource manager: owns the resources of every group this node runs, drives them
// through the transition table in dependency order, runs their health checks and applies the
// restart policy. Every transition is logged and recorded in the event history with its reason.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <systemd/sd-event.h>

#include "clock.h"
#include "config.h"
#include "driver.h"
#include "error.h"
#include "event_history.h"
#include "resource_state.h"

namespace clusterd {

/// A resource as the API shows it.
struct ResourceStatus {
  std::string name;
  std::string type;
  std::string agent;
  ResourceState state = ResourceState::Offline;
  std::string reason;             ///< Why it is in this state (last transition's reason).
  std::uint32_t restarts = 0;     ///< Failures counted inside the restart period.
  pid_t main_pid = 0;
  Usec since_wall_usec = 0;       ///< When it entered this state.
};

/// A group as the API shows it.
struct GroupStatus {
  std::string name;
  GroupState state = GroupState::Offline;
  std::string owner;  ///< Node running it (this node when any resource is not offline), or "".
  std::string reason;
  std::vector<ResourceStatus> resources;
};

class Resource;  // resource_manager.cc
class Group;     // resource_manager.cc

/// Runs the groups of this node. Single-threaded: call only from the event loop.
class ResourceManager {
 public:
  ResourceManager(sd_event* loop, EventHistory& history, DriverContext base_context,
                  DriverFactory factory = make_driver);
  ~ResourceManager();
  ResourceManager(const ResourceManager&) = delete;
  ResourceManager& operator=(const ResourceManager&) = delete;

  /// Takes a (new) configuration. Groups and resources that were added appear offline; removed
  /// ones are taken offline first, then dropped; a changed resource that is online is stopped
  /// and started again with its new definition; unchanged ones are not touched.
  void apply(ConfigPtr config);

  /// Brings every resource of `group` online in dependency order (resets failure counters).
  Result<void> online_group(const std::string& group, const std::string& reason);
  /// Takes every resource of `group` offline in reverse dependency order.
  Result<void> offline_group(const std::string& group, const std::string& reason);
  /// Brings one resource online, with what it depends on.
  Result<void> online_resource(const std::string& group, const std::string& resource,
                               const std::string& reason);
  /// Takes one resource offline, with what depends on it.
  Result<void> offline_resource(const std::string& group, const std::string& resource,
                                const std::string& reason);

  /// Takes every group offline; calls `done` once every resource is offline or failed.
  void shutdown(std::function<void()> done);

  /// Every group of the configuration with its resources.
  std::vector<GroupStatus> status() const;
  /// Status of one group, or an error when there is no such group.
  Result<GroupStatus> group_status(const std::string& group) const;

  /// Called (from the loop) after any state change.
  void set_change_listener(std::function<void()> listener);
  /// Called when a group fails past its resources' restart policy (failover hooks in later).
  void set_group_failed_listener(std::function<void(const std::string& group)> listener);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clusterd
