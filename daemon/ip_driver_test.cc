#include "ip_driver.h"

#include <linux/if_addr.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/socket.h>

#include <doctest/doctest.h>

#include "announce.h"
#include "netlink_watcher.h"
#include "netns_fixture.h"

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using testing::NetnsPair;
using testing::run_until;

InetAddress ip(const char* text) { return *InetAddress::parse(text); }

Params params(std::initializer_list<std::pair<const char*, const char*>> values) {
  Params p;
  for (auto [name, value] : values) {
    ParamValue v;
    v.scalar = value;
    p[name] = v;
  }
  return p;
}

IpParams fast(const char* address) {
  IpParams p;
  p.address = *InetPrefix::parse(address);
  p.arp_count = 3;
  p.arp_interval = 20ms;
  p.probe_wait = 50ms;
  return p;
}

// va (local, 10.0.0.1/24) -- vb (peer, 10.0.0.2/24), a watcher in local, drivers on our loop.
struct IpFixture {
  std::unique_ptr<NetnsPair> net;
  EventPtr loop = testing::new_loop();
  std::shared_ptr<NetlinkWatcher> watcher;
  DriverContext context;
  int va = 0;

  IpFixture() {
    auto pair = NetnsPair::create();
    REQUIRE_MESSAGE(pair, pair.error().to_string());
    net = std::move(*pair);
    REQUIRE(net->local("ip addr add 10.0.0.1/24 dev va && ip addr add fd00::1/64 dev va nodad") ==
            0);
    REQUIRE(net->peer("ip addr add 10.0.0.2/24 dev vb && ip addr add fd00::2/64 dev vb nodad") ==
            0);
    auto created = NetlinkWatcher::create(loop.get());
    REQUIRE_MESSAGE(created, created.error().to_string());
    watcher = std::move(*created);
    va = watcher->find_link("va")->ifindex;
    // The veth carrier comes up through the kernel's linkwatch, a moment after "up".
    REQUIRE(run_until(loop.get(), [&] { return watcher->link_up(va); }));
    context.loop = loop.get();
    context.netlink = watcher;
  }
  ~IpFixture() { watcher.reset(); }

  std::unique_ptr<ResourceDriver> driver(const IpParams& p, std::string name = "web") {
    auto d = make_ip_driver(name, p, context);
    REQUIRE_MESSAGE(d, d.error().to_string());
    return std::move(*d);
  }

  template <typename Action>
  ActionResult run(Action action) {
    std::optional<ActionResult> result;
    action([&](ActionResult r) { result = std::move(r); });
    REQUIRE(run_until(loop.get(), [&] { return result.has_value(); }));
    return *result;
  }
  ActionResult start(ResourceDriver& d) { return run([&](auto done) { d.start(done); }); }
  ActionResult stop(ResourceDriver& d) { return run([&](auto done) { d.stop(done); }); }
  ActionResult monitor(ResourceDriver& d) {
    return run([&](auto done) { d.monitor(MonitorLevel::IsAlive, done); });
  }

  // The kernel's view, from a fresh dump (not the watcher under test).
  std::optional<AddressInfo> kernel_address(const char* address) {
    auto fresh = NetlinkWatcher::create(loop.get());
    REQUIRE(fresh);
    const AddressInfo* info = (*fresh)->find_address(va, ip(address));
    return info ? std::optional(*info) : std::nullopt;
  }
};

// An ARP capture on vb, in the peer namespace.
struct PeerCapture {
  Fd fd;
  std::vector<ArpPacket> packets;

  explicit PeerCapture(NetnsPair& net) {
    net.in_peer([&] {
      fd.reset(socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ARP)));
      sockaddr_ll at{};
      at.sll_family = AF_PACKET;
      at.sll_protocol = htons(ETH_P_ARP);
      at.sll_ifindex = static_cast<int>(if_nametoindex("vb"));
      REQUIRE(bind(fd.get(), reinterpret_cast<sockaddr*>(&at), sizeof at) == 0);
    });
  }
  unsigned gratuitous(const MacAddress& mac, const InetAddress& vip) {
    std::uint8_t buffer[128];
    ssize_t n;
    while ((n = recv(fd.get(), buffer, sizeof buffer, 0)) > 0)
      if (auto p = decode_arp(buffer, static_cast<std::size_t>(n))) packets.push_back(*p);
    unsigned count = 0;
    for (const auto& p : packets)
      if (p.op == kArpRequest && p.sender_mac == mac && p.sender_ip == vip && p.target_ip == vip)
        ++count;
    return count;
  }
};

}  // namespace

