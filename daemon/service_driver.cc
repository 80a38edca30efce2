#include "service_driver.h"

#include <signal.h>

#include <array>
#include <utility>

#include "child.h"
#include "config_load.h"
#include "engine_loop.h"
#include "log.h"

namespace clusterd {
namespace {

// systemd's unit types (src/basic/unit-def.c).
constexpr std::array<std::string_view, 11> kUnitTypes = {
    "service", "mount", "swap", "socket", "target", "device",
    "automount", "timer", "path", "slice", "scope"};

constexpr std::size_t kUnitNameMax = 255;  // UNIT_NAME_MAX without the NUL

// Exit statuses systemd itself sets when it could not run the main process
// (src/basic/exit-status.h), the ones an administrator meets most.
struct ExitStatusName {
  int status;
  const char* text;
};
constexpr ExitStatusName kSystemdExitStatuses[] = {
    {200, "CHDIR: cannot change to the working directory"},
    {203, "EXEC: the program could not be executed"},
    {209, "STDOUT: cannot set up standard output"},
    {216, "GROUP: cannot switch to the group"},
    {217, "USER: cannot switch to the user"},
    {226, "NAMESPACE: cannot set up the mount namespace"},
};

bool valid_unit_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == ':' || c == '-' || c == '_' || c == '.' || c == '\\' || c == '@';
}

bool known_type(std::string_view suffix) {
  for (auto type : kUnitTypes)
    if (suffix == type) return true;
  return false;
}

Result<bool> parse_bool(const char* name, const std::string& text) {
  if (text == "true" || text == "yes" || text == "on" || text == "1") return true;
  if (text == "false" || text == "no" || text == "off" || text == "0") return false;
  return fail("{}: '{}' is not true or false", name, text);
}

bool running_state(const UnitState& state) {
  return state.active_state == "active" || state.active_state == "reloading";
}

bool stopped_state(const UnitState& state) {
  return state.active_state == "inactive" || state.active_state == "failed";
}

ActionResult result(ActionStatus status, std::string reason) {
  return {status, std::move(reason), -1};
}

std::string exit_status_text(int status) {
  for (const auto& known : kSystemdExitStatuses)
    if (known.status == status) return fmt::format(" ({})", known.text);
  return "";
}

// "main process 812 exited with status 1", from ExecMainCode/ExecMainStatus (CLD_* codes).
std::string describe_main_exit(const UnitState& state) {
  std::string pid = state.exec_main_pid > 0 ? fmt::format(" {}", state.exec_main_pid) : "";
  switch (state.exec_main_code) {
    case CLD_EXITED:
      return fmt::format("main process{} exited with status {}{}", pid, state.exec_main_status,
                         exit_status_text(state.exec_main_status));
    case CLD_KILLED:
      return fmt::format("main process{} was killed by SIG{}", pid,
                         signal_name(state.exec_main_status));
    case CLD_DUMPED:
      return fmt::format("main process{} dumped core (SIG{})", pid,
                         signal_name(state.exec_main_status));
    default:
      return "";
  }
}

std::string sub_state(const UnitState& state) {
  return fmt::format("SubState={}", state.sub_state.empty() ? "?" : state.sub_state);
}

}  // namespace

// --- Parameters ----------------------------------------------------------------------------

Result<std::string> normalize_unit_name(std::string_view name) {
  if (name.empty()) return fail("unit: the unit name is empty");
  std::string full(name);
  auto dot = full.rfind('.');
  if (dot == std::string::npos || !known_type(std::string_view(full).substr(dot + 1)))
    full += ".service";
  dot = full.rfind('.');
  std::string_view prefix = std::string_view(full).substr(0, dot);
  if (prefix.empty()) return fail("unit: '{}' has no name before its suffix", name);
  if (full.size() > kUnitNameMax)
    return fail("unit: '{}' is longer than {} characters", full, kUnitNameMax);
  for (char c : full)
    if (!valid_unit_char(c))
      return fail("unit: '{}' contains '{}', which systemd does not allow in unit names", name, c);
  auto at = prefix.find('@');
  if (at != std::string_view::npos) {
    if (at == 0) return fail("unit: '{}' has no name before '@'", name);
    if (prefix.find('@', at + 1) != std::string_view::npos)
      return fail("unit: '{}' has more than one '@'", name);
    if (at + 1 == prefix.size())
      return fail("unit: '{}' is a template; name an instance (NAME@INSTANCE.service)", full);
  }
  return full;
}

