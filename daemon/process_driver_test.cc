#include "process_driver.h"

#include <poll.h>
#include <signal.h>

#include <fstream>

#include <doctest/doctest.h>

#include "loop_test_util.h"
#include "param_test_util.h"

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using testing::TestLoop;
using testing::list;
using testing::scalar;

ResourceConfig process(std::string command, std::vector<std::string> args = {}) {
  ResourceConfig config;
  config.name = "app";
  config.type = "process";
  config.params["command"] = scalar(std::move(command));
  if (!args.empty()) config.params["args"] = list(std::move(args));
  config.timeouts.stop = 2s;
  return config;
}

DriverContext context(TestLoop& loop) {
  DriverContext c;
  c.loop = loop.get();
  c.node_name = "node1";
  c.group = "web";
  return c;
}

// Runs one action to its Done.
template <typename Action>
ActionResult run(TestLoop& loop, Action action) {
  std::optional<ActionResult> result;
  action([&](ActionResult r) { result = std::move(r); });
  REQUIRE(loop.run_until([&] { return result.has_value(); }));
  return *result;
}

std::unique_ptr<ProcessDriver> make(TestLoop& loop, const ResourceConfig& config) {
  auto driver = ProcessDriver::create(config, context(loop));
  REQUIRE(driver);
  return std::move(*driver);
}

// Blocks until `pid` has exited (its pidfd is readable), without dispatching the loop.
void wait_exited(pid_t pid) {
  Fd pidfd(open_pidfd(pid));
  REQUIRE(pidfd);
  pollfd pfd{pidfd.get(), POLLIN, 0};
  REQUIRE(poll(&pfd, 1, 5000) == 1);
}

// The command name of `pid` (/proc/PID/comm), empty when it is gone.
std::string comm(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/comm", pid));
  std::string name;
  std::getline(in, name);
  return name;
}

}  // namespace

TEST_CASE("process params are validated") {
  Params params;
  CHECK(parse_process_params("app", params).error().message ==
        "resource app: parameter 'command' is required");
  params["command"] = scalar("/bin/true");
  params["args"] = scalar("-x");
  CHECK(parse_process_params("app", params).error().message ==
        "resource app: parameter 'args' must be a list");
  params["args"] = list({"-x"});
  params["stop_signal"] = scalar("BOGUS");
  CHECK(parse_process_params("app", params).error().message.starts_with(
      "resource app: stop_signal: 'BOGUS' is not a signal name"));
  params["stop_signal"] = scalar("sigint");
  params["umask"] = scalar("0027");
  auto ok = parse_process_params("app", params);
  REQUIRE(ok);
  CHECK(ok->stop_signal == SIGINT);
  CHECK(ok->umask == 027);
  CHECK(ok->args == std::vector<std::string>{"-x"});
  params["colour"] = scalar("blue");
  CHECK(parse_process_params("app", params).error().message ==
        "resource app: unknown parameter 'colour' for type process");
}

TEST_CASE("process driver: start, monitor, stop") {
  TestLoop loop;
  auto driver = make(loop, process("sleep", {"1000"}));
  CHECK(driver->main_pid() == 0);
  CHECK(run(loop, [&](auto done) { driver->monitor(MonitorLevel::LooksAlive, done); }).status ==
        ActionStatus::NotRunning);

  auto started = run(loop, [&](auto done) { driver->start(done); });
  CHECK(started.status == ActionStatus::Ok);
  pid_t pid = driver->main_pid();
  REQUIRE(pid > 0);
  CHECK(run(loop, [&](auto done) { driver->monitor(MonitorLevel::LooksAlive, done); }).status ==
        ActionStatus::Ok);
  CHECK(run(loop, [&](auto done) { driver->monitor(MonitorLevel::IsAlive, done); }).status ==
        ActionStatus::Ok);

  auto began = mono_now();
  CHECK(run(loop, [&](auto done) { driver->stop(done); }).status == ActionStatus::Ok);
  CHECK(mono_now().ms_since(began) < 1000);  // TERM suffices: no wait for the stop timeout
  CHECK(testing::process_gone(pid));
  CHECK(driver->main_pid() == 0);
  CHECK(run(loop, [&](auto done) { driver->monitor(MonitorLevel::LooksAlive, done); }).status ==
        ActionStatus::NotRunning);
  // Stopping what is stopped is fine.
  CHECK(run(loop, [&](auto done) { driver->stop(done); }).status == ActionStatus::Ok);
}

