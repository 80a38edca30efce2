#include "placement_scenario.h"

#include "config_load.h"

#include <fmt/core.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <initializer_list>
#include <memory>
#include <optional>
#include <sstream>

namespace clusterd {
namespace {

// yaml-cpp reports errors by exception; inside this reader a bad file throws Bad, which
// parse_placement_scenario turns into an Error at the boundary.
struct Bad {
  int line = 0;
  std::string message;
};

[[noreturn]] void bad(const YAML::Node& node, std::string message) {
  throw Bad{node.Mark().line + 1, std::move(message)};
}

void check_keys(const YAML::Node& map, std::initializer_list<std::string_view> allowed,
                const char* what) {
  if (!map.IsMap()) bad(map, fmt::format("{} must be a mapping", what));
  for (const auto& item : map) {
    auto key = item.first.as<std::string>();
    bool ok = false;
    for (auto a : allowed) ok = ok || key == a;
    if (!ok) bad(item.first, fmt::format("unknown key '{}' in {}", key, what));
  }
}

std::string scalar(const YAML::Node& node, const char* what) {
  if (!node.IsScalar()) bad(node, fmt::format("{} must be a single value", what));
  return node.as<std::string>();
}

std::vector<std::string> strings(const YAML::Node& node, const char* what) {
  std::vector<std::string> out;
  if (!node) return out;
  if (!node.IsSequence()) bad(node, fmt::format("{} must be a list", what));
  for (const auto& item : node) out.push_back(scalar(item, what));
  return out;
}

// Every enum here has a complete to_string table (tested), so its names are what we accept.
template <typename Enum>
Enum enum_value(const YAML::Node& node, int count, const char* what) {
  std::string text = scalar(node, what);
  std::string names;
  for (int i = 0; i < count; ++i) {
    auto value = static_cast<Enum>(i);
    if (text == to_string(value)) return value;
    names += fmt::format("{}{}", i ? ", " : "", to_string(value));
  }
  bad(node, fmt::format("{} '{}' is not one of: {}", what, text, names));
}

// A duration as the configuration file writes it ("6h", "250ms", "5h30m"); times are durations
// since boot.
Duration duration(const YAML::Node& node, const char* what) {
  std::string text = scalar(node, what);
  auto parsed = parse_duration(text);
  if (!parsed) bad(node, fmt::format("{}: {}", what, parsed.error().message));
  return *parsed;
}

MonoTime time_at(const YAML::Node& node, const char* what) {
  return MonoTime{} + duration(node, what);
}

int integer(const YAML::Node& node, int lo, int hi, const char* what) {
  std::string text = scalar(node, what);
  if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos)
    bad(node, fmt::format("{} '{}' must be a whole number", what, text));
  int v = std::stoi(text);
  if (v < lo || v > hi) bad(node, fmt::format("{} {} is not within {}..{}", what, v, lo, hi));
  return v;
}

bool boolean(const YAML::Node& node, const char* what) {
  std::string text = scalar(node, what);
  if (text == "true") return true;
  if (text == "false") return false;
  bad(node, fmt::format("{} must be true or false", what));
}

// "22-6": the same form as cluster.yaml's failback window.
void read_window(const YAML::Node& node, FailbackPolicy& policy) {
  std::string text = scalar(node, "failback window");
  auto dash = text.find('-');
  if (dash == std::string::npos) bad(node, "failback window must look like 22-6");
  policy.window_start_hour = integer(YAML::Node(text.substr(0, dash)), 0, 23, "window start");
  policy.window_end_hour = integer(YAML::Node(text.substr(dash + 1)), 0, 23, "window end");
}

GroupConfig read_group(const YAML::Node& node) {
  check_keys(node,
             {"name", "preferred_owners", "possible_owners", "autostart", "failover", "failback"},
             "a group");
  GroupConfig g;
  if (!node["name"]) bad(node, "a group needs a name");
  g.name = scalar(node["name"], "group name");
  g.preferred_owners = strings(node["preferred_owners"], "preferred_owners");
  g.possible_owners = strings(node["possible_owners"], "possible_owners");
  if (node["autostart"]) g.autostart = boolean(node["autostart"], "autostart");
  if (auto f = node["failover"]) {
    check_keys(f, {"threshold", "period"}, "failover");
    if (f["threshold"]) g.failover.threshold = integer(f["threshold"], 0, 1000, "threshold");
    if (f["period"]) g.failover.period = duration(f["period"], "failover period");
  }
  if (auto f = node["failback"]) {
    check_keys(f, {"mode", "window"}, "failback");
    if (f["mode"]) g.failback.mode = enum_value<FailbackMode>(f["mode"], 3, "failback mode");
    if (f["window"]) read_window(f["window"], g.failback);
  }
  return g;
}

ConfigPtr read_config(const YAML::Node& node) {
  check_keys(node, {"nodes", "groups"}, "config");
  auto config = std::make_shared<Config>();
  std::uint32_t id = 0;
  for (const auto& name : strings(node["nodes"], "nodes"))
    config->nodes.push_back(NodeConfig{name, ++id, 1, {}, {}});
  if (auto groups = node["groups"]) {
    if (!groups.IsSequence()) bad(groups, "groups must be a list");
    for (const auto& g : groups) config->groups.push_back(read_group(g));
  }
  return config;
}

// Nodes the scenario does not mention are up: scenarios list only what is unusual.
ClusterView read_view(const YAML::Node& node, const Config& config) {
  ClusterView view;
  for (const auto& n : config.nodes) view.nodes[n.name] = NodeState::Up;
  if (!node) return view;
  check_keys(node, {"nodes", "maintenance", "quorate"}, "view");
  if (node["maintenance"]) view.maintenance = boolean(node["maintenance"], "maintenance");
  if (node["quorate"]) view.quorate = boolean(node["quorate"], "quorate");
  return view;
}

void read_node_states(const YAML::Node& nodes, ClusterView& view) {
  if (!nodes) return;
  if (!nodes.IsMap()) bad(nodes, "view nodes must map node names to states");
  for (const auto& item : nodes)
    view.nodes[scalar(item.first, "node name")] =
        enum_value<NodeState>(item.second, kNodeStateCount, "node state");
}

PlacementRecord read_record(const YAML::Node& node) {
  check_keys(node, {"phase", "node", "target", "cause", "intent", "since"}, "a record");
  PlacementRecord r;
  if (node["phase"]) r.phase = enum_value<GroupPhase>(node["phase"], kGroupPhaseCount, "phase");
  if (node["node"]) r.node = scalar(node["node"], "record node");
  if (node["target"]) r.target = scalar(node["target"], "record target");
  if (node["cause"])
    r.cause = enum_value<PlacementCause>(node["cause"], kPlacementCauseCount, "cause");
  if (node["intent"])
    r.intent = enum_value<GroupIntent>(node["intent"], kGroupIntentCount, "intent");
  if (node["since"]) r.since = time_at(node["since"], "since");
  return r;
}

// "move web node2", "move web", "online web", "offline web".
PlacementRequest read_request(const YAML::Node& node) {
  std::istringstream words(scalar(node, "a request"));
  std::string kind;
  PlacementRequest r;
  words >> kind >> r.group >> r.node;
  r.kind = enum_value<RequestKind>(YAML::Node(kind), kRequestKindCount, "request kind");
  if (r.group.empty()) bad(node, "a request names a group: 'move web node2'");
  if (!r.node.empty() && r.kind != RequestKind::Move) bad(node, "only a move names a node");
  return r;
}

PlacementState read_state(const YAML::Node& doc) {
  PlacementState state;
  if (auto records = doc["records"]) {
    if (!records.IsMap()) bad(records, "records must map group names to records");
    for (const auto& item : records)
      state.records[scalar(item.first, "group name")] = read_record(item.second);
  }
  if (auto failovers = doc["failovers"]) {
    if (!failovers.IsMap()) bad(failovers, "failovers must map group names to lists of times");
    for (const auto& item : failovers) {
      auto& times = state.failovers[scalar(item.first, "group name")];
      if (!item.second.IsSequence()) bad(item.second, "failover times must be a list");
      for (const auto& t : item.second) times.push_back(time_at(t, "failover time"));
    }
  }
  return state;
}

PlacementScenario read_scenario(const YAML::Node& doc) {
  check_keys(doc,
             {"description", "config", "view", "safe", "records", "failovers", "requests", "now",
              "hour", "expect"},
             "a scenario");
  PlacementScenario s;
  if (doc["description"]) s.description = scalar(doc["description"], "description");
  if (!doc["config"]) bad(doc, "a scenario needs a config");
  PlacementInput& in = s.input;
  in.config = read_config(doc["config"]);
  in.view = read_view(doc["view"], *in.config);
  if (doc["view"]) read_node_states(doc["view"]["nodes"], in.view);
  for (const auto& n : strings(doc["safe"], "safe")) in.safe_nodes.insert(n);
  in.state = read_state(doc);
  if (auto requests = doc["requests"]) {
    if (!requests.IsSequence()) bad(requests, "requests must be a list");
    for (const auto& r : requests) in.requests.push_back(read_request(r));
  }
  if (doc["now"]) in.now = time_at(doc["now"], "now");
  if (doc["hour"]) in.hour = integer(doc["hour"], 0, 23, "hour");
  if (!doc["expect"]) bad(doc, "a scenario needs 'expect' (use [] for no actions)");
  s.expected = strings(doc["expect"], "expect");
  return s;
}

}  // namespace

