#include "cluster_state.h"

#include <doctest/doctest.h>

namespace clusterd {
namespace {

Entry entry(Index index, EntryType type, Bytes data) {
  return {1, index, static_cast<std::uint16_t>(type), std::move(data)};
}

PlacementAction start(const std::string& group, const std::string& node, PlacementCause cause) {
  PlacementAction a;
  a.kind = ActionKind::Start;
  a.group = group;
  a.node = node;
  a.cause = cause;
  a.reason = "test";
  return a;
}

}  // namespace

TEST_CASE("cluster state: placement and reports drive the records, with epochs") {
  ClusterState s;
  REQUIRE(apply_entry(
      s, entry(1, EntryType::Placement,
               encode_placement({start("web", "node1", PlacementCause::Autostart)}, 1000))));
  CHECK(record_of(s, "web").phase == GroupPhase::Starting);
  CHECK(record_of(s, "web").node == "node1");
  CHECK(s.epochs.at("web") == 1);
  // A stale report (another node) changes nothing.
  auto stale = apply_entry(
      s, entry(2, EntryType::Report, encode_report({"web", "node2", GroupPhase::Online}, 2000)));
  REQUIRE(stale);
  CHECK(stale->empty());
  CHECK(record_of(s, "web").phase == GroupPhase::Starting);
  REQUIRE(apply_entry(
      s, entry(3, EntryType::Report, encode_report({"web", "node1", GroupPhase::Online}, 3000))));
  CHECK(record_of(s, "web").phase == GroupPhase::Online);
  CHECK(s.epochs.at("web") == 3);
  CHECK(s.applied == 3);
}

TEST_CASE("cluster state: configuration versions only grow") {
  ClusterState s;
  REQUIRE(apply_entry(s, entry(1, EntryType::Config, encode_config(2, "two"))));
  REQUIRE(apply_entry(s, entry(2, EntryType::Config, encode_config(1, "one"))));
  CHECK(s.config_version == 2);
  CHECK(s.config_yaml == "two");
}

TEST_CASE("cluster state: admin flags and maintenance") {
  ClusterState s;
  REQUIRE(apply_entry(s, entry(1, EntryType::Admin, encode_admin({"node2", NodeFlag::Paused}))));
  CHECK(s.admin.at("node2") == NodeFlag::Paused);
  REQUIRE(apply_entry(s, entry(2, EntryType::Admin, encode_admin({"node2", NodeFlag::None}))));
  CHECK_FALSE(s.admin.contains("node2"));
  REQUIRE(apply_entry(s, entry(3, EntryType::Admin, encode_admin({"", NodeFlag::None, true}))));
  CHECK(s.maintenance);
}

TEST_CASE("cluster state: a failover opens a timeline that collects its phases") {
  ClusterState s;
  REQUIRE(apply_entry(
      s, entry(1, EntryType::Placement,
               encode_placement({start("web", "node2", PlacementCause::NodeLoss)}, 5000))));
  REQUIRE(apply_entry(
      s, entry(2, EntryType::Timeline, encode_timeline("web", {"detected", "node1", 4000}))));
  REQUIRE(apply_entry(
      s, entry(3, EntryType::Report, encode_report({"web", "node2", GroupPhase::Online}, 6000))));
  REQUIRE(s.timelines.size() == 1);
  const Timeline& t = s.timelines[0];
  CHECK(t.cause == "node-loss");
  REQUIRE(t.phases.size() == 3);
  CHECK(t.phases[0].phase == "decided-start");
  CHECK(t.phases[1].phase == "detected");
  CHECK(t.phases[2].phase == "online");
}

TEST_CASE("cluster state: snapshots round-trip; malformed entries are ignored everywhere alike") {
  ClusterState s;
  REQUIRE(apply_entry(
      s, entry(1, EntryType::Placement,
               encode_placement({start("web", "node2", PlacementCause::Failover)}, 5000))));
  REQUIRE(apply_entry(s, entry(2, EntryType::Admin, encode_admin({"node3", NodeFlag::Draining}))));
  REQUIRE(apply_entry(s, entry(3, EntryType::Config, encode_config(7, "yaml: text\n"))));
  auto back = decode_state(encode_state(s));
  REQUIRE(back);
  CHECK(*back == s);
  ClusterState before = s;
  CHECK_FALSE(apply_entry(s, entry(4, EntryType::Admin, {'x'})));
  CHECK_FALSE(apply_entry(s, entry(5, EntryType::Placement, encode_config(1, "wrong shape"))));
  before.applied = 5;
  CHECK(s == before);
  CHECK(std::string(to_string(NodeFlag::Draining)) == "draining");
}

}  // namespace clusterd
