#include "placement.h"

#include <fmt/core.h>

#include <algorithm>
#include <iterator>
#include <optional>

namespace clusterd {
namespace {

using Cause = PlacementCause;
using Phase = GroupPhase;

const PlacementRecord kOfflineRecord{};

// "6 h", "90 min", "45 s": a period the way people say it.
std::string period_text(Duration d) {
  auto ms = d.count();
  if (ms % 3'600'000 == 0) return fmt::format("{} h", ms / 3'600'000);
  if (ms % 60'000 == 0) return fmt::format("{} min", ms / 60'000);
  return fmt::format("{} s", ms / 1000.0);
}

// One call of decide(): the input, the actions so far, and the groups a request acted on (the
// automatic rules and later requests leave those alone until the next call, so one call never
// gives a group two conflicting decisions).
class Decider {
 public:
  explicit Decider(const PlacementInput& input) : in_(input), config_(*input.config) {}

  std::vector<PlacementAction> run();

 private:
  // Requests.
  void answer(std::size_t index, const PlacementRequest& request);
  void request_move(int index, const GroupConfig& group, const std::string& node);
  void request_online(int index, const GroupConfig& group);
  void request_offline(int index, const GroupConfig& group);
  void refuse(int index, const std::string& group, std::string reason);

  // Automatic rules, per group.
  void decide_group(const GroupConfig& group);
  void recover_lost(const GroupConfig& group, const PlacementRecord& record);
  void recover_failed(const GroupConfig& group, const PlacementRecord& record);
  void keep_online(const GroupConfig& group, const PlacementRecord& record);
  void place_offline(const GroupConfig& group, const PlacementRecord& record);
  void place(const GroupConfig& group, const std::string& preferred, Cause cause, int request);
  bool failover_allowed(const GroupConfig& group, const std::string& from, Cause cause);
  void stop_everything_without_quorum();
  void stop_removed_groups();

  // Facts.
  const PlacementRecord& record(const std::string& group) const;
  NodeState state(const std::string& node) const;
  bool is_member(const std::string& node) const;
  bool lost(const PlacementRecord& record) const;
  bool may_own(const GroupConfig& group, const std::string& node) const;
  bool can_take(const GroupConfig& group, const std::string& node) const;
  std::optional<std::string> best_node(const GroupConfig& group, const std::string& except) const;
  std::optional<std::string> next_node(const GroupConfig& group, const std::string& after) const;
  std::optional<std::string> failback_node(const GroupConfig& group,
                                           const PlacementRecord& record) const;
  bool wants_online(const GroupConfig& group, const PlacementRecord& record) const;
  std::size_t recent_failovers(const GroupConfig& group) const;

  void emit(ActionKind kind, const std::string& group, const std::string& node,
            const std::string& target, Cause cause, std::string reason, int request = -1);

