#include "ocf_agent.h"

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

ResourceConfig ocf(std::string name, std::string agent) {
  ResourceConfig config;
  config.name = std::move(name);
  config.type = "ocf";
  config.agent = std::move(agent);
  return config;
}

DriverContext context(TestLoop& loop, std::string ocf_root = "/usr/lib/ocf") {
  DriverContext c;
  c.loop = loop.get();
  c.node_name = "node1";
  c.cluster_name = "lab";
  c.group = "web";
  c.ocf_root = std::move(ocf_root);
  return c;
}

template <typename Action>
ActionResult run(TestLoop& loop, Action action, Duration deadline = 10s) {
  std::optional<ActionResult> result;
  action([&](ActionResult r) { result = std::move(r); });
  REQUIRE(loop.run_until([&] { return result.has_value(); }, deadline));
  return *result;
}

std::unique_ptr<OcfAgentDriver> make(TestLoop& loop, const ResourceConfig& config,
                                     std::string ocf_root = "/usr/lib/ocf") {
  auto driver = OcfAgentDriver::create(config, context(loop, std::move(ocf_root)));
  REQUIRE(driver);
  return std::move(*driver);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("OcfAction and ActionStatus have names for every value") {
  for (auto a : {OcfAction::Start, OcfAction::Stop, OcfAction::Monitor, OcfAction::MetaData})
    CHECK(std::string(to_string(a)) != "?");
  for (auto s : {ActionStatus::Ok, ActionStatus::NotRunning, ActionStatus::Failed,
                 ActionStatus::Timeout, ActionStatus::InvalidConfig, ActionStatus::NotInstalled,
                 ActionStatus::Unimplemented, ActionStatus::Permission})
    CHECK(std::string(to_string(s)) != "?");
  for (auto l : {MonitorLevel::LooksAlive, MonitorLevel::IsAlive})
    CHECK(std::string(to_string(l)) != "?");
  for (int code : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 190, 191})
    CHECK(std::string(ocf_exit_code_name(code)).starts_with("OCF_"));
  CHECK(std::string(ocf_exit_code_name(42)) == "unknown exit code");
}

TEST_CASE("OCF exit codes map to action results") {
  using enum ActionStatus;
  struct Row {
    int code;
    ActionStatus start, stop, monitor;
  };
  const Row table[] = {
      {0, Ok, Ok, Ok},
      {1, Failed, Failed, Failed},
      {2, InvalidConfig, InvalidConfig, InvalidConfig},
      {3, Unimplemented, Unimplemented, Unimplemented},
      {4, Permission, Permission, Permission},
      {5, NotInstalled, NotInstalled, NotInstalled},
      {6, InvalidConfig, InvalidConfig, InvalidConfig},
      {7, Failed, Ok, NotRunning},
      {8, Ok, Failed, Ok},
      {9, Failed, Failed, Failed},
      {190, Failed, Failed, Ok},
      {191, Failed, Failed, Ok},
      {42, Failed, Failed, Failed},
      {127, Failed, Failed, Failed},
  };
  for (const auto& row : table) {
    CAPTURE(row.code);
    CHECK(ocf_action_status(OcfAction::Start, row.code) == row.start);
    CHECK(ocf_action_status(OcfAction::Stop, row.code) == row.stop);
    CHECK(ocf_action_status(OcfAction::Monitor, row.code) == row.monitor);
  }
}

TEST_CASE("ocf_action_result explains failures with the agent's last line") {
  ChildExit exit;
  exit.status = 6;
  exit.output = "checking\nState file is not writable\n";
  auto result = ocf_action_result(OcfAction::Start, 20s, exit);
  CHECK(result.status == ActionStatus::InvalidConfig);
  CHECK(result.exit_code == 6);
  CHECK(result.reason == "start failed with OCF_ERR_CONFIGURED (6): State file is not writable");

  exit.status = 7;
  exit.output = "";
  result = ocf_action_result(OcfAction::Monitor, 20s, exit);
  CHECK(result.status == ActionStatus::NotRunning);
  CHECK(result.reason == "not running");
  result = ocf_action_result(OcfAction::Stop, 20s, exit);
  CHECK(result.status == ActionStatus::Ok);
  CHECK(result.reason.empty());

  exit.end = ChildEnd::Timeout;
  exit.status = 9;
  result = ocf_action_result(OcfAction::Start, 20s, exit);
  CHECK(result.status == ActionStatus::Timeout);
  CHECK(result.reason.starts_with("start timed out after"));

  exit.end = ChildEnd::Signaled;
  result = ocf_action_result(OcfAction::Monitor, 20s, exit);
  CHECK(result.status == ActionStatus::Failed);
  CHECK(result.reason == "monitor failed: the agent was killed by signal 9");
}

