// The interface between the resource engine and the resource types. A driver performs the
// actions of one resource asynchronously on the event loop and enforces each action's deadline
// itself (architecture rule 4: on timeout the agent's whole process group is killed).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include <systemd/sd-event.h>

#include "config.h"
#include "error.h"
#include "handle.h"

namespace clusterd {

/// MSCS's two health checks. OCF: monitor with OCF_CHECK_LEVEL 0 and 20.
enum class MonitorLevel { LooksAlive, IsAlive };
const char* to_string(MonitorLevel level);

/// Outcome of one action, mapped from the agent's answer (OCF exit codes 0-7 and timeouts).
enum class ActionStatus {
  Ok,             ///< Done; for monitor: running.
  NotRunning,     ///< Monitor: cleanly stopped (OCF_NOT_RUNNING, 7).
  Failed,         ///< OCF_ERR_GENERIC (1) and anything unexpected.
  Timeout,        ///< Deadline passed; the process group was killed.
  InvalidConfig,  ///< OCF_ERR_ARGS (2), OCF_ERR_CONFIGURED (6).
  NotInstalled,   ///< OCF_ERR_INSTALLED (5).
  Unimplemented,  ///< OCF_ERR_UNIMPLEMENTED (3).
  Permission,     ///< OCF_ERR_PERM (4).
};
const char* to_string(ActionStatus status);

/// What an action came to, with a sentence for people.
struct ActionResult {
  ActionStatus status = ActionStatus::Ok;
  std::string reason;  ///< Empty on success.
  int exit_code = -1;  ///< The agent's exit status, or -1.
};

/// Performs start/stop/monitor for one resource. At most one action runs at a time; the engine
/// never calls a second before the first's Done. Callbacks run on the event loop.
class ResourceDriver {
 public:
  using Done = std::function<void(ActionResult)>;
  using FailureHandler = std::function<void(std::string reason)>;

  virtual ~ResourceDriver() = default;
  /// Brings the resource online; Done(Ok) once it is.
  virtual void start(Done done) = 0;
  /// Takes it offline; Done(Ok) once nothing of it is left running.
  virtual void stop(Done done) = 0;
  /// Checks health at `level`; Done(Ok) when healthy, NotRunning when cleanly stopped.
  virtual void monitor(MonitorLevel level, Done done) = 0;
  /// Aborts any action in flight (killing its processes) without calling its Done.
  virtual void cancel() = 0;
  /// The main process (process type), 0 when there is none.
  virtual pid_t main_pid() const { return 0; }

  /// Registers the handler for failures the driver sees by itself, between actions (a
  /// supervised process exiting, an address removed): the engine treats them like a failed
  /// monitor.
  void set_failure_handler(FailureHandler handler) { failure_handler_ = std::move(handler); }

 protected:
  /// Reports an unsolicited failure to the engine.
  void report_failure(std::string reason) {
    if (failure_handler_) failure_handler_(std::move(reason));
  }

 private:
  FailureHandler failure_handler_;
};

class NetlinkWatcher;  // net module: one rtnetlink socket per daemon, shared by ip resources
class SystemdManager;  // service module: one connection to systemd per daemon

/// What a driver needs besides its resource's configuration.
struct DriverContext {
  sd_event* loop = nullptr;
  std::string node_name;
  std::string cluster_name;
  std::uint32_t cluster_id = 0;  ///< With node_id, the reservation key of disk resources.
  std::uint32_t node_id = 0;
  /// The per-disk helper (disk type): libexecdir/clusterd/clusterd-disk, or the one beside the
  /// daemon's own executable when that exists (a build tree).
  std::string disk_helper;
  std::string group;
  std::string ocf_root = "/usr/lib/ocf";
  std::string state_dir = "/var/lib/clusterd";  ///< Per-resource scratch: STATE_DIR/RESOURCE.
  std::shared_ptr<NetlinkWatcher> netlink;      ///< Shared address/link watcher (ip type).
  std::shared_ptr<SystemdManager> systemd;      ///< Shared systemd connection (service type).
  /// The group's current definition, for types that read their neighbours (name: the ip
  /// resources it registers; process, ocf: the name they depend on). A function, read when an
  /// action starts: a driver outlives changes of its neighbours' definitions. Unset (or null)
  /// for a resource outside a group.
  std::function<std::shared_ptr<const GroupConfig>()> group_definition;
};

using DriverFactory = std::function<Result<std::unique_ptr<ResourceDriver>>(
    const ResourceConfig&, const DriverContext&)>;

/// Runs one callback on the loop's next iteration. Drivers deliver results that are known at once
/// through it, so the engine's Done never runs inside the call that started the action.
/// Destroying it (or cancel()) drops the callback.
class DeferredCall {
 public:
  DeferredCall() = default;
  DeferredCall(const DeferredCall&) = delete;
  DeferredCall& operator=(const DeferredCall&) = delete;
  /// Schedules `fn`, replacing one not yet run. If the loop cannot take it, `fn` runs now.
  void post(sd_event* loop, std::function<void()> fn);
  /// Drops the scheduled callback, if any.
  void cancel();
  /// True while a callback waits to run.
  bool pending() const { return source_ != nullptr; }

 private:
  static int on_defer(sd_event_source* source, void* userdata) noexcept;
  EventSourcePtr source_;
  std::function<void()> fn_;
};

/// The real factory: a driver for the resource's type ("process", "ocf").
struct TypeInfo;

/// A resource type built into the daemon: its name, its parameter metadata (none for "ocf",
/// whose parameters come from each agent's meta-data) and its driver factory.
struct BuiltinType {
  const char* name;
  TypeInfo (*info)();
  Result<std::unique_ptr<ResourceDriver>> (*make)(const ResourceConfig&, const DriverContext&);
};

/// Every built-in type, in the order people should read them.
std::span<const BuiltinType> builtin_types();

/// Names of the built-in types, "process, ocf, ip, service, disk, name".
std::string builtin_type_names();

Result<std::unique_ptr<ResourceDriver>> make_driver(const ResourceConfig& config,
                                                    const DriverContext& context);

}  // namespace clusterd
