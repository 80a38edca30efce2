#include "inet_address.h"

#include <doctest/doctest.h>

namespace clusterd {

TEST_CASE("InetAddress parses and prints both families") {
  auto v4 = InetAddress::parse("10.0.0.50");
  REQUIRE(v4);
  CHECK(v4->family == AF_INET);
  CHECK(v4->to_string() == "10.0.0.50");
  auto v6 = InetAddress::parse("fd00::50");
  REQUIRE(v6);
  CHECK(v6->family == AF_INET6);
  CHECK(v6->to_string() == "fd00::50");
  CHECK_FALSE(InetAddress::parse("10.0.0.300"));
  CHECK_FALSE(InetAddress::parse("eth0"));
  CHECK_FALSE(InetAddress::parse(""));
  CHECK(InetAddress::parse("0.0.0.0")->is_unspecified());
  CHECK_FALSE(v4->is_unspecified());
}

TEST_CASE("InetPrefix takes an optional length within the family's range") {
  auto plain = InetPrefix::parse("10.0.0.50");
  REQUIRE(plain);
  CHECK(plain->prefixlen == 32);
  CHECK_FALSE(plain->explicit_len);
  auto with_len = InetPrefix::parse("fd00::50/64");
  REQUIRE(with_len);
  CHECK(with_len->prefixlen == 64);
  CHECK(with_len->explicit_len);
  CHECK(with_len->to_string() == "fd00::50/64");
  CHECK_FALSE(InetPrefix::parse("10.0.0.50/33"));
  CHECK_FALSE(InetPrefix::parse("10.0.0.50/"));
  CHECK_FALSE(InetPrefix::parse("10.0.0.50/2x"));
  CHECK(InetPrefix::parse("fd00::50/128"));
}

TEST_CASE("same_subnet compares whole and partial bytes") {
  auto a = *InetAddress::parse("10.0.0.50");
  CHECK(a.same_subnet(*InetAddress::parse("10.0.0.1"), 24));
  CHECK_FALSE(a.same_subnet(*InetAddress::parse("10.0.1.1"), 24));
  CHECK(a.same_subnet(*InetAddress::parse("10.0.0.60"), 27));   // .32-.63
  CHECK_FALSE(a.same_subnet(*InetAddress::parse("10.0.0.70"), 27));
  CHECK(a.same_subnet(*InetAddress::parse("192.168.1.1"), 0));
  CHECK_FALSE(a.same_subnet(*InetAddress::parse("fd00::1"), 0));  // families differ
  CHECK(InetAddress::parse("fd00::50")->same_subnet(*InetAddress::parse("fd00::1"), 64));
}

TEST_CASE("MAC addresses print in lower-case colon form") {
  CHECK(to_string(MacAddress{0x02, 0xfc, 0, 0, 0, 0x1a}) == "02:fc:00:00:00:1a");
}

}  // namespace clusterd
