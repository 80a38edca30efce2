#include "join_rule.h"

#include <algorithm>

namespace clusterd {

bool caught_up(const CatchUpFacts& f) {
  return f.leader_known && !f.fenced && f.sync_index && f.applied >= *f.sync_index;
}

bool joined(bool joined_so_far, const CatchUpFacts& facts) {
  return (joined_so_far && !facts.fenced) || caught_up(facts);
}

std::uint8_t join_flags(bool joined) { return joined ? 0 : kHeartbeatJoining; }

NodeState judge_node(const NodeFacts& f) {
  if (!f.self && !f.reachable) return NodeState::Down;
  if (!f.joined) return NodeState::Joining;
  switch (f.admin) {
    case NodeFlag::Paused:
      return NodeState::Paused;
    case NodeFlag::Draining:
      return NodeState::Draining;
    case NodeFlag::None:
      break;
  }
  return NodeState::Up;
}

std::optional<MonoTime> joining_hold_end(const std::map<std::string, MonoTime>& joining_since,
                                         MonoTime term_start, Duration grace) {
  std::optional<MonoTime> end;
  for (const auto& [node, since] : joining_since) {
    MonoTime e = std::max(since, term_start) + grace;
    if (!end || e > *end) end = e;
  }
  return end;
}

bool hold_for_joining(const std::map<std::string, MonoTime>& joining_since, MonoTime term_start,
                      MonoTime now, Duration grace) {
  auto end = joining_hold_end(joining_since, term_start, grace);
  return end && now < *end;
}

}  // namespace clusterd
