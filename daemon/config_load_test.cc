#include "config_load.h"
#include "qdisk_timing.h"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

// Lets failed checks on lists of messages show the messages, one per line.
template <>
struct doctest::StringMaker<std::vector<std::string>> {
  static doctest::String convert(const std::vector<std::string>& lines) {
    return fmt::format("\n  {}\n", fmt::join(lines, "\n  ")).c_str();
  }
};

namespace clusterd {
namespace {

using namespace std::chrono_literals;

ParamSpec param(std::string name, bool required = false,
                ParamValue::Kind kind = ParamValue::Kind::Scalar) {
  ParamSpec spec;
  spec.name = std::move(name);
  spec.required = required;
  spec.kind = kind;
  return spec;
}

// Mirrors the real built-in types: `process` as the agents module describes it, and two OCF
// agents with the parameters and advised timeouts of their meta-data.
class FakeCatalog : public TypeCatalog {
 public:
  Result<TypeInfo> lookup(const std::string& type, const std::string& agent) const override {
    if (type == "process") return process();
    if (type != "ocf") return fail("unknown resource type '{}'", type);
    if (agent == "heartbeat:Dummy") return dummy();
    if (agent == "heartbeat:anything") return anything();
    return fail("OCF agent '{}' not found", agent);
  }
  std::vector<std::string> type_names() const override { return {"process", "ocf"}; }

  static TypeInfo process() {
    TypeInfo info;
    info.name = "process";
    info.params = {param("command", true),
                   param("args", false, ParamValue::Kind::List),
                   param("env", false, ParamValue::Kind::Map),
                   param("cwd"),
                   param("user"),
                   param("group"),
                   param("stop_signal")};
    return info;
  }
  static TypeInfo dummy() {
    TypeInfo info;
    info.name = "ocf:heartbeat:Dummy";
    info.params = {param("state"), param("fake")};
    info.advised_start_timeout = 20s;
    info.advised_stop_timeout = 20s;
    info.advised_monitor_timeout = 20s;
    info.advised_monitor_interval = 10s;
    return info;
  }
  // Distinct advised values, so a test can tell them from the defaults.
  static TypeInfo anything() {
    TypeInfo info;
    info.name = "ocf:heartbeat:anything";
    info.params = {param("binfile", true), param("cmdline_options"), param("pidfile")};
    info.advised_start_timeout = 30s;
    info.advised_stop_timeout = 25s;
    info.advised_monitor_timeout = 15s;
    info.advised_monitor_interval = 7s;
    return info;
  }
};

const FakeCatalog kCatalog;

// Eight lines every error test starts with, so positions below count from line 9.
constexpr std::string_view kHeader = R"(cluster:
  name: lab
  id: 7
networks:
  - {name: pub, subnet: 10.0.0.0/24}
nodes:
  - {name: a, id: 1, addresses: {pub: 10.0.0.1}}
  - {name: b, id: 2, addresses: {pub: 10.0.0.2}}
)";

ConfigPtr parse_ok(std::string_view text) {
  auto result = parse_config(text, "test.yaml", kCatalog);
  if (!result)
    for (const auto& d : result.error()) FAIL_CHECK(d.to_string());
  REQUIRE(result);
  return *result;
}

std::vector<std::string> errors_of(std::string_view text) {
  auto result = parse_config(text, "test.yaml", kCatalog);
  REQUIRE_FALSE(result);
  std::vector<std::string> out;
  for (const auto& d : result.error()) out.push_back(d.to_string());
  return out;
}

// The only error of `text` is exactly `expected` ("test.yaml:L:C: message").
void check_single_error(std::string_view text, const std::string& expected) {
  auto errors = errors_of(text);
  CHECK(errors == std::vector<std::string>{expected});
}

std::string with_header(std::string_view rest) { return std::string(kHeader) + std::string(rest); }

// The source tree: meson compiles with the build directory as working directory, so a relative
// __FILE__ is relative to it, and the build directory is the parent of this test's directory.
std::filesystem::path source_root() {
  std::filesystem::path file(__FILE__);
  if (file.is_absolute()) return file.parent_path().parent_path();
  auto exe = std::filesystem::read_symlink("/proc/self/exe");
  return std::filesystem::weakly_canonical(exe.parent_path().parent_path() / file)
      .parent_path()
      .parent_path();
}

}  // namespace