TEST_CASE("process driver: kill -9 of the main process is reported within milliseconds") {
  TestLoop loop;
  auto driver = make(loop, process("/bin/sh", {"-c", "echo about to be killed; exec sleep 1000"}));
  std::optional<std::string> failure;
  MonoTime failed_at;
  driver->set_failure_handler([&](std::string reason) {
    failure = std::move(reason);
    failed_at = mono_now();
  });
  REQUIRE(run(loop, [&](auto done) { driver->start(done); }).status == ActionStatus::Ok);
  pid_t pid = driver->main_pid();
  // Once the shell has become `sleep`, its echo is in the pipe.
  REQUIRE(loop.run_until([&] { return comm(pid) == "sleep"; }));

  MonoTime killed_at = mono_now();
  REQUIRE(kill(pid, SIGKILL) == 0);
  REQUIRE(loop.run_until([&] { return failure.has_value(); }, 2s));
  CHECK(failed_at.ms_since(killed_at) < 200);
  CHECK(*failure == fmt::format("main process {} killed by signal 9: about to be killed", pid));
  CHECK(run(loop, [&](auto done) { driver->monitor(MonitorLevel::LooksAlive, done); }).status ==
        ActionStatus::NotRunning);
  CHECK(run(loop, [&](auto done) { driver->stop(done); }).status == ActionStatus::Ok);
}

TEST_CASE("process driver: a death seen first by monitor is reported once, by monitor") {
  TestLoop loop;
  auto driver = make(loop, process("sleep", {"1000"}));
  int failures = 0;
  driver->set_failure_handler([&](std::string) { ++failures; });
  REQUIRE(run(loop, [&](auto done) { driver->start(done); }).status == ActionStatus::Ok);
  pid_t pid = driver->main_pid();
  kill(pid, SIGKILL);
  wait_exited(pid);
  auto result = run(loop, [&](auto done) { driver->monitor(MonitorLevel::IsAlive, done); });
  CHECK(result.status == ActionStatus::NotRunning);
  CHECK(result.reason == fmt::format("main process {} killed by signal 9", pid));
  loop.run_for(50ms);
  CHECK(failures == 0);
}

TEST_CASE("process driver: stop escalates to SIGKILL for a process group ignoring TERM") {
  TestLoop loop;
  testing::TempDir dir;
  std::string ready = dir.path() + "/ready";
  auto config =
      process("/bin/sh", {"-c", "trap '' TERM; sleep 1000 & touch " + ready + "; wait"});
  config.timeouts.stop = 300ms;
  auto driver = make(loop, config);
  REQUIRE(run(loop, [&](auto done) { driver->start(done); }).status == ActionStatus::Ok);
  pid_t pid = driver->main_pid();
  REQUIRE(loop.run_until([&] { return std::filesystem::exists(ready); }));

  auto began = mono_now();
  CHECK(run(loop, [&](auto done) { driver->stop(done); }).status == ActionStatus::Ok);
  CHECK(mono_now().ms_since(began) >= 300);
  CHECK(mono_now().ms_since(began) < 2000);
  CHECK(loop.run_until([&] { return testing::group_gone(pid); }, 2s));
}

