#include "netlink_watcher.h"

#include <linux/if_addr.h>
#include <net/if.h>
#include <sys/socket.h>

#include <doctest/doctest.h>

#include "netns_fixture.h"

namespace clusterd {
namespace {

using testing::NetnsPair;
using testing::run_until;

InetAddress ip(const char* text) { return *InetAddress::parse(text); }

struct WatcherFixture {
  std::unique_ptr<NetnsPair> net;
  EventPtr loop = testing::new_loop();
  std::shared_ptr<NetlinkWatcher> watcher;
  std::vector<NetEvent> events;
  NetlinkWatcher::Subscription subscription;
  int va = 0;

  WatcherFixture() {
    auto pair = NetnsPair::create();
    REQUIRE_MESSAGE(pair, pair.error().to_string());
    net = std::move(*pair);
    REQUIRE(net->local("ip addr add 10.0.0.1/24 dev va") == 0);
    auto created = NetlinkWatcher::create(loop.get());
    REQUIRE_MESSAGE(created, created.error().to_string());
    watcher = std::move(*created);
    subscription = watcher->subscribe([this](const NetEvent& e) { events.push_back(e); });
    REQUIRE(watcher->find_link("va"));
    va = watcher->find_link("va")->ifindex;
  }
  ~WatcherFixture() {
    subscription.reset();
    watcher.reset();
  }