TEST_CASE("a complete file gives the expected Config") {
  auto config = parse_ok(R"(
cluster: {name: lab, id: 42, authkey: /etc/k, admin_group: wheel}
networks:
  - {name: public, subnet: 192.168.10.0/24, role: all, multicast: 239.1.1.1, port: 6000}
  - {name: private, subnet: "fd00::/64", role: cluster}
nodes:
  - name: n1
    id: 1
    addresses: {public: 192.168.10.1, private: "fd00::1"}
  - name: n2
    id: 2
    votes: 0
    addresses: {public: 192.168.10.2}
heartbeat: {interval: 50ms, misses: 3}
quorum: {mode: node-and-disk-majority, disk: {portal: 10.0.0.9, target: "iqn.2024-01.x:q"}}
groups:
  - name: web
    preferred_owners: [n2, n1]
    possible_owners: [n1, n2]
    autostart: false
    failover: {threshold: 2, period: 1h}
    failback: {mode: window, window: 22-6}
    resources:
      - name: app
        type: process
        depends: [state]
        params:
          command: /bin/sleep
          args: [infinity]
          env: {A: "1", B: two}
        monitor: {looks_alive: 0, is_alive: 2m, timeout: 1.5s}
        timeouts: {start: 3s, stop: 4s}
        restart: {policy: never, threshold: 1, period: 1d, delay: 250ms}
        affects_group: no
      - {name: state, type: ocf, agent: heartbeat:Dummy}
)");
  CHECK(config->source == "test.yaml");
  CHECK(config->cluster.name == "lab");
  CHECK(config->cluster.id == 42);
  CHECK(config->cluster.authkey_path == "/etc/k");
  CHECK(config->cluster.admin_group == "wheel");
  REQUIRE(config->networks.size() == 2);
  CHECK(config->networks[0].multicast_group == "239.1.1.1");
  CHECK(config->networks[0].port == 6000);
  CHECK(config->networks[1].role == NetworkRole::Cluster);
  CHECK(config->networks[1].subnet == "fd00::/64");
  REQUIRE(config->nodes.size() == 2);
  CHECK(config->nodes[0].addresses.at("private") == "fd00::1");
  CHECK(config->nodes[1].votes == 0);
  CHECK(config->nodes[1].pos.line == 10);
  CHECK(config->heartbeat.interval == 50ms);
  CHECK(config->heartbeat.misses == 3);
  CHECK(config->quorum.mode == QuorumMode::NodeAndDiskMajority);
  const GroupConfig* web = config->find_group("web");
  REQUIRE(web != nullptr);
  CHECK(web->preferred_owners == std::vector<std::string>{"n2", "n1"});
  CHECK(web->possible_owners == std::vector<std::string>{"n1", "n2"});
  CHECK_FALSE(web->autostart);
  CHECK(web->failover == FailoverPolicy{2, 1h});
  CHECK(web->failback == FailbackPolicy{FailbackMode::Window, 22, 6});
  const ResourceConfig* app = web->find("app");
  REQUIRE(app != nullptr);
  CHECK(app->depends == std::vector<std::string>{"state"});
  CHECK(app->params.at("command").scalar == "/bin/sleep");
  CHECK(app->params.at("args").kind == ParamValue::Kind::List);
  CHECK(app->params.at("args").list == std::vector<std::string>{"infinity"});
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  CHECK(app->params.at("env").map == Pairs{{"A", "1"}, {"B", "two"}});
  CHECK(app->monitor == MonitorPolicy{0ms, 2min, 1500ms});
  CHECK(app->timeouts == ActionTimeouts{3s, 4s});
  CHECK(app->restart == RestartPolicy{false, 1, 24h, 250ms, false});
  CHECK(app->pos.line == 24);
  CHECK(app->pos.column == 9);
  const ResourceConfig* state = web->find("state");
  REQUIRE(state != nullptr);
  CHECK(state->agent == "heartbeat:Dummy");
}

TEST_CASE("left-out settings take the MSCS defaults") {
  auto config = parse_ok(R"(
cluster: {name: one, id: 1}
nodes: [{name: n1, id: 1}]
groups:
  - name: g
    resources: [{name: p, type: process, params: {command: /bin/true}}]
)");
  CHECK(config->cluster.authkey_path == "/etc/clusterd/authkey");
  CHECK(config->cluster.admin_group.empty());
  CHECK(config->nodes[0].votes == 1);
  CHECK(config->heartbeat.interval == 100ms);
  CHECK(config->heartbeat.misses == 5);
  CHECK(config->quorum.mode == QuorumMode::NodeMajority);
  const GroupConfig& g = config->groups.at(0);
  CHECK(g.autostart);
  CHECK(g.preferred_owners.empty());
  CHECK(g.possible_owners.empty());
  CHECK(g.failover == FailoverPolicy{10, 6h});
  CHECK(g.failback == FailbackPolicy{});
  const ResourceConfig& p = g.resources.at(0);
  CHECK(p.monitor == MonitorPolicy{5s, 60s, 20s});
  CHECK(p.timeouts == ActionTimeouts{20s, 20s});
  CHECK(p.restart == RestartPolicy{true, 3, 15min, 0ms, true});
}

TEST_CASE("timeouts the agent advises apply where the file sets none") {
  auto config = parse_ok(R"(
cluster: {name: one, id: 1}
nodes: [{name: n1, id: 1}]
groups:
  - name: g
    resources:
      - {name: advised, type: ocf, agent: heartbeat:anything, params: {binfile: /bin/true}}
      - name: mixed
        type: ocf
        agent: heartbeat:anything
        params: {binfile: /bin/true}
        monitor: {looks_alive: 3s}
        timeouts: {stop: 1m}
)");
  const GroupConfig& g = config->groups.at(0);
  const ResourceConfig* advised = g.find("advised");
  REQUIRE(advised != nullptr);
  CHECK(advised->timeouts == ActionTimeouts{30s, 25s});
  CHECK(advised->monitor == MonitorPolicy{7s, 60s, 15s});
  const ResourceConfig* mixed = g.find("mixed");
  REQUIRE(mixed != nullptr);
  CHECK(mixed->timeouts == ActionTimeouts{30s, 1min});
  CHECK(mixed->monitor == MonitorPolicy{3s, 60s, 15s});
}

