#include "placement_check.h"

#include <fmt/core.h>

#include <algorithm>
#include <map>
#include <set>

namespace clusterd {
namespace {

NodeState state_of(const PlacementInput& in, const std::string& node) {
  auto it = in.view.nodes.find(node);
  return it == in.view.nodes.end() ? NodeState::Down : it->second;
}

bool member(const PlacementInput& in, const std::string& node) {
  NodeState s = state_of(in, node);
  return s == NodeState::Up || s == NodeState::Paused || s == NodeState::Draining;
}

bool owned(const PlacementRecord& r) {
  return r.phase == GroupPhase::Starting || r.phase == GroupPhase::Online ||
         r.phase == GroupPhase::Stopping;
}

std::string check_start(const PlacementInput& in, const PlacementAction& a,
                        const PlacementRecord& rec) {
  if (owned(rec))
    return fmt::format("start of {} on {} while it is {} on {}", a.group, a.node,
                       to_string(rec.phase), rec.node);
  if (state_of(in, a.node) != NodeState::Up)
    return fmt::format("start of {} on {}, which is {}", a.group, a.node,
                       to_string(state_of(in, a.node)));
  const GroupConfig* g = in.config->find_group(a.group);
  auto order = g ? owner_order(*in.config, *g) : std::vector<std::string>{};
  if (std::find(order.begin(), order.end(), a.node) == order.end())
    return fmt::format("start of {} on {}, which may not own it", a.group, a.node);
  return "";
}

std::string check_stop(const PlacementAction& a, const PlacementRecord& rec) {
  bool running = rec.phase == GroupPhase::Online || rec.phase == GroupPhase::Starting;
  if (!running || rec.node != a.node)
    return fmt::format("stop of {} on {} while it is {} on '{}'", a.group, a.node,
                       to_string(rec.phase), rec.node);
  return "";
}

std::string check_mark_offline(const PlacementInput& in, const PlacementAction& a,
                               const PlacementRecord& rec) {
  if (!owned(rec)) return "";
  if (member(in, rec.node) || !in.safe_nodes.contains(rec.node))
    return fmt::format("{} marked offline while {} may still run it", a.group, rec.node);
  return "";
}

std::string check_reason(const PlacementAction& a) {
  const std::string& r = a.reason;
  if (r.size() < 10 || r.back() != '.' || r.find(". ") != std::string::npos)
    return fmt::format("{} of {} has no one-sentence reason: '{}'", to_string(a.kind), a.group, r);
  return "";
}

}  // namespace

std::vector<std::string> placement_violations(const PlacementInput& input,
                                              const std::vector<PlacementAction>& actions) {
  std::vector<std::string> found;
  PlacementState state = input.state;  // Follows the actions, so order matters as it will.
  std::map<std::string, std::set<ActionKind>> kinds;
  auto note = [&](std::string v) {
    if (!v.empty()) found.push_back(std::move(v));
  };
  for (const auto& a : actions) {
    const PlacementRecord& rec = state.records[a.group];
    if (a.kind == ActionKind::Start) note(check_start(input, a, rec));
    if (a.kind == ActionKind::Stop) note(check_stop(a, rec));
    if (a.kind == ActionKind::MarkOffline) note(check_mark_offline(input, a, rec));
    note(check_reason(a));
    if (a.kind == ActionKind::Start && kinds[a.group].contains(ActionKind::Start))
      note(fmt::format("two starts of {}", a.group));
    kinds[a.group].insert(a.kind);
    apply_actions({a}, input.now, state);
  }
  for (const auto& [group, seen] : kinds)
    if (seen.contains(ActionKind::Start) && seen.contains(ActionKind::Stop))
      note(fmt::format("a stop and a start of {} in one call", group));
  return found;
}

SettleResult settle(PlacementInput input, int max_rounds) {
  SettleResult result;
  while (result.rounds < max_rounds) {
    auto actions = decide(input);
    ++result.rounds;
    for (auto& v : placement_violations(input, actions))
      result.violations.push_back(fmt::format("round {}: {}", result.rounds, v));
    PlacementState before = input.state;
    apply_actions(actions, input.now, input.state);
    input.requests.clear();
    for (auto& [group, rec] : input.state.records) {
      if (!member(input, rec.node)) continue;
      if (rec.phase == GroupPhase::Starting)
        apply_report(group, rec.node, GroupPhase::Online, input.now, input.state);
      else if (rec.phase == GroupPhase::Stopping)
        apply_report(group, rec.node, GroupPhase::Offline, input.now, input.state);
    }
    bool changed = input.state != before;
    if (!changed && result.rounds > 1) {
      result.settled = true;
      break;
    }
  }
  result.state = input.state;
  return result;
}

}  // namespace clusterd
