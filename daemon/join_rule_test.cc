#include "join_rule.h"

#include <doctest/doctest.h>

#include "heartbeat.h"

namespace clusterd {
namespace {

MonoTime at_ms(std::int64_t ms) { return MonoTime{static_cast<Usec>(ms) * 1000}; }

CatchUpFacts synced(Index sync_index, Index applied) {
  return {.leader_known = true, .fenced = false, .sync_index = sync_index, .applied = applied};
}

}  // namespace

TEST_CASE("join rule: caught up once the coordinator's last index at the sync is applied") {
  CHECK_FALSE(caught_up({}));                                   // just started: nothing known
  CHECK_FALSE(caught_up({true, false, std::nullopt, 0}));  // no sync answer yet
  CHECK_FALSE(caught_up(synced(12, 11)));                       // one entry behind
  CHECK(caught_up(synced(12, 12)));
  CHECK(caught_up(synced(12, 15)));
  CatchUpFacts no_leader = synced(12, 12);
  no_leader.leader_known = false;                               // an election is running
  CHECK_FALSE(caught_up(no_leader));
  CatchUpFacts fenced = synced(12, 12);
  fenced.fenced = true;
  CHECK_FALSE(caught_up(fenced));
}

TEST_CASE("join rule: joined sticks across elections, not across a self-fence") {
  CatchUpFacts electing{false, false, std::nullopt, 0};
  CHECK_FALSE(joined(false, electing));  // never caught up: still joining
  CHECK(joined(true, electing));         // a new election does not make a member join again
  CHECK(joined(false, synced(3, 3)));    // caught up: joined
  CatchUpFacts fenced = synced(3, 3);
  fenced.fenced = true;
  CHECK_FALSE(joined(true, fenced));  // a fenced node rejoins from scratch
}

TEST_CASE("join rule: the heartbeat flag says joining until joined, beside the leaving bit") {
  CHECK(join_flags(false) == kHeartbeatJoining);
  CHECK(join_flags(true) == 0);
  CHECK((kHeartbeatJoining & kHeartbeatLeaving) == 0);
}

TEST_CASE("join rule: every node judges a node from reachability, its join flag and admin") {
  CHECK(judge_node({.self = false, .reachable = false, .joined = true}) == NodeState::Down);
  CHECK(judge_node({.self = false, .reachable = false, .joined = false}) == NodeState::Down);
  CHECK(judge_node({.self = false, .reachable = true, .joined = false}) == NodeState::Joining);
  CHECK(judge_node({.self = false, .reachable = true, .joined = true}) == NodeState::Up);
  // Joining wins over the admin flags: a paused node that restarts may own nothing yet.
  CHECK(judge_node({.self = false, .reachable = true, .joined = false,
                    .admin = NodeFlag::Paused}) == NodeState::Joining);
  CHECK(judge_node({.self = false, .reachable = true, .joined = true,
                    .admin = NodeFlag::Paused}) == NodeState::Paused);
  CHECK(judge_node({.self = false, .reachable = true, .joined = true,
                    .admin = NodeFlag::Draining}) == NodeState::Draining);
  // This node is never down to itself, but joining until it caught up.
  CHECK(judge_node({.self = true, .reachable = false, .joined = false}) == NodeState::Joining);
  CHECK(judge_node({.self = true, .reachable = false, .joined = true}) == NodeState::Up);
}

TEST_CASE("join rule: the coordinator holds for a joining node for a bounded grace") {
  const Duration grace{500};
  CHECK_FALSE(hold_for_joining({}, at_ms(0), at_ms(100), grace));  // nobody joining
  // Seen joining at 1000, term began earlier: held until 1500.
  std::map<std::string, MonoTime> joining{{"node1", at_ms(1000)}};
  CHECK(hold_for_joining(joining, at_ms(200), at_ms(1499), grace));
  CHECK_FALSE(hold_for_joining(joining, at_ms(200), at_ms(1500), grace));
  // A node heard long before this coordinator's term began gets the grace from the term start.
  CHECK(hold_for_joining(joining, at_ms(3000), at_ms(3400), grace));
  CHECK_FALSE(hold_for_joining(joining, at_ms(3000), at_ms(3500), grace));
  // Any node still inside its grace holds.
  joining["node2"] = at_ms(3300);
  CHECK(hold_for_joining(joining, at_ms(0), at_ms(3700), grace));
  // The hold ends with the latest node's grace: that is when the timer is armed.
  CHECK(joining_hold_end(joining, at_ms(0), grace) == at_ms(3800));
  CHECK_FALSE(joining_hold_end({}, at_ms(0), grace));
}

}  // namespace clusterd