TEST_CASE("the agent's ocf-exit-reason is preferred over its last line") {
  CHECK(ocf_failure_text("x\nocf-exit-reason:Port 80 is taken\nDEBUG: cleanup\n") ==
        "Port 80 is taken");
  CHECK(ocf_failure_text("ocf-exit-reason:first\nocf-exit-reason:second\n") == "second");
  CHECK(ocf_failure_text("no marker\nlast\n") == "last");
  CHECK(ocf_failure_text("text ocf-exit-reason: inline\n") == "text ocf-exit-reason: inline");
  CHECK(ocf_failure_text("") == "");
}

TEST_CASE("agent specs resolve under OCF_ROOT or as paths") {
  auto dummy = resolve_ocf_agent("/usr/lib/ocf", "heartbeat:Dummy");
  REQUIRE(dummy);
  CHECK(dummy->path == "/usr/lib/ocf/resource.d/heartbeat/Dummy");
  CHECK(dummy->provider == "heartbeat");
  CHECK(dummy->type == "Dummy");
  CHECK(dummy->name() == "ocf:heartbeat:Dummy");
  CHECK(resolve_ocf_agent("/usr/lib/ocf", "ocf:heartbeat:Dummy")->path == dummy->path);

  auto by_path = resolve_ocf_agent("/x", "/usr/lib/ocf/resource.d/heartbeat/Dummy");
  REQUIRE(by_path);
  CHECK(by_path->type == "Dummy");
  CHECK(by_path->provider.empty());
  CHECK(by_path->name() == "ocf:/usr/lib/ocf/resource.d/heartbeat/Dummy");

  CHECK(resolve_ocf_agent("/usr/lib/ocf", "heartbeat:Nope").error().to_string() ==
        "OCF agent 'heartbeat:Nope' not found at /usr/lib/ocf/resource.d/heartbeat/Nope: No "
        "such file or directory");
  CHECK(resolve_ocf_agent("/usr/lib/ocf", "Dummy").error().message.starts_with(
      "OCF agent 'Dummy' is neither provider:type"));
  CHECK_FALSE(resolve_ocf_agent("/usr/lib/ocf", "heartbeat:../../x"));
  CHECK_FALSE(resolve_ocf_agent("/usr/lib/ocf", ""));
  CHECK(resolve_ocf_agent("/usr/lib/ocf", "/usr/lib/ocf/resource.d").error().message ==
        "OCF agent '/usr/lib/ocf/resource.d': /usr/lib/ocf/resource.d is not a file");
  std::string root = testing::fixture_ocf_root();
  CHECK(resolve_ocf_agent(root, "clusterd-test:not-executable").error().message ==
        "OCF agent 'clusterd-test:not-executable': " + root +
            "/resource.d/clusterd-test/not-executable is not executable");
}

TEST_CASE("parameters become OCF_RESKEY_ variables") {
  ParamValue list;
  list.kind = ParamValue::Kind::List;
  list.list = {"a", "b c"};
  CHECK(ocf_param_value(list) == "a b c");
  ParamValue map;
  map.kind = ParamValue::Kind::Map;
  map.map = {{"k", "v"}, {"x", "y"}};
  CHECK(ocf_param_value(map) == "k=v x=y");
  CHECK(ocf_param_value(scalar("plain")) == "plain");
}