TEST_CASE("failback windows") {
  auto window = [](std::string_view failback) {
    auto config = parse_ok(fmt::format(R"(
cluster: {{name: one, id: 1}}
nodes: [{{name: n1, id: 1}}]
groups: [{{name: g, failback: {}}}]
)",
                                       failback));
    return config->groups.at(0).failback;
  };
  CHECK(window("{mode: window, window: 22-6}") == FailbackPolicy{FailbackMode::Window, 22, 6});
  CHECK(window("{mode: window, start: 1, end: 5}") == FailbackPolicy{FailbackMode::Window, 1, 5});
  CHECK(window("{mode: immediate}") == FailbackPolicy{FailbackMode::Immediate, 0, 0});
}

TEST_CASE("YAML syntax errors point at yaml-cpp's mark") {
  check_single_error("cluster:\n  name: [lab\n  id: 7\n",
                     "test.yaml:3:5: YAML syntax error: end of sequence flow not found");
  check_single_error("cluster:\n  name: lab\n id: 7\n",
                     "test.yaml:3:2: YAML syntax error: end of map not found");
}

TEST_CASE("unknown keys, with the closest known key") {
  check_single_error(with_header("groups:\n  - name: web\n    prefered_owners: [a]\n"),
                     "test.yaml:11:5: group 'web': unknown key 'prefered_owners'; did you mean "
                     "'preferred_owners'?");
  check_single_error(with_header("groups:\n  - name: web\n    failover: {treshold: 3}\n"),
                     "test.yaml:11:16: group 'web': unknown key 'failover.treshold'; did you "
                     "mean 'failover.threshold'?");
  check_single_error(with_header("colour: blue\n"), "test.yaml:9:1: unknown key 'colour'");
}

TEST_CASE("values of the wrong type") {
  std::string group =
      "groups:\n  - name: web\n    resources:\n      - name: app\n"
      "        type: process\n        params: {command: /bin/true}\n";
  check_single_error(with_header(group + "        monitor: {timeout: fast}\n"),
                     "test.yaml:15:28: group 'web', resource 'app': monitor.timeout: expected a "
                     "duration like 5s or 100ms, got 'fast'");
  check_single_error(with_header(group + "        affects_group: maybe\n"),
                     "test.yaml:15:24: group 'web', resource 'app': affects_group: expected true "
                     "or false, got 'maybe'");
  check_single_error(with_header(group + "        depends: state\n"),
                     "test.yaml:15:18: group 'web', resource 'app': depends: expected a list, "
                     "got 'state'");
  check_single_error(with_header(group + "        restart: {policy: sometimes}\n"),
                     "test.yaml:15:27: group 'web', resource 'app': restart.policy: expected one "
                     "of restart, never, got 'sometimes'");
  check_single_error(with_header("quorum: {mode: node-majorty}\n"),
                     "test.yaml:9:16: quorum.mode: expected one of node-majority, "
                     "node-and-disk-majority, disk-only, got 'node-majorty'; did you mean "
                     "'node-majority'?");
  check_single_error(with_header("heartbeat: {misses: many}\n"),
                     "test.yaml:9:21: heartbeat.misses: expected a whole number, got 'many'");
  check_single_error(with_header("groups: {name: web}\n"),
                     "test.yaml:9:9: groups: expected a list, got a mapping");
}

TEST_CASE("numbers out of range") {
  check_single_error("cluster: {name: x, id: 0}\nnodes: [{name: a, id: 1}]\n",
                     "test.yaml:1:24: cluster.id: must be between 1 and 16777215, got 0");
  check_single_error("cluster: {name: x, id: 1}\nnodes: [{name: a, id: 300}]\n",
                     "test.yaml:2:23: node 'a': id: must be between 1 and 255, got 300");
  check_single_error("cluster: {name: x, id: 1}\nnodes: [{name: a, id: -1}]\n",
                     "test.yaml:2:23: node 'a': id: must be between 1 and 255, got -1");
  check_single_error("cluster: {name: x, id: 1}\nnodes: [{name: a, id: 1, votes: 2}]\n",
                     "test.yaml:2:33: node 'a': votes: must be between 0 and 1, got 2");
  check_single_error(with_header("heartbeat: {interval: 1ms}\n"),
                     "test.yaml:9:23: heartbeat.interval: must be between 5ms and 10s, got 1ms");
  check_single_error(
      "cluster: {name: x, id: 1}\nnetworks: [{name: n, subnet: 10.0.0.0/8, port: 70000}]\n"
      "nodes: [{name: a, id: 1}]\n",
      "test.yaml:2:48: network 'n': port: must be between 1 and 65535, got 70000");
}