Result<ServiceParams> parse_service_params(const Params& params) {
  TypeInfo info = service_type_info();
  for (const auto& [name, value] : params) {
    if (!info.find(name)) return fail("unknown parameter {} for a service resource", name);
    if (value.kind != ParamValue::Kind::Scalar) return fail("{} must be a single value", name);
  }
  auto unit = params.find("unit");
  if (unit == params.end()) return fail("unit is required");
  ServiceParams out;
  auto name = normalize_unit_name(unit->second.scalar);
  if (!name) return std::unexpected(name.error());
  out.unit = *name;
  if (auto it = params.find("reset_failed"); it != params.end()) {
    auto value = parse_bool("reset_failed", it->second.scalar);
    if (!value) return std::unexpected(value.error());
    out.reset_failed = *value;
  }
  return out;
}

TypeInfo service_type_info() {
  using K = ParamValue::Kind;
  TypeInfo info;
  info.name = "service";
  info.params = {
      {"unit", true, "", K::Scalar, "string",
       "The systemd unit: web or web.service (.service is added when there is no unit suffix)."},
      {"reset_failed", false, "true", K::Scalar, "boolean",
       "Clear a failed unit's state (ResetFailedUnit) before starting it."},
  };
  return info;
}

// --- Outcomes (pure) -----------------------------------------------------------------------

std::string describe_result(const UnitState& state) {
  std::string text = fmt::format("Result={}", state.result.empty() ? "?" : state.result);
  if (std::string exit = describe_main_exit(state); !exit.empty()) text += ", " + exit;
  return text;
}

ActionResult load_outcome(const std::string& unit, const UnitState& state) {
  const std::string& load = state.load_state;
  std::string detail = state.load_error.empty() ? "" : ": " + state.load_error;
  if (load == "loaded" || load.empty()) return {};
  if (load == "not-found")
    return result(ActionStatus::NotInstalled,
                  state.load_error.empty() ? fmt::format("Unit {} not found.", unit)
                                           : state.load_error);
  if (load == "masked")
    return result(ActionStatus::NotInstalled, fmt::format("unit {} is masked", unit));
  if (load == "bad-setting")
    return result(ActionStatus::InvalidConfig,
                  fmt::format("unit {} has a bad setting{}", unit, detail));
  return result(ActionStatus::Failed,
                fmt::format("unit {} could not be loaded (LoadState={}){}", unit, load, detail));
}

ActionResult start_outcome(const std::string& unit, const std::string& job,
                           const UnitState& state) {
  if (job == "done") {
    if (running_state(state)) return {};
    if (state.active_state == "failed")
      return result(ActionStatus::Failed, fmt::format("unit {} failed right after starting: {} ({})",
                                                      unit, describe_result(state), sub_state(state)));
    return result(ActionStatus::Failed,
                  fmt::format("unit {} is {} right after its start job finished ({}; a oneshot "
                              "service needs RemainAfterExit=yes): {}",
                              unit, state.active_state, sub_state(state), describe_result(state)));
  }
  if (job == "failed")
    return result(ActionStatus::Failed, fmt::format("unit {} failed: {} ({})", unit,
                                                    describe_result(state), sub_state(state)));
  if (job == "timeout")
    return result(ActionStatus::Timeout,
                  fmt::format("unit {} did not start within its TimeoutStartSec: {}", unit,
                              describe_result(state)));
  if (job == "canceled")
    return result(ActionStatus::Failed,
                  fmt::format("the start job of unit {} was canceled (another job replaced it)", unit));
  if (job == "dependency")
    return result(ActionStatus::Failed,
                  fmt::format("a unit that {} requires failed to start", unit));
  if (job == "skipped")
    return result(ActionStatus::Failed,
                  fmt::format("unit {} was not started: a Condition of the unit was not met", unit));
  if (job == "assert")
    return result(ActionStatus::InvalidConfig,
                  fmt::format("unit {} was not started: an Assert of the unit failed", unit));
  if (job == "unsupported")
    return result(ActionStatus::NotInstalled,
                  fmt::format("unit {}: its unit type is not supported on this system", unit));
  if (job == "invalid")
    return result(ActionStatus::InvalidConfig,
                  fmt::format("unit {} cannot be started (systemd: job type invalid)", unit));
  return result(ActionStatus::Failed,
                fmt::format("the start job of unit {} ended with '{}'", unit, job));
}

