#include "service_driver.h"

#include <signal.h>

#include <doctest/doctest.h>

#include "param_test_util.h"

namespace clusterd {

using namespace std::chrono_literals;
using testing::scalar;

namespace {

UnitState unit_state(std::string active, std::string sub, std::string result = "success") {
  UnitState s;
  s.load_state = "loaded";
  s.active_state = std::move(active);
  s.sub_state = std::move(sub);
  s.result = std::move(result);
  s.known = true;
  return s;
}

UnitState exited(int status) {
  UnitState s = unit_state("failed", "failed", "exit-code");
  s.exec_main_pid = 812;
  s.exec_main_code = CLD_EXITED;
  s.exec_main_status = status;
  return s;
}

UnitState killed(int signal) {
  UnitState s = unit_state("failed", "failed", "signal");
  s.exec_main_pid = 812;
  s.exec_main_code = CLD_KILLED;
  s.exec_main_status = signal;
  return s;
}

}  // namespace

TEST_CASE("unit names get .service when they have no unit suffix") {
  CHECK(*normalize_unit_name("web") == "web.service");
  CHECK(*normalize_unit_name("web.service") == "web.service");
  CHECK(*normalize_unit_name("data.mount") == "data.mount");
  CHECK(*normalize_unit_name("multi-user.target") == "multi-user.target");
  CHECK(*normalize_unit_name("my.app") == "my.app.service");
  CHECK(*normalize_unit_name("getty@tty1") == "getty@tty1.service");
  CHECK(*normalize_unit_name("a\\x2db") == "a\\x2db.service");
}

TEST_CASE("unit names systemd refuses are refused with the reason") {
  CHECK(normalize_unit_name("").error().message == "unit: the unit name is empty");
  CHECK(normalize_unit_name(".service").error().message ==
        "unit: '.service' has no name before its suffix");
  CHECK(normalize_unit_name("web server").error().message ==
        "unit: 'web server' contains ' ', which systemd does not allow in unit names");
  CHECK(normalize_unit_name("../etc").error().message ==
        "unit: '../etc' contains '/', which systemd does not allow in unit names");
  CHECK(normalize_unit_name("getty@").error().message ==
        "unit: 'getty@.service' is a template; name an instance (NAME@INSTANCE.service)");
  CHECK(normalize_unit_name("@x").error().message == "unit: '@x' has no name before '@'");
  CHECK(normalize_unit_name("a@b@c").error().message == "unit: 'a@b@c' has more than one '@'");
  CHECK(normalize_unit_name(std::string(250, 'x')).error().message.ends_with(
      "is longer than 255 characters"));
  CHECK(normalize_unit_name(std::string(247, 'x')));  // 247 + ".service" = 255
}

TEST_CASE("service parameters: unit is required, reset_failed is a boolean") {
  auto params = parse_service_params({{"unit", scalar("web")}});
  REQUIRE(params);
  CHECK(params->unit == "web.service");
  CHECK(params->reset_failed);

  params = parse_service_params({{"unit", scalar("web")}, {"reset_failed", scalar("no")}});
  REQUIRE(params);
  CHECK_FALSE(params->reset_failed);

  CHECK(parse_service_params({}).error().message == "unit is required");
  CHECK(parse_service_params({{"unit", scalar("web")}, {"reset_failed", scalar("maybe")}})
            .error()
            .message == "reset_failed: 'maybe' is not true or false");
  CHECK(parse_service_params({{"unit", scalar("web")}, {"mode", scalar("fail")}}).error().message ==
        "unknown parameter mode for a service resource");
  CHECK(parse_service_params({{"unit", testing::list({"a", "b"})}}).error().message ==
        "unit must be a single value");
  CHECK(parse_service_params({{"unit", scalar("a b")}}).error().message ==
        "unit: 'a b' contains ' ', which systemd does not allow in unit names");
}

TEST_CASE("service_type_info describes the parameters") {
  TypeInfo info = service_type_info();
  CHECK(info.name == "service");
  REQUIRE(info.find("unit"));
  CHECK(info.find("unit")->required);
  REQUIRE(info.find("reset_failed"));
  CHECK(info.find("reset_failed")->default_value == "true");
  for (const auto& p : info.params) CHECK_FALSE(p.description.empty());
}

TEST_CASE("describe_result explains the main process's end") {
  CHECK(describe_result(exited(1)) == "Result=exit-code, main process 812 exited with status 1");
  CHECK(describe_result(exited(203)) ==
        "Result=exit-code, main process 812 exited with status 203 (EXEC: the program could "
        "not be executed)");
  CHECK(describe_result(killed(SIGKILL)) == "Result=signal, main process 812 was killed by SIGKILL");
  UnitState dumped = killed(SIGSEGV);
  dumped.exec_main_code = CLD_DUMPED;
  dumped.result = "core-dump";
  CHECK(describe_result(dumped) == "Result=core-dump, main process 812 dumped core (SIGSEGV)");
  CHECK(describe_result(unit_state("failed", "failed", "timeout")) == "Result=timeout");
  CHECK(describe_result(UnitState{}) == "Result=?");
}

TEST_CASE("start job results map to action statuses") {
  const std::string u = "web.service";
  CHECK(start_outcome(u, "done", unit_state("active", "running")).status == ActionStatus::Ok);
  CHECK(start_outcome(u, "done", unit_state("reloading", "reload")).status == ActionStatus::Ok);

  auto failed = start_outcome(u, "failed", exited(1));
  CHECK(failed.status == ActionStatus::Failed);
  CHECK(failed.reason ==
        "unit web.service failed: Result=exit-code, main process 812 exited with status 1 "
        "(SubState=failed)");

  // Type=simple: the job is done at fork; a main process that died at once shows in the state.
  auto died = start_outcome(u, "done", exited(203));
  CHECK(died.status == ActionStatus::Failed);
  CHECK(died.reason.starts_with("unit web.service failed right after starting: Result=exit-code"));

  auto oneshot = start_outcome(u, "done", unit_state("inactive", "dead"));
  CHECK(oneshot.status == ActionStatus::Failed);
  CHECK(oneshot.reason.find("RemainAfterExit=yes") != std::string::npos);

  CHECK(start_outcome(u, "timeout", unit_state("failed", "failed", "timeout")).status ==
        ActionStatus::Timeout);
  CHECK(start_outcome(u, "canceled", {}).reason ==
        "the start job of unit web.service was canceled (another job replaced it)");
  CHECK(start_outcome(u, "dependency", {}).status == ActionStatus::Failed);
  CHECK(start_outcome(u, "skipped", {}).reason ==
        "unit web.service was not started: a Condition of the unit was not met");
  CHECK(start_outcome(u, "assert", {}).status == ActionStatus::InvalidConfig);
  CHECK(start_outcome(u, "unsupported", {}).status == ActionStatus::NotInstalled);
  CHECK(start_outcome(u, "invalid", {}).status == ActionStatus::InvalidConfig);
  CHECK(start_outcome(u, "once", {}).reason == "the start job of unit web.service ended with 'once'");
}

TEST_CASE("a stop is done once nothing of the unit runs, whatever the job said") {
  const std::string u = "web.service";
  CHECK(stop_outcome(u, "done", unit_state("inactive", "dead")).status == ActionStatus::Ok);
  CHECK(stop_outcome(u, "timeout", killed(SIGKILL)).status == ActionStatus::Ok);
  CHECK(stop_outcome(u, "canceled", unit_state("inactive", "dead")).status == ActionStatus::Ok);
  UnitState gone = unit_state("inactive", "dead");
  gone.load_state = "not-found";
  CHECK(stop_outcome(u, "done", gone).status == ActionStatus::Ok);

  auto stuck = stop_outcome(u, "timeout", unit_state("deactivating", "final-sigkill"));
  CHECK(stuck.status == ActionStatus::Timeout);
  CHECK(stuck.reason ==
        "unit web.service did not stop within its TimeoutStopSec (ActiveState=deactivating, "
        "SubState=final-sigkill)");
  auto canceled = stop_outcome(u, "canceled", unit_state("active", "running"));
  CHECK(canceled.status == ActionStatus::Failed);
  CHECK(canceled.reason ==
        "unit web.service is still active (SubState=running) after its stop job ended with "
        "'canceled'");
}

TEST_CASE("load states that cannot start are refused with systemd's message") {
  const std::string u = "nope.service";
  UnitState s = unit_state("inactive", "dead");
  CHECK(load_outcome(u, s).status == ActionStatus::Ok);
  s.load_state = "not-found";
  s.load_error = "Unit nope.service not found.";
  CHECK(load_outcome(u, s).status == ActionStatus::NotInstalled);
  CHECK(load_outcome(u, s).reason == "Unit nope.service not found.");
  s.load_error.clear();
  CHECK(load_outcome(u, s).reason == "Unit nope.service not found.");
  s.load_state = "masked";
  CHECK(load_outcome(u, s).status == ActionStatus::NotInstalled);
  CHECK(load_outcome(u, s).reason == "unit nope.service is masked");
  s.load_state = "bad-setting";
  s.load_error = "Unit configuration has fatal error, unit will not be started.";
  CHECK(load_outcome(u, s).status == ActionStatus::InvalidConfig);
  CHECK(load_outcome(u, s).reason ==
        "unit nope.service has a bad setting: Unit configuration has fatal error, unit will not "
        "be started.");
  s.load_state = "error";
  CHECK(load_outcome(u, s).status == ActionStatus::Failed);
}

TEST_CASE("health checks read ActiveState") {
  const std::string u = "web.service";
  CHECK(monitor_outcome(u, unit_state("active", "running")).status == ActionStatus::Ok);
  auto inactive = monitor_outcome(u, unit_state("inactive", "dead"));
  CHECK(inactive.status == ActionStatus::NotRunning);
  CHECK(inactive.reason == "unit web.service is inactive (SubState=dead)");
  CHECK(monitor_outcome(u, killed(SIGKILL)).reason ==
        "unit web.service failed: Result=signal, main process 812 was killed by SIGKILL "
        "(SubState=failed)");
  CHECK(monitor_outcome(u, unit_state("activating", "auto-restart")).status ==
        ActionStatus::Failed);
  CHECK(monitor_outcome(u, UnitState{}).reason ==
        "unit web.service is in an unknown state (SubState=?)");
}

TEST_CASE("a unit that stops running between actions is a failure, with systemd's reason") {
  const std::string u = "web.service";
  CHECK(unsolicited_failure(u, unit_state("active", "running")).empty());
  CHECK(unsolicited_failure(u, unit_state("reloading", "reload")).empty());
  CHECK(unsolicited_failure(u, killed(SIGKILL)) ==
        "unit web.service failed: Result=signal, main process 812 was killed by SIGKILL "
        "(SubState=failed)");
  CHECK(unsolicited_failure(u, unit_state("inactive", "dead")) ==
        "unit web.service became inactive (SubState=dead): Result=success");
  UnitState restarting = exited(1);
  restarting.active_state = "activating";
  restarting.sub_state = "auto-restart";
  CHECK(unsolicited_failure(u, restarting) ==
        "unit web.service stopped and systemd is about to restart it (SubState=auto-restart): "
        "Result=exit-code, main process 812 exited with status 1");
  CHECK(unsolicited_failure(u, unit_state("deactivating", "stop-sigterm")) ==
        "unit web.service is stopping (SubState=stop-sigterm)");
}

TEST_CASE("a timeout names systemd's own timeout when it is longer") {
  CHECK(timeout_reason("web.service", JobKind::Start, 5s, std::nullopt) ==
        "unit web.service did not start within 5s");
  CHECK(timeout_reason("web.service", JobKind::Start, 5s, 2'000'000) ==
        "unit web.service did not start within 5s");
  CHECK(timeout_reason("web.service", JobKind::Start, 5s, 90'000'000) ==
        "unit web.service did not start within 5s (the resource's start timeout; the unit's "
        "TimeoutStartSec=90s is longer)");
  CHECK(timeout_reason("web.service", JobKind::Stop, 2s, UINT64_MAX) ==
        "unit web.service did not stop within 2s (the resource's stop timeout; the unit's "
        "TimeoutStopSec is infinity)");
}

TEST_CASE("D-Bus errors map to action statuses") {
  CHECK(status_for_bus_error(Error{ENOENT, "Unit x.service not found."}) ==
        ActionStatus::NotInstalled);
  CHECK(status_for_bus_error(Error{ERFKILL, "masked"}) == ActionStatus::NotInstalled);
  CHECK(status_for_bus_error(Error{EACCES, "denied"}) == ActionStatus::Permission);
  CHECK(status_for_bus_error(Error{ENOEXEC, "bad setting"}) == ActionStatus::InvalidConfig);
  CHECK(status_for_bus_error(Error{ETIMEDOUT, "no reply"}) == ActionStatus::Timeout);
  CHECK(status_for_bus_error(Error{ECONNRESET, "lost"}) == ActionStatus::Failed);
}

TEST_CASE("the factory needs the daemon's systemd connection and valid parameters") {
  ResourceConfig config;
  config.name = "web";
  config.type = "service";
  config.params = {{"unit", scalar("web")}};
  DriverContext context;
  CHECK(make_service_driver(config, context).error().message ==
        "resource web: the service type needs the daemon's connection to systemd "
        "(CLUSTERD_SYSTEMD_BUS)");
  config.params = {};
  CHECK(make_service_driver(config, context).error().message == "resource web: unit is required");
}

}  // namespace clusterd