TEST_CASE("ip params: defaults, forms of address, and clear errors") {
  auto p = parse_ip_params(params({{"address", "10.0.0.50/24"}}));
  REQUIRE_MESSAGE(p, p.error().to_string());
  CHECK(p->address.address == ip("10.0.0.50"));
  CHECK(p->address.prefixlen == 24);
  CHECK(p->arp_count == 5);
  CHECK(p->arp_interval == 200ms);
  CHECK(p->probe);
  CHECK(p->probe_wait == 100ms);
  CHECK(p->interface.empty());

  auto full = parse_ip_params(
      params({{"address", "fd00::50/64"}, {"interface", "eth1"}, {"arp_count", "0"},
              {"probe", "no"}}));
  REQUIRE(full);
  CHECK(full->interface == "eth1");
  CHECK(full->arp_count == 0);
  CHECK_FALSE(full->probe);

  CHECK(parse_ip_params({}).error().message == "address is required");
  CHECK(parse_ip_params(params({{"address", "10.0.0.500"}})).error().message.find("address:") ==
        0);
  CHECK(parse_ip_params(params({{"address", "10.0.0.5"}, {"arp_count", "many"}}))
            .error()
            .message.find("arp_count") == 0);
  CHECK(parse_ip_params(params({{"address", "10.0.0.5"}, {"probe", "maybe"}}))
            .error()
            .message.find("probe") == 0);
  CHECK(parse_ip_params(params({{"address", "10.0.0.5"}, {"probe_wait", "soon"}}))
            .error()
            .message.find("probe_wait") == 0);
  CHECK(parse_ip_params(params({{"address", "fd00::5"}, {"label", "web"}}))
            .error()
            .message.find("label") == 0);
  CHECK(parse_ip_params(params({{"address", "10.0.0.5"}, {"adress", "x"}}))
            .error()
            .message.find("unknown parameter adress") == 0);
}

TEST_CASE("ip_type_info describes exactly the parameters the driver reads") {
  TypeInfo info = ip_type_info();
  CHECK(info.name == "ip");
  REQUIRE(info.find("address"));
  CHECK(info.find("address")->required);
  for (const char* name :
       {"interface", "label", "arp_count", "arp_interval", "probe", "probe_wait"}) {
    REQUIRE(info.find(name));
    CHECK_FALSE(info.find(name)->required);
  }
  CHECK(info.find("arp_count")->default_value == "5");
  CHECK(info.params.size() == 7);
}

TEST_CASE("ipv4_label derives IFACE:RESOURCE, cut to 15 characters") {
  CHECK(ipv4_label("eth0", "web", "") == "eth0:web");
  CHECK(ipv4_label("eth0", "a-very-long-resource-name", "") == "eth0:a-very-lon");
  CHECK(ipv4_label("eth0", "x", "vip") == "eth0:vip");
  CHECK(ipv4_label("eth0", "x", "eth0:vip") == "eth0:vip");
  CHECK_FALSE(ipv4_label("eth0", "x", "eth1:vip"));
  CHECK_FALSE(ipv4_label("eth0", "x", "much-too-long-1"));
  CHECK_FALSE(ipv4_label("enp0s31f6abcde", "web", ""));  // no room left after "NAME:"
}

TEST_CASE("ip driver: start probes, adds a labelled /32, announces; stop removes it") {
  IpFixture f;
  // A client that knew the address at another MAC (an old owner): STALE before we start.
  REQUIRE(f.net->peer("ip neigh replace 10.0.0.50 lladdr 02:00:00:00:00:99 dev vb nud stale") ==
          0);
  PeerCapture capture(*f.net);
  auto d = f.driver(fast("10.0.0.50/24"));

  auto started = f.start(*d);
  REQUIRE_MESSAGE(started.status == ActionStatus::Ok, started.reason);
  auto added = f.kernel_address("10.0.0.50");
  REQUIRE(added);
  CHECK(added->prefixlen == 32);
  CHECK(added->label == "va:web");
  CHECK(added->proto == kClusterdAddressProto);
  CHECK((added->flags & IFA_F_SECONDARY) == 0);
  CHECK(f.monitor(*d).status == ActionStatus::Ok);

  // The probe went out first (sender 0.0.0.0), then arp_count gratuitous ARPs.
  InetAddress vip = ip("10.0.0.50");
  REQUIRE(run_until(f.loop.get(), [&] { return capture.gratuitous(f.net->local_mac(), vip) == 3; }));
  REQUIRE_FALSE(capture.packets.empty());
  CHECK(capture.packets.front().sender_ip.is_unspecified());
  testing::run_for(f.loop.get(), 60ms);
  CHECK(capture.gratuitous(f.net->local_mac(), vip) == 3);  // and no more
  std::string neigh = f.net->peer_output("ip neigh show 10.0.0.50 dev vb");
  CHECK_MESSAGE(neigh.find(to_string(f.net->local_mac())) != std::string::npos, neigh);

  REQUIRE(f.stop(*d).status == ActionStatus::Ok);
  CHECK_FALSE(f.kernel_address("10.0.0.50"));
  CHECK(f.kernel_address("10.0.0.1"));  // the link's own address is untouched
  CHECK(f.monitor(*d).status == ActionStatus::NotRunning);
}

