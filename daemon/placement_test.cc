#include "placement.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>

#include "placement_check.h"

namespace clusterd {
namespace {

using namespace std::chrono_literals;

template <typename Enum>
void check_names(int count) {
  std::set<std::string> names;
  for (int i = 0; i < count; ++i) {
    std::string name = to_string(static_cast<Enum>(i));
    CHECK(name != "?");
    names.insert(name);
  }
  CHECK(names.size() == static_cast<std::size_t>(count));
  CHECK(std::string(to_string(static_cast<Enum>(count))) == "?");
}

ConfigPtr two_node_config(FailbackMode failback = FailbackMode::Never) {
  auto c = std::make_shared<Config>();
  c->nodes = {NodeConfig{"a", 1, 1, {}, {}}, NodeConfig{"b", 2, 1, {}, {}}};
  GroupConfig g;
  g.name = "web";
  g.preferred_owners = {"a", "b"};
  g.failback.mode = failback;
  c->groups.push_back(g);
  return c;
}

std::string lines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += item + "\n";
  return out;
}

PlacementRecord online_on(const std::string& node) {
  PlacementRecord r;
  r.phase = GroupPhase::Online;
  r.node = node;
  return r;
}

PlacementInput input_for(ConfigPtr config) {
  PlacementInput in;
  in.config = std::move(config);
  for (const auto& n : in.config->nodes) in.view.nodes[n.name] = NodeState::Up;
  in.now = MonoTime{} + 10h;
  return in;
}

}  // namespace

TEST_CASE("placement enums have complete, distinct names") {
  check_names<NodeState>(kNodeStateCount);
  check_names<GroupPhase>(kGroupPhaseCount);
  check_names<GroupIntent>(kGroupIntentCount);
  check_names<PlacementCause>(kPlacementCauseCount);
  check_names<RequestKind>(kRequestKindCount);
  check_names<ActionKind>(kActionKindCount);
}

TEST_CASE("owner_order: preferred owners first, then possible owners in config order") {
  Config c;
  for (auto name : {"n1", "n2", "n3", "n4"}) c.nodes.push_back(NodeConfig{name, 0, 1, {}, {}});
  GroupConfig g;
  g.preferred_owners = {"n3", "ghost", "n1"};
  CHECK(owner_order(c, g) == std::vector<std::string>{"n3", "n1", "n2", "n4"});
  g.possible_owners = {"n4", "n1", "n3"};
  CHECK(owner_order(c, g) == std::vector<std::string>{"n3", "n1", "n4"});
}

TEST_CASE("failback windows, plain and across midnight") {
  FailbackPolicy day{FailbackMode::Window, 8, 17};
  CHECK_FALSE(in_failback_window(day, 7));
  CHECK(in_failback_window(day, 8));
  CHECK(in_failback_window(day, 16));
  CHECK_FALSE(in_failback_window(day, 17));
  FailbackPolicy night{FailbackMode::Window, 22, 6};
  for (int h : {22, 23, 0, 5}) CHECK(in_failback_window(night, h));
  for (int h : {6, 12, 21}) CHECK_FALSE(in_failback_window(night, h));
  FailbackPolicy empty{FailbackMode::Window, 4, 4};
  for (int h = 0; h < 24; ++h) CHECK_FALSE(in_failback_window(empty, h));
}

TEST_CASE("a move is a stop with a target; the start follows the offline report") {
  PlacementInput in = input_for(two_node_config());
  in.state.records["web"] = online_on("a");
  in.requests.push_back({RequestKind::Move, "web", "b"});
  auto first = decide(in);
  REQUIRE(first.size() == 1);
  CHECK(first[0].kind == ActionKind::Stop);
  CHECK(first[0].target == "b");
  CHECK(first[0].request == 0);
  CHECK(first[0].reason == "The administrator moves group web from a to b.");
  apply_actions(first, in.now, in.state);
  in.requests.clear();
  CHECK(decide(in).empty());  // Still stopping on a: nothing starts on b yet.

  CHECK_FALSE(apply_report("web", "b", GroupPhase::Offline, in.now, in.state));  // Not the owner.
  CHECK(apply_report("web", "a", GroupPhase::Offline, in.now, in.state));
  auto second = decide(in);
  REQUIRE(second.size() == 1);
  CHECK(format_action(second[0], in) == "start web on b (move-request)");
  apply_actions(second, in.now, in.state);
  CHECK(apply_report("web", "b", GroupPhase::Online, in.now, in.state));
  // Moved by the administrator: no failback to a, even with immediate failback.
  PlacementInput later = input_for(two_node_config(FailbackMode::Immediate));
  later.state = in.state;
  CHECK(decide(later).empty());
}