TEST_CASE("the agent environment follows the OCF RA API") {
  TestLoop loop;
  auto config = ocf("db", "heartbeat:Dummy");
  config.params["state"] = scalar("/tmp/x.state");
  config.monitor.looks_alive = 5s;
  config.monitor.is_alive = 60s;
  OcfAgentPath agent{"/usr/lib/ocf/resource.d/heartbeat/Dummy", "heartbeat", "Dummy"};
  auto env = ocf_environment(config, context(loop), agent, OcfAction::Monitor, 20s,
                             MonitorLevel::IsAlive);
  auto has = [&](const std::string& entry) {
    return std::find(env.begin(), env.end(), entry) != env.end();
  };
  CHECK(has("OCF_ROOT=/usr/lib/ocf"));
  CHECK(has("OCF_RA_VERSION_MAJOR=1"));
  CHECK(has("OCF_RA_VERSION_MINOR=0"));
  CHECK(has("OCF_RESOURCE_INSTANCE=db"));
  CHECK(has("OCF_RESOURCE_TYPE=Dummy"));
  CHECK(has("OCF_RESOURCE_PROVIDER=heartbeat"));
  CHECK(has("OCF_RESKEY_state=/tmp/x.state"));
  CHECK(has("OCF_RESKEY_CRM_meta_timeout=20000"));
  CHECK(has("OCF_RESKEY_CRM_meta_interval=60000"));
  CHECK(has("OCF_CHECK_LEVEL=20"));
  CHECK(has("CLUSTER_NODE=node1"));
  CHECK(has("CLUSTER_GROUP=web"));
  CHECK(has("CLUSTER_NAME=lab"));
  CHECK(std::any_of(env.begin(), env.end(), [](auto& e) { return e.starts_with("PATH=/"); }));

  env = ocf_environment(config, context(loop), agent, OcfAction::Monitor, 20s,
                        MonitorLevel::LooksAlive);
  CHECK(has("OCF_CHECK_LEVEL=0"));
  CHECK(has("OCF_RESKEY_CRM_meta_interval=5000"));
  env = ocf_environment(config, context(loop), agent, OcfAction::Start, 20s, std::nullopt);
  CHECK(std::none_of(env.begin(), env.end(), [](auto& e) { return e.starts_with("OCF_CHECK"); }));
}

TEST_CASE("the real ocf:heartbeat:Dummy: start, monitor, stop, monitor") {
  TestLoop loop;
  testing::TempDir dir;
  auto config = ocf("dummy", "heartbeat:Dummy");
  std::string state = dir.path() + "/dummy.state";
  config.params["state"] = scalar(state);
  auto driver = make(loop, config);

  auto probe = run(loop, [&](auto done) { driver->monitor(MonitorLevel::LooksAlive, done); });
  CHECK(probe.status == ActionStatus::NotRunning);
  CHECK(probe.exit_code == 7);
  auto started = run(loop, [&](auto done) { driver->start(done); });
  CHECK(started.status == ActionStatus::Ok);
  CHECK(started.reason == "");
  CHECK(std::filesystem::exists(state));
  CHECK(run(loop, [&](auto done) { driver->monitor(MonitorLevel::LooksAlive, done); }).status ==
        ActionStatus::Ok);
  CHECK(run(loop, [&](auto done) { driver->monitor(MonitorLevel::IsAlive, done); }).status ==
        ActionStatus::Ok);
  CHECK(run(loop, [&](auto done) { driver->stop(done); }).status == ActionStatus::Ok);
  CHECK_FALSE(std::filesystem::exists(state));
  CHECK(run(loop, [&](auto done) { driver->monitor(MonitorLevel::LooksAlive, done); }).status ==
        ActionStatus::NotRunning);
  // Stopping a stopped Dummy is success (OCF: stop is idempotent).
  CHECK(run(loop, [&](auto done) { driver->stop(done); }).status == ActionStatus::Ok);
}

TEST_CASE("the real Dummy's failure output and exit reason reach the result") {
  TestLoop loop;
  auto config = ocf("dummy", "heartbeat:Dummy");
  config.params["state"] = scalar("/nonexistent/dir/dummy.state");
  auto driver = make(loop, config);
  auto result = run(loop, [&](auto done) { driver->start(done); });
  CHECK(result.status == ActionStatus::Failed);
  CHECK(result.exit_code == 1);
  CHECK(result.reason ==
        "start failed with OCF_ERR_GENERIC (1): touch: cannot touch "
        "'/nonexistent/dir/dummy.state': No such file or directory");
  // A recurring monitor (interval set: not a probe) gets Dummy's ocf_exit_reason.
  result = run(loop, [&](auto done) { driver->monitor(MonitorLevel::LooksAlive, done); });
  CHECK(result.status == ActionStatus::NotRunning);
  CHECK(result.reason == "not running: No process state file found");
}

