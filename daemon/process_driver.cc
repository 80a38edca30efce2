#include "process_driver.h"

#include <signal.h>

#include <charconv>
#include <fstream>

#include "config_load.h"
#include "dns_update.h"
#include "log.h"
#include "name_driver.h"

namespace clusterd {
namespace {

Result<std::string> scalar_param(const std::string& resource, const std::string& key,
                                 const ParamValue& value) {
  if (value.kind != ParamValue::Kind::Scalar)
    return fail("resource {}: parameter '{}' must be a single value", resource, key);
  return value.scalar;
}

Result<mode_t> parse_umask(const std::string& resource, const std::string& text) {
  unsigned mask = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), mask, 8);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || mask > 0777)
    return fail("resource {}: umask '{}' is not an octal mode like 022", resource, text);
  return static_cast<mode_t>(mask);
}

// Reads the value of one parameter into `out`.
Result<void> apply_param(const std::string& resource, const std::string& key,
                         const ParamValue& value, ProcessParams& out) {
  if (key == "args") {
    if (value.kind != ParamValue::Kind::List)
      return fail("resource {}: parameter 'args' must be a list", resource);
    out.args = value.list;
    return {};
  }
  if (key == "env") {
    if (value.kind != ParamValue::Kind::Map)
      return fail("resource {}: parameter 'env' must be a map of NAME: value", resource);
    out.env = value.map;
    return {};
  }
  auto text = scalar_param(resource, key, value);
  if (!text) return std::unexpected(text.error());
  if (key == "command") out.command = *text;
  else if (key == "cwd") out.cwd = *text;
  else if (key == "user") out.user = *text;
  else if (key == "group") out.group = *text;
  else if (key == "hostname") {
    if (*text != kHostnameNetworkName) {
      auto name = check_dns_name(*text);
      if (!name || name->size() > 64)
        return fail("resource {}: hostname '{}' is neither {} nor a host name of at most 64 "
                    "characters{}{}",
                    resource, *text, kHostnameNetworkName, name ? "" : ": ",
                    name ? "" : name.error().message);
    }
    out.hostname = *text;
  }
  else if (key == "stop_signal") {
    auto sig = parse_signal(*text);
    if (!sig) return fail("resource {}: stop_signal: {}", resource, sig.error().message);
    out.stop_signal = *sig;
  } else if (key == "umask") {
    auto mask = parse_umask(resource, *text);
    if (!mask) return std::unexpected(mask.error());
    out.umask = *mask;
  } else {
    return fail("resource {}: unknown parameter '{}' for type process", resource, key);
  }
  return {};
}

// Replaces or adds NAME=value in an environment list.
void set_env(std::vector<std::string>& env, const std::string& name, const std::string& value) {
  std::string prefix = name + "=";
  std::erase_if(env, [&](const std::string& e) { return e.starts_with(prefix); });
  env.push_back(prefix + value);
}

ActionStatus status_for_spawn_error(const Error& error) {
  switch (error.errno_value) {
    case ENOENT:
    case ENOTDIR: return ActionStatus::NotInstalled;
    case EACCES:
    case EPERM: return ActionStatus::Permission;
    case 0: return ActionStatus::InvalidConfig;  // unknown user or group
    default: return ActionStatus::Failed;
  }
}

// The state letter of /proc/PID/stat ('R', 'S', 'Z', ...), or 0 when the process is gone.
char proc_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() ? line[paren + 2] : 0;
}

}  // namespace

Result<ProcessParams> parse_process_params(const std::string& resource, const Params& params) {
  ProcessParams out;
  for (const auto& [key, value] : params)
    if (auto r = apply_param(resource, key, value, out); !r) return std::unexpected(r.error());
  if (out.command.empty()) return fail("resource {}: parameter 'command' is required", resource);
  return out;
}

Result<std::unique_ptr<ProcessDriver>> ProcessDriver::create(const ResourceConfig& config,
                                                             const DriverContext& context) {
  auto params = parse_process_params(config.name, config.params);
  if (!params) return std::unexpected(params.error());
  return std::unique_ptr<ProcessDriver>(new ProcessDriver(config, context, std::move(*params)));
}

