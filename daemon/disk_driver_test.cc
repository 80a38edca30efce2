// The disk type's pure parts: parameters, the initiator name, the helper's command lines and
// the type metadata; the driver's handling of a helper that fails while online, with a scripted
// helper. The driver with the real helper runs against a real tgtd and a real daemon in
// tests/integration/test_disk.py.
#include "disk_driver.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include <signal.h>
#include <unistd.h>

#include "config_load.h"
#include "disk_helper.h"
#include "loop_test_util.h"
#include "param_test_util.h"

namespace clusterd {
namespace {

using testing::list;
using testing::scalar;

Params minimal() {
  return {{"portal", scalar("10.9.0.2:3260")},
          {"target", scalar("iqn.2024-01.org.clusterd.lab:ledger")},
          {"mount_point", scalar("/var/lib/ledger")}};
}

std::string error_of(const Params& params) {
  auto parsed = parse_disk_params(params);
  REQUIRE_FALSE(parsed.has_value());
  return parsed.error().message;
}

// The catalog of a daemon that knows only the disk type.
class DiskCatalog : public TypeCatalog {
 public:
  Result<TypeInfo> lookup(const std::string& type, const std::string&) const override {
    if (type == "disk") return disk_type_info();
    return fail("unknown resource type '{}'", type);
  }
  std::vector<std::string> type_names() const override { return {"disk"}; }
};

std::string disk_config(std::string_view portal) {
  return fmt::format(R"(cluster: {{name: lab, id: 7}}
networks: [{{name: pub, subnet: 10.0.0.0/24}}]
nodes: [{{name: a, id: 1, addresses: {{pub: 10.0.0.1}}}}]
groups:
  - name: g
    resources:
      - name: data
        type: disk
        params:
          portal: {}
          target: iqn.2024-01.org.clusterd.lab:ledger
          mount_point: /srv
)",
                     portal);
}

}  // namespace

TEST_CASE("disk portal: a single value or a YAML list, both validated and read in order") {
  DiskCatalog catalog;
  for (const char* portal : {"[\"10.9.0.2:3260\", 10.9.1.2]", "\"10.9.0.2:3260, 10.9.1.2\"",
                             "\"10.9.0.2:3260 10.9.1.2\""}) {
    CAPTURE(portal);
    auto config = parse_config(disk_config(portal), "test.yaml", catalog);
    REQUIRE(config);
    auto params = parse_disk_params((*config)->groups.at(0).resources.at(0).params);
    REQUIRE(params);
    CHECK(params->portals == std::vector<std::string>{"10.9.0.2:3260", "10.9.1.2"});
  }
  auto config = parse_config(disk_config("{a: 10.9.0.2}"), "test.yaml", catalog);
  REQUIRE_FALSE(config);
  REQUIRE(config.error().size() == 1);
  CHECK(config.error()[0].to_string() ==
        "test.yaml:10:11: group 'g', resource 'data': params.portal: expected a single value or "
        "a list, got a mapping");
  // The other parameters stay single values.
  std::string text = disk_config("10.9.0.2");
  text.replace(text.find("/srv"), 4, "[/srv]");
  config = parse_config(text, "test.yaml", catalog);
  REQUIRE_FALSE(config);
  CHECK(config.error()[0].to_string() ==
        "test.yaml:12:11: group 'g', resource 'data': params.mount_point: expected a single "
        "value, got a list");
}

TEST_CASE("parse_disk_params: defaults") {
  auto p = parse_disk_params(minimal());
  REQUIRE_MESSAGE(p, p.error().to_string());
  CHECK(p->portals == std::vector<std::string>{"10.9.0.2:3260"});
  CHECK(p->lun == 1);
  CHECK(p->initiator.empty());
  CHECK(p->filesystem == "ext4");
  CHECK_FALSE(p->mkfs);
  CHECK(p->io_timeout == 5);
  CHECK(p->take_over);
}

TEST_CASE("parse_disk_params: every parameter") {
  Params params = minimal();
  params["portal"] = scalar("10.9.0.2, 10.9.1.2:3261");
  params["lun"] = scalar("3");
  params["initiator"] = scalar("iqn.2026-11.org.example:n1");
  params["filesystem"] = scalar("ext3");
  params["options"] = scalar("noatime");
  params["mkfs"] = scalar("true");
  params["io_timeout"] = scalar("2500ms");
  params["take_over"] = scalar("false");
  auto p = parse_disk_params(params);
  REQUIRE_MESSAGE(p, p.error().to_string());
  CHECK(p->portals == std::vector<std::string>{"10.9.0.2", "10.9.1.2:3261"});
  CHECK(p->lun == 3);
  CHECK(p->initiator == "iqn.2026-11.org.example:n1");
  CHECK(p->filesystem == "ext3");
  CHECK(p->options == "noatime");
  CHECK(p->mkfs);
  CHECK(p->io_timeout == 3);  // rounded up to whole seconds
  CHECK_FALSE(p->take_over);
}

