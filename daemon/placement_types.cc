// Names, the short action format, and how actions and reports change the placement state.
#include <fmt/core.h>

#include <iterator>

#include "placement.h"

namespace clusterd {
namespace {

constexpr const char* kNodeStateNames[] = {"up", "down", "paused", "draining", "joining"};
static_assert(std::size(kNodeStateNames) == kNodeStateCount);

constexpr const char* kGroupPhaseNames[] = {"offline", "starting", "online", "stopping", "failed"};
static_assert(std::size(kGroupPhaseNames) == kGroupPhaseCount);

constexpr const char* kGroupIntentNames[] = {"auto", "online", "offline"};
static_assert(std::size(kGroupIntentNames) == kGroupIntentCount);

constexpr const char* kCauseNames[] = {
    "autostart", "online-request", "offline-request", "move-request", "failover",
    "node-loss", "failback",       "drain",           "quorum-loss",  "not-possible-owner",
    "removed",   "threshold",      "no-node"};
static_assert(std::size(kCauseNames) == kPlacementCauseCount);

constexpr const char* kRequestKindNames[] = {"move", "online", "offline"};
static_assert(std::size(kRequestKindNames) == kRequestKindCount);

constexpr const char* kActionKindNames[] = {
    "start",           "stop",       "mark-offline", "mark-failed",
    "record-failover", "set-intent", "wait",         "refuse"};
static_assert(std::size(kActionKindNames) == kActionKindCount);

template <typename Enum, std::size_t N>
const char* name_of(Enum value, const char* const (&names)[N]) {
  auto i = static_cast<std::size_t>(value);
  return i < N ? names[i] : "?";
}

bool owned(GroupPhase phase) {
  return phase == GroupPhase::Starting || phase == GroupPhase::Online ||
         phase == GroupPhase::Stopping;
}

void apply_one(const PlacementAction& a, MonoTime now, PlacementState& state) {
  if (a.kind == ActionKind::Wait || a.kind == ActionKind::Refuse) return;
  if (a.kind == ActionKind::RecordFailover) {
    state.failovers[a.group].push_back(now);
    return;
  }
  PlacementRecord& rec = state.records[a.group];
  if (a.kind == ActionKind::SetIntent) {
    rec.intent = a.intent;
    return;
  }
  switch (a.kind) {
    case ActionKind::Start:
      rec.phase = GroupPhase::Starting;
      rec.node = a.node;
      rec.target.clear();
      break;
    case ActionKind::Stop:
      rec.phase = GroupPhase::Stopping;
      rec.node = a.node;
      rec.target = a.target;
      break;
    case ActionKind::MarkOffline:
      rec.phase = GroupPhase::Offline;
      rec.node.clear();
      rec.target = a.target;
      break;
    default:  // MarkFailed
      rec.phase = GroupPhase::Failed;
      rec.node.clear();
      rec.target.clear();
      break;
  }
  rec.cause = a.cause;
  rec.since = now;
}

}  // namespace

const char* to_string(NodeState state) { return name_of(state, kNodeStateNames); }
const char* to_string(GroupPhase phase) { return name_of(phase, kGroupPhaseNames); }
const char* to_string(GroupIntent intent) { return name_of(intent, kGroupIntentNames); }
const char* to_string(PlacementCause cause) { return name_of(cause, kCauseNames); }
const char* to_string(RequestKind kind) { return name_of(kind, kRequestKindNames); }
const char* to_string(ActionKind kind) { return name_of(kind, kActionKindNames); }

void apply_actions(const std::vector<PlacementAction>& actions, MonoTime now,
                   PlacementState& state) {
  for (const auto& a : actions) apply_one(a, now, state);
}

bool apply_report(const std::string& group, const std::string& node, GroupPhase reported,
                  MonoTime now, PlacementState& state) {
  auto it = state.records.find(group);
  if (it == state.records.end() || it->second.node != node || !owned(it->second.phase))
    return false;
  PlacementRecord& rec = it->second;
  switch (reported) {
    case GroupPhase::Online:
      if (rec.phase != GroupPhase::Starting) return false;
      rec.phase = GroupPhase::Online;
      break;
    case GroupPhase::Offline:
      rec.phase = GroupPhase::Offline;
      rec.node.clear();
      break;
    case GroupPhase::Failed:
      rec.phase = GroupPhase::Failed;
      rec.target.clear();
      break;
    default:
      return false;  // Nodes report outcomes, not transitions.
  }
  rec.since = now;
  return true;
}

std::string format_action(const PlacementAction& a, const PlacementInput& input) {
  const char* kind = to_string(a.kind);
  const char* cause = to_string(a.cause);
  switch (a.kind) {
    case ActionKind::Start:
      return fmt::format("{} {} on {} ({})", kind, a.group, a.node, cause);
    case ActionKind::Stop:
      if (a.target.empty()) return fmt::format("{} {} on {} ({})", kind, a.group, a.node, cause);
      return fmt::format("{} {} on {} for {} ({})", kind, a.group, a.node, a.target, cause);
    case ActionKind::RecordFailover:
      return fmt::format("{} {} from {} ({})", kind, a.group, a.node, cause);
    case ActionKind::SetIntent:
      return fmt::format("{} {} {}", kind, a.group, to_string(a.intent));
    case ActionKind::Refuse: {
      std::string request = "request";
      if (a.request >= 0 && static_cast<std::size_t>(a.request) < input.requests.size()) {
        const auto& r = input.requests[static_cast<std::size_t>(a.request)];
        request =
            fmt::format("{} {}{}{}", to_string(r.kind), r.group, r.node.empty() ? "" : " ", r.node);
      }
      return fmt::format("{} {}: {}", kind, request, a.reason);
    }
    default:
      return fmt::format("{} {} ({})", kind, a.group, cause);
  }
}

}  // namespace clusterd
