#include "peer_transport.h"

#include <set>
#include <string>

#include <doctest/doctest.h>

#include "membership_test_util.h"

namespace clusterd {
namespace {

using testing::run_until;

SubKey key_of(std::uint8_t fill) {
  SubKey k;
  k.fill(fill);
  return k;
}

const SubKey kKey = key_of(3);
constexpr std::uint32_t kCluster = 4242;

PeerHeader header() {
  return PeerHeader{PeerKind::Request, 1, 2, kCluster, 0x0102030405060708ull, 77, 0xbeef, 9};
}

PeerBytes bytes(const std::string& s) { return PeerBytes(s.begin(), s.end()); }
std::string text(std::span<const std::uint8_t> b) { return std::string(b.begin(), b.end()); }

}  // namespace

TEST_CASE("PeerKind and PeerDrop names are complete and distinct") {
  std::set<std::string> kinds, drops;
  for (int i = 0; i < kPeerKindCount; ++i) kinds.insert(to_string(static_cast<PeerKind>(i)));
  for (int i = 0; i < kPeerDropCount; ++i) drops.insert(to_string(static_cast<PeerDrop>(i)));
  CHECK(kinds.size() == kPeerKindCount);
  CHECK(drops.size() == kPeerDropCount);
}

TEST_CASE("peer datagram: header and payload round-trip; layout is big-endian") {
  PeerBytes out;
  PeerBytes payload = bytes("hello");
  encode_peer_datagram(header(), payload, kKey, out);
  REQUIRE(out.size() == kPeerHeaderSize + 5 + kPeerMacSize);
  CHECK(text(std::span(out).first(4)) == "CLPT");
  CHECK(out[5] == 1);     // request
  CHECK(out[6] == 1);     // from
  CHECK(out[7] == 2);     // to
  CHECK(out[12] == 0x01); // incarnation, most significant byte first
  CHECK(out[27] == 77);   // sequence, least significant byte last
  CHECK(out[28] == 0xbe);
  CHECK(out[43] == 5);    // payload length
  auto d = decode_peer_datagram(out, kKey, kCluster);
  REQUIRE(d);
  CHECK(d->header == header());
  CHECK(text(d->payload) == "hello");
  PeerBytes empty;
  encode_peer_datagram(header(), {}, kKey, empty);
  REQUIRE(decode_peer_datagram(empty, kKey, kCluster));
  CHECK(decode_peer_datagram(empty, kKey, kCluster)->payload.empty());
}

TEST_CASE("peer datagram: tampering, wrong key, foreign cluster, bad lengths are dropped") {
  PeerBytes good;
  encode_peer_datagram(header(), bytes("payload"), kKey, good);
  for (std::size_t i = 0; i < good.size(); ++i) {
    PeerBytes bad = good;
    bad[i] ^= 0x10;
    auto r = decode_peer_datagram(bad, kKey, kCluster);
    REQUIRE_FALSE(r);
    if (i < 4) CHECK(r.error() == PeerDrop::BadMagic);
    else if (i == 4) CHECK(r.error() == PeerDrop::BadVersion);
    else if (i >= 8 && i < 12) CHECK(r.error() == PeerDrop::ForeignCluster);
    else if (i >= 40 && i < 44) CHECK(r.error() == PeerDrop::Truncated);
    else CHECK(r.error() == PeerDrop::BadAuth);
  }
  CHECK(decode_peer_datagram(good, key_of(4), kCluster).error() == PeerDrop::BadAuth);
  CHECK(decode_peer_datagram(good, kKey, 1).error() == PeerDrop::ForeignCluster);
  CHECK(decode_peer_datagram(std::span(good).first(40), kKey, kCluster).error() ==
        PeerDrop::Truncated);
  CHECK(decode_peer_datagram(std::span(good).first(good.size() - 1), kKey, kCluster).error() ==
        PeerDrop::Truncated);
  PeerBytes garbage(100, 0x42);
  CHECK(decode_peer_datagram(garbage, kKey, kCluster).error() == PeerDrop::BadMagic);
  PeerBytes huge(kPeerMaxPayload + 1);
  PeerBytes too_big;
  encode_peer_datagram(header(), huge, kKey, too_big);
  CHECK(decode_peer_datagram(too_big, kKey, kCluster).error() == PeerDrop::Truncated);
  PeerBytes largest;
  encode_peer_datagram(header(), std::span(huge).first(kPeerMaxPayload), kKey, largest);
  CHECK(largest.size() == kPeerMaxDatagram);
  CHECK(decode_peer_datagram(largest, kKey, kCluster));
}

TEST_CASE("ReplayWindow: in order, reordered within the window, duplicates, restarts") {
  ReplayWindow w;
  CHECK_FALSE(w.check(5, 1));
  CHECK_FALSE(w.check(5, 3));
  CHECK_FALSE(w.check(5, 2));  // reordered: fine once
  CHECK(w.check(5, 2) == PeerDrop::Replay);
  CHECK(w.check(5, 3) == PeerDrop::Replay);
  CHECK(w.check(5, 0) == PeerDrop::Replay);
  CHECK_FALSE(w.check(5, 3 + kPeerReplayWindow - 1));
  CHECK(w.check(5, 3) == PeerDrop::Replay);     // now out of the window
  CHECK_FALSE(w.check(5, 4));                    // the window's oldest slot
  CHECK_FALSE(w.check(5, 10000));                // a jump clears the window
  CHECK_FALSE(w.check(5, 9999));
  CHECK(w.check(4, 20000) == PeerDrop::OldIncarnation);
  CHECK_FALSE(w.check(6, 1));                    // restarted sender
  CHECK(w.incarnation() == 6);
  CHECK(w.check(5, 10001) == PeerDrop::OldIncarnation);
}

namespace {

// Transports of nodes a (local) and b (peer) on the two test links.
struct TwoTransports {
  std::unique_ptr<testing::TwoLinkNet> links;
  EventPtr loop = testing::new_loop();
  Config config = testing::two_node_config();
  std::unique_ptr<PeerTransport> a, b;