TEST_CASE("parse_disk_params: the errors an administrator sees") {
  Params p = minimal();
  p.erase("portal");
  CHECK(error_of(p) == "portal is required");
  p = minimal();
  p.erase("mount_point");
  CHECK(error_of(p) == "mount_point is required");
  p = minimal();
  p["mount_point"] = scalar("data");
  CHECK(error_of(p) == "mount_point: 'data' must be an absolute path other than /");
  p = minimal();
  p["target"] = scalar("ledger");
  CHECK(error_of(p) == "target: 'ledger' is not an iSCSI name (iqn.YYYY-MM.domain:...)");
  p = minimal();
  p["lun"] = scalar("-1");
  CHECK(error_of(p) == "lun: '-1' is not a whole number from 0 to 16383");
  p = minimal();
  p["mkfs"] = scalar("maybe");
  CHECK(error_of(p) == "mkfs: 'maybe' is not true or false");
  p = minimal();
  p["io_timeout"] = scalar("100ms");
  CHECK(error_of(p) == "io_timeout: '100ms' is not a duration from 1s to 10m");
  p = minimal();
  p["portal"] = list({" ", ""});
  CHECK(error_of(p) == "portal: give at least one HOST[:PORT]");
  p = minimal();
  p["portal"].kind = ParamValue::Kind::Map;
  CHECK(error_of(p) == "portal must be a single value or a list");
  p = minimal();
  p["bogus"] = scalar("1");
  CHECK(error_of(p) == "unknown parameter bogus for a disk resource");
}

TEST_CASE("default_initiator: one IQN per node, in the characters IQNs allow") {
  CHECK(default_initiator("lab", "n1") == "iqn.2026-11.org.clusterd:lab:n1");
  CHECK(default_initiator("Big_Cluster", "Node_2") == "iqn.2026-11.org.clusterd:big-cluster:node-2");
  CHECK(default_initiator("lab", "n1") != default_initiator("lab", "n2"));
}

TEST_CASE("disk_helper_argv: the iSCSI mode with the node's key, control on fd 3") {
  auto p = parse_disk_params(minimal());
  REQUIRE(p);
  p->mkfs = true;
  p->options = "noatime";
  DiskInvocation how{"/usr/libexec/clusterd/clusterd-disk", "/var/lib/clusterd/disk/d1",
                     "iqn.2026-11.org.clusterd:lab:n1", 7, 2};
  CHECK(disk_helper_argv(*p, how) ==
        std::vector<std::string>{
            "/usr/libexec/clusterd/clusterd-disk", "--portal", "10.9.0.2:3260", "--target",
            "iqn.2024-01.org.clusterd.lab:ledger", "--lun", "1", "--initiator",
            "iqn.2026-11.org.clusterd:lab:n1", "--cluster-id", "7", "--node-id", "2",
            "--io-timeout", "5", "--take-over", "--fuse-dir", "/var/lib/clusterd/disk/d1",
            "--mount-point", "/var/lib/ledger", "--fstype", "ext4", "--options", "noatime",
            "--mkfs-if-blank", "--control-fd", "3"});
  p->take_over = false;
  p->mkfs = false;
  auto argv = disk_helper_argv(*p, how);
  CHECK(std::find(argv.begin(), argv.end(), "--take-over") == argv.end());
  CHECK(std::find(argv.begin(), argv.end(), "--mkfs-if-blank") == argv.end());
  CHECK(disk_cleanup_argv(*p, how) ==
        std::vector<std::string>{"/usr/libexec/clusterd/clusterd-disk", "--cleanup", "--fuse-dir",
                                 "/var/lib/clusterd/disk/d1", "--mount-point", "/var/lib/ledger"});
}

TEST_CASE("disk_type_info: required parameters and advised timeouts") {
  TypeInfo info = disk_type_info();
  CHECK(info.name == "disk");
  for (const char* name : {"portal", "target", "mount_point"}) {
    REQUIRE(info.find(name));
    CHECK(info.find(name)->required);
  }
  // Every parameter the parser takes is declared, so the validator accepts it.
  for (const auto& spec : info.params)
    if (!spec.required && !spec.default_value.empty()) {
      Params p = minimal();
      p[spec.name] = scalar(spec.default_value);
      CHECK_MESSAGE(parse_disk_params(p), spec.name);
    }
  CHECK(info.advised_start_timeout);
  CHECK(info.advised_monitor_timeout > std::chrono::seconds(5));
}

}  // namespace clusterd

