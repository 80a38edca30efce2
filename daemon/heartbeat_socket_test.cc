#include "heartbeat_socket.h"

#include <net/if.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <cstring>

#include <doctest/doctest.h>

#include "membership_test_util.h"

namespace clusterd {
namespace {

using testing::NetnsPair;
using testing::run_until;

constexpr std::uint32_t kCluster = 4242;
constexpr std::size_t kPublic = testing::kPublicNet;
constexpr std::size_t kPrivate = testing::kPrivateNet;
constexpr Duration kInterval(20);
constexpr std::uint32_t kMisses = 5;

SubKey test_key(std::uint8_t fill) {
  SubKey k;
  k.fill(fill);
  return k;
}

// Node a (id 1) in "local", node b (id 2) in "peer", on two links.
struct TwoNodes {
  std::unique_ptr<testing::TwoLinkNet> links;
  NetnsPair* net = nullptr;
  EventPtr loop = testing::new_loop();
  Config config = testing::two_node_config();
  std::unique_ptr<HeartbeatService> a, b;
  std::vector<DetectorEvent> a_events, b_events;

  TwoNodes() {
    auto created = testing::TwoLinkNet::create();
    REQUIRE_MESSAGE(created, created.error().to_string());
    links = std::move(*created);
    net = &links->pair();
    a = start("a", a_events);
    net->in_peer([&] { b = start("b", b_events); });
    REQUIRE(b);
  }
  ~TwoNodes() {
    a.reset();
    b.reset();
  }

  std::unique_ptr<HeartbeatService> start(const char* name, std::vector<DetectorEvent>& events) {
    auto options = HeartbeatOptions::from_config(config, name, test_key(7), 100);
    REQUIRE_MESSAGE(options, options.error().to_string());
    auto service = HeartbeatService::create(loop.get(), std::move(*options),
                                            [&events](const DetectorEvent& e) { events.push_back(e); });
    REQUIRE_MESSAGE(service, service.error().to_string());
    return std::move(*service);
  }

  void cut(const char* ifname) { REQUIRE(links->cut(ifname)); }

  bool all_links_up() const {
    return a->detector().link_up(2, kPublic) && a->detector().link_up(2, kPrivate) &&
           b->detector().link_up(1, kPublic) && b->detector().link_up(1, kPrivate);
  }

  static const DetectorEvent* find(const std::vector<DetectorEvent>& events,
                                   DetectorEventKind kind) {
    for (const auto& e : events)
      if (e.kind == kind) return &e;
    return nullptr;
  }
};

// A UDP socket for injecting frames onto a network, as an attacker on the segment would.
Fd sender_on(const InetAddress& local) {
  Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  in_addr address{};
  std::memcpy(&address, local.bytes.data(), 4);
  setsockopt(fd.get(), IPPROTO_IP, IP_MULTICAST_IF, &address, sizeof address);
  int off = 0;
  setsockopt(fd.get(), IPPROTO_IP, IP_MULTICAST_LOOP, &off, sizeof off);
  return fd;
}

// A socket that receives the group on `ifname`, as an eavesdropper would.
Fd listener_on(const InetAddress& group, const char* ifname) {
  Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  int on = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  socklen_t length = 0;
  sockaddr_storage at = make_sockaddr(group, 5405, 0, &length);
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&at), length) == 0);
  ip_mreqn membership{};
  std::memcpy(&membership.imr_multiaddr, group.bytes.data(), 4);
  membership.imr_ifindex = static_cast<int>(if_nametoindex(ifname));
  REQUIRE(setsockopt(fd.get(), IPPROTO_IP, IP_ADD_MEMBERSHIP, &membership, sizeof membership) == 0);
  return fd;
}

}  // namespace

TEST_CASE("default_multicast_group: organization-local IPv4, link-local IPv6, from the id") {
  CHECK(default_multicast_group(AF_INET, 0x01a2b3).to_string() == "239.192.162.179");
  CHECK(default_multicast_group(AF_INET6, 0x01a2b3).to_string() == "ff12::636c:1:a2b3");
}