TEST_CASE("a node loss waits for safety, then counts as a failover") {
  PlacementInput in = input_for(two_node_config());
  in.state.records["web"] = online_on("a");
  in.view.nodes["a"] = NodeState::Down;
  auto waiting = decide(in);
  REQUIRE(waiting.size() == 1);
  CHECK(waiting[0].kind == ActionKind::Wait);
  in.safe_nodes.insert("a");
  auto actions = decide(in);
  apply_actions(actions, in.now, in.state);
  CHECK(in.state.failovers["web"] == std::vector<MonoTime>{in.now});
  CHECK(in.state.records["web"].phase == GroupPhase::Starting);
  CHECK(in.state.records["web"].node == "b");
}

TEST_CASE("reasons are sentences an administrator can read") {
  auto config = std::make_shared<Config>(*two_node_config());
  config->groups[0].failover.threshold = 1;
  config->groups[0].failover.period = 90min;
  PlacementInput in = input_for(config);
  in.state.records["web"].phase = GroupPhase::Failed;
  in.state.records["web"].node = "a";
  in.state.failovers["web"] = {in.now};
  auto actions = decide(in);
  REQUIRE(actions.size() == 1);
  CHECK(actions[0].reason ==
        "Group web stays failed after this failure: its failovers within the last 90 min (1) "
        "reached the threshold (1).");
  in.state.records["web"] = online_on("a");
  in.view.nodes["a"] = NodeState::Down;
  CHECK(decide(in)[0].reason ==
        "Node a owned group web and is lost, but is not yet confirmed safe (fenced or past its "
        "self-stop deadline).");
}

TEST_CASE("placement_violations catches each broken rule") {
  PlacementInput in = input_for(two_node_config());
  in.view.nodes["b"] = NodeState::Paused;
  in.state.records["web"] = online_on("a");
  auto action = [](ActionKind kind, std::string node) {
    PlacementAction a;
    a.kind = kind;
    a.group = "web";
    a.node = std::move(node);
    a.reason = "A reason of one sentence.";
    return a;
  };
  auto violations = [&](std::vector<PlacementAction> actions) {
    return placement_violations(in, actions).size();
  };
  CHECK(violations({action(ActionKind::Start, "b")}) == 1);        // Runs on a.
  CHECK(violations({action(ActionKind::Stop, "b")}) == 1);         // Not running on b.
  CHECK(violations({action(ActionKind::MarkOffline, "a")}) == 1);  // a is a member.
  in.view.nodes["a"] = NodeState::Down;
  CHECK(violations({action(ActionKind::MarkOffline, "a")}) == 1);  // a is not confirmed safe.
  in.safe_nodes.insert("a");
  in.view.nodes["b"] = NodeState::Up;
  CHECK(violations({action(ActionKind::MarkOffline, "a"), action(ActionKind::Start, "b")}) == 0);
  CHECK(violations({action(ActionKind::MarkOffline, "a"), action(ActionKind::Start, "b"),
                    action(ActionKind::Start, "b")}) == 2);  // Two starts; the second overlaps.
  in.state.records["web"] = PlacementRecord{};
  in.view.nodes["b"] = NodeState::Paused;
  CHECK(violations({action(ActionKind::Start, "b")}) == 1);  // b takes nothing new.
  in.view.nodes["a"] = NodeState::Up;
  CHECK(violations({action(ActionKind::Start, "a"), action(ActionKind::Stop, "a")}) == 1);
  auto no_reason = action(ActionKind::Start, "a");
  no_reason.reason = "";
  CHECK(violations({no_reason}) == 1);
}