namespace clusterd {

TEST_CASE("helper_sentence: the helper's own reason, not the log lines after it") {
  CHECK(helper_sentence("clusterd-disk: reservation lost: held by node 2\n"
                        "clusterd[9] notice: failed: stopping -> done\n") ==
        "reservation lost: held by node 2");
  CHECK(helper_sentence("x\nclusterd-disk: a\nclusterd-disk: b\ny\n") == "b");
  CHECK(helper_sentence("just a line\n") == "just a line");
  CHECK(helper_sentence("") == "");
}

}  // namespace clusterd

// The driver on a real sd-event loop with a stand-in for clusterd-disk at the process boundary:
// a script that speaks the control protocol (disk_helper.h) as a fenced helper does.
namespace clusterd {
namespace {

// Online, then fenced at once: "failed <reason>" unasked, then the orderly stop's answers.
constexpr const char* kFencedHelper = R"(#!/bin/sh
case " $* " in *" --cleanup "*) exit 0 ;; esac
echo "ready /dev/loop99" >&3
echo "failed reservation lost: held by node 2" >&3
echo "clusterd-disk: reservation lost: held by node 2" >&2
while read -r line <&3; do
  case "$line" in
    check) echo "error reservation lost: held by node 2" >&3 ;;
    stop) echo "error reservation lost: held by node 2" >&3; exit 1 ;;
  esac
done
exit 1
)";

// Online and silent until SIGKILLed (as the self-fence's hard deadline does); asked with
// --show-reservation afterwards, it shows node 2 holding the LUN.
constexpr const char* kKilledHelper = R"(#!/bin/sh
case " $* " in
  *" --cleanup "*) exit 0 ;;
  *" --show-reservation "*) printf 'holder node 2 exclusive-access\nkey node 2\n'; exit 0 ;;
esac
echo "ready /dev/loop99" >&3
while read -r line <&3; do :; done
)";

struct ScriptedDisk {
  testing::TestLoop loop;
  testing::TempDir dir;
  std::unique_ptr<ResourceDriver> driver;
  std::vector<std::string> reports;

  explicit ScriptedDisk(const char* script) {
    std::string helper = dir.path() + "/clusterd-disk";
    {
      std::ofstream out(helper);
      out << script;
    }
    std::filesystem::permissions(helper, std::filesystem::perms::owner_all);
    ResourceConfig config;
    config.name = "data";
    config.type = "disk";
    config.params = minimal();
    config.params["mount_point"] = scalar(dir.path() + "/mnt");  // never mounted
    DriverContext context;
    context.loop = loop.get();
    context.cluster_name = "lab";
    context.node_name = "node1";
    context.cluster_id = 7;
    context.node_id = 1;
    context.disk_helper = helper;
    context.state_dir = dir.path();
    auto made = make_disk_driver(config, context);
    REQUIRE_MESSAGE(made, made.error().to_string());
    driver = std::move(*made);
    driver->set_failure_handler([this](std::string reason) { reports.push_back(reason); });
  }

  std::optional<ActionResult> act(const std::function<void(ResourceDriver::Done)>& action) {
    std::optional<ActionResult> result;
    action([&](ActionResult r) { result = std::move(r); });
    loop.run_until([&] { return result.has_value(); }, std::chrono::seconds(10));
    return result;
  }
};

}  // namespace

TEST_CASE("foreign_holder: another node's key holding the LUN, from --show-reservation") {
  CHECK(foreign_holder("holder node 2 exclusive-access\nkey node 2\n", 7, 1) == "node 2");
  CHECK(foreign_holder("log line\nholder node 3 of cluster 9 exclusive-access\n", 7, 1) ==
        "node 3 of cluster 9");
  CHECK_FALSE(foreign_holder("holder node 1 exclusive-access\nkey node 1\n", 7, 1));
  CHECK_FALSE(foreign_holder("holder none\nkey node 2\n", 7, 1));
  CHECK_FALSE(foreign_holder("clusterd-disk: cannot connect\n", 7, 1));
}

TEST_CASE("disk_inquest_argv: reads the reservation with the node's initiator, registers nothing") {
  auto params = parse_disk_params(minimal());
  REQUIRE(params);
  DiskInvocation how{"/usr/libexec/clusterd/clusterd-disk", "/var/lib/clusterd/disk/data",
                     "iqn.2026-11.org.clusterd:lab:node1", 7, 1};
  CHECK(disk_inquest_argv(*params, how) ==
        std::vector<std::string>{"/usr/libexec/clusterd/clusterd-disk", "--show-reservation",
                                 "--portal", "10.9.0.2:3260", "--target",
                                 "iqn.2024-01.org.clusterd.lab:ledger", "--lun", "1",
                                 "--initiator", "iqn.2026-11.org.clusterd:lab:node1",
                                 "--cluster-id", "7", "--io-timeout", "5"});
  // clusterd-disk accepts it.
  auto argv = disk_inquest_argv(*params, how);
  std::vector<const char*> args;
  for (std::size_t i = 1; i < argv.size(); ++i) args.push_back(argv[i].c_str());
  auto parsed = parse_disk_helper_args(std::span<const char* const>(args.data(), args.size()));
  REQUIRE_MESSAGE(parsed, parsed.error().to_string());
  CHECK(parsed->show_reservation);
}