  const PlacementInput& in_;
  const Config& config_;
  std::set<std::string> handled_;
  std::vector<PlacementAction> out_;
};

std::vector<PlacementAction> Decider::run() {
  if (!in_.view.quorate) {
    stop_everything_without_quorum();
    return std::move(out_);
  }
  for (std::size_t i = 0; i < in_.requests.size(); ++i) answer(i, in_.requests[i]);
  for (const auto& group : config_.groups)
    if (!handled_.contains(group.name)) decide_group(group);
  stop_removed_groups();
  return std::move(out_);
}

// ---- Facts ----

const PlacementRecord& Decider::record(const std::string& group) const {
  auto it = in_.state.records.find(group);
  return it == in_.state.records.end() ? kOfflineRecord : it->second;
}

NodeState Decider::state(const std::string& node) const {
  auto it = in_.view.nodes.find(node);
  return it == in_.view.nodes.end() ? NodeState::Down : it->second;
}

// A member keeps running what it owns, whatever else it is doing (paused, draining).
bool Decider::is_member(const std::string& node) const {
  NodeState s = state(node);
  return s == NodeState::Up || s == NodeState::Paused || s == NodeState::Draining;
}

// The group may still run on a node that is not a member: until that node is confirmed safe,
// nothing may start it elsewhere (architecture rule 5).
bool Decider::lost(const PlacementRecord& record) const {
  bool owned = record.phase == Phase::Starting || record.phase == Phase::Online ||
               record.phase == Phase::Stopping;
  return owned && !is_member(record.node);
}

bool Decider::may_own(const GroupConfig& group, const std::string& node) const {
  auto order = owner_order(config_, group);
  return std::find(order.begin(), order.end(), node) != order.end();
}

// A new placement needs a node that is up: paused, draining and joining nodes take nothing.
bool Decider::can_take(const GroupConfig& group, const std::string& node) const {
  return state(node) == NodeState::Up && may_own(group, node);
}

std::optional<std::string> Decider::best_node(const GroupConfig& group,
                                              const std::string& except) const {
  for (const auto& node : owner_order(config_, group))
    if (node != except && can_take(group, node)) return node;
  return std::nullopt;
}

// MSCS fails a group over to the next node of its list, so repeated failures walk the list
// instead of bouncing between the first two nodes.
std::optional<std::string> Decider::next_node(const GroupConfig& group,
                                              const std::string& after) const {
  auto order = owner_order(config_, group);
  auto at = std::find(order.begin(), order.end(), after);
  std::size_t start = at == order.end() ? 0 : static_cast<std::size_t>(at - order.begin()) + 1;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const std::string& node = order[(start + i) % order.size()];
    if (node != after && can_take(group, node)) return node;
  }
  return std::nullopt;
}

// MSCS AutoFailbackType: back to the most preferred available owner, if it ranks above the
// current one. Only preferred owners attract a failback; a group the administrator moved stays.
std::optional<std::string> Decider::failback_node(const GroupConfig& group,
                                                  const PlacementRecord& record) const {
  if (record.cause == Cause::MoveRequest) return std::nullopt;
  const FailbackPolicy& policy = group.failback;
  if (policy.mode == FailbackMode::Never) return std::nullopt;
  if (policy.mode == FailbackMode::Window && !in_failback_window(policy, in_.hour))
    return std::nullopt;
  const auto& preferred = group.preferred_owners;
  auto current = std::find(preferred.begin(), preferred.end(), record.node);
  for (auto it = preferred.begin(); it != current; ++it)
    if (can_take(group, *it)) return *it;
  return std::nullopt;
}

// MSCS PersistentState: an explicit request wins; otherwise autostart decides. A group on its
// way to a chosen node (a move) is wanted online too.
bool Decider::wants_online(const GroupConfig& group, const PlacementRecord& record) const {
  if (record.intent != GroupIntent::Auto) return record.intent == GroupIntent::Online;
  return group.autostart || !record.target.empty();
}

std::size_t Decider::recent_failovers(const GroupConfig& group) const {
  auto it = in_.state.failovers.find(group.name);
  if (it == in_.state.failovers.end()) return 0;
  auto period_us = static_cast<Usec>(group.failover.period.count()) * 1000;
  return static_cast<std::size_t>(
      std::count_if(it->second.begin(), it->second.end(),
                    [&](MonoTime t) { return t <= in_.now && in_.now.usec - t.usec < period_us; }));
}

// ---- Requests ----

void Decider::answer(std::size_t index, const PlacementRequest& request) {
  int i = static_cast<int>(index);
  const GroupConfig* group = config_.find_group(request.group);
  if (!group)
    return refuse(
        i, request.group,
        fmt::format("There is no group called '{}' in the configuration.", request.group));
  if (handled_.contains(group->name))
    return refuse(
        i, group->name,
        fmt::format("An earlier request for group {} is being carried out.", group->name));
  switch (request.kind) {
    case RequestKind::Move:
      return request_move(i, *group, request.node);
    case RequestKind::Online:
      return request_online(i, *group);
    case RequestKind::Offline:
      return request_offline(i, *group);
  }
}

Cause request_cause(RequestKind kind) {
  switch (kind) {
    case RequestKind::Move:
      return Cause::MoveRequest;
    case RequestKind::Online:
      return Cause::OnlineRequest;
    case RequestKind::Offline:
      return Cause::OfflineRequest;
  }
  return Cause::MoveRequest;
}

void Decider::refuse(int index, const std::string& group, std::string reason) {
  Cause cause = request_cause(in_.requests[static_cast<std::size_t>(index)].kind);
  emit(ActionKind::Refuse, group, "", "", cause, std::move(reason), index);
}

// Why `node` cannot receive `group` by a move, or nothing when it can.
std::optional<std::string> move_refusal(const Config& config, const GroupConfig& group,
                                        const std::string& node, NodeState state, bool possible) {
  if (!config.find_node(node))
    return fmt::format("There is no node called '{}' in the configuration.", node);
  if (!possible)
    return fmt::format("Node {} is not a possible owner of group {}.", node, group.name);
  if (state != NodeState::Up)
    return fmt::format("Node {} is {} and takes no groups.", node, to_string(state));
  return std::nullopt;
}

void Decider::request_move(int index, const GroupConfig& group, const std::string& node) {
  const PlacementRecord& rec = record(group.name);
  if (rec.phase != Phase::Online || lost(rec))
    return refuse(index, group.name,
                  fmt::format("Group {} is not online on a member node, so there is nothing to "
                              "move; bring it online instead.",
                              group.name));
  if (node == rec.node)
    return refuse(index, group.name,
                  fmt::format("Group {} is already online on {}.", group.name, node));
  std::optional<std::string> to = node;
  if (node.empty()) {
    to = best_node(group, rec.node);
    if (!to)
      return refuse(index, group.name,
                    fmt::format("No other node may take group {} now.", group.name));
  } else if (auto why = move_refusal(config_, group, node, state(node), may_own(group, node))) {
    return refuse(index, group.name, *why);
  }
  emit(ActionKind::Stop, group.name, rec.node, *to, Cause::MoveRequest,
       fmt::format("The administrator moves group {} from {} to {}.", group.name, rec.node, *to),
       index);
}

void Decider::request_online(int index, const GroupConfig& group) {
  const PlacementRecord& rec = record(group.name);
  emit(ActionKind::SetIntent, group.name, "", "", Cause::OnlineRequest,
       fmt::format("The administrator wants group {} online.", group.name), index);
  out_.back().intent = GroupIntent::Online;
  if (rec.phase == Phase::Failed) {
    emit(
        ActionKind::MarkOffline, group.name, rec.node, "", Cause::OnlineRequest,
        fmt::format("Group {} leaves the failed state at the administrator's request.", group.name),
        index);
  }
  // Online, starting, stopping or lost: the automatic rules finish the job on a later call.
  if (rec.phase == Phase::Offline || rec.phase == Phase::Failed)
    place(group, rec.target, Cause::OnlineRequest, index);
}

void Decider::request_offline(int index, const GroupConfig& group) {
  const PlacementRecord& rec = record(group.name);
  emit(ActionKind::SetIntent, group.name, "", "", Cause::OfflineRequest,
       fmt::format("The administrator wants group {} offline.", group.name), index);
  out_.back().intent = GroupIntent::Offline;
  if (rec.phase == Phase::Online && !lost(rec))
    emit(ActionKind::Stop, group.name, rec.node, "", Cause::OfflineRequest,
         fmt::format("The administrator takes group {} offline on {}.", group.name, rec.node),
         index);
  if (rec.phase == Phase::Failed)
    emit(ActionKind::MarkOffline, group.name, rec.node, "", Cause::OfflineRequest,
         fmt::format("Failed group {} is offline at the administrator's request.", group.name),
         index);
}

// ---- Automatic rules ----

void Decider::decide_group(const GroupConfig& group) {
  const PlacementRecord& rec = record(group.name);
  if (lost(rec)) return recover_lost(group, rec);
  switch (rec.phase) {
    case Phase::Starting:
    case Phase::Stopping:
      return;  // In flight: the owner reports the outcome.
    case Phase::Online:
      return keep_online(group, rec);
    case Phase::Failed:
      return recover_failed(group, rec);
    case Phase::Offline:
      return place_offline(group, rec);
  }
}

// MSCS failover: the group restarts elsewhere once its node is gone, but only after that node
// has been fenced or must have stopped it (self-stop deadline): never two owners.
void Decider::recover_lost(const GroupConfig& group, const PlacementRecord& rec) {
  if (in_.view.maintenance) return;
  if (!in_.safe_nodes.contains(rec.node))
    return emit(ActionKind::Wait, group.name, rec.node, "", Cause::NodeLoss,
                fmt::format("Node {} owned group {} and is lost, but is not yet confirmed safe "
                            "(fenced or past its self-stop deadline).",
                            rec.node, group.name));
  bool was_running = rec.phase != Phase::Stopping;
  if (was_running && wants_online(group, rec) &&
      !failover_allowed(group, rec.node, Cause::NodeLoss))
    return;
  emit(ActionKind::MarkOffline, group.name, rec.node, rec.target, Cause::NodeLoss,
       fmt::format("Group {} runs nowhere: its node {} is lost and confirmed safe.", group.name,
                   rec.node));
  if (!wants_online(group, rec)) return;
  if (was_running) {
    emit(ActionKind::RecordFailover, group.name, rec.node, "", Cause::NodeLoss,
         fmt::format("Group {} fails over because node {} is lost.", group.name, rec.node));
    return place(group, "", Cause::NodeLoss, -1);
  }
  place(group, rec.target, rec.cause, -1);
}

// MSCS FailoverThreshold/FailoverPeriod: past the threshold the group stays failed instead of
// walking the cluster. Emits MarkFailed and returns false when the threshold is reached.
bool Decider::failover_allowed(const GroupConfig& group, const std::string& from, Cause cause) {
  std::size_t count = recent_failovers(group);
  if (count < group.failover.threshold) return true;
  emit(ActionKind::MarkFailed, group.name, from, "", Cause::Threshold,
       fmt::format("Group {} stays failed after this {}: its failovers within the last {} ({}) "
                   "reached the threshold ({}).",
                   group.name, cause == Cause::NodeLoss ? "node loss" : "failure",
                   period_text(group.failover.period), count, group.failover.threshold));
  return false;
}

void Decider::recover_failed(const GroupConfig& group, const PlacementRecord& rec) {
  if (rec.node.empty() || in_.view.maintenance) return;  // Failed for good, or frozen.
  if (!wants_online(group, rec))
    return emit(ActionKind::MarkOffline, group.name, rec.node, "", Cause::OfflineRequest,
                fmt::format("Failed group {} stays offline: the administrator wants it offline.",
                            group.name));
  if (!failover_allowed(group, rec.node, Cause::Failover)) return;
  auto to = next_node(group, rec.node);
  if (!to)
    return emit(ActionKind::Wait, group.name, rec.node, "", Cause::NoNode,
                fmt::format("Group {} failed on {} and no other allowed node is up to take it.",
                            group.name, rec.node));
  emit(ActionKind::RecordFailover, group.name, rec.node, *to, Cause::Failover,
       fmt::format("Group {} failed on {} past its restart policy and fails over to {}.",
                   group.name, rec.node, *to));
  emit(ActionKind::Start, group.name, *to, "", Cause::Failover,
       fmt::format("Group {} fails over from {} to {}, the next allowed node.", group.name,
                   rec.node, *to));
}

void Decider::keep_online(const GroupConfig& group, const PlacementRecord& rec) {
  if (in_.view.maintenance) return;
  const std::string& node = rec.node;
  if (rec.intent == GroupIntent::Offline)
    return emit(ActionKind::Stop, group.name, node, "", Cause::OfflineRequest,
                fmt::format("Group {} is online on {} but the administrator wants it offline.",
                            group.name, node));
  if (!may_own(group, node)) {
    auto to = best_node(group, node);
    return emit(
        ActionKind::Stop, group.name, node, to.value_or(""), Cause::NotPossible,
        fmt::format("Node {} is no longer a possible owner of group {}.", node, group.name));
  }
  if (state(node) == NodeState::Draining) {
    if (auto to = best_node(group, node))
      return emit(ActionKind::Stop, group.name, node, *to, Cause::Drain,
                  fmt::format("Node {} is draining; group {} moves to {}.", node, group.name, *to));
    return emit(ActionKind::Wait, group.name, node, "", Cause::Drain,
                fmt::format("Node {} is draining but no other node may take group {}; it stays.",
                            node, group.name));
  }
  if (auto to = failback_node(group, rec))
    emit(ActionKind::Stop, group.name, node, *to, Cause::Failback,
         fmt::format("Group {} fails back from {} to {}, a more preferred owner.", group.name, node,
                     *to));
}

void Decider::place_offline(const GroupConfig& group, const PlacementRecord& rec) {
  if (!wants_online(group, rec)) return;
  // Maintenance freezes the automatic rules; a move the administrator asked for still ends.
  bool requested = rec.cause == Cause::MoveRequest || rec.cause == Cause::OnlineRequest;
  if (in_.view.maintenance && !(requested && !rec.target.empty())) return;
  Cause cause = rec.target.empty() ? Cause::Autostart : rec.cause;
  place(group, rec.target, cause, -1);
}

// Starts the group on `preferred` when it can take it, else on the best allowed node.
void Decider::place(const GroupConfig& group, const std::string& preferred, Cause cause,
                    int request) {
  std::optional<std::string> to;
  if (!preferred.empty() && can_take(group, preferred)) to = preferred;
  if (!to) to = best_node(group, "");
  if (!to)
    return emit(
        ActionKind::Wait, group.name, "", "", Cause::NoNode,
        fmt::format("Group {} should be online but none of its allowed nodes is up.", group.name),
        request);
  emit(ActionKind::Start, group.name, *to, "", cause,
       fmt::format("Group {} starts on {} ({}).", group.name, *to, to_string(cause)), request);
}

// Architecture rule 5: a partition without quorum stops its groups at once, before the quorate
// side may start them elsewhere. Requests wait for a quorum.
void Decider::stop_everything_without_quorum() {
  for (std::size_t i = 0; i < in_.requests.size(); ++i)
    refuse(static_cast<int>(i), in_.requests[i].group,
           "This partition has no quorum, so it changes nothing.");
  for (const auto& [name, rec] : in_.state.records)
    if ((rec.phase == Phase::Starting || rec.phase == Phase::Online) && is_member(rec.node))
      emit(ActionKind::Stop, name, rec.node, "", Cause::QuorumLoss,
           fmt::format("The partition lost quorum, so group {} stops on {}.", name, rec.node));
}

void Decider::stop_removed_groups() {
  for (const auto& [name, rec] : in_.state.records) {
    if (config_.find_group(name) || rec.phase != Phase::Online || !is_member(rec.node)) continue;
    emit(ActionKind::Stop, name, rec.node, "", Cause::Removed,
         fmt::format("Group {} is no longer in the configuration.", name));
  }
}

void Decider::emit(ActionKind kind, const std::string& group, const std::string& node,
                   const std::string& target, Cause cause, std::string reason, int request) {
  PlacementAction a;
  a.kind = kind;
  a.group = group;
  a.node = node;
  a.target = target;
  a.cause = cause;
  a.request = request;
  a.reason = std::move(reason);
  // A group a request acted on is left alone by the automatic rules until the next call.
  if (request >= 0 && kind != ActionKind::Refuse) handled_.insert(group);
  out_.push_back(std::move(a));
}

}  // namespace

std::vector<std::string> owner_order(const Config& config, const GroupConfig& group) {
  auto possible = [&](const std::string& node) {
    return config.find_node(node) &&
           (group.possible_owners.empty() ||
            std::find(group.possible_owners.begin(), group.possible_owners.end(), node) !=
                group.possible_owners.end());
  };
  std::vector<std::string> order;
  auto add = [&](const std::string& node) {
    if (possible(node) && std::find(order.begin(), order.end(), node) == order.end())
      order.push_back(node);
  };
  for (const auto& node : group.preferred_owners) add(node);
  for (const auto& node : config.nodes) add(node.name);
  return order;
}

bool in_failback_window(const FailbackPolicy& policy, int hour) {
  int start = policy.window_start_hour;
  int end = policy.window_end_hour;
  if (start < end) return start <= hour && hour < end;
  if (start > end) return hour >= start || hour < end;  // Wraps past midnight.
  return false;
}

std::vector<PlacementAction> decide(const PlacementInput& input) { return Decider(input).run(); }

}  // namespace clusterd