  bool saw(NetEventKind kind, const char* address = nullptr) const {
    for (const auto& e : events)
      if (e.kind == kind && (!address || e.address.address == ip(address))) return true;
    return false;
  }
};

}  // namespace

TEST_CASE("NetEventKind names are complete") {
  for (int i = 0; i < kNetEventKindCount; ++i)
    CHECK(std::string(to_string(static_cast<NetEventKind>(i))).size() > 0);
  CHECK(std::string(to_string(NetEventKind::AddressRemoved)) == "address-removed");
}

TEST_CASE("NetlinkWatcher: the initial dump knows links, addresses and subnets") {
  WatcherFixture f;
  const LinkInfo* va = f.watcher->find_link("va");
  CHECK(va->up());
  CHECK(va->mac == f.net->local_mac());
  CHECK(f.watcher->link_up(va->ifindex));
  CHECK(f.watcher->has_address(va->ifindex, ip("10.0.0.1")));
  CHECK(f.watcher->find_address(va->ifindex, ip("10.0.0.1"))->prefixlen == 24);
  CHECK(f.watcher->find_link_for_subnet(ip("10.0.0.50")) == va);
  CHECK(f.watcher->find_link_for_subnet(ip("127.0.0.9"))->name == "lo");
  CHECK(f.watcher->find_link_for_subnet(ip("10.0.1.50")) == nullptr);
  CHECK(f.watcher->find_link("eth0") == nullptr);  // the namespace is private
}

TEST_CASE("NetlinkWatcher adds and removes addresses with label, flags and proto") {
  WatcherFixture f;
  AddressRequest request{f.va, ip("10.0.0.50"), 32, "va:web", 0, 0x43};
  auto added = f.watcher->add_address(request);
  REQUIRE_MESSAGE(added, added.error().to_string());
  CHECK(f.watcher->has_address(f.va, ip("10.0.0.50")));  // at once, before any notification

  // A fresh dump is the kernel's own word.
  auto fresh = NetlinkWatcher::create(f.loop.get());
  REQUIRE(fresh);
  const AddressInfo* seen = (*fresh)->find_address(f.va, ip("10.0.0.50"));
  REQUIRE(seen);
  CHECK(seen->label == "va:web");
  CHECK(seen->proto == 0x43);
  CHECK(seen->prefixlen == 32);
  CHECK((seen->flags & IFA_F_SECONDARY) == 0);  // a /32 is primary in its own subnet

  auto again = f.watcher->add_address(request);
  REQUIRE_FALSE(again);
  CHECK(again.error().errno_value == EEXIST);

  AddressRequest v6{f.va, ip("fd00::50"), 64, "", IFA_F_NODAD, 0x43};
  REQUIRE(f.watcher->add_address(v6));
  auto fresh6 = NetlinkWatcher::create(f.loop.get());
  REQUIRE(fresh6);
  const AddressInfo* v6_seen = (*fresh6)->find_address(f.va, ip("fd00::50"));
  REQUIRE(v6_seen);
  CHECK((v6_seen->flags & IFA_F_NODAD) != 0);
  CHECK((v6_seen->flags & IFA_F_TENTATIVE) == 0);

  f.events.clear();
  REQUIRE(f.watcher->remove_address(f.va, ip("10.0.0.50"), 32));
  CHECK_FALSE(f.watcher->has_address(f.va, ip("10.0.0.50")));
  testing::run_for(f.loop.get(), std::chrono::milliseconds(50));
  CHECK_FALSE(f.saw(NetEventKind::AddressRemoved, "10.0.0.50"));  // our own removal is quiet

  auto gone = f.watcher->remove_address(f.va, ip("10.0.0.50"), 32);
  REQUIRE_FALSE(gone);
  CHECK(gone.error().errno_value == EADDRNOTAVAIL);
}

TEST_CASE("NetlinkWatcher reports removal, link down and link removal as they happen") {
  WatcherFixture f;
  REQUIRE(f.net->local("ip addr add 10.0.0.7/32 dev va") == 0);
  REQUIRE(run_until(f.loop.get(), [&] { return f.saw(NetEventKind::AddressAdded, "10.0.0.7"); }));
  CHECK(f.watcher->has_address(f.va, ip("10.0.0.7")));

  REQUIRE(f.net->local("ip addr del 10.0.0.7/32 dev va") == 0);
  REQUIRE(run_until(f.loop.get(), [&] { return f.saw(NetEventKind::AddressRemoved, "10.0.0.7"); }));
  CHECK_FALSE(f.watcher->has_address(f.va, ip("10.0.0.7")));

  // Carrier loss counts as down: the peer end going down takes va's carrier.
  REQUIRE(f.net->peer("ip link set vb down") == 0);
  REQUIRE(run_until(f.loop.get(), [&] { return f.saw(NetEventKind::LinkDown); }));
  CHECK_FALSE(f.watcher->link_up(f.va));
  CHECK((f.watcher->find_link(f.va)->flags & IFF_UP) != 0);

  // Administratively down.
  REQUIRE(f.net->peer("ip link set vb up") == 0);
  REQUIRE(run_until(f.loop.get(), [&] { return f.saw(NetEventKind::LinkUp); }));
  f.events.clear();
  REQUIRE(f.net->local("ip link set va down") == 0);
  REQUIRE(run_until(f.loop.get(), [&] { return f.saw(NetEventKind::LinkDown); }));
  CHECK_FALSE(f.watcher->link_up(f.va));

  REQUIRE(f.net->local("ip link del va") == 0);
  REQUIRE(run_until(f.loop.get(), [&] { return f.saw(NetEventKind::LinkRemoved); }));
  CHECK(f.watcher->find_link("va") == nullptr);
  CHECK_FALSE(f.watcher->has_address(f.va, ip("10.0.0.1")));
  auto late = f.watcher->remove_address(f.va, ip("10.0.0.1"), 24);
  REQUIRE_FALSE(late);
  CHECK(late.error().errno_value == ENODEV);
}

TEST_CASE("NetlinkWatcher resyncs after the kernel dropped notifications (ENOBUFS)") {
  WatcherFixture f;
  REQUIRE(f.net->local("ip addr add 10.0.0.9/32 dev va") == 0);
  REQUIRE(run_until(f.loop.get(), [&] { return f.saw(NetEventKind::AddressAdded, "10.0.0.9"); }));

  // The smallest receive buffer the kernel allows holds a handful of notifications.
  int tiny = 1;
  REQUIRE(setsockopt(f.watcher->notification_fd(), SOL_SOCKET, SO_RCVBUF, &tiny, sizeof tiny) ==
          0);
  std::string batch = "ip addr del 10.0.0.9/32 dev va";
  for (int i = 1; i <= 100; ++i) batch += fmt::format(" && ip addr add 10.0.2.{}/32 dev va", i);
  REQUIRE(f.net->local(batch) == 0);

  f.events.clear();
  REQUIRE(run_until(f.loop.get(), [&] { return f.watcher->resync_count() > 0; }));
  testing::run_for(f.loop.get(), std::chrono::milliseconds(20));  // drain what is left
  CHECK(f.saw(NetEventKind::AddressRemoved, "10.0.0.9"));
  CHECK_FALSE(f.watcher->has_address(f.va, ip("10.0.0.9")));
  for (int i = 1; i <= 100; ++i)
    CHECK(f.watcher->has_address(f.va, ip(fmt::format("10.0.2.{}", i).c_str())));
}

TEST_CASE("NetlinkWatcher subscriptions end with their handle, also inside a callback") {
  WatcherFixture f;
  int calls = 0;
  NetlinkWatcher::Subscription once;
  once = f.watcher->subscribe([&](const NetEvent&) {
    ++calls;
    once.reset();
  });
  REQUIRE(f.net->local("ip addr add 10.0.0.8/32 dev va && ip addr del 10.0.0.8/32 dev va") == 0);
  REQUIRE(run_until(f.loop.get(), [&] { return f.saw(NetEventKind::AddressRemoved, "10.0.0.8"); }));
  CHECK(calls == 1);
}

}  // namespace clusterd