TEST_CASE("disk driver: a helper SIGKILLed before it could say why: the LUN tells who took it") {
  ScriptedDisk disk(kKilledHelper);
  auto started = disk.act([&](auto done) { disk.driver->start(std::move(done)); });
  REQUIRE(started);
  REQUIRE(started->status == ActionStatus::Ok);
  pid_t helper = disk.driver->main_pid();
  REQUIRE(helper > 0);
  REQUIRE(::kill(-helper, SIGKILL) == 0);  // what the self-fence's hard deadline does
  REQUIRE(disk.loop.run_until([&] { return !disk.reports.empty(); }, std::chrono::seconds(10)));
  CHECK(disk.reports.front() ==
        "reservation lost: held by node 2 (the disk helper was killed by signal 9)");
  auto looks = disk.act([&](auto done) {
    disk.driver->monitor(MonitorLevel::LooksAlive, std::move(done));
  });
  REQUIRE(looks);
  CHECK(looks->reason == disk.reports.front());
  auto stopped = disk.act([&](auto done) { disk.driver->stop(std::move(done)); });
  REQUIRE(stopped);
  CHECK(stopped->status == ActionStatus::Ok);
}

TEST_CASE("disk driver: a helper SIGKILLed during an IsAlive: the check answers with the LUN's word") {
  ScriptedDisk disk(kKilledHelper);
  auto started = disk.act([&](auto done) { disk.driver->start(std::move(done)); });
  REQUIRE(started);
  REQUIRE(started->status == ActionStatus::Ok);
  pid_t helper = disk.driver->main_pid();
  REQUIRE(helper > 0);
  std::optional<ActionResult> checked;
  disk.driver->monitor(MonitorLevel::IsAlive, [&](ActionResult r) { checked = std::move(r); });
  REQUIRE(::kill(-helper, SIGKILL) == 0);  // the "check" is never answered
  REQUIRE(disk.loop.run_until([&] { return checked.has_value(); }, std::chrono::seconds(10)));
  CHECK(checked->status == ActionStatus::Failed);
  CHECK(checked->reason == "reservation lost: held by node 2 (the disk helper was killed by signal 9)");
  CHECK(disk.reports.empty());  // the check carried it
}

TEST_CASE("disk driver: a check that comes before the dead helper's exit is dispatched waits for "
          "the LUN's word") {
  ScriptedDisk disk(kKilledHelper);
  auto started = disk.act([&](auto done) { disk.driver->start(std::move(done)); });
  REQUIRE(started);
  REQUIRE(started->status == ActionStatus::Ok);
  pid_t helper = disk.driver->main_pid();
  REQUIRE(helper > 0);
  REQUIRE(::kill(-helper, SIGKILL) == 0);
  // Dead (a zombie), and the loop has not run since: as after a thaw, the check comes first.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!testing::process_gone(helper) && std::chrono::steady_clock::now() < deadline)
    usleep(1000);  // /proc has no event for a process's death
  REQUIRE(testing::process_gone(helper));
  auto looks = disk.act([&](auto done) {
    disk.driver->monitor(MonitorLevel::LooksAlive, std::move(done));
  });
  REQUIRE(looks);
  CHECK(looks->status == ActionStatus::Failed);
  CHECK(looks->reason == "reservation lost: held by node 2 (the disk helper was killed by signal 9)");
}

TEST_CASE("disk driver: a helper that fails while online is reported with its own reason") {
  ScriptedDisk disk(kFencedHelper);
  auto started = disk.act([&](auto done) { disk.driver->start(std::move(done)); });
  REQUIRE(started);
  REQUIRE(started->status == ActionStatus::Ok);
  // The unsolicited "failed" line reaches the engine as the resource's failure ...
  REQUIRE(disk.loop.run_until([&] { return !disk.reports.empty(); }));
  CHECK(disk.reports.front() == "reservation lost: held by node 2");
  // ... and a LooksAlive that finds the mount gone says the same, not "not mounted".
  auto looks = disk.act([&](auto done) {
    disk.driver->monitor(MonitorLevel::LooksAlive, std::move(done));
  });
  REQUIRE(looks);
  CHECK(looks->status == ActionStatus::Failed);
  CHECK(looks->reason == "reservation lost: held by node 2");
  auto stopped = disk.act([&](auto done) { disk.driver->stop(std::move(done)); });
  REQUIRE(stopped);
  CHECK(stopped->status == ActionStatus::Ok);
}

}  // namespace clusterd