TEST_CASE("ip driver: an address configured by someone else is refused and left alone") {
  IpFixture f;
  auto d = f.driver(fast("10.0.0.50"));
  REQUIRE(f.net->local("ip addr add 10.0.0.50/32 dev va") == 0);
  REQUIRE(run_until(f.loop.get(), [&] { return f.watcher->has_address(f.va, ip("10.0.0.50")); }));
  auto started = f.start(*d);
  CHECK(started.status == ActionStatus::Failed);
  CHECK(started.reason == "10.0.0.50 is already configured on va, not by clusterd");
  CHECK(f.stop(*d).status == ActionStatus::Ok);
  CHECK(f.kernel_address("10.0.0.50"));  // still there: not ours to remove
  CHECK(f.monitor(*d).status == ActionStatus::NotRunning);
}

TEST_CASE("ip driver: an address with our label is adopted, then removed on stop") {
  IpFixture f;
  REQUIRE(f.net->local("ip addr add 10.0.0.50/32 dev va label va:web") == 0);
  REQUIRE(run_until(f.loop.get(), [&] { return f.watcher->has_address(f.va, ip("10.0.0.50")); }));
  auto d = f.driver(fast("10.0.0.50"));
  CHECK(f.monitor(*d).status == ActionStatus::Ok);  // a restarted daemon sees it as running
  auto started = f.start(*d);
  REQUIRE_MESSAGE(started.status == ActionStatus::Ok, started.reason);
  REQUIRE(f.stop(*d).status == ActionStatus::Ok);
  CHECK_FALSE(f.kernel_address("10.0.0.50"));
}

TEST_CASE("ip driver: the probe refuses an address another host answers for") {
  IpFixture f;
  REQUIRE(f.net->peer("ip addr add 10.0.0.50/24 dev vb") == 0);
  auto d = f.driver(fast("10.0.0.50/24"));
  std::string link = f.net->peer_output("ip -br link show vb");
  auto started = f.start(*d);
  CHECK(started.status == ActionStatus::Failed);
  CHECK(started.reason.find("10.0.0.50 is already in use by ") == 0);
  // The MAC named is the peer's (ip -br prints it second).
  std::string named = started.reason.substr(started.reason.rfind(' ') + 1);
  CHECK_MESSAGE(link.find(named) != std::string::npos, link);
  CHECK_FALSE(f.kernel_address("10.0.0.50"));
}

TEST_CASE("ip driver: removal of the address or link down fails the resource at once") {
  IpFixture f;
  std::vector<std::string> failures;
  auto d = f.driver(fast("10.0.0.50"));
  d->set_failure_handler([&](std::string reason) { failures.push_back(std::move(reason)); });

  REQUIRE(f.start(*d).status == ActionStatus::Ok);
  REQUIRE(f.net->local("ip addr del 10.0.0.50/32 dev va") == 0);
  REQUIRE(run_until(f.loop.get(), [&] { return !failures.empty(); }, 500ms));
  CHECK(failures.front() == "address 10.0.0.50 was removed from va");
  CHECK(f.monitor(*d).status == ActionStatus::Failed);
  REQUIRE(f.stop(*d).status == ActionStatus::Ok);

  failures.clear();
  REQUIRE(f.start(*d).status == ActionStatus::Ok);
  REQUIRE(f.net->local("ip link set va down") == 0);
  REQUIRE(run_until(f.loop.get(), [&] { return !failures.empty(); }, 500ms));
  CHECK(failures.front() == "link va went down");
  CHECK(f.monitor(*d).status == ActionStatus::Failed);
  testing::run_for(f.loop.get(), 30ms);
  CHECK(failures.size() == 1);  // reported once
  REQUIRE(f.stop(*d).status == ActionStatus::Ok);
  CHECK_FALSE(f.kernel_address("10.0.0.50"));
  CHECK(failures.size() == 1);  // our own removal is no failure
}