TEST_CASE("cluster_networks: resolves interfaces, skips client networks, refuses strangers") {
  auto pair = NetnsPair::create();
  REQUIRE_MESSAGE(pair, pair.error().to_string());
  auto& net = *pair;
  REQUIRE(net->local("ip addr add 10.1.0.1/24 dev va") == 0);
  Config c = testing::two_node_config();
  c.networks.pop_back();  // only public
  c.networks[1].multicast_group = "239.1.2.3";
  auto nets = cluster_networks(c, c.nodes[0]);
  REQUIRE_MESSAGE(nets, nets.error().to_string());
  REQUIRE(nets->size() == 1);
  CHECK((*nets)[0].index == kPublic);
  CHECK((*nets)[0].ifname == "va");
  CHECK((*nets)[0].group.to_string() == "239.1.2.3");
  CHECK((*nets)[0].local.to_string() == "10.1.0.1");

  c.networks[1].multicast_group = "10.0.0.1";
  auto bad_group = cluster_networks(c, c.nodes[0]);
  REQUIRE_FALSE(bad_group);
  CHECK(bad_group.error().message.find("not a IPv4 multicast") != std::string::npos);
  c.networks[1].multicast_group = "";
  auto stranger = cluster_networks(c, c.nodes[1]);  // b's address is not here
  REQUIRE_FALSE(stranger);
  CHECK(stranger.error().message.find("10.1.0.2 is not configured") != std::string::npos);
  c.nodes[0].addresses.erase("public");
  CHECK_FALSE(cluster_networks(c, c.nodes[0]));
}

TEST_CASE("HeartbeatService: frames reach the peer over multicast on two networks") {
  TwoNodes t;
  REQUIRE(run_until(t.loop.get(), [&] { return t.all_links_up(); }, std::chrono::seconds(3)));
  CHECK(t.a->detector().reachable() == NodeSet().set(1).set(2));
  CHECK(t.b->detector().reachable(1));
  const HeartbeatCounters& pub = t.b->counters(kPublic);
  CHECK(pub.accepted > 0);
  CHECK(t.b->counters(kPrivate).accepted > 0);
  CHECK(t.b->counters(0).received == 0);  // the client network has no socket
  CHECK(pub.total_dropped() == 0);

  // What a node puts in its frames is what the peer sees.
  t.a->set_status({7, 1, 42, 0});
  REQUIRE(run_until(t.loop.get(), [&] {
    const PeerView* v = t.b->detector().view(1);
    return v && v->term == 7 && v->hears.test(2);
  }));
  const PeerView* v = t.b->detector().view(1);
  CHECK(v->coordinator == 1);
  CHECK(v->config_version == 42);
  CHECK(v->incarnation == 100);

  // A clean shutdown takes the node down at once on the other side.
  t.a->leave();
  REQUIRE(run_until(t.loop.get(), [&] { return !t.b->detector().reachable(1); },
                    std::chrono::milliseconds(50)));
  const DetectorEvent* gone = TwoNodes::find(t.b_events, DetectorEventKind::NodeUnreachable);
  REQUIRE(gone);
  CHECK(gone->leaving);
}

TEST_CASE("HeartbeatService: one cut network keeps the node; both cut lose it after the timeout") {
  TwoNodes t;
  REQUIRE(run_until(t.loop.get(), [&] { return t.all_links_up(); }, std::chrono::seconds(3)));
  t.cut("va");
  REQUIRE(run_until(t.loop.get(), [&] { return !t.b->detector().link_up(1, kPublic); }));
  testing::run_for(t.loop.get(), kInterval * kMisses);
  CHECK(t.b->detector().reachable(1));
  CHECK(t.a->detector().reachable(2));
  CHECK(TwoNodes::find(t.b_events, DetectorEventKind::NodeUnreachable) == nullptr);
  CHECK(t.a->counters(kPublic).send_errors > 0);  // the output rule refuses them

  MonoTime before = mono_now();
  t.cut("va2");
  MonoTime after = mono_now();
  REQUIRE(run_until(t.loop.get(), [&] { return !t.b->detector().reachable(1); }));
  const DetectorEvent* gone = TwoNodes::find(t.b_events, DetectorEventKind::NodeUnreachable);
  REQUIRE(gone);
  auto timeout = (kInterval * kMisses).count();
  // The last frame left at most one interval before the cut; detection follows the timeout
  // with a little loop latency.
  CHECK(gone->at.ms_since(before) >= timeout - kInterval.count() - 2);
  CHECK(gone->at.ms_since(after) <= timeout + 50);
  CHECK(gone->at.ms_since(*gone->last_heard) >= timeout);
  CHECK_FALSE(gone->leaving);

  // Healing brings it back.
  REQUIRE(t.links->heal());
  REQUIRE(run_until(t.loop.get(), [&] { return t.all_links_up(); }));
}