TEST_CASE("process driver: stop_signal is sent to the group") {
  TestLoop loop;
  testing::TempDir dir;
  std::string ready = dir.path() + "/ready";
  auto config = process("/bin/sh", {"-c", "trap 'echo got-hup > " + dir.path() +
                                              "/out; exit 0' HUP; touch " + ready +
                                              "; while :; do sleep 0.05; done"});
  config.params["stop_signal"] = scalar("HUP");
  auto driver = make(loop, config);
  REQUIRE(run(loop, [&](auto done) { driver->start(done); }).status == ActionStatus::Ok);
  REQUIRE(loop.run_until([&] { return std::filesystem::exists(ready); }));
  CHECK(run(loop, [&](auto done) { driver->stop(done); }).status == ActionStatus::Ok);
  std::ifstream in(dir.path() + "/out");
  std::string line;
  std::getline(in, line);
  CHECK(line == "got-hup");
}

TEST_CASE("process driver: environment, working directory and CLUSTER_* variables") {
  TestLoop loop;
  testing::TempDir dir;
  auto config = process("/bin/sh", {"-c", "echo $FOO $CLUSTER_RESOURCE $CLUSTER_GROUP "
                                          "$CLUSTER_NODE $(pwd) > out.tmp && mv out.tmp out; "
                                          "exec sleep 1000"});
  ParamValue env;
  env.kind = ParamValue::Kind::Map;
  env.map = {{"FOO", "bar"}};
  config.params["env"] = env;
  config.params["cwd"] = scalar(dir.path());
  auto driver = make(loop, config);
  REQUIRE(run(loop, [&](auto done) { driver->start(done); }).status == ActionStatus::Ok);
  std::string out = dir.path() + "/out";
  REQUIRE(loop.run_until([&] { return std::filesystem::exists(out); }));
  std::ifstream in(out);
  std::string line;
  std::getline(in, line);
  CHECK(line == "bar app web node1 " + dir.path());
  CHECK(run(loop, [&](auto done) { driver->stop(done); }).status == ActionStatus::Ok);
}

TEST_CASE("process driver: a missing program fails start with a clear reason") {
  TestLoop loop;
  auto driver = make(loop, process("/nonexistent/daemon"));
  auto result = run(loop, [&](auto done) { driver->start(done); });
  CHECK(result.status == ActionStatus::NotInstalled);
  CHECK(result.reason == "cannot execute /nonexistent/daemon: No such file or directory");
}

TEST_CASE("process driver: a process that dies at once is a failed start or a failure") {
  TestLoop loop;
  auto driver = make(loop, process("/bin/sh", {"-c", "echo bad config; exit 2"}));
  std::optional<std::string> failure;
  driver->set_failure_handler([&](std::string reason) { failure = std::move(reason); });
  auto result = run(loop, [&](auto done) { driver->start(done); });
  if (result.status == ActionStatus::Ok) {
    REQUIRE(loop.run_until([&] { return failure.has_value(); }));
    CHECK(failure->ends_with("exited with status 2: bad config"));
  } else {
    CHECK(result.status == ActionStatus::Failed);
    CHECK(result.reason.ends_with("exited with status 2: bad config right after start"));
  }
}

TEST_CASE("process driver: cancel during stop kills the group without calling Done") {
  TestLoop loop;
  auto config = process("/bin/sh", {"-c", "trap '' TERM; exec sleep 1000"});
  config.timeouts.stop = 10s;
  auto driver = make(loop, config);
  REQUIRE(run(loop, [&](auto done) { driver->start(done); }).status == ActionStatus::Ok);
  pid_t pid = driver->main_pid();
  bool called = false;
  driver->stop([&](ActionResult) { called = true; });
  driver->cancel();
  CHECK(loop.run_until([&] { return testing::group_gone(pid); }, 2s));
  loop.run_for(50ms);
  CHECK_FALSE(called);
}

TEST_CASE("destroying a process driver kills its process") {
  TestLoop loop;
  auto driver = make(loop, process("sleep", {"1000"}));
  REQUIRE(run(loop, [&](auto done) { driver->start(done); }).status == ActionStatus::Ok);
  pid_t pid = driver->main_pid();
  driver.reset();
  CHECK(loop.run_until([&] { return kill(pid, 0) < 0 && errno == ESRCH; }, 2s));
}

}  // namespace clusterd
