#include "failure_detector.h"

#include <set>
#include <string>

#include <doctest/doctest.h>

namespace clusterd {
namespace {

using Kind = DetectorEventKind;

MonoTime ms(std::int64_t t) { return MonoTime{static_cast<Usec>(t) * 1000}; }

// Nodes 1 (us), 2 and 3; two networks; 100 ms x 5.
struct Fixture {
  FailureDetector fd{1, {1, 2, 3}, 2, DetectorTiming{}};
  std::vector<DetectorEvent> events;
  std::uint64_t seq = 0;

  HeartbeatFrame frame(std::uint8_t node, std::uint64_t incarnation = 10) {
    HeartbeatFrame f;
    f.node_id = node;
    f.incarnation = incarnation;
    f.sequence = ++seq;
    return f;
  }
  std::vector<DetectorEvent> hear(std::uint8_t node, std::size_t net, std::int64_t t,
                                  std::uint64_t incarnation = 10) {
    events.clear();
    fd.heard(frame(node, incarnation), net, ms(t), events);
    return events;
  }
  std::vector<DetectorEvent> at(std::int64_t t) {
    events.clear();
    fd.expire(ms(t), events);
    return events;
  }
};

bool has(const std::vector<DetectorEvent>& events, Kind kind, std::uint8_t node) {
  for (const auto& e : events)
    if (e.kind == kind && e.node == node) return true;
  return false;
}

}  // namespace

TEST_CASE("DetectorEventKind names are complete and distinct") {
  std::set<std::string> names;
  for (int i = 0; i < kDetectorEventKindCount; ++i)
    names.insert(to_string(static_cast<DetectorEventKind>(i)));
  CHECK(names.size() == kDetectorEventKindCount);
  CHECK(names.count("node-unreachable") == 1);
}

TEST_CASE("DetectorTiming: defaults and limits") {
  DetectorTiming t;
  CHECK(t.timeout() == Duration(500));
  CHECK(t.validate());
  CHECK(DetectorTiming{Duration(10), 3}.validate());
  CHECK_FALSE(DetectorTiming{Duration(1), 5}.validate());
  CHECK_FALSE(DetectorTiming{Duration(100), 1}.validate());
  CHECK(DetectorTiming{Duration(10), 5}.timeout() == Duration(50));
}

TEST_CASE("FailureDetector: nobody but us is reachable before the first frame") {
  Fixture f;
  CHECK(f.fd.reachable() == NodeSet().set(1));
  CHECK(f.fd.reachable(1));
  CHECK_FALSE(f.fd.reachable(2));
  CHECK(f.at(100000).empty());
  CHECK_FALSE(f.fd.next_deadline());
  CHECK(f.fd.view(2) == nullptr);
  CHECK_FALSE(f.fd.last_heard(2, 0));
}

TEST_CASE("FailureDetector: the first frame brings the link and the node up, in that order") {
  Fixture f;
  auto e = f.hear(2, 0, 1000);
  REQUIRE(e.size() == 2);
  CHECK(e[0] == DetectorEvent{Kind::LinkUp, 2, 0, ms(1000), {}, false});
  CHECK(e[1] == DetectorEvent{Kind::NodeReachable, 2, {}, ms(1000), {}, false});
  CHECK(f.fd.reachable(2));
  CHECK(f.fd.link_up(2, 0));
  CHECK_FALSE(f.fd.link_up(2, 1));
  CHECK(f.fd.reachable() == NodeSet().set(1).set(2));
  CHECK(*f.fd.last_heard(2, 0) == ms(1000));
  CHECK(*f.fd.next_deadline() == ms(1500));
  // The second network: link up only.
  e = f.hear(2, 1, 1010);
  REQUIRE(e.size() == 1);
  CHECK(e[0].kind == Kind::LinkUp);
  CHECK(e[0].network == 1u);
  CHECK(f.hear(2, 0, 1100).empty());
}

TEST_CASE("FailureDetector: down exactly misses*interval after the last frame, not before") {
  Fixture f;
  f.hear(2, 0, 1000);
  CHECK(f.at(1499).empty());
  CHECK(f.fd.reachable(2));
  auto e = f.at(1500);
  REQUIRE(e.size() == 2);
  CHECK(e[0] == DetectorEvent{Kind::LinkDown, 2, 0, ms(1500), ms(1000), false});
  CHECK(e[1] == DetectorEvent{Kind::NodeUnreachable, 2, {}, ms(1500), ms(1000), false});
  CHECK_FALSE(f.fd.reachable(2));
  CHECK_FALSE(f.fd.next_deadline());
  CHECK(f.at(3000).empty());  // reported once
}

TEST_CASE("FailureDetector: a late expire reports the time it detected, not the deadline") {
  Fixture f;
  f.hear(2, 0, 1000);
  auto e = f.at(2345);
  REQUIRE(e.size() == 2);
  CHECK(e[1].at == ms(2345));
  CHECK(*e[1].last_heard == ms(1000));
}

TEST_CASE("FailureDetector: steady heartbeats keep a node up indefinitely") {
  Fixture f;
  for (int t = 0; t <= 10000; t += 100) {
    f.hear(2, 0, t);
    CHECK(f.at(t + 99).empty());
  }
  CHECK(f.fd.reachable(2));
  // Four lost frames in a row are tolerated, five are not.
  f.hear(2, 0, 10500);
  CHECK(f.at(10999).empty());
  CHECK(has(f.at(11000), Kind::NodeUnreachable, 2));
}

TEST_CASE("FailureDetector: reachable while ANY network carries frames") {
  Fixture f;
  f.hear(2, 0, 0);
  f.hear(2, 1, 0);
  // Network 0 is cut at 0; network 1 keeps going.
  for (int t = 100; t <= 1000; t += 100) {
    f.hear(2, 1, t);
    auto e = f.at(t);
    if (t == 500) {
      REQUIRE(e.size() == 1);
      CHECK(e[0] == DetectorEvent{Kind::LinkDown, 2, 0, ms(500), ms(0), false});
    } else {
      CHECK(e.empty());
    }
  }
  CHECK(f.fd.reachable(2));
  CHECK_FALSE(f.fd.link_up(2, 0));
  CHECK(f.fd.link_up(2, 1));
  CHECK(*f.fd.next_deadline() == ms(1500));
  // Network 1 goes too: the node follows its last link.
  auto e = f.at(1500);
  REQUIRE(e.size() == 2);
  CHECK(e[0].kind == Kind::LinkDown);
  CHECK(e[0].network == 1u);
  CHECK(e[1] == DetectorEvent{Kind::NodeUnreachable, 2, {}, ms(1500), ms(1000), false});
  // Network 0 healing brings it back.
  e = f.hear(2, 0, 2000);
  CHECK(has(e, Kind::LinkUp, 2));
  CHECK(has(e, Kind::NodeReachable, 2));
}

TEST_CASE("FailureDetector: nodes are independent") {
  Fixture f;
  f.hear(2, 0, 0);
  f.hear(3, 1, 300);
  CHECK(*f.fd.next_deadline() == ms(500));
  auto e = f.at(500);
  CHECK(has(e, Kind::NodeUnreachable, 2));
  CHECK_FALSE(has(e, Kind::NodeUnreachable, 3));
  CHECK(f.fd.reachable() == NodeSet().set(1).set(3));
  CHECK(has(f.at(800), Kind::NodeUnreachable, 3));
}

TEST_CASE("FailureDetector: a higher incarnation is a restart; an older one changes nothing") {
  Fixture f;
  f.hear(2, 0, 0, 10);
  auto e = f.hear(2, 0, 100, 11);
  REQUIRE(e.size() == 1);
  CHECK(e[0] == DetectorEvent{Kind::NodeRestarted, 2, {}, ms(100), {}, false});
  CHECK(f.fd.view(2)->incarnation == 11);
  // A restart noticed after the node had gone: restarted, then up.
  f.at(600);
  e = f.hear(2, 1, 700, 12);
  REQUIRE(e.size() == 3);
  CHECK(e[0].kind == Kind::NodeRestarted);
  CHECK(e[1].kind == Kind::LinkUp);
  CHECK(e[2].kind == Kind::NodeReachable);
  CHECK(f.hear(2, 0, 800, 11).empty());
  CHECK_FALSE(f.fd.link_up(2, 0));
  CHECK(f.fd.view(2)->incarnation == 12);
}

TEST_CASE("FailureDetector: a leaving frame takes the node down at once, and it stays down") {
  Fixture f;
  f.hear(2, 0, 0);
  f.hear(2, 1, 0);
  HeartbeatFrame bye = f.frame(2);
  bye.flags = kHeartbeatLeaving;
  f.events.clear();
  f.fd.heard(bye, 0, ms(50), f.events);
  REQUIRE(f.events.size() == 3);
  CHECK(f.events[0].kind == Kind::LinkDown);
  CHECK(f.events[1].kind == Kind::LinkDown);
  CHECK(f.events[2] == DetectorEvent{Kind::NodeUnreachable, 2, {}, ms(50), ms(0), true});
  // A normal frame of the same incarnation still in flight on network 1 does not revive it.
  CHECK(f.hear(2, 1, 60).empty());
  CHECK_FALSE(f.fd.reachable(2));
  f.events.clear();
  f.fd.heard(bye, 1, ms(70), f.events);
  CHECK(f.events.empty());
  // The restarted daemon comes back.
  CHECK(has(f.hear(2, 0, 900, 11), Kind::NodeReachable, 2));
}

TEST_CASE("FailureDetector: the peer's view is what its last frame said") {
  Fixture f;
  HeartbeatFrame h = f.frame(3);
  h.term = 7;
  h.coordinator = 3;
  h.config_version = 42;
  h.hears.set(1).set(3);
  f.fd.heard(h, 1, ms(5), f.events);
  const PeerView* v = f.fd.view(3);
  REQUIRE(v);
  CHECK(v->term == 7);
  CHECK(v->coordinator == 3);
  CHECK(v->config_version == 42);
  CHECK(v->hears == NodeSet().set(1).set(3));
  CHECK(v->at == ms(5));
  CHECK(v->sequence == h.sequence);
}

TEST_CASE("FailureDetector: strangers, ourselves and unknown networks are ignored") {
  Fixture f;
  CHECK(f.hear(4, 0, 0).empty());
  CHECK(f.hear(1, 0, 0).empty());
  CHECK(f.hear(2, 2, 0).empty());
  CHECK(f.fd.reachable() == NodeSet().set(1));
  CHECK_FALSE(f.fd.link_up(4, 0));
}

TEST_CASE("FailureDetector: 10 ms interval, frames out of order in time") {
  FailureDetector fd(1, {2}, 1, DetectorTiming{Duration(10), 3});
  std::vector<DetectorEvent> events;
  HeartbeatFrame h;
  h.node_id = 2;
  h.incarnation = 1;
  fd.heard(h, 0, ms(100), events);
  fd.heard(h, 0, ms(90), events);  // an older timestamp never moves last-heard back
  CHECK(*fd.last_heard(2, 0) == ms(100));
  events.clear();
  fd.expire(ms(129), events);
  CHECK(events.empty());
  fd.expire(ms(130), events);
  CHECK(has(events, Kind::NodeUnreachable, 2));
}

}  // namespace clusterd