TEST_CASE("missing required keys") {
  check_single_error("cluster: {id: 1}\nnodes: [{name: a, id: 1}]\n",
                     "test.yaml:1:10: missing required key 'cluster.name'");
  check_single_error("cluster:\n  name: x\nnodes: [{name: a, id: 1}]\n",
                     "test.yaml:2:3: missing required key 'cluster.id'");
  check_single_error("cluster: {name: x, id: 1}\n", "test.yaml:1:1: missing required key 'nodes'");
  check_single_error("cluster: {name: x, id: 1}\nnodes: []\n",
                     "test.yaml:2:8: nodes: at least one node is required");
  check_single_error("cluster: {name: x, id: 1}\nnodes:\n",
                     "test.yaml:2:1: nodes: at least one node is required");
  check_single_error(
      with_header("groups:\n  - resources: [{name: r, type: process, params: {command: /x}}]\n"),
      "test.yaml:10:5: group #1: missing required key 'name'");
  auto errors = errors_of(with_header("groups:\n  - name: g\n    resources: [{name: r}, {}, ~]\n"));
  CHECK(errors == std::vector<std::string>{
                      "test.yaml:11:17: group 'g', resource 'r': missing required key 'type'",
                      "test.yaml:11:28: group 'g', resource #2: missing required key 'name'",
                      "test.yaml:11:28: group 'g', resource #2: missing required key 'type'",
                      "test.yaml:11:32: group 'g', resource #3: expected a mapping of keys to "
                      "values, got nothing"});
}

TEST_CASE("names given twice") {
  auto errors = errors_of(R"(cluster: {name: x, id: 1}
networks: [{name: n, subnet: 10.0.0.0/8}]
nodes:
  - {name: a, id: 1, addresses: {n: 10.0.0.1}}
  - {name: a, id: 2}
  - {name: c, id: 1, addresses: {n: 10.0.0.3}}
groups:
  - name: g
    resources:
      - {name: r, type: process, params: {command: /bin/true}}
      - {name: r, type: process, params: {command: /bin/true}}
  - name: g
)");
  CHECK(errors == std::vector<std::string>{
                      "test.yaml:5:12: node 'a': name: duplicate node name 'a' (first defined at "
                      "line 4)",
                      "test.yaml:6:19: node 'c': id: id 1 is already used by node 'a'",
                      "test.yaml:11:16: group 'g', resource 'r': name: duplicate resource name "
                      "'r' in this group",
                      "test.yaml:12:11: group 'g': name: duplicate group name 'g' (first defined "
                      "at line 8)"});
}

TEST_CASE("duplicate keys in one mapping") {
  check_single_error("cluster:\n  name: x\n  id: 1\n  name: y\nnodes: [{name: a, id: 1}]\n",
                     "test.yaml:4:3: duplicate key 'cluster.name' (first given at line 2)");
  check_single_error(
      "cluster: {name: x, id: 1}\nnodes: [{name: a, id: 1}]\n"
      "groups: [{name: g, resources: [{name: r, type: process, "
      "params: {command: /bin/a, command: /bin/b}}]}]\n",
      "test.yaml:3:83: group 'g', resource 'r': params: duplicate parameter 'command'");
}

TEST_CASE("resource types, agents and parameters are checked against the catalog") {
  std::string group = "groups:\n  - name: web\n    resources:\n      - name: app\n";
  check_single_error(with_header(group + "        type: proces\n"),
                     "test.yaml:13:15: group 'web', resource 'app': type: unknown resource type "
                     "'proces'; did you mean 'process'?");
  check_single_error(with_header(group + "        type: ocf\n        agent: heartbeat:Dumy\n"),
                     "test.yaml:14:16: group 'web', resource 'app': OCF agent 'heartbeat:Dumy' "
                     "not found");
  check_single_error(with_header(group + "        type: ocf\n"),
                     "test.yaml:12:9: group 'web', resource 'app': missing required key 'agent' "
                     "(type 'ocf' needs an agent like heartbeat:Dummy)");
  check_single_error(with_header(group + "        type: ocf\n        agent: Dummy\n"),
                     "test.yaml:14:16: group 'web', resource 'app': agent: expected an OCF agent "
                     "as provider:type (like heartbeat:Dummy) or an absolute path, got 'Dummy'");
  check_single_error(
      with_header(group + "        type: process\n        agent: heartbeat:Dummy\n"
                          "        params: {command: /bin/true}\n"),
      "test.yaml:14:16: group 'web', resource 'app': agent: only type 'ocf' takes an agent, this "
      "resource is of type 'process'");
  check_single_error(with_header(group + "        type: process\n        params: {args: [x]}\n"),
                     "test.yaml:14:9: group 'web', resource 'app': missing required parameter "
                     "'command' for type 'process'");
  check_single_error(
      with_header(group + "        type: process\n        params:\n          command: /bin/x\n"
                          "          comand: /bin/y\n"),
      "test.yaml:16:11: group 'web', resource 'app': unknown parameter 'comand' for type "
      "'process'; did you mean 'command'?");
  check_single_error(
      with_header(group + "        type: ocf\n        agent: heartbeat:anything\n"
                          "        params: {binfile: /bin/true, pidfil: /run/x}\n"),
      "test.yaml:15:38: group 'web', resource 'app': unknown parameter 'pidfil' for agent "
      "'heartbeat:anything'; did you mean 'pidfile'?");
  check_single_error(
      with_header(group + "        type: process\n        params: {command: /bin/x, args: -v}\n"),
      "test.yaml:14:35: group 'web', resource 'app': params.args: expected a list, got a single "
      "value");
}

