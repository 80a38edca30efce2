#include "announce.h"

#include <netinet/icmp6.h>

#include <doctest/doctest.h>

namespace clusterd {
namespace {

InetAddress ip(const char* text) { return *InetAddress::parse(text); }
const MacAddress kOurs = {0x02, 0, 0, 0, 0, 0x01};
const MacAddress kTheirs = {0x02, 0, 0, 0, 0, 0x02};

}  // namespace

TEST_CASE("ARP packets round-trip through their wire form") {
  ArpPacket garp = make_gratuitous_arp(kOurs, ip("10.0.0.50"));
  auto bytes = encode_arp(garp);
  CHECK(bytes[0] == 0);
  CHECK(bytes[1] == 1);     // Ethernet
  CHECK(bytes[2] == 0x08);  // IPv4
  CHECK(bytes[7] == 1);     // request
  auto back = decode_arp(bytes.data(), bytes.size());
  REQUIRE(back);
  CHECK(back->op == kArpRequest);
  CHECK(back->sender_mac == kOurs);
  CHECK(back->sender_ip == ip("10.0.0.50"));
  CHECK(back->target_ip == ip("10.0.0.50"));
  CHECK(back->target_mac == MacAddress{});
  CHECK_FALSE(decode_arp(bytes.data(), 20));
  bytes[2] = 0x86;  // not IPv4
  CHECK_FALSE(decode_arp(bytes.data(), bytes.size()));
}

TEST_CASE("An ARP probe hides its sender address (RFC 5227 2.1.1)") {
  ArpPacket probe = make_arp_probe(kOurs, ip("10.0.0.50"));
  CHECK(probe.op == kArpRequest);
  CHECK(probe.sender_ip.is_unspecified());
  CHECK(probe.sender_ip.family == AF_INET);
  CHECK(probe.target_ip == ip("10.0.0.50"));
  CHECK(probe.sender_mac == kOurs);
}

TEST_CASE("arp_conflict: replies, announcements and rival probes conflict; ours do not") {
  InetAddress vip = ip("10.0.0.50");
  ArpPacket reply{kArpReply, kTheirs, vip, kOurs, ip("0.0.0.0")};
  CHECK(arp_conflict(reply, vip, kOurs));
  CHECK(arp_conflict(make_gratuitous_arp(kTheirs, vip), vip, kOurs));
  CHECK(arp_conflict(make_arp_probe(kTheirs, vip), vip, kOurs));
  CHECK_FALSE(arp_conflict(make_arp_probe(kOurs, vip), vip, kOurs));
  CHECK_FALSE(arp_conflict(make_gratuitous_arp(kTheirs, ip("10.0.0.51")), vip, kOurs));
  ArpPacket asks_for_it{kArpRequest, kTheirs, ip("10.0.0.2"), MacAddress{}, vip};
  CHECK_FALSE(arp_conflict(asks_for_it, vip, kOurs));  // a host looking for the owner
}

TEST_CASE("An unsolicited neighbour advertisement overrides and carries our MAC") {
  auto na = encode_unsolicited_na(kOurs, ip("fd00::50"));
  REQUIRE(na.size() == 32);
  CHECK(na[0] == ND_NEIGHBOR_ADVERT);
  CHECK(na[4] == 0x20);  // Override only: not a router, not solicited
  CHECK(InetAddress::from_bytes(AF_INET6, &na[8], 16) == ip("fd00::50"));
  CHECK(na[24] == ND_OPT_TARGET_LINKADDR);
  CHECK(na[25] == 1);
  CHECK(MacAddress{na[26], na[27], na[28], na[29], na[30], na[31]} == kOurs);
}

}  // namespace clusterd
