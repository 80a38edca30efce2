// The `ocf` resource type: an OCF resource agent script (Open Cluster Framework RA API 1.0, as
// shipped by resource-agents) run as a child process per action, with its parameters in
// OCF_RESKEY_* variables and its answer in the exit code.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "child.h"
#include "driver.h"

namespace clusterd {

/// The actions we run.
enum class OcfAction { Start, Stop, Monitor, MetaData };
const char* to_string(OcfAction action);

/// OCF exit codes (OCF RA API 1.0, plus 1.1's degraded codes).
enum OcfExitCode : int {
  kOcfSuccess = 0,
  kOcfErrGeneric = 1,
  kOcfErrArgs = 2,
  kOcfErrUnimplemented = 3,
  kOcfErrPerm = 4,
  kOcfErrInstalled = 5,
  kOcfErrConfigured = 6,
  kOcfNotRunning = 7,
  kOcfRunningPromoted = 8,
  kOcfFailedPromoted = 9,
  kOcfDegraded = 190,
  kOcfDegradedPromoted = 191,
};
/// "OCF_ERR_GENERIC" for 1, ...; "unknown exit code" for codes OCF does not define.
const char* ocf_exit_code_name(int code);

/// What `action` exiting with `code` means. Pure; the rules:
/// - 0 is success for every action;
/// - stop: 7 (not running) is success too: the resource is stopped;
/// - monitor: 7 is NotRunning; 8 (running promoted) and 190/191 (degraded) are running;
/// - start: 8 is running, 7 is a failure (the agent says it did not start);
/// - 2 and 6 are configuration errors, 3 unimplemented, 4 permission, 5 not installed;
/// - anything else (1, 9, undefined codes) is a failure.
ActionStatus ocf_action_status(OcfAction action, int code);

/// Where an agent lives.
struct OcfAgentPath {
  std::string path;      ///< The executable.
  std::string provider;  ///< "heartbeat"; empty for an agent given by path.
  std::string type;      ///< "Dummy"; the file name for an agent given by path.
  /// "ocf:heartbeat:Dummy", or "ocf:/path/to/agent".
  std::string name() const;
};

/// Resolves an agent spec: "provider:type" (or "ocf:provider:type") under
/// OCF_ROOT/resource.d/, or an absolute path. Errors when there is no such executable file.
Result<OcfAgentPath> resolve_ocf_agent(const std::string& ocf_root, const std::string& spec);

/// The value a parameter gets in OCF_RESKEY_name: scalars as they are, lists joined with
/// spaces, maps as "key=value" words joined with spaces.
std::string ocf_param_value(const ParamValue& value);

/// The complete environment of one agent run (pure, so it is testable).
std::vector<std::string> ocf_environment(const ResourceConfig& config,
                                         const DriverContext& context, const OcfAgentPath& agent,
                                         OcfAction action, Duration timeout,
                                         std::optional<MonitorLevel> level);

/// Runs the actions of one `ocf` resource, each as a child process with a deadline.
class OcfAgentDriver : public ResourceDriver {
 public:
  /// A driver for `config`, or an error when its agent cannot be found.
  static Result<std::unique_ptr<OcfAgentDriver>> create(const ResourceConfig& config,
                                                        const DriverContext& context);
  ~OcfAgentDriver() override;

  void start(Done done) override;
  void stop(Done done) override;
  void monitor(MonitorLevel level, Done done) override;
  void cancel() override;

  /// The agent this driver runs.
  const OcfAgentPath& agent() const { return agent_; }

 private:
  OcfAgentDriver(ResourceConfig config, DriverContext context, OcfAgentPath agent);
  void run(OcfAction action, Duration timeout, std::optional<MonitorLevel> level, Done done);
  void on_exit(OcfAction action, Duration timeout, ChildExit exit);

  ResourceConfig config_;
  DriverContext context_;
  OcfAgentPath agent_;
  std::unique_ptr<Child> child_;
  Done done_;
  DeferredCall deferred_;
};

/// What to tell people about a failed run: the agent's last `ocf-exit-reason:` message when it
/// gave one (ocf_exit_reason in ocf-shellfuncs), else the last line of its output.
std::string ocf_failure_text(std::string_view output);

/// The ActionResult for an agent run of `action` that ended with `exit`.
ActionResult ocf_action_result(OcfAction action, Duration timeout, const ChildExit& exit);

}  // namespace clusterd