ActionResult stop_outcome(const std::string& unit, const std::string& job,
                          const UnitState& state) {
  if (stopped_state(state) || state.load_state == "not-found") return {};
  if (job == "timeout")
    return result(ActionStatus::Timeout,
                  fmt::format("unit {} did not stop within its TimeoutStopSec (ActiveState={}, {})",
                              unit, state.active_state, sub_state(state)));
  return result(ActionStatus::Failed,
                fmt::format("unit {} is still {} ({}) after its stop job ended with '{}'", unit,
                            state.active_state, sub_state(state), job));
}

ActionResult monitor_outcome(const std::string& unit, const UnitState& state) {
  if (running_state(state)) return {};
  if (state.active_state == "inactive")
    return result(ActionStatus::NotRunning,
                  fmt::format("unit {} is inactive ({})", unit, sub_state(state)));
  if (state.active_state == "failed")
    return result(ActionStatus::Failed, fmt::format("unit {} failed: {} ({})", unit,
                                                    describe_result(state), sub_state(state)));
  return result(ActionStatus::Failed,
                fmt::format("unit {} is {} ({})", unit,
                            state.active_state.empty() ? "in an unknown state" : state.active_state,
                            sub_state(state)));
}

std::string unsolicited_failure(const std::string& unit, const UnitState& state) {
  const std::string& active = state.active_state;
  if (active == "failed")
    return fmt::format("unit {} failed: {} ({})", unit, describe_result(state), sub_state(state));
  if (state.sub_state == "auto-restart")
    return fmt::format("unit {} stopped and systemd is about to restart it ({}): {}", unit,
                       sub_state(state), describe_result(state));
  if (active == "inactive")
    return fmt::format("unit {} became inactive ({}): {}", unit, sub_state(state),
                       describe_result(state));
  if (active == "deactivating")
    return fmt::format("unit {} is stopping ({})", unit, sub_state(state));
  if (active == "activating")
    return fmt::format("unit {} is starting again ({})", unit, sub_state(state));
  return "";
}

std::string timeout_reason(const std::string& unit, JobKind kind, Duration timeout,
                           std::optional<std::uint64_t> systemd_usec) {
  bool start = kind == JobKind::Start;
  std::string text = fmt::format("unit {} did not {} within {}", unit, start ? "start" : "stop",
                                 format_duration(timeout));
  if (!systemd_usec) return text;
  const char* setting = start ? "TimeoutStartSec" : "TimeoutStopSec";
  if (*systemd_usec == UINT64_MAX)
    return text + fmt::format(" (the resource's {} timeout; the unit's {} is infinity)",
                              to_string(kind), setting);
  Duration theirs{static_cast<Duration::rep>(*systemd_usec / 1000)};
  if (theirs <= timeout) return text;
  return text + fmt::format(" (the resource's {} timeout; the unit's {}={} is longer)",
                            to_string(kind), setting, format_duration(theirs));
}

ActionStatus status_for_bus_error(const Error& error) {
  switch (error.errno_value) {
    case ENOENT:
    case ERFKILL: return ActionStatus::NotInstalled;
    case EACCES:
    case EPERM: return ActionStatus::Permission;
    case ENOEXEC: return ActionStatus::InvalidConfig;
    case ETIMEDOUT: return ActionStatus::Timeout;
    default: return ActionStatus::Failed;
  }
}

// --- The driver ----------------------------------------------------------------------------

namespace {

class ServiceDriver final : public ResourceDriver {
 public:
  ServiceDriver(const ResourceConfig& config, ServiceParams params, sd_event* loop,
                std::shared_ptr<SystemdManager> systemd)
      : resource_(config.name),
        params_(std::move(params)),
        timeouts_(config.timeouts),
        monitor_timeout_(config.monitor.timeout),
        loop_(loop),
        systemd_(std::move(systemd)) {}

  void start(Done done) override;
  void stop(Done done) override;
  void monitor(MonitorLevel level, Done done) override;
  void cancel() override;
  pid_t main_pid() const override;

 private:
  enum class Action { None, Start, Stop, Monitor };
  using StateNext = void (ServiceDriver::*)(const UnitState&);

  const std::string& unit() const { return params_.unit; }
  void begin(Action action, Duration timeout, Done done);
  void finish(ActionResult result);
  void finish_error(const char* what, const Error& error);
  void read_state(Duration timeout, StateNext next);
  void before_start(const UnitState& state);
  void start_job();
  void after_start_job(const UnitState& state);
  void after_stop_job(const UnitState& state);
  void on_deadline();
  void on_unit_event(UnitEventKind kind, const UnitState& state);
  void fail_online(std::string reason);
  void ensure_watch();

