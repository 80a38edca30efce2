#include "quorum_guard.h"

#include <doctest/doctest.h>

namespace clusterd {
namespace {

MonoTime at_ms(std::int64_t ms) { return MonoTime{static_cast<Usec>(ms) * 1000}; }

QuorumGuard three_nodes() { return QuorumGuard(1, {{1, 1}, {2, 1}, {3, 1}}, QuorumTiming{}); }

}  // namespace

TEST_CASE("quorum guard: unconfirmed until a quorum echoes one of our heartbeats") {
  QuorumGuard g = three_nodes();
  g.sent(1, at_ms(1000));
  CHECK_FALSE(g.confirmed(at_ms(1010)));
  CHECK_FALSE(g.quorate(at_ms(1010)));
  g.echoed(2, 1);
  REQUIRE(g.confirmed(at_ms(1010)));
  CHECK(*g.confirmed(at_ms(1010)) == at_ms(1000));  // the send time, not the echo's arrival
  CHECK(g.quorate(at_ms(1010)));
}

TEST_CASE("quorum guard: the confirmation is the quorum-th newest echo; the self-stop follows") {
  QuorumGuard g = three_nodes();
  for (int s = 1; s <= 10; ++s) g.sent(s, at_ms(100 * s));
  g.echoed(2, 3);  // node 2 heard us at 300
  g.echoed(3, 8);  // node 3 at 800
  CHECK(*g.confirmed(at_ms(900)) == at_ms(800));
  // A one-way cut: we keep sending, nobody's echo advances. The self-stop begins at
  // C + D - S - M = 800 + 500 - 150 - 30 = 1120, the hard kill at C + D - M = 1270.
  CHECK(g.quorate(at_ms(1119)));
  CHECK(*g.stop_deadline(at_ms(1000)) == at_ms(1120));
  CHECK_FALSE(g.quorate(at_ms(1120)));
  CHECK(g.kill_deadline(at_ms(1120)) == at_ms(1270));
  // An older echo never moves the confirmation back; unknown sequences are ignored.
  g.echoed(3, 2);
  g.echoed(3, 999);
  CHECK(*g.confirmed(at_ms(900)) == at_ms(800));
  // Echoes from non-voters or ourselves count nothing.
  g.echoed(1, 10);
  g.echoed(7, 10);
  CHECK(*g.confirmed(at_ms(1100)) == at_ms(800));
}

TEST_CASE("quorum guard: votes weigh; a node alone is quorate only with a majority of votes") {
  QuorumGuard alone(1, {{1, 1}}, QuorumTiming{});
  CHECK(alone.quorate(at_ms(5)));
  QuorumGuard heavy(1, {{1, 0}, {2, 1}, {3, 1}}, QuorumTiming{});
  heavy.sent(1, at_ms(10));
  heavy.echoed(2, 1);
  CHECK_FALSE(heavy.confirmed(at_ms(20)));  // 1 of 2 votes is not more than half
  heavy.echoed(3, 1);
  CHECK(*heavy.confirmed(at_ms(20)) == at_ms(10));
}

TEST_CASE("quorum guard: the self-stop deadline is shorter than the takeover bound") {
  // docs/membership.md: peers clear us D after their last frame from us, which is at or after
  // C; we are done (hard kill) by C + D - M. The margin must be positive, the budget too.
  QuorumTiming t;
  CHECK(t.kill_after() < t.detection);
  CHECK(t.stop_after() + t.stop_budget == t.kill_after());
  CHECK(t.stop_after() > Duration(200));  // two heartbeat intervals of normal echo staleness
}

TEST_CASE("quorum guard: the echo grace leaves half the stop budget and never moves the kill") {
  QuorumTiming t;  // D 500, S 150, M 30
  CHECK(t.echo_grace(Duration(100)) == Duration(50));
  CHECK(t.stop_after() + t.echo_grace(Duration(100)) < t.kill_after());
  QuorumTiming aggressive{Duration(40), Duration(13), Duration(5)};
  CHECK(aggressive.echo_grace(Duration(10)) == Duration(5));
  CHECK(aggressive.echo_grace(Duration(1)) == Duration(2));  // one echo round trip, at least
  QuorumTiming tiny{Duration(6), Duration(2), Duration(1)};
  CHECK(tiny.echo_grace(Duration(2)) == Duration(1));  // never more than half the budget
}

}  // namespace clusterd

namespace clusterd {

TEST_CASE("quorum guard: the quorum disk confirms by its check's send time, and is forgotten") {
  // Two nodes and the disk (id 0 in the guard): node 1 with the disk is a quorum.
  QuorumGuard g(1, {{0, 1}, {1, 1}, {2, 1}}, QuorumTiming{});
  CHECK_FALSE(g.quorate(at_ms(1000)));
  g.confirm(0, at_ms(900));
  CHECK(*g.confirmed(at_ms(1000)) == at_ms(900));
  g.confirm(0, at_ms(800));  // an older check never moves it back
  CHECK(*g.confirmed(at_ms(1000)) == at_ms(900));
  CHECK(g.quorate(at_ms(1219)));
  CHECK_FALSE(g.quorate(at_ms(1220)));
  g.forget(0);
  CHECK_FALSE(g.confirmed(at_ms(1000)));
}

TEST_CASE("quorum guard: the disk's confirmation relayed by its holder counts, never later than real") {
  // Nodes 1 (us) and 2 (the disk's holder) with 1 vote each, the disk (guard id 0) with 1: a
  // quorum is 2 of 3, so our echo from node 2 alone is not enough without the disk.
  QuorumGuard g(1, {{0, 1}, {1, 1}, {2, 1}}, QuorumTiming{});
  g.sent(7, at_ms(100));
  g.echoed(2, 7);
  CHECK(*g.confirmed(at_ms(110)) == at_ms(100));  // us and node 2
  // Node 2 says its disk hold was confirmed 30 ms before it echoed: counted at 100 - 30.
  g.relayed(0, 7, 30'000);
  g.sent(8, at_ms(200));
  g.echoed(2, 8);
  CHECK(*g.confirmed(at_ms(210)) == at_ms(200));
  // Node 2 goes silent: us + the disk as of 70 ms.
  QuorumGuard h(1, {{0, 1}, {1, 1}, {2, 1}}, QuorumTiming{});
  h.sent(7, at_ms(100));
  h.relayed(0, 7, 30'000);
  CHECK(*h.confirmed(at_ms(300)) == at_ms(70));
  h.relayed(0, 7, 50'000);  // an older age never moves it back
  CHECK(*h.confirmed(at_ms(300)) == at_ms(70));
  h.relayed(0, 99, 0);  // a sequence we never sent: ignored
  h.relayed(5, 7, 0);   // not a voter: ignored
  h.relayed(0, 7, 200'000);  // older than our clock's start: ignored
  CHECK(*h.confirmed(at_ms(300)) == at_ms(70));
}

}  // namespace clusterd
