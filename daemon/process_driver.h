// The `process` resource type: one long-running program supervised directly (no agent script).
// Online while its main process runs; the pidfd reports its death at once, so a crash is a
// failure within milliseconds rather than at the next LooksAlive poll.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "child.h"
#include "driver.h"

namespace clusterd {

/// The parameters of a `process` resource, validated.
struct ProcessParams {
  std::string command;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::string cwd = "/";
  std::string user;
  std::string group;
  int stop_signal = 15;  // SIGTERM
  mode_t umask = 022;
  /// "network-name": run in a UTS namespace of its own named after the network name the
  /// resource depends on (MSCS: GetComputerName returns the virtual server's name); another
  /// value: that host name; empty: the node's.
  std::string hostname;
};

/// The `hostname` value that means "the network name of the group".
inline constexpr const char* kHostnameNetworkName = "network-name";

/// Reads and checks `params` of resource `resource` (see process_type_info()).
Result<ProcessParams> parse_process_params(const std::string& resource, const Params& params);

/// Runs and supervises the main process of one `process` resource.
class ProcessDriver : public ResourceDriver {
 public:
  /// How long stop waits after SIGKILL before reporting failure (a process stuck in the kernel).
  static constexpr Duration kKillGrace = std::chrono::seconds(5);

  /// A driver for `config`, or an error naming the bad parameter.
  static Result<std::unique_ptr<ProcessDriver>> create(const ResourceConfig& config,
                                                       const DriverContext& context);
  ~ProcessDriver() override;

  void start(Done done) override;
  void stop(Done done) override;
  void monitor(MonitorLevel level, Done done) override;
  void cancel() override;
  pid_t main_pid() const override;

 private:
  enum class Phase { Idle, Starting, Running, Stopping };

  ProcessDriver(const ResourceConfig& config, const DriverContext& context, ProcessParams params);
  Result<ChildSpec> child_spec() const;
  void on_exit(const ChildExit& exit);
  void finish(ActionResult result);
  void deliver_later(ActionResult result, Done done);
  void arm_stop_guard();
  static int on_stop_guard(sd_event_source* source, uint64_t usec, void* userdata) noexcept;
  std::string exit_reason(const ChildExit& exit) const;

  sd_event* loop_;
  std::string name_;
  std::string group_;
  std::string node_;
  std::function<std::shared_ptr<const GroupConfig>()> group_definition_;
  ActionTimeouts timeouts_;
  ProcessParams params_;
  std::unique_ptr<Child> child_;
  Phase phase_ = Phase::Idle;
  Done done_;  ///< The action in flight (start before its deferred Ok, or stop).
  DeferredCall deferred_;
  EventSourcePtr stop_guard_;
};

}  // namespace clusterd