TEST_CASE("HeartbeatService: forged, replayed and foreign frames are dropped and counted") {
  TwoNodes t;
  REQUIRE(run_until(t.loop.get(), [&] { return t.all_links_up(); }, std::chrono::seconds(3)));
  InetAddress group = default_multicast_group(AF_INET, kCluster);
  Fd eavesdropper;
  t.net->in_peer([&] { eavesdropper = listener_on(group, "vb"); });
  HeartbeatBytes captured{};
  REQUIRE(run_until(t.loop.get(), [&] {
    return ::recv(eavesdropper.get(), captured.data(), captured.size(), 0) ==
           static_cast<ssize_t>(captured.size());
  }));
  REQUIRE(decode_heartbeat(captured, test_key(7), kCluster));

  Fd attacker = sender_on(*InetAddress::parse("10.1.0.1"));
  socklen_t length = 0;
  sockaddr_storage to = make_sockaddr(group, 5405, 0, &length);
  auto inject = [&](std::span<const std::uint8_t> bytes) {
    REQUIRE(::sendto(attacker.get(), bytes.data(), bytes.size(), 0,
                     reinterpret_cast<sockaddr*>(&to), length) == static_cast<ssize_t>(bytes.size()));
  };
  inject(captured);  // replay
  HeartbeatBytes tampered = captured;
  tampered[30] ^= 0x40;  // term
  inject(tampered);
  HeartbeatFrame forged = *decode_heartbeat(captured, test_key(7), kCluster);
  forged.sequence += 1000;  // would be fresh, but the key is wrong
  HeartbeatBytes bytes;
  encode_heartbeat(forged, test_key(8), bytes);
  inject(bytes);
  forged.cluster_id = kCluster + 1;
  encode_heartbeat(forged, test_key(7), bytes);
  inject(bytes);
  const std::uint8_t garbage[3000] = {};
  inject(garbage);

  const HeartbeatCounters& c = t.b->counters(kPublic);
  REQUIRE(run_until(t.loop.get(), [&] { return c.total_dropped() >= 5; }));
  CHECK(c.drops(HeartbeatDrop::Replay) == 1);
  CHECK(c.drops(HeartbeatDrop::BadAuth) == 2);
  CHECK(c.drops(HeartbeatDrop::ForeignCluster) == 1);
  CHECK(c.drops(HeartbeatDrop::Truncated) == 1);
  CHECK(t.b->detector().reachable(1));
  CHECK(t.b->detector().view(1)->sequence < forged.sequence);
}

}  // namespace clusterd

namespace clusterd {

// Slow (seconds) and load-dependent, so not part of the default run:
//   unit_tests -tc="*every core busy*" --no-skip
TEST_CASE("HeartbeatService: no false eviction with every core busy" * doctest::skip()) {
  TwoNodes t;
  REQUIRE(run_until(t.loop.get(), [&] { return t.all_links_up(); }, std::chrono::seconds(3)));
  std::vector<pid_t> hogs;
  for (long i = 0; i < 2 * sysconf(_SC_NPROCESSORS_ONLN); ++i) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
      for (;;) asm volatile("" ::: "memory");
    hogs.push_back(pid);
  }
  testing::run_for(t.loop.get(), std::chrono::seconds(5));
  for (pid_t pid : hogs) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  CHECK(TwoNodes::find(t.a_events, DetectorEventKind::LinkDown) == nullptr);
  CHECK(TwoNodes::find(t.b_events, DetectorEventKind::LinkDown) == nullptr);
  MESSAGE("frames sent by a: ", t.a->sequence(), " in ~5 s at 20 ms");
}

}  // namespace clusterd