ProcessDriver::ProcessDriver(const ResourceConfig& config, const DriverContext& context,
                             ProcessParams params)
    : loop_(context.loop),
      name_(config.name),
      group_(context.group),
      node_(context.node_name),
      group_definition_(context.group_definition),
      timeouts_(config.timeouts),
      params_(std::move(params)) {}

ProcessDriver::~ProcessDriver() = default;

Result<ChildSpec> ProcessDriver::child_spec() const {
  ChildSpec spec;
  std::string network_name =
      group_definition_ ? network_name_of(group_definition_().get(), name_) : "";
  if (!network_name.empty()) set_env(spec.env, kNetworkNameVariable, network_name);
  spec.argv.push_back(params_.command);
  spec.argv.insert(spec.argv.end(), params_.args.begin(), params_.args.end());
  set_env(spec.env, "PATH", kDefaultPath);
  set_env(spec.env, "CLUSTER_NODE", node_);
  set_env(spec.env, "CLUSTER_GROUP", group_);
  set_env(spec.env, "CLUSTER_RESOURCE", name_);
  for (const auto& [name, value] : params_.env) set_env(spec.env, name, value);
  spec.cwd = params_.cwd;
  spec.user = params_.user;
  spec.group = params_.group;
  spec.umask = params_.umask;
  spec.hostname = params_.hostname;
  if (params_.hostname == kHostnameNetworkName) {
    if (network_name.empty())
      return fail("resource {}: hostname is {}, but it depends on no name resource", name_,
                  kHostnameNetworkName);
    spec.hostname = network_name.substr(0, network_name.find('.'));  // The host's own label.
  }
  return spec;
}

void ProcessDriver::start(Done done) {
  if (child_ && child_->running() && !child_->has_exited()) {
    deliver_later({ActionStatus::Ok, "", -1}, std::move(done));
    return;
  }
  if (child_) child_->signal_group(SIGKILL);  // What is left of an earlier run's group.
  child_.reset();
  auto spec = child_spec();
  if (!spec) {
    deliver_later({ActionStatus::InvalidConfig, spec.error().message, -1}, std::move(done));
    return;
  }
  auto child = Child::spawn(loop_, *spec, [this](const ChildExit& e) { on_exit(e); });
  if (!child) {
    deliver_later({status_for_spawn_error(child.error()), child.error().to_string(), -1},
                  std::move(done));
    return;
  }
  child_ = std::move(*child);
  log(LogLevel::Info, {{"RESOURCE", name_}}, "started {} as pid {}", params_.command,
      child_->pid());
  phase_ = Phase::Starting;
  done_ = std::move(done);
  // Exec succeeded: that is "online" for a plain process. Reported from the loop, unless the
  // process dies before (then on_exit reports the start as failed).
  deferred_.post(loop_, [this] {
    phase_ = Phase::Running;
    finish({ActionStatus::Ok, "", -1});
  });
}

void ProcessDriver::stop(Done done) {
  if (child_ && child_->running() && child_->has_exited()) child_->reap_now();
  if (!child_ || !child_->running()) {
    if (child_) child_->signal_group(SIGKILL);  // Leftovers of the group, if any.
    child_.reset();
    phase_ = Phase::Idle;
    deliver_later({ActionStatus::Ok, "", -1}, std::move(done));
    return;
  }
  phase_ = Phase::Stopping;
  done_ = std::move(done);
  if (auto r = child_->signal_group(params_.stop_signal); !r)
    log(LogLevel::Warning, {{"RESOURCE", name_}}, "{}, killing at the stop deadline instead",
        r.error().to_string());
  // Past the stop timeout the Child SIGKILLs the whole group; the guard covers a process the
  // kernel cannot kill (stuck in D state), so stop still ends.
  if (auto r = child_->set_deadline(timeouts_.stop); !r) child_->signal_group(SIGKILL);
  arm_stop_guard();
}