TEST_CASE("ip driver: IPv6 is added with NODAD and announced with an unsolicited NA") {
  IpFixture f;
  REQUIRE(f.net->peer(
              "ip -6 neigh replace fd00::50 lladdr 02:00:00:00:00:99 dev vb nud stale") == 0);
  auto d = f.driver(fast("fd00::50/64"));
  auto started = f.start(*d);
  REQUIRE_MESSAGE(started.status == ActionStatus::Ok, started.reason);
  auto added = f.kernel_address("fd00::50");
  REQUIRE(added);
  CHECK(added->prefixlen == 64);
  CHECK((added->flags & IFA_F_NODAD) != 0);
  CHECK((added->flags & IFA_F_TENTATIVE) == 0);  // usable at once
  CHECK(added->proto == kClusterdAddressProto);
  CHECK(f.monitor(*d).status == ActionStatus::Ok);  // known at once, before DAD work reports it
  std::string mac = to_string(f.net->local_mac());
  std::string neigh;
  CHECK_MESSAGE(run_until(f.loop.get(),
                          [&] {
                            neigh = f.net->peer_output("ip -6 neigh show fd00::50 dev vb");
                            return neigh.find(mac) != std::string::npos;
                          },
                          500ms),
                neigh);
  REQUIRE(f.stop(*d).status == ActionStatus::Ok);
  CHECK_FALSE(f.kernel_address("fd00::50"));
}

TEST_CASE("ip driver: stop after the link vanished is not an error (ENODEV)") {
  IpFixture f;
  std::vector<std::string> failures;
  auto d = f.driver(fast("10.0.0.50"));
  d->set_failure_handler([&](std::string reason) { failures.push_back(std::move(reason)); });
  REQUIRE(f.start(*d).status == ActionStatus::Ok);
  // Gone before the watcher heard of it: stop meets ENODEV from the kernel.
  REQUIRE(f.net->local("ip link del va") == 0);
  auto stopped = f.stop(*d);
  CHECK_MESSAGE(stopped.status == ActionStatus::Ok, stopped.reason);
  testing::run_for(f.loop.get(), 30ms);
  CHECK(failures.empty());  // stopped first: the link's removal is no longer news to it

  // Once the watcher knows, start says why it cannot run.
  auto started = f.start(*d);
  CHECK(started.status == ActionStatus::Failed);
  CHECK(started.reason == "no interface has an address in a subnet containing 10.0.0.50; set "
                          "'interface'");
}

namespace {

ResourceConfig ip_resource(const char* name, const char* address) {
  ResourceConfig r;
  r.name = name;
  r.type = "ip";
  r.params = params({{"address", address}});
  return r;
}

}  // namespace

TEST_CASE("leftover addresses: ours are removed whatever the resource's state, others stay") {
  IpFixture f;
  std::vector<std::string> failures;
  auto web = f.driver(fast("10.0.0.50"), "web");
  web->set_failure_handler([&](std::string reason) { failures.push_back(std::move(reason)); });
  REQUIRE(f.start(*web).status == ActionStatus::Ok);
  auto six = f.driver(fast("fd00::50/64"), "six");  // IPv6: ours by the IFA_PROTO marker
  REQUIRE(f.start(*six).status == ActionStatus::Ok);
  // Left by an earlier run of ours (our label, no driver running it), and one that is not
  // ours (no label).
  REQUIRE(f.net->local("ip addr add 10.0.0.51/32 dev va label va:old") == 0);
  REQUIRE(f.net->local("ip addr add 10.0.0.52/32 dev va") == 0);
  Config config;
  GroupConfig group;
  group.name = "g";
  group.resources = {ip_resource("web", "10.0.0.50"), ip_resource("old", "10.0.0.51"),
                     ip_resource("other", "10.0.0.52"), ip_resource("six", "fd00::50/64")};
  config.groups.push_back(group);

  // A watcher of its own, as the cluster service uses at its hard deadline.
  auto own = NetlinkWatcher::create(f.loop.get());
  REQUIRE(own);
  auto removed = remove_resource_addresses(**own, config);
  std::vector<std::string> names;
  for (const auto& r : removed) {
    CHECK_MESSAGE(r.removed, r.resource);
    CHECK(r.group == "g");
    CHECK(r.ifname == "va");
    names.push_back(r.resource);
  }
  CHECK(names == std::vector<std::string>{"web", "old", "six"});
  CHECK_FALSE(f.kernel_address("10.0.0.50"));
  CHECK_FALSE(f.kernel_address("10.0.0.51"));
  CHECK_FALSE(f.kernel_address("fd00::50"));
  CHECK(f.kernel_address("10.0.0.52"));  // not ours: left alone

  // The running driver hears of it like any removal and fails its resource; its stop then
  // finds nothing to remove.
  REQUIRE(run_until(f.loop.get(), [&] { return !failures.empty(); }, 500ms));
  CHECK(failures.front() == "address 10.0.0.50 was removed from va");
  CHECK(f.stop(*web).status == ActionStatus::Ok);
  CHECK(f.stop(*six).status == ActionStatus::Ok);
  CHECK(remove_resource_addresses(**own, config).empty());  // nothing left the second time
}

}  // namespace clusterd
