#include "heartbeat.h"

#include <set>
#include <string>

#include <doctest/doctest.h>

namespace clusterd {
namespace {

SubKey key_of(std::uint8_t fill) {
  SubKey key;
  key.fill(fill);
  return key;
}

const SubKey kKey = key_of(1);
constexpr std::uint32_t kCluster = 0x123456;

HeartbeatFrame sample() {
  HeartbeatFrame f;
  f.cluster_id = kCluster;
  f.node_id = 2;
  f.network = 1;
  f.flags = kHeartbeatLeaving;
  f.incarnation = 0x0102030405060708ull;
  f.sequence = 0x1112131415161718ull;
  f.term = 0x2122232425262728ull;
  f.coordinator = 3;
  f.config_version = 0x3132333435363738ull;
  f.hears.set(1).set(2).set(3).set(200).set(255);
  return f;
}

HeartbeatBytes encode(const HeartbeatFrame& f, const SubKey& key = kKey) {
  HeartbeatBytes out;
  encode_heartbeat(f, key, out);
  return out;
}

NodeSet members(std::initializer_list<int> ids) {
  NodeSet set;
  for (int id : ids) set.set(id);
  return set;
}

}  // namespace

TEST_CASE("HeartbeatDrop names are complete and distinct") {
  std::set<std::string> names;
  for (int i = 0; i < kHeartbeatDropCount; ++i) {
    std::string name = to_string(static_cast<HeartbeatDrop>(i));
    CHECK(!name.empty());
    names.insert(name);
  }
  CHECK(names.size() == kHeartbeatDropCount);
  CHECK(std::string(to_string(HeartbeatDrop::Replay)) == "replay");
}

TEST_CASE("heartbeat: every field round-trips") {
  HeartbeatFrame f = sample();
  auto back = decode_heartbeat(encode(f), kKey, kCluster);
  REQUIRE(back);
  CHECK(*back == f);
  HeartbeatFrame empty;
  empty.cluster_id = kCluster;
  empty.node_id = 255;
  auto back2 = decode_heartbeat(encode(empty), kKey, kCluster);
  REQUIRE(back2);
  CHECK(*back2 == empty);
}

TEST_CASE("heartbeat: the wire layout is big-endian at fixed offsets") {
  HeartbeatBytes b = encode(sample());
  CHECK(b.size() == 112);
  CHECK(std::string(b.begin(), b.begin() + 4) == "CLHB");
  CHECK(b[4] == kHeartbeatVersion);
  CHECK(b[5] == kHeartbeatLeaving);
  CHECK(b[6] == 1);   // network
  CHECK(b[7] == 2);   // node
  CHECK(b[8] == 0);   // cluster id, big-endian
  CHECK(b[9] == 0x12);
  CHECK(b[11] == 0x56);
  CHECK(b[12] == 0x01);  // incarnation
  CHECK(b[19] == 0x08);
  CHECK(b[20] == 0x11);  // sequence
  CHECK(b[28] == 0x21);  // term
  CHECK(b[36] == 3);     // coordinator
  CHECK(b[37] == 0);
  CHECK(b[40] == 0x31);  // config version
  CHECK(b[48] == 0x0e);  // hears: nodes 1, 2, 3 in byte 0
  CHECK(b[48 + 25] == 0x01);  // node 200
  CHECK(b[48 + 31] == 0x80);  // node 255
}

TEST_CASE("heartbeat: any flipped bit fails authentication or the header checks") {
  HeartbeatBytes good = encode(sample());
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; bit += 3) {
      HeartbeatBytes bad = good;
      bad[i] ^= static_cast<std::uint8_t>(1u << bit);
      auto r = decode_heartbeat(bad, kKey, kCluster);
      REQUIRE_FALSE(r);
      if (i < 4) CHECK(r.error() == HeartbeatDrop::BadMagic);
      else if (i == 4) CHECK(r.error() == HeartbeatDrop::BadVersion);
      else if (i >= 8 && i < 12) CHECK(r.error() == HeartbeatDrop::ForeignCluster);
      else CHECK(r.error() == HeartbeatDrop::BadAuth);
    }
  }
}