TEST_CASE("dependencies stay inside one group and have no cycles") {
  auto errors = errors_of(with_header(R"(groups:
  - name: web
    resources:
      - {name: a, type: process, params: {command: /x}, depends: [b]}
      - {name: b, type: process, params: {command: /x}, depends: [a]}
      - {name: c, type: process, params: {command: /x}, depends: [c, db, stat]}
      - {name: state, type: process, params: {command: /x}}
  - name: data
    resources:
      - {name: db, type: process, params: {command: /x}}
)"));
  CHECK(errors == std::vector<std::string>{
                      "test.yaml:12:67: group 'web': dependency cycle: a -> b -> a",
                      "test.yaml:14:67: group 'web': dependency cycle: c -> c",
                      "test.yaml:14:70: group 'web', resource 'c': depends on 'db', which belongs "
                      "to group 'data'; dependencies must stay inside one group",
                      "test.yaml:14:74: group 'web', resource 'c': depends on unknown resource "
                      "'stat'; did you mean 'state'?"});
}

TEST_CASE("owners must be nodes") {
  auto errors = errors_of(with_header(R"(groups:
  - name: web
    preferred_owners: [a, bb, c]
    possible_owners: [a, bb]
)"));
  CHECK(errors == std::vector<std::string>{
                      "test.yaml:11:27: group 'web': preferred_owners: 'bb' is not a node; did "
                      "you mean 'b'?",
                      "test.yaml:11:31: group 'web': preferred_owners: 'c' is not a node",
                      "test.yaml:11:31: group 'web': preferred owner 'c' is not among the "
                      "possible owners",
                      "test.yaml:12:26: group 'web': possible_owners: 'bb' is not a node; did "
                      "you mean 'b'?"});
}

TEST_CASE("networks and addresses") {
  auto errors = errors_of(R"(cluster: {name: x, id: 1}
networks:
  - {name: pub, subnet: 10.0.0.1/24, multicast: 10.0.0.9}
  - {name: priv, subnet: 10.1.0.0/16, role: client, multicast: "ff02::1"}
  - {name: v6, subnet: "fd00::/64", role: cluster}
nodes:
  - {name: a, id: 1, addresses: {priv: 10.1.0.1, v6: "fd00::1"}}
  - {name: b, id: 2, addresses: {priv: 10.2.0.1, v6: "fd00::1", pubb: 1.2.3.4}}
  - {name: c, id: 3, addresses: {v6: nonsense}}
)");
  CHECK(errors == std::vector<std::string>{
                      "test.yaml:3:25: network 'pub': subnet: subnet '10.0.0.1/24' has host bits "
                      "set; did you mean '10.0.0.0/24'?",
                      "test.yaml:3:49: network 'pub': multicast: '10.0.0.9' is not a multicast "
                      "address",
                      "test.yaml:4:64: network 'priv': multicast: 'ff02::1' is not of the same "
                      "address family as subnet '10.1.0.0/16'",
                      "test.yaml:8:40: node 'b': address 10.2.0.1 is not in network 'priv' "
                      "(10.1.0.0/16)",
                      "test.yaml:8:54: node 'b': address fd00::1 on network 'v6' is already used "
                      "by node 'a'",
                      "test.yaml:8:65: node 'b': address on unknown network 'pubb'; did you mean "
                      "'pub'?",
                      "test.yaml:9:38: node 'c': 'nonsense' is not an IPv4 or IPv6 address"});
}

TEST_CASE("every error of a file is reported, in file order") {
  auto errors = errors_of(R"(cluster:
  name: bad name
  id: 1
  colour: red
nodes:
  - {name: a, id: 1}
heartbeat: {interval: soon}
groups:
  - name: g
    failback: {mode: window}
    resources:
      - {name: r, type: process}
)");
  CHECK(errors == std::vector<std::string>{
                      "test.yaml:2:9: cluster.name: 'bad name' is not a valid name: a name may "
                      "contain only letters, digits, '_', '.' and '-'",
                      "test.yaml:4:3: unknown key 'cluster.colour'",
                      "test.yaml:7:23: heartbeat.interval: expected a duration like 5s or 100ms, "
                      "got 'soon'",
                      "test.yaml:10:15: group 'g': failback: mode 'window' needs a window, like "
                      "'window: 22-6'",
                      "test.yaml:12:9: group 'g', resource 'r': missing required parameter "
                      "'command' for type 'process'"});
}

TEST_CASE("failback settings that contradict each other") {
  std::string head = "cluster: {name: x, id: 1}\nnodes: [{name: a, id: 1}]\ngroups:\n  - name: g\n";
  check_single_error(head + "    failback: {window: 22-6}\n",
                     "test.yaml:5:15: group 'g': failback: a window is only used with 'mode: "
                     "window'");
  check_single_error(head + "    failback: {mode: window, window: 22-22}\n",
                     "test.yaml:5:15: group 'g': failback: the window is empty (it starts and "
                     "ends at 22)");
  check_single_error(head + "    failback: {mode: window, window: 25-3}\n",
                     "test.yaml:5:38: group 'g': failback.window: expected hours like 22-6 (from "
                     "22:00 to 06:00), got '25-3'");
  check_single_error(head + "    failback: {mode: window, start: 3}\n",
                     "test.yaml:5:15: group 'g': missing required key 'failback.end'");
  check_single_error(head + "    failback: {mode: window, window: 1-2, start: 3}\n",
                     "test.yaml:5:38: group 'g': failback.window: give either 'window' or 'start' "
                     "and 'end', not both");
}

TEST_CASE("the file must hold one YAML document with a mapping") {
  check_single_error("",
                     "test.yaml:1:1: the file is empty; expected at least the keys 'cluster' "
                     "and 'nodes'");
  check_single_error("# only a comment\n",
                     "test.yaml:1:1: the file is empty; expected at least "
                     "the keys 'cluster' and 'nodes'");
  check_single_error("cluster: {name: x, id: 1}\n---\nnodes: []\n",
                     "test.yaml:2:1: the file holds more than one YAML document (a second "
                     "'---'); expected one");
  // yaml-cpp alone would loop on these, producing empty documents until memory runs out.
  check_single_error(",cluster: {name: x, id: 1}\n",
                     "test.yaml:1:1: YAML syntax error: "
                     "unexpected ','");
  check_single_error("--- a\n--- ,\n",
                     "test.yaml:2:1: the file holds more than one YAML "
                     "document (a second '---'); expected one");
  check_single_error("  ,", "test.yaml:1:3: YAML syntax error: unexpected ','");
  check_single_error("- a\n- b\n",
                     "test.yaml:1:1: expected a mapping of keys to values, got a list");
}

TEST_CASE("load_config reads files and reports unreadable ones") {
  auto missing = load_config("/nonexistent/cluster.yaml", kCatalog);
  REQUIRE_FALSE(missing);
  REQUIRE(missing.error().size() == 1);
  CHECK(missing.error()[0].to_string() ==
        "/nonexistent/cluster.yaml: cannot open the file: No such file or directory");
  auto bad = load_config((source_root() / "tests/fixtures/config/bad-web.yaml").string(), kCatalog);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().size() >= 3);
  CHECK(bad.error()[0].file.ends_with("tests/fixtures/config/bad-web.yaml"));
}

TEST_CASE("the example files under config/ and the good fixtures are valid") {
  auto root = source_root();
  std::vector<std::filesystem::path> files{root / "config/cluster.yaml",
                                           root / "config/single-node.yaml"};
  for (const auto& entry : std::filesystem::directory_iterator(root / "tests/fixtures/config"))
    if (entry.path().filename().string().starts_with("good-")) files.push_back(entry.path());
  CHECK(files.size() >= 3);
  for (const auto& path : files) {
    CAPTURE(path);
    auto config = load_config(path.string(), kCatalog);
    if (!config)
      for (const auto& d : config.error()) FAIL_CHECK(d.to_string());
  }
  auto cluster = load_config((root / "config/cluster.yaml").string(), kCatalog);
  REQUIRE(cluster);
  CHECK((*cluster)->nodes.size() == 3);
  CHECK((*cluster)->networks.size() == 2);
  const GroupConfig* web = (*cluster)->find_group("web");
  REQUIRE(web != nullptr);
  // Written out with their defaults: the same as left out.
  CHECK(web->failover == FailoverPolicy{});
  CHECK(web->failback == FailbackPolicy{});
  CHECK(web->find("server")->restart == RestartPolicy{});
  CHECK(web->find("server")->monitor == MonitorPolicy{});
  CHECK(web->find("state")->monitor.looks_alive == 10s);  // advised by Dummy
}

TEST_CASE("the bad fixtures each report their problems") {
  auto root = source_root();
  for (const auto& entry : std::filesystem::directory_iterator(root / "tests/fixtures/config")) {
    if (!entry.path().filename().string().starts_with("bad-")) continue;
    CAPTURE(entry.path());
    auto config = load_config(entry.path().string(), kCatalog);
    REQUIRE_FALSE(config);
    for (const auto& d : config.error()) {
      CHECK(d.pos.line > 0);
      CHECK(d.pos.column > 0);
    }
  }
}

TEST_CASE("mangled files never throw and never pass with errors") {
  std::ifstream in(source_root() / "config/cluster.yaml");
  std::string original((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE_FALSE(original.empty());
  std::mt19937 random(12345);  // fixed seed: the same mutations on every run
  const std::string alphabet = ":-[]{}#&*!|>'\"%@` \n\tax0";
  for (int round = 0; round < 300; ++round) {
    std::string text = original;
    for (int edits = 1 + round % 5; edits > 0; --edits) {
      std::size_t at = random() % text.size();
      switch (random() % 3) {
        case 0:
          text[at] = alphabet[random() % alphabet.size()];
          break;
        case 1:
          text.erase(at, 1 + random() % 8);
          break;
        default:
          text.insert(at, 1, alphabet[random() % alphabet.size()]);
          break;
      }
    }
    auto result = parse_config(text, "fuzz.yaml", kCatalog);
    if (result) continue;
    CHECK_FALSE(result.error().empty());
    // The loader's last-resort catch would say this: nothing in the walk may throw.
    for (const auto& d : result.error())
      CHECK_MESSAGE(!d.message.starts_with("cannot read the configuration"), d.to_string());
  }
}

TEST_CASE("parse_duration") {
  CHECK(parse_duration("100ms") == Duration(100));
  CHECK(parse_duration("5s") == Duration(5000));
  CHECK(parse_duration("15m") == Duration(15min));
  CHECK(parse_duration("6h") == Duration(6h));
  CHECK(parse_duration("1d") == Duration(24h));
  CHECK(parse_duration("30") == Duration(30s));
  CHECK(parse_duration("0") == Duration(0));
  CHECK(parse_duration("0ms") == Duration(0));
  CHECK(parse_duration("1.5s") == Duration(1500));
  CHECK(parse_duration("0.25m") == Duration(15s));
  CHECK(parse_duration("2.5") == Duration(2500));
  CHECK(parse_duration("1h30m") == Duration(90min));
  CHECK(parse_duration("1m30s500ms") == Duration(90500));
  CHECK_FALSE(parse_duration("1h30"));
  CHECK_FALSE(parse_duration("1h-30m"));
  for (std::string_view bad : {"", "s", "ms", "fast", "-5s", "5 s", " 5s", "5S", "5sec", "1.s",
                               ".5s", "1e3", "5s5", "0x10", "1..5s"}) {
    CAPTURE(bad);
    auto d = parse_duration(bad);
    REQUIRE_FALSE(d);
    CHECK(d.error().message == fmt::format("expected a duration like 5s or 100ms, got '{}'", bad));
  }
  auto fine = parse_duration("1.5ms");
  REQUIRE_FALSE(fine);
  CHECK(fine.error().message == "duration '1.5ms' is finer than a millisecond");
  auto huge = parse_duration("99999999999999999999d");
  REQUIRE_FALSE(huge);
  CHECK(huge.error().message == "duration '99999999999999999999d' is too long");
  CHECK_FALSE(parse_duration("9999999999999d"));
}

TEST_CASE("format_duration picks the largest exact unit and round-trips") {
  CHECK(format_duration(Duration(0)) == "0s");
  CHECK(format_duration(Duration(100)) == "100ms");
  CHECK(format_duration(Duration(1500)) == "1500ms");
  CHECK(format_duration(5s) == "5s");
  CHECK(format_duration(90s) == "90s");
  CHECK(format_duration(15min) == "15m");
  CHECK(format_duration(6h) == "6h");
  CHECK(format_duration(48h) == "2d");
  for (Duration d : {Duration(1), Duration(999), Duration(61000), Duration(3600001)})
    CHECK(parse_duration(format_duration(d)) == d);
}

TEST_CASE("every enum value has a distinct name that the loader reads back") {
  auto check_enum = [](const auto& values, std::size_t count) {
    CHECK(std::size(values) == count);
    std::vector<std::string> names;
    for (auto v : values) {
      std::string name = to_string(v);
      CHECK(name != "?");
      CHECK(std::find(names.begin(), names.end(), name) == names.end());
      names.push_back(name);
    }
  };
  // The counts are the number of enumerators in config.h: update both together.
  check_enum(kFailbackModes, 3);
  check_enum(kNetworkRoles, 3);
  check_enum(kQuorumModes, 3);
  auto config =
      parse_ok("cluster: {name: x, id: 1}\nnodes: [{name: a, id: 1}]\nquorum: {mode: disk-only, "
               "disk: {portal: 10.0.0.9, target: iqn.2024-01.x:q}}\n");
  CHECK(config->quorum.mode == QuorumMode::DiskOnly);
}

TEST_CASE("anchors and aliases share settings; merge keys are unknown keys") {
  auto config = parse_ok(R"(
cluster: {name: x, id: 1}
nodes: [{name: a, id: 1}]
groups:
  - name: g
    resources:
      - {name: p, type: process, params: {command: /x}, monitor: &fast {looks_alive: 1s}}
      - {name: q, type: process, params: {command: /x}, monitor: *fast}
)");
  CHECK(config->groups[0].resources[1].monitor.looks_alive == 1s);
  check_single_error(R"(cluster: &c {name: x, id: 1}
nodes: [{name: a, id: 1}]
quorum: {<<: *c}
)",
                     "test.yaml:3:10: unknown key 'quorum.<<'");
}

// ---- The quorum section (docs/configuration.md, "quorum") ---------------------------------------

namespace {

constexpr const char* kTwoNodes = R"(cluster: {name: x, id: 1}
networks: [{name: pub, subnet: 10.0.0.0/24}]
nodes:
  - {name: a, id: 1, addresses: {pub: 10.0.0.1}}
  - {name: b, id: 2, addresses: {pub: 10.0.0.2}}
)";

std::string two_nodes(std::string_view rest) { return std::string(kTwoNodes) + std::string(rest); }

}  // namespace

TEST_CASE("quorum.disk: the quorum LUN with a portal list, lun, votes and initiator") {
  auto config = parse_ok(two_nodes(R"(quorum:
  mode: node-and-disk-majority
  disk:
    portal: [10.0.0.9:3260, "10.0.1.9, 10.0.2.9"]
    target: iqn.2024-01.org.lab:storage
    lun: 3
    votes: 2
    initiator: iqn.2024-01.org.lab:me
)"));
  REQUIRE(config->quorum.disk);
  const QuorumDiskConfig& d = *config->quorum.disk;
  CHECK(d.portals == std::vector<std::string>{"10.0.0.9:3260", "10.0.1.9", "10.0.2.9"});
  CHECK(d.target == "iqn.2024-01.org.lab:storage");
  CHECK(d.lun == 3);
  CHECK(d.votes == 2);
  CHECK(d.initiator == "iqn.2024-01.org.lab:me");
  CHECK(d.pos.line == 9);
}

TEST_CASE("quorum.disk: defaults (lun 1, one vote, the node's own initiator)") {
  auto config = parse_ok(two_nodes(
      "quorum: {mode: disk-only, disk: {portal: 10.0.0.9, target: iqn.2024-01.x:q}}\n"));
  REQUIRE(config->quorum.disk);
  CHECK(config->quorum.mode == QuorumMode::DiskOnly);
  CHECK(config->quorum.disk->portals == std::vector<std::string>{"10.0.0.9"});
  CHECK(config->quorum.disk->lun == 1);
  CHECK(config->quorum.disk->votes == 1);
  CHECK(config->quorum.disk->initiator.empty());
  CHECK_FALSE(parse_ok(kTwoNodes)->quorum.disk);
}

TEST_CASE("quorum.disk: a disk mode needs the disk, and the disk needs a disk mode") {
  check_single_error(two_nodes("quorum: {mode: node-and-disk-majority}\n"),
                     "test.yaml:6:1: quorum: mode 'node-and-disk-majority' needs quorum.disk "
                     "(the quorum LUN: portal, target, lun)");
  check_single_error(two_nodes("quorum:\n  mode: disk-only\n"),
                     "test.yaml:6:1: quorum: mode 'disk-only' needs quorum.disk (the quorum LUN: "
                     "portal, target, lun)");
  check_single_error(two_nodes("quorum:\n  disk: {portal: 10.0.0.9, target: iqn.2024-01.x:q}\n"),
                     "test.yaml:7:9: quorum.disk: a quorum disk votes only with mode "
                     "node-and-disk-majority or disk-only; set the mode or remove the disk");
}

TEST_CASE("quorum.disk: wrong parameters are reported where they are written") {
  check_single_error(two_nodes(R"(quorum:
  mode: disk-only
  disk:
    portal: 10.0.0.9
    target: not-an-iqn
)"),
                     "test.yaml:10:13: quorum.disk: target: 'not-an-iqn' is not an iSCSI name "
                     "(iqn.YYYY-MM.domain:...)");
  check_single_error(two_nodes(R"(quorum:
  mode: disk-only
  disk: {portal: 10.0.0.9, target: iqn.2024-01.x:q, lun: many}
)"),
                     "test.yaml:8:58: quorum.disk: lun: 'many' is not a whole number from 0 to "
                     "16383");
  check_single_error(two_nodes(R"(quorum:
  mode: disk-only
  disk: {target: iqn.2024-01.x:q}
)"),
                     "test.yaml:8:9: quorum.disk: portal is required");
  auto errors = errors_of(two_nodes(R"(quorum:
  mode: disk-only
  disk: {portal: 10.0.0.9, target: iqn.2024-01.x:q, votes: 0, mount_point: /x}
)"));
  INFO(errors);
  REQUIRE(errors.size() == 2);
  CHECK(errors[0] == "test.yaml:8:60: quorum.disk.votes: must be between 1 and 255, got 0");
  CHECK(errors[1].starts_with("test.yaml:8:63: unknown key 'quorum.disk.mount_point'"));
}

TEST_CASE("quorum.disk: the disk's timing must fit the heartbeat settings") {
  // D = 2 x 10 ms: P + 2T = 8 ms against D - S - M = 20 - 6 - 5 = 9 ms still fits.
  CHECK(parse_ok(two_nodes("heartbeat: {interval: 10ms, misses: 2}\nquorum: {mode: disk-only, "
                           "disk: {portal: 10.0.0.9, target: iqn.2024-01.x:q}}\n"))
            ->quorum.disk);
  Config config;
  config.heartbeat = {Duration(100), 5};
  DiskTiming t = disk_timing(config);
  CHECK(t.period == Duration(100));
  CHECK(t.command_timeout == Duration(50));
  CHECK(t.challenge_wait == Duration(730));
  CHECK(check_disk_timing(config));
}

}  // namespace clusterd
