#include "ocf_agent.h"

#include <sys/stat.h>
#include <unistd.h>

#include "config_load.h"
#include "log.h"
#include "name_driver.h"

namespace clusterd {

const char* to_string(OcfAction action) {
  switch (action) {
    case OcfAction::Start: return "start";
    case OcfAction::Stop: return "stop";
    case OcfAction::Monitor: return "monitor";
    case OcfAction::MetaData: return "meta-data";
  }
  return "?";
}

const char* ocf_exit_code_name(int code) {
  switch (code) {
    case kOcfSuccess: return "OCF_SUCCESS";
    case kOcfErrGeneric: return "OCF_ERR_GENERIC";
    case kOcfErrArgs: return "OCF_ERR_ARGS";
    case kOcfErrUnimplemented: return "OCF_ERR_UNIMPLEMENTED";
    case kOcfErrPerm: return "OCF_ERR_PERM";
    case kOcfErrInstalled: return "OCF_ERR_INSTALLED";
    case kOcfErrConfigured: return "OCF_ERR_CONFIGURED";
    case kOcfNotRunning: return "OCF_NOT_RUNNING";
    case kOcfRunningPromoted: return "OCF_RUNNING_PROMOTED";
    case kOcfFailedPromoted: return "OCF_FAILED_PROMOTED";
    case kOcfDegraded: return "OCF_DEGRADED";
    case kOcfDegradedPromoted: return "OCF_DEGRADED_PROMOTED";
  }
  return "unknown exit code";
}

ActionStatus ocf_action_status(OcfAction action, int code) {
  switch (code) {
    case kOcfSuccess: return ActionStatus::Ok;
    case kOcfErrArgs:
    case kOcfErrConfigured: return ActionStatus::InvalidConfig;
    case kOcfErrUnimplemented: return ActionStatus::Unimplemented;
    case kOcfErrPerm: return ActionStatus::Permission;
    case kOcfErrInstalled: return ActionStatus::NotInstalled;
    case kOcfNotRunning:
      if (action == OcfAction::Stop) return ActionStatus::Ok;
      if (action == OcfAction::Monitor) return ActionStatus::NotRunning;
      return ActionStatus::Failed;
    case kOcfRunningPromoted:
      return action == OcfAction::Monitor || action == OcfAction::Start ? ActionStatus::Ok
                                                                        : ActionStatus::Failed;
    case kOcfDegraded:
    case kOcfDegradedPromoted:
      // OCF 1.1: running with reduced service; still online as far as placement is concerned.
      return action == OcfAction::Monitor ? ActionStatus::Ok : ActionStatus::Failed;
    default: return ActionStatus::Failed;
  }
}

std::string OcfAgentPath::name() const {
  if (provider.empty()) return "ocf:" + path;
  return "ocf:" + provider + ":" + type;
}

namespace {

bool valid_name_part(const std::string& part) {
  return !part.empty() && part != "." && part != ".." && part.find('/') == std::string::npos;
}

Result<OcfAgentPath> parse_agent_spec(const std::string& ocf_root, const std::string& spec) {
  OcfAgentPath agent;
  if (spec.starts_with("/")) {
    agent.path = spec;
    agent.type = spec.substr(spec.rfind('/') + 1);
    return agent;
  }
  std::string rest = spec.starts_with("ocf:") ? spec.substr(4) : spec;
  auto colon = rest.find(':');
  if (colon != std::string::npos) {
    agent.provider = rest.substr(0, colon);
    agent.type = rest.substr(colon + 1);
  }
  if (!valid_name_part(agent.provider) || !valid_name_part(agent.type) ||
      agent.type.find(':') != std::string::npos)
    return fail("OCF agent '{}' is neither provider:type (e.g. heartbeat:Dummy) nor an absolute "
                "path",
                spec);
  agent.path = ocf_root + "/resource.d/" + agent.provider + "/" + agent.type;
  return agent;
}

}  // namespace

Result<OcfAgentPath> resolve_ocf_agent(const std::string& ocf_root, const std::string& spec) {
  if (spec.empty()) return fail("an ocf resource needs an agent (provider:type, e.g. heartbeat:Dummy)");
  auto agent = parse_agent_spec(ocf_root, spec);
  if (!agent) return agent;
  struct stat st {};
  if (stat(agent->path.c_str(), &st) < 0)
    return fail_errno(errno, "OCF agent '{}' not found at {}", spec, agent->path);
  if (!S_ISREG(st.st_mode)) return fail("OCF agent '{}': {} is not a file", spec, agent->path);
  if (access(agent->path.c_str(), X_OK) < 0)
    return fail("OCF agent '{}': {} is not executable", spec, agent->path);
  return agent;
}

std::string ocf_param_value(const ParamValue& value) {
  std::string out;
  auto add = [&out](const std::string& word) {
    if (!out.empty()) out += ' ';
    out += word;
  };
  switch (value.kind) {
    case ParamValue::Kind::Scalar: return value.scalar;
    case ParamValue::Kind::List:
      for (const auto& item : value.list) add(item);
      break;
    case ParamValue::Kind::Map:
      for (const auto& [key, item] : value.map) add(key + "=" + item);
      break;
  }
  return out;
}

std::vector<std::string> ocf_environment(const ResourceConfig& config,
                                         const DriverContext& context, const OcfAgentPath& agent,
                                         OcfAction action, Duration timeout,
                                         std::optional<MonitorLevel> level) {
  // HA_RSCTMP is left to the agents' default (/run/resource-agents, a tmpfs): their state files
  // there must vanish on reboot, or a rebooted node would see resources "running".
  std::vector<std::string> env = {
      std::string("PATH=") + kDefaultPath,
      "OCF_ROOT=" + context.ocf_root,
      "OCF_RA_VERSION_MAJOR=1",
      "OCF_RA_VERSION_MINOR=0",
      "OCF_RESOURCE_INSTANCE=" + config.name,
      "OCF_RESOURCE_TYPE=" + agent.type,
      "CLUSTER_NODE=" + context.node_name,
      "CLUSTER_NAME=" + context.cluster_name,
      "CLUSTER_GROUP=" + context.group,
      "OCF_RESKEY_CRM_meta_on_node=" + context.node_name,
      fmt::format("OCF_RESKEY_CRM_meta_timeout={}", timeout.count()),
  };
  if (!agent.provider.empty()) env.push_back("OCF_RESOURCE_PROVIDER=" + agent.provider);
  if (auto name = network_name_of(context, config.name); !name.empty())
    env.push_back(std::string(kNetworkNameVariable) + "=" + name);
  if (action == OcfAction::Monitor) {
    bool deep = level == MonitorLevel::IsAlive;
    env.push_back(fmt::format("OCF_CHECK_LEVEL={}", deep ? 20 : 0));
    Duration interval = deep ? config.monitor.is_alive : config.monitor.looks_alive;
    env.push_back(fmt::format("OCF_RESKEY_CRM_meta_interval={}", interval.count()));
  }
  for (const auto& [name, value] : config.params)
    env.push_back("OCF_RESKEY_" + name + "=" + ocf_param_value(value));
  return env;
}

std::string ocf_failure_text(std::string_view output) {
  // ocf_exit_reason (ocf-shellfuncs) marks the agent's own summary; Pacemaker shows it too.
  constexpr std::string_view kMarker = "ocf-exit-reason:";
  auto at = output.rfind(kMarker);
  if (at != std::string_view::npos && (at == 0 || output[at - 1] == '\n')) {
    std::string_view rest = output.substr(at + kMarker.size());
    std::string reason = last_line_of(rest.substr(0, rest.find('\n')));
    if (!reason.empty()) return reason;
  }
  return last_line_of(output);
}

ActionResult ocf_action_result(OcfAction action, Duration timeout, const ChildExit& exit) {
  switch (exit.end) {
    case ChildEnd::Timeout:
      return {ActionStatus::Timeout,
              fmt::format("{} timed out after {}; the agent's process group was killed",
                          to_string(action), format_duration(timeout)),
              -1};
    case ChildEnd::Signaled:
      return {ActionStatus::Failed,
              fmt::format("{} failed: the agent was {}", to_string(action), exit.describe()), -1};
    case ChildEnd::Exited: break;
  }
  ActionResult result{ocf_action_status(action, exit.status), "", exit.status};
  if (result.status == ActionStatus::Ok) return result;
  std::string line = ocf_failure_text(exit.output);
  if (result.status == ActionStatus::NotRunning)
    result.reason = line.empty() ? "not running" : "not running: " + line;
  else
    result.reason = fmt::format("{} failed with {} ({}){}{}", to_string(action),
                                ocf_exit_code_name(exit.status), exit.status,
                                line.empty() ? "" : ": ", line);
  return result;
}

Result<std::unique_ptr<OcfAgentDriver>> OcfAgentDriver::create(const ResourceConfig& config,
                                                               const DriverContext& context) {
  auto agent = resolve_ocf_agent(context.ocf_root, config.agent);
  if (!agent)
    return std::unexpected(
        Error{agent.error().errno_value, "resource " + config.name + ": " + agent.error().message});
  return std::unique_ptr<OcfAgentDriver>(new OcfAgentDriver(config, context, std::move(*agent)));
}

OcfAgentDriver::OcfAgentDriver(ResourceConfig config, DriverContext context, OcfAgentPath agent)
    : config_(std::move(config)), context_(std::move(context)), agent_(std::move(agent)) {}

OcfAgentDriver::~OcfAgentDriver() = default;

void OcfAgentDriver::start(Done done) {
  run(OcfAction::Start, config_.timeouts.start, std::nullopt, std::move(done));
}

void OcfAgentDriver::stop(Done done) {
  run(OcfAction::Stop, config_.timeouts.stop, std::nullopt, std::move(done));
}

void OcfAgentDriver::monitor(MonitorLevel level, Done done) {
  run(OcfAction::Monitor, config_.monitor.timeout, level, std::move(done));
}

void OcfAgentDriver::cancel() {
  deferred_.cancel();
  done_ = nullptr;
  child_.reset();  // SIGKILLs the agent's process group if it still runs.
}

void OcfAgentDriver::run(OcfAction action, Duration timeout, std::optional<MonitorLevel> level,
                         Done done) {
  cancel();
  ChildSpec spec;
  spec.argv = {agent_.path, to_string(action)};
  spec.env = ocf_environment(config_, context_, agent_, action, timeout, level);
  auto child = Child::spawn(context_.loop, spec, [this, action, timeout](ChildExit exit) {
    on_exit(action, timeout, std::move(exit));
  });
  if (!child) {
    ActionStatus status = child.error().errno_value == ENOENT ? ActionStatus::NotInstalled
                          : child.error().errno_value == EACCES ? ActionStatus::Permission
                                                                 : ActionStatus::Failed;
    ActionResult result{status, child.error().to_string(), -1};
    deferred_.post(context_.loop, [result, done = std::move(done)] { done(result); });
    return;
  }
  if (auto armed = (*child)->set_deadline(timeout); !armed) {
    ActionResult result{ActionStatus::Failed, armed.error().to_string(), -1};
    deferred_.post(context_.loop, [result, done = std::move(done)] { done(result); });
    return;  // The Child goes out of scope: its process group is killed.
  }
  child_ = std::move(*child);
  done_ = std::move(done);
}

void OcfAgentDriver::on_exit(OcfAction action, Duration timeout, ChildExit exit) {
  ActionResult result = ocf_action_result(action, timeout, exit);
  if (result.status != ActionStatus::Ok && !exit.output.empty())
    log(LogLevel::Debug, {{"RESOURCE", config_.name}}, "{} {} output:\n{}", agent_.name(),
        to_string(action), exit.output);
  // A reaped agent's group is left alone: what it started in the background is the service.
  child_.reset();
  Done done = std::exchange(done_, nullptr);
  if (done) done(std::move(result));  // May destroy this driver: the last thing done here.
}

}  // namespace clusterd