  std::string resource_;
  ServiceParams params_;
  ActionTimeouts timeouts_;
  Duration monitor_timeout_;
  sd_event* loop_;
  std::shared_ptr<SystemdManager> systemd_;
  SystemdManager::Watch watch_;
  SystemdManager::Ticket ticket_;
  Action action_ = Action::None;
  Done done_;
  std::string job_result_;  // of the job just ended, for its outcome
  bool online_ = false;     // started and not stopped or failed since
  std::optional<std::uint64_t> systemd_timeout_;  // the unit's own timeout for the action
  Timer deadline_;
  Timer lost_grace_;  // the connection dropped while online: how long we wait for it
  DeferredCall deferred_;
};

void ServiceDriver::ensure_watch() {
  if (watch_) return;
  watch_ = systemd_->watch(unit(), [this](UnitEventKind kind, const UnitState& state) {
    on_unit_event(kind, state);
  });
}

void ServiceDriver::begin(Action action, Duration timeout, Done done) {
  cancel();
  action_ = action;
  done_ = std::move(done);
  systemd_timeout_.reset();
  ensure_watch();
  auto armed = deadline_.arm(loop_, timeout, "service-deadline", [this] { on_deadline(); });
  if (!armed) log(LogLevel::Err, {{"RESOURCE", resource_}, {"UNIT", unit()}}, "{}", armed.error().to_string());
}

// Ends the action in flight. The engine may destroy this driver from `done`: call it last.
void ServiceDriver::finish(ActionResult result) {
  deadline_.disarm();
  ticket_.reset();
  Action action = std::exchange(action_, Action::None);
  if (action == Action::Start) online_ = result.status == ActionStatus::Ok;
  Done done = std::exchange(done_, nullptr);
  if (done) done(std::move(result));
}

void ServiceDriver::finish_error(const char* what, const Error& error) {
  finish(result(status_for_bus_error(error),
                fmt::format("cannot {} unit {}: {}", what, unit(), error.message)));
}

void ServiceDriver::read_state(Duration timeout, StateNext next) {
  ticket_ = systemd_->get_state(unit(), timeout, [this, next](Result<UnitState> state) {
    if (!state) return finish_error("read the state of", state.error());
    (this->*next)(*state);
  });
}

void ServiceDriver::start(Done done) {
  online_ = false;
  begin(Action::Start, timeouts_.start, std::move(done));
  ticket_ = systemd_->load_unit(unit(), timeouts_.start, [this](Result<void> loaded) {
    if (!loaded) return finish_error("load", loaded.error());
    read_state(timeouts_.start, &ServiceDriver::before_start);
  });
}

void ServiceDriver::before_start(const UnitState& state) {
  if (auto loaded = load_outcome(unit(), state); loaded.status != ActionStatus::Ok)
    return finish(std::move(loaded));
  systemd_timeout_ = state.timeout_start_usec;
  if (running_state(state)) {
    // Running already (a daemon restart, or started by hand): take it as it is, like a
    // StartUnit on an active unit would.
    log(LogLevel::Notice, {{"RESOURCE", resource_}, {"UNIT", unit()}}, "unit {} is already {}; adopting it", unit(),
        state.active_state);
    return finish({});
  }
  if (state.active_state == "failed" && params_.reset_failed) {
    ticket_ = systemd_->reset_failed(unit(), timeouts_.start, [this](Result<void> reset) {
      if (!reset) return finish_error("reset the failed state of", reset.error());
      start_job();
    });
    return;
  }
  start_job();
}

void ServiceDriver::start_job() {
  ticket_ = systemd_->run_job(JobKind::Start, unit(), timeouts_.start,
                              [this](Result<std::string> job) {
                                if (!job) return finish_error("start", job.error());
                                job_result_ = *job;
                                read_state(timeouts_.start, &ServiceDriver::after_start_job);
                              });
}

void ServiceDriver::after_start_job(const UnitState& state) {
  ActionResult outcome = start_outcome(unit(), job_result_, state);
  if (outcome.status == ActionStatus::Ok)
    log(LogLevel::Info, {{"RESOURCE", resource_}, {"UNIT", unit()}}, "unit {} is {} (main pid {})", unit(), state.active_state,
        state.main_pid);
  finish(std::move(outcome));
}

void ServiceDriver::stop(Done done) {
  online_ = false;
  lost_grace_.disarm();
  begin(Action::Stop, timeouts_.stop, std::move(done));
  if (const UnitState* state = systemd_->cached(unit())) systemd_timeout_ = state->timeout_stop_usec;
  ticket_ = systemd_->run_job(JobKind::Stop, unit(), timeouts_.stop,
                              [this](Result<std::string> job) {
                                // Not loaded (nothing ever started it): nothing runs.
                                if (!job && job.error().errno_value == ENOENT) return finish({});
                                if (!job) return finish_error("stop", job.error());
                                job_result_ = *job;
                                read_state(timeouts_.stop, &ServiceDriver::after_stop_job);
                              });
}

void ServiceDriver::after_stop_job(const UnitState& state) {
  finish(stop_outcome(unit(), job_result_, state));
}

void ServiceDriver::monitor(MonitorLevel level, Done done) {
  const UnitState* cached = systemd_->cached(unit());
  // While the connection is being restored the cache is the last word; lost_grace_ bounds how
  // long that may last.
  bool from_cache = cached && (level == MonitorLevel::LooksAlive || lost_grace_.armed());
  if (from_cache) {
    ActionResult outcome = monitor_outcome(unit(), *cached);
    deferred_.post(loop_, [done = std::move(done), outcome = std::move(outcome)] { done(outcome); });
    return;
  }
  begin(Action::Monitor, monitor_timeout_, std::move(done));
  ticket_ = systemd_->get_state(unit(), monitor_timeout_, [this](Result<UnitState> state) {
    if (!state) return finish_error("read the state of", state.error());
    finish(monitor_outcome(unit(), *state));
  });
}

void ServiceDriver::on_deadline() {
  Action action = action_;
  if (action == Action::Monitor)
    return finish(result(ActionStatus::Timeout,
                         fmt::format("systemd did not answer for unit {} within {}", unit(),
                                     format_duration(monitor_timeout_))));
  JobKind kind = action == Action::Start ? JobKind::Start : JobKind::Stop;
  Duration timeout = kind == JobKind::Start ? timeouts_.start : timeouts_.stop;
  // Stop past its deadline: nothing of the unit may survive (architecture rule 4). A start
  // past its deadline is followed by the engine's stop, whose StopUnit replaces the start job.
  if (kind == JobKind::Stop) systemd_->kill_unit(unit(), SIGKILL);
  finish(result(ActionStatus::Timeout, timeout_reason(unit(), kind, timeout, systemd_timeout_)));
}

void ServiceDriver::cancel() {
  deadline_.disarm();
  deferred_.cancel();
  ticket_.reset();
  done_ = nullptr;
  // A start abandoned half-way must not leave the unit running or starting.
  if (std::exchange(action_, Action::None) == Action::Start) {
    auto stop = systemd_->run_job(JobKind::Stop, unit(), timeouts_.stop, [](Result<std::string>) {});
    (void)stop;  // dropped at once: the StopUnit is sent, its answer is not needed
  }
}

pid_t ServiceDriver::main_pid() const {
  const UnitState* state = systemd_->cached(unit());
  return online_ && state ? state->main_pid : 0;
}

void ServiceDriver::on_unit_event(UnitEventKind kind, const UnitState& state) {
  if (!online_ || action_ == Action::Start || action_ == Action::Stop) return;
  if (kind == UnitEventKind::Lost) {
    auto armed = lost_grace_.arm(loop_, monitor_timeout_, "service-systemd-lost", [this] {
      fail_online(fmt::format("the connection to systemd at {} was lost and not restored within {}",
                              systemd_->address().description, format_duration(monitor_timeout_)));
    });
    if (!armed) fail_online(armed.error().to_string());
    return;
  }
  if (kind == UnitEventKind::Resynced) {
    lost_grace_.disarm();
    log(LogLevel::Info, {{"RESOURCE", resource_}, {"UNIT", unit()}}, "unit {} is {} after reconnecting to systemd", unit(),
        state.active_state);
  }
  if (std::string reason = unsolicited_failure(unit(), state); !reason.empty())
    fail_online(std::move(reason));
}

void ServiceDriver::fail_online(std::string reason) {
  online_ = false;
  lost_grace_.disarm();
  report_failure(std::move(reason));
}

}  // namespace

Result<std::unique_ptr<ResourceDriver>> make_service_driver(const ResourceConfig& config,
                                                            const DriverContext& context) {
  auto params = parse_service_params(config.params);
  if (!params) return fail("resource {}: {}", config.name, params.error().message);
  if (!context.loop || !context.systemd)
    return fail("resource {}: the service type needs the daemon's connection to systemd ({})",
                config.name, kSystemdBusVariable);
  return std::make_unique<ServiceDriver>(config, std::move(*params), context.loop, context.systemd);
}

}  // namespace clusterd
