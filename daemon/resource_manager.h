// The local resource manager: owns the resources of every group this node runs, drives them
// through the transition table in dependency order, runs their health checks and applies the
// restart policy. Every transition is logged and recorded in the event history with its reason.
//
// Requests only set a target (desired) state per resource; after every event each group
// reconciles targets with current states (group.h), so an online request during
// offline-pending (or the reverse) simply redirects the resource. Failure handling (MSCS):
//  - Restart: dependents go offline, the resource is cleaned up (driver stop), started again
//    after restart.delay, and its dependents follow.
//  - FailResource: it stays failed (cleaned up), its dependents go offline.
//  - FailGroup: the whole group goes offline in order, the failed resource stays failed, and
//    the group-failed listener is called once the group is down on this node.
//  - A failed stop leaves the resource failed with no automatic retry; a driver factory error
//    fails the resource without restarts (a configuration problem no restart would cure).
//  A failed resource stays failed until an administrator brings it online or offline.
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
  std::string reason;          ///< Why it is in this state (last transition's reason).
  std::uint32_t restarts = 0;  ///< Failures counted inside the restart period.
  pid_t main_pid = 0;
  Usec since_wall_usec = 0;  ///< When it entered this state.
  std::string last_looks_alive;  ///< Last LooksAlive outcome ("ok", "failed", ...), "" if none.
  std::string last_is_alive;     ///< Last IsAlive outcome, "" if none yet.
  std::string last_failure;  ///< Reason of its last failure, kept after the cleanup stop.
};

/// A group as the API shows it.
struct GroupStatus {
  std::string name;
  GroupState state = GroupState::Offline;
  std::string owner;  ///< Node running it (this node when any resource is not offline), or "".
  std::string reason;
  std::vector<ResourceStatus> resources;
};

class Resource;  // resource.h
class Group;     // group.h

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

  /// Takes every group offline; calls `done` (from the loop, never inside this call) once every
  /// resource is offline or failed. Later online requests are refused.
  void shutdown(std::function<void()> done);

  /// Every group of the configuration with its resources.
  std::vector<GroupStatus> status() const;
  /// Status of one group, or an error when there is no such group.
  Result<GroupStatus> group_status(const std::string& group) const;

  /// Called (from the loop) after any state change.
  void set_change_listener(std::function<void()> listener);
  /// Called when a group fails past its resources' restart policy, once it is down on this node
  /// (failover hooks in later).
  void set_group_failed_listener(std::function<void(const std::string& group)> listener);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clusterd