void ProcessDriver::monitor(MonitorLevel level, Done done) {
  if (child_ && child_->running() && child_->has_exited()) {
    // Dead before the loop dispatched its pidfd: this answer is the report of the failure.
    auto exit = child_->reap_now();
    child_->signal_group(SIGKILL);
    phase_ = Phase::Idle;
    deliver_later({ActionStatus::NotRunning, exit_reason(*exit), -1}, std::move(done));
    return;
  }
  if (!child_ || !child_->running()) {
    std::string reason = child_ ? exit_reason(*child_->exit()) : "not started";
    deliver_later({ActionStatus::NotRunning, reason, -1}, std::move(done));
    return;
  }
  ActionResult result{ActionStatus::Ok, "", -1};
  if (level == MonitorLevel::IsAlive) {
    char state = proc_state(child_->pid());
    if (state == 0 || state == 'Z' || state == 'X')
      result = {ActionStatus::NotRunning, fmt::format("main process {} is gone", child_->pid()), -1};
    else if (state == 'T' || state == 't')
      result = {ActionStatus::Failed, fmt::format("main process {} is stopped", child_->pid()), -1};
  }
  deliver_later(std::move(result), std::move(done));
}

void ProcessDriver::cancel() {
  deferred_.cancel();
  stop_guard_.reset();
  done_ = nullptr;
  if (phase_ == Phase::Starting || phase_ == Phase::Stopping) {
    child_.reset();  // SIGKILLs the group; reaped from the loop.
    phase_ = Phase::Idle;
  }
}

pid_t ProcessDriver::main_pid() const { return child_ && child_->running() ? child_->pid() : 0; }

void ProcessDriver::on_exit(const ChildExit& exit) {
  // The resource is the whole process group: nothing of it may outlive the main process.
  child_->signal_group(SIGKILL);
  Phase phase = std::exchange(phase_, Phase::Idle);
  switch (phase) {
    case Phase::Starting:
      deferred_.cancel();
      finish({ActionStatus::Failed, exit_reason(exit) + " right after start", -1});
      return;
    case Phase::Running:
      report_failure(exit_reason(exit));
      return;
    case Phase::Stopping:
      if (exit.end == ChildEnd::Timeout)
        log(LogLevel::Warning, {{"RESOURCE", name_}},
            "pid {} did not stop within {} of SIG{}; its process group was killed", child_->pid(),
            format_duration(timeouts_.stop), signal_name(params_.stop_signal));
      finish({ActionStatus::Ok, "", -1});
      return;
    case Phase::Idle:
      return;
  }
}

std::string ProcessDriver::exit_reason(const ChildExit& exit) const {
  std::string reason = fmt::format("main process {} {}", child_ ? child_->pid() : 0,
                                   exit.end == ChildEnd::Timeout ? "was killed" : exit.describe());
  std::string line = exit.last_line();
  if (!line.empty()) reason += ": " + line;
  return reason;
}

// Ends the action in flight. The engine may destroy this driver from `done`: call it last.
void ProcessDriver::finish(ActionResult result) {
  stop_guard_.reset();
  Done done = std::exchange(done_, nullptr);
  if (done) done(std::move(result));
}

void ProcessDriver::deliver_later(ActionResult result, Done done) {
  deferred_.post(loop_, [result = std::move(result), done = std::move(done)] { done(result); });
}

void ProcessDriver::arm_stop_guard() {
  sd_event_source* source = nullptr;
  auto usec = static_cast<uint64_t>((timeouts_.stop + kKillGrace).count()) * 1000;
  if (sd_event_add_time_relative(loop_, &source, CLOCK_BOOTTIME, usec, 1000, on_stop_guard,
                                 this) >= 0)
    stop_guard_.reset(source);
}

int ProcessDriver::on_stop_guard(sd_event_source*, uint64_t, void* userdata) noexcept {
  auto* self = static_cast<ProcessDriver*>(userdata);
  self->phase_ = Phase::Idle;
  self->finish({ActionStatus::Failed,
                fmt::format("process group {} is still there {} after SIGKILL",
                            self->child_->pid(), format_duration(kKillGrace)),
                -1});
  return 0;
}

}  // namespace clusterd