TEST_CASE("placement property: random inputs never break the safety rules, and settle") {
  const std::vector<std::string> names = {"n1", "n2", "n3", "n4"};
  const NodeState states[] = {NodeState::Up,     NodeState::Up,     NodeState::Up,
                              NodeState::Down,   NodeState::Paused, NodeState::Draining,
                              NodeState::Joining};
  int unsettled = 0;
  std::set<ActionKind> kinds_seen;
  for (unsigned seed = 1; seed <= 3000; ++seed) {
    std::mt19937 rng(seed);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    auto chance = [&](int percent) { return pick(100) < percent; };
    auto config = std::make_shared<Config>();
    int node_count = 1 + pick(4);
    for (int i = 0; i < node_count; ++i)
      config->nodes.push_back(NodeConfig{
          names[static_cast<std::size_t>(i)], static_cast<std::uint32_t>(i + 1), 1, {}, {}});
    auto some_nodes = [&](int percent) {
      std::vector<std::string> out;
      for (const auto& n : names)
        if (chance(percent)) out.push_back(n);  // n4 may be missing from the config: allowed.
      std::shuffle(out.begin(), out.end(), rng);
      return out;
    };
    int group_count = 1 + pick(4);
    for (int i = 0; i < group_count; ++i) {
      GroupConfig g;
      g.name = "g" + std::to_string(i);
      g.preferred_owners = some_nodes(50);
      if (chance(30)) g.possible_owners = some_nodes(60);
      g.autostart = chance(70);
      g.failover.threshold = static_cast<std::uint32_t>(pick(4));
      g.failover.period = std::chrono::hours(1 + pick(3));
      g.failback.mode = static_cast<FailbackMode>(pick(3));
      g.failback.window_start_hour = pick(24);
      g.failback.window_end_hour = pick(24);
      config->groups.push_back(g);
    }
    PlacementInput in;
    in.config = config;
    for (const auto& n : names)
      if (chance(90)) in.view.nodes[n] = states[pick(7)];
    in.view.maintenance = chance(10);
    in.view.quorate = !chance(5);
    for (const auto& n : names)
      if (chance(50)) in.safe_nodes.insert(n);
    in.now = MonoTime{} + std::chrono::hours(10);
    in.hour = pick(24);
    for (int i = 0; i < group_count + 1; ++i) {  // g<count> is a group removed from config.
      std::string g = "g" + std::to_string(i);
      if (chance(20)) continue;
      PlacementRecord r;
      r.phase = static_cast<GroupPhase>(pick(kGroupPhaseCount));
      if (r.phase != GroupPhase::Offline && !(r.phase == GroupPhase::Failed && chance(30)))
        r.node = names[static_cast<std::size_t>(pick(4))];
      if ((r.phase == GroupPhase::Stopping || r.phase == GroupPhase::Offline) && chance(40))
        r.target = names[static_cast<std::size_t>(pick(4))];
      r.cause = static_cast<PlacementCause>(pick(kPlacementCauseCount));
      r.intent = static_cast<GroupIntent>(pick(kGroupIntentCount));
      in.state.records[g] = r;
      for (int k = pick(4); k > 0; --k)
        in.state.failovers[g].push_back(
            MonoTime{in.now.usec - static_cast<Usec>(pick(300)) * 60'000'000});
    }
    for (int k = pick(4); k > 0; --k) {
      PlacementRequest req;
      req.kind = static_cast<RequestKind>(pick(kRequestKindCount));
      req.group = "g" + std::to_string(pick(group_count + 1));
      if (req.kind == RequestKind::Move && chance(60))
        req.node = names[static_cast<std::size_t>(pick(4))];
      in.requests.push_back(req);
    }

    CAPTURE(seed);
    auto actions = decide(in);
    for (const auto& a : actions) kinds_seen.insert(a.kind);
    CHECK(decide(in) == actions);  // Deterministic.
    auto violations = placement_violations(in, actions);
    CHECK_MESSAGE(violations.empty(), lines(violations));
    SettleResult r = settle(in, 30);
    CHECK_MESSAGE(r.violations.empty(), lines(r.violations));
    if (!r.settled) ++unsettled;
    CHECK_MESSAGE(r.settled, "no fixed point after ", r.rounds, " rounds");
  }
  CHECK(unsettled == 0);
  CHECK(kinds_seen.size() == kActionKindCount);  // The generator reaches every kind of action.
}

}  // namespace clusterd