TEST_CASE("an agent's environment and failure output reach us") {
  TestLoop loop;
  testing::TempDir dir;
  auto config = ocf("probe1", "clusterd-test:probe");
  config.params["envfile"] = scalar(dir.path() + "/env");
  config.params["rc"] = scalar("1");
  config.timeouts.start = 7s;
  auto driver = make(loop, config, testing::fixture_ocf_root());
  auto result = run(loop, [&](auto done) { driver->start(done); });
  CHECK(result.status == ActionStatus::Failed);
  CHECK(result.exit_code == 1);
  CHECK(result.reason == "start failed with OCF_ERR_GENERIC (1): probe start says rc=1");
  std::string env = read_file(dir.path() + "/env");
  CHECK(env.find("OCF_RESOURCE_INSTANCE=probe1\n") != std::string::npos);
  CHECK(env.find("OCF_RESOURCE_PROVIDER=clusterd-test\n") != std::string::npos);
  CHECK(env.find("OCF_RESKEY_CRM_meta_timeout=7000\n") != std::string::npos);
  CHECK(env.find("OCF_ROOT=" + testing::fixture_ocf_root() + "\n") != std::string::npos);
}

TEST_CASE("an agent that hangs on start times out and its process group is killed") {
  TestLoop loop;
  testing::TempDir dir;
  auto config = ocf("stuck", "clusterd-test:hang");
  std::string pidfile = dir.path() + "/grandchild.pid";
  config.params["pidfile"] = scalar(pidfile);
  config.timeouts.start = 500ms;
  auto driver = make(loop, config, testing::fixture_ocf_root());

  std::optional<ActionResult> result;
  auto began = mono_now();
  driver->start([&](ActionResult r) { result = std::move(r); });
  REQUIRE(loop.run_until([&] { return std::filesystem::exists(pidfile); }));
  pid_t grandchild = std::stoi(read_file(pidfile));
  CHECK_FALSE(testing::process_gone(grandchild));
  REQUIRE(loop.run_until([&] { return result.has_value(); }));
  CHECK(mono_now().ms_since(began) >= 500);
  CHECK(result->status == ActionStatus::Timeout);
  CHECK(result->reason.starts_with("start timed out after"));
  CHECK(result->reason.ends_with("the agent's process group was killed"));
  char state = 0;
  pid_t pgid = 0;
  bool seen = testing::proc_stat(grandchild, &state, &pgid);
  // SIGKILL went to the whole group at once; the kernel takes the grandchild down shortly.
  CHECK(loop.run_until([&] { return testing::process_gone(grandchild); }, 2s));
  if (seen) CHECK(loop.run_until([&] { return testing::group_gone(pgid); }, 2s));
}

TEST_CASE("cancel kills a running agent without calling Done") {
  TestLoop loop;
  testing::TempDir dir;
  auto config = ocf("stuck", "clusterd-test:hang");
  std::string pidfile = dir.path() + "/grandchild.pid";
  config.params["pidfile"] = scalar(pidfile);
  auto driver = make(loop, config, testing::fixture_ocf_root());
  bool called = false;
  driver->start([&](ActionResult) { called = true; });
  REQUIRE(loop.run_until([&] { return std::filesystem::exists(pidfile); }));
  pid_t grandchild = std::stoi(read_file(pidfile));
  driver->cancel();
  CHECK(loop.run_until([&] { return testing::process_gone(grandchild); }, 2s));
  loop.run_for(50ms);
  CHECK_FALSE(called);
}

TEST_CASE("a missing agent is a clear error from make_driver") {
  TestLoop loop;
  auto made = make_driver(ocf("x", "heartbeat:Nope"), context(loop));
  REQUIRE_FALSE(made);
  CHECK(made.error().message ==
        "resource x: OCF agent 'heartbeat:Nope' not found at "
        "/usr/lib/ocf/resource.d/heartbeat/Nope");
  ResourceConfig odd;
  odd.name = "y";
  odd.type = "teleporter";
  CHECK(make_driver(odd, context(loop)).error().message ==
        "resource y: unknown resource type 'teleporter' (known: process, ocf, ip, service, disk, name)");
  CHECK(make_driver(ocf("d", "heartbeat:Dummy"), context(loop)));
}

}  // namespace clusterd
