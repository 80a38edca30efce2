#include "membership_test_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/core.h>

namespace clusterd::testing {

Config two_node_config() {
  Config c;
  c.cluster.id = 4242;
  c.networks = {{"clients", "192.0.2.0/24", NetworkRole::Client, "", 5405, {}},
                {"public", "10.1.0.0/24", NetworkRole::All, "", 5405, {}},
                {"private", "fd00:2::/64", NetworkRole::Cluster, "", 5405, {}}};
  c.nodes = {{"a", 1, 1, {{"clients", "192.0.2.1"}, {"public", "10.1.0.1/24"},
                          {"private", "fd00:2::1"}}, {}},
             {"b", 2, 1, {{"clients", "192.0.2.2"}, {"public", "10.1.0.2/24"},
                          {"private", "fd00:2::2"}}, {}}};
  c.heartbeat = {Duration(20), 5};
  return c;
}

Result<std::unique_ptr<TwoLinkNet>> TwoLinkNet::create() {
  std::unique_ptr<TwoLinkNet> net(new TwoLinkNet());
  auto pair = NetnsPair::create();
  if (!pair) return std::unexpected(pair.error());
  net->pair_ = std::move(*pair);
  if (auto ok = net->add_second_link(); !ok) return std::unexpected(ok.error());
  if (net->pair_->local("ip addr add 10.1.0.1/24 dev va && "
                        "ip addr add fd00:2::1/64 dev va2 nodad") != 0 ||
      net->pair_->peer("ip addr add 10.1.0.2/24 dev vb && "
                       "ip addr add fd00:2::2/64 dev vb2 nodad") != 0)
    return fail("cannot add the test addresses");
  if (net->pair_->local("nft 'add table inet cut; "
                        "add chain inet cut in { type filter hook input priority 0; }; "
                        "add chain inet cut out { type filter hook output priority 0; }'") != 0)
    return fail("cannot create the nftables table for the test");
  return net;
}

Result<void> TwoLinkNet::add_second_link() {
  int peer_ns = -1;
  pair_->in_peer([&] { peer_ns = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC); });
  if (peer_ns < 0) return fail_errno(errno, "cannot open the peer namespace");
  // No duplicate address detection: the addresses are usable at once.
  int r = pair_->local(fmt::format(
      "sysctl -qw net.ipv6.conf.default.accept_dad=0 && ip link add va2 type veth peer name "
      "vb2 netns /proc/{}/fd/{} && ip link set va2 up", getpid(), peer_ns));
  ::close(peer_ns);
  if (r != 0 || pair_->peer("ip link set vb2 up") != 0)
    return fail("cannot set up the second link between the test namespaces");
  return {};
}

bool TwoLinkNet::nft_rule(const std::string& rule) {
  return pair_->local("nft 'add rule inet cut " + rule + "'") == 0;
}

bool TwoLinkNet::cut(const std::string& ifname) {
  return nft_rule("in iifname " + ifname + " drop") && nft_rule("out oifname " + ifname + " drop");
}

bool TwoLinkNet::heal() { return pair_->local("nft flush table inet cut") == 0; }

}  // namespace clusterd::testing