Result<PlacementScenario> parse_placement_scenario(std::string_view text, const std::string& file) {
  try {
    PlacementScenario s = read_scenario(YAML::Load(std::string(text)));
    s.file = file;
    return s;
  } catch (const Bad& e) {
    return fail("{}:{}: {}", file, e.line, e.message);
  } catch (const YAML::Exception& e) {
    return fail("{}:{}: {}", file, e.mark.line + 1, e.msg);
  }
}

Result<PlacementScenario> load_placement_scenario(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail_errno(errno, "cannot read scenario {}", path);
  std::stringstream text;
  text << in.rdbuf();
  return parse_placement_scenario(text.str(), path);
}

std::vector<std::string> run_placement_scenario(const PlacementScenario& scenario) {
  std::vector<std::string> lines;
  for (const auto& a : decide(scenario.input)) lines.push_back(format_action(a, scenario.input));
  return lines;
}

std::string diff_lines(const std::vector<std::string>& expected,
                       const std::vector<std::string>& actual) {
  std::size_t n = expected.size(), m = actual.size();
  // lcs[i][j]: longest common subsequence of expected[i..] and actual[j..].
  std::vector<std::vector<std::size_t>> lcs(n + 1, std::vector<std::size_t>(m + 1, 0));
  for (std::size_t i = n; i-- > 0;)
    for (std::size_t j = m; j-- > 0;)
      lcs[i][j] =
          expected[i] == actual[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
  std::string out;
  std::size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && expected[i] == actual[j]) {
      out += "  " + expected[i++] + "\n";
      ++j;
    } else if (j < m && (i == n || lcs[i][j + 1] > lcs[i + 1][j])) {
      out += "+ " + actual[j++] + "\n";
    } else {
      out += "- " + expected[i++] + "\n";
    }
  }
  return out;
}

}  // namespace clusterd