TEST_CASE("heartbeat: wrong key, foreign cluster, truncated and garbage are dropped") {
  HeartbeatBytes b = encode(sample());
  CHECK(decode_heartbeat(b, key_of(2), kCluster).error() == HeartbeatDrop::BadAuth);
  CHECK(decode_heartbeat(b, kKey, kCluster + 1).error() == HeartbeatDrop::ForeignCluster);
  HeartbeatFrame other = sample();
  other.cluster_id = 7;
  CHECK(decode_heartbeat(encode(other, key_of(9)), kKey, kCluster).error() ==
        HeartbeatDrop::ForeignCluster);
  std::span<const std::uint8_t> all(b);
  CHECK(decode_heartbeat(all.first(0), kKey, kCluster).error() == HeartbeatDrop::Truncated);
  CHECK(decode_heartbeat(all.first(4), kKey, kCluster).error() == HeartbeatDrop::Truncated);
  CHECK(decode_heartbeat(all.first(111), kKey, kCluster).error() == HeartbeatDrop::Truncated);
  std::vector<std::uint8_t> longer(b.begin(), b.end());
  longer.push_back(0);
  CHECK(decode_heartbeat(longer, kKey, kCluster).error() == HeartbeatDrop::Truncated);
  std::vector<std::uint8_t> garbage(112, 0xa5);
  CHECK(decode_heartbeat(garbage, kKey, kCluster).error() == HeartbeatDrop::BadMagic);
}

TEST_CASE("HeartbeatVerifier: accepts, rejects replays and old incarnations, counts per network") {
  HeartbeatVerifier v(kKey, kCluster, 1, members({1, 2, 3}), 2);
  HeartbeatFrame f = sample();
  f.flags = 0;
  f.network = 1;
  REQUIRE(v.accept(encode(f), 1));
  CHECK(v.accept(encode(f), 1).error() == HeartbeatDrop::Replay);
  ++f.sequence;
  REQUIRE(v.accept(encode(f), 1));
  f.sequence -= 2;
  CHECK(v.accept(encode(f), 1).error() == HeartbeatDrop::Replay);
  // A restart: higher incarnation, sequence starts again.
  HeartbeatFrame restarted = f;
  ++restarted.incarnation;
  restarted.sequence = 1;
  REQUIRE(v.accept(encode(restarted), 1));
  f.sequence += 100;
  CHECK(v.accept(encode(f), 1).error() == HeartbeatDrop::OldIncarnation);
  // Network 0 keeps its own sequence: the same tick is sent on every network.
  restarted.network = 0;
  REQUIRE(v.accept(encode(restarted), 0));

  const HeartbeatCounters& c = v.counters(1);
  CHECK(c.received == 6);
  CHECK(c.accepted == 3);
  CHECK(c.drops(HeartbeatDrop::Replay) == 2);
  CHECK(c.drops(HeartbeatDrop::OldIncarnation) == 1);
  CHECK(c.total_dropped() == 3);
  CHECK(v.counters(0).accepted == 1);
}

TEST_CASE("HeartbeatVerifier: unknown node, our own id, wrong network, forgeries") {
  HeartbeatVerifier v(kKey, kCluster, 1, members({1, 2, 3}), 2);
  HeartbeatFrame f = sample();
  f.network = 0;
  f.node_id = 4;
  CHECK(v.accept(encode(f), 0).error() == HeartbeatDrop::BadNode);
  f.node_id = 0;
  CHECK(v.accept(encode(f), 0).error() == HeartbeatDrop::BadNode);
  f.node_id = 1;
  CHECK(v.accept(encode(f), 0).error() == HeartbeatDrop::FromSelf);
  f.node_id = 2;
  CHECK(v.accept(encode(f), 1).error() == HeartbeatDrop::WrongNetwork);
  // A forgery with a huge sequence must not move the replay window.
  HeartbeatFrame forged = f;
  forged.sequence = ~0ull;
  CHECK(v.accept(encode(forged, key_of(3)), 0).error() == HeartbeatDrop::BadAuth);
  REQUIRE(v.accept(encode(f), 0));
  CHECK(v.counters(0).drops(HeartbeatDrop::BadNode) == 2);
  CHECK(v.counters(0).drops(HeartbeatDrop::FromSelf) == 1);
  CHECK(v.counters(0).drops(HeartbeatDrop::BadAuth) == 1);
  CHECK(v.counters(1).drops(HeartbeatDrop::WrongNetwork) == 1);
  v.count_oversized(1);
  CHECK(v.counters(1).drops(HeartbeatDrop::Truncated) == 1);
}

}  // namespace clusterd