  TwoTransports() {
    auto created = testing::TwoLinkNet::create();
    REQUIRE_MESSAGE(created, created.error().to_string());
    links = std::move(*created);
    a = start("a", 10);
    links->pair().in_peer([&] { b = start("b", 20); });
    REQUIRE(b);
  }
  ~TwoTransports() {
    a.reset();
    b.reset();
  }
  std::unique_ptr<PeerTransport> start(const char* name, std::uint64_t incarnation) {
    auto options = PeerTransportOptions::from_config(config, name, kKey, incarnation);
    REQUIRE_MESSAGE(options, options.error().to_string());
    options->retry = RetryPolicy{Duration(20), Duration(200)};
    auto t = PeerTransport::create(loop.get(), std::move(*options));
    REQUIRE_MESSAGE(t, t.error().to_string());
    return std::move(*t);
  }
};

}  // namespace

TEST_CASE("PeerTransport: oneway messages and requests between two nodes, on either network") {
  TwoTransports t;
  std::vector<std::string> got;
  std::size_t network = 99;
  t.b->on_message(5, [&](const PeerMessage& m) {
    CHECK(m.from == 1);
    CHECK(m.incarnation == 10);
    network = m.network;
    got.push_back(text(m.payload));
  });
  t.b->on_request(6, [&](const PeerMessage& m, PeerReply reply) {
    reply(bytes("re: " + text(m.payload)));
  });
  REQUIRE(t.a->send(2, 5, bytes("one")));
  REQUIRE(run_until(t.loop.get(), [&] { return !got.empty(); }));
  CHECK(got[0] == "one");
  // Without link state it went over both networks; the second copy is dropped, not delivered.
  REQUIRE(run_until(t.loop.get(), [&] { return t.b->counters().drops(PeerDrop::Replay) == 1; }));
  CHECK(got.size() == 1);

  // With the detector saying only the private network is up, that is the one used.
  t.a->set_link_state([](std::uint8_t, std::size_t n) { return n == testing::kPrivateNet; });
  REQUIRE(t.a->send(2, 5, bytes("two")));
  REQUIRE(run_until(t.loop.get(), [&] { return got.size() == 2; }));
  CHECK(network == testing::kPrivateNet);

  std::optional<Result<PeerBytes>> answer;
  t.a->request(2, 6, bytes("ping"), Duration(1000), [&](Result<PeerBytes> r) { answer = r; });
  REQUIRE(run_until(t.loop.get(), [&] { return answer.has_value(); }));
  REQUIRE(*answer);
  CHECK(text(**answer) == "re: ping");
  CHECK(t.a->pending_requests() == 0);

  // A type nobody serves is refused at once, not timed out.
  std::optional<Result<PeerBytes>> refused;
  t.a->request(2, 99, bytes("?"), Duration(5000), [&](Result<PeerBytes> r) { refused = r; });
  REQUIRE(run_until(t.loop.get(), [&] { return refused.has_value(); }, Duration(1000)));
  REQUIRE_FALSE(*refused);
  CHECK(refused->error().message.find("no handler") != std::string::npos);
  CHECK_FALSE(t.a->send(3, 5, bytes("x")));  // not a peer
}

TEST_CASE("PeerTransport: drain_all reads what is queued without the loop running") {
  // What the cluster service's timer relies on after a stall: the echo is handled before the
  // deadline that it would have pushed back is judged.
  TwoTransports t;
  std::vector<std::string> got;
  t.b->on_message(5, [&](const PeerMessage& m) { got.push_back(text(m.payload)); });
  t.a->set_link_state([](std::uint8_t, std::size_t n) { return n == testing::kPublicNet; });
  REQUIRE(t.a->send(2, 5, bytes("queued")));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (got.empty() && std::chrono::steady_clock::now() < deadline) t.b->drain_all();
  REQUIRE(got.size() == 1);
  CHECK(got[0] == "queued");
  t.b->drain_all();  // nothing more queued: nothing more handled
  CHECK(got.size() == 1);
}

TEST_CASE("PeerTransport: requests survive 30 % loss each way; handlers run once per request") {
  TwoTransports t;
  int handled = 0;
  t.b->on_request(1, [&](const PeerMessage& m, PeerReply reply) {
    ++handled;
    reply(m.payload);
  });
  REQUIRE(t.links->nft_rule("in numgen random mod 100 < 30 drop"));
  REQUIRE(t.links->nft_rule("out numgen random mod 100 < 30 drop"));
  constexpr int kRequests = 40;
  int ok = 0, failed = 0;
  for (int i = 0; i < kRequests; ++i)
    t.a->request(2, 1, bytes(std::to_string(i)), Duration(3000), [&, i](Result<PeerBytes> r) {
      if (r && text(*r) == std::to_string(i)) ++ok;
      else ++failed;
    });
  REQUIRE(run_until(t.loop.get(), [&] { return ok + failed == kRequests; },
                    std::chrono::seconds(5)));
  CHECK(ok == kRequests);
  CHECK(handled == kRequests);
  CHECK(t.a->counters().retransmits > 0);
  CHECK(t.b->counters().duplicate_requests > 0);
}

TEST_CASE("PeerTransport: a request to a node that is gone fails at its deadline") {
  TwoTransports t;
  t.b.reset();
  std::optional<Result<PeerBytes>> answer;
  MonoTime start = mono_now();
  t.a->request(2, 1, bytes("anyone?"), Duration(300), [&](Result<PeerBytes> r) { answer = r; });
  REQUIRE(run_until(t.loop.get(), [&] { return answer.has_value(); }));
  auto took = mono_now().ms_since(start);
  CHECK(took >= 299);
  CHECK(took < 450);
  REQUIRE_FALSE(*answer);
  CHECK(answer->error().message == "no answer from node 2 to a request of type 1 within 300 ms");
  CHECK(t.a->counters().requests_failed == 1);
  CHECK(t.a->counters().retransmits >= 3);  // 20, 40, 80, 160 ms backoff
  CHECK(t.a->pending_requests() == 0);
}

TEST_CASE("PeerTransport: forged, foreign, misdirected and replayed datagrams are counted") {
  TwoTransports t;
  int handled = 0;
  t.b->on_message(5, [&](const PeerMessage&) { ++handled; });
  // An attacker on the public segment, next to a.
  Fd attacker(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  socklen_t length = 0;
  sockaddr_storage to = make_sockaddr(*InetAddress::parse("10.1.0.2"), 5406, 0, &length);
  auto inject = [&](const PeerBytes& b) {
    ::sendto(attacker.get(), b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&to), length);
  };
  PeerHeader h{PeerKind::Oneway, 1, 2, kCluster, 10, 1000, 5, 0};
  PeerBytes d;
  encode_peer_datagram(h, bytes("genuine"), kKey, d);
  inject(d);
  inject(d);  // replay
  encode_peer_datagram(h, bytes("forged"), key_of(9), d);
  inject(d);
  h.sequence = 1001;
  h.to = 3;
  encode_peer_datagram(h, {}, kKey, d);
  inject(d);  // misdirected
  h.to = 2;
  h.from = 7;
  encode_peer_datagram(h, {}, kKey, d);
  inject(d);  // unknown sender
  h.from = 1;
  h.cluster_id = 1;
  encode_peer_datagram(h, {}, kKey, d);
  inject(d);
  h.cluster_id = kCluster;
  h.incarnation = 9;
  encode_peer_datagram(h, {}, kKey, d);
  inject(d);  // older incarnation than the genuine one
  const PeerCounters& c = t.b->counters();
  REQUIRE(run_until(t.loop.get(), [&] { return c.received == 7; }));
  CHECK(handled == 1);
  CHECK(c.drops(PeerDrop::Replay) == 1);
  CHECK(c.drops(PeerDrop::BadAuth) == 1);
  CHECK(c.drops(PeerDrop::NotForUs) == 1);
  CHECK(c.drops(PeerDrop::BadNode) == 1);
  CHECK(c.drops(PeerDrop::ForeignCluster) == 1);
  CHECK(c.drops(PeerDrop::OldIncarnation) == 1);
}

}  // namespace clusterd
