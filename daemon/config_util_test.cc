#include "config_util.h"

#include <doctest/doctest.h>

namespace clusterd {

TEST_CASE("edit_distance") {
  CHECK(edit_distance("", "") == 0);
  CHECK(edit_distance("abc", "") == 3);
  CHECK(edit_distance("", "abc") == 3);
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("treshold", "threshold") == 1);
  CHECK(edit_distance("same", "same") == 0);
}

TEST_CASE("closest_match suggests near misses only") {
  std::vector<std::string> keys{"preferred_owners", "possible_owners", "autostart"};
  CHECK(closest_match("prefered_owners", keys) == "preferred_owners");
  CHECK(closest_match("autostrat", keys) == "autostart");
  CHECK(closest_match("colour", keys).empty());
  CHECK(closest_match("ab", {"a", "xyz"}) == "a");
  CHECK(closest_match("ab", {"cd"}).empty());
  CHECK(did_you_mean("autostar", keys) == "; did you mean 'autostart'?");
  CHECK(did_you_mean("zzz", keys).empty());
}

TEST_CASE("invalid_name_reason") {
  CHECK_FALSE(invalid_name_reason("web-1.a_b"));
  CHECK_FALSE(invalid_name_reason("9lives"));
  CHECK(invalid_name_reason(""));
  CHECK(invalid_name_reason("-web"));
  CHECK(invalid_name_reason("a b"));
  CHECK(invalid_name_reason("a/b"));
  CHECK(invalid_name_reason(std::string(64, 'a')));
  CHECK_FALSE(invalid_name_reason(std::string(63, 'a')));
}

TEST_CASE("subnets and addresses") {
  auto v4 = parse_subnet("192.168.10.0/24");
  REQUIRE(v4);
  CHECK(v4->contains(*parse_ip_address("192.168.10.200")));
  CHECK_FALSE(v4->contains(*parse_ip_address("192.168.11.1")));
  CHECK_FALSE(v4->contains(*parse_ip_address("::ffff:192.168.10.1")));
  auto odd = parse_subnet("10.0.0.0/9");
  REQUIRE(odd);
  CHECK(odd->contains(*parse_ip_address("10.127.255.255")));
  CHECK_FALSE(odd->contains(*parse_ip_address("10.128.0.0")));
  auto v6 = parse_subnet("fd00::/64");
  REQUIRE(v6);
  CHECK(v6->contains(*parse_ip_address("fd00::1")));
  CHECK_FALSE(v6->contains(*parse_ip_address("fd00:0:0:1::1")));
  CHECK(parse_subnet("0.0.0.0/0")->contains(*parse_ip_address("8.8.8.8")));
  CHECK(parse_subnet("10.0.0.1/32"));

  CHECK(parse_subnet("10.0.0.1/24").error().message ==
        "subnet '10.0.0.1/24' has host bits set; did you mean '10.0.0.0/24'?");
  CHECK(parse_subnet("10.0.0.0").error().message ==
        "'10.0.0.0' is not a subnet in CIDR notation like 192.168.10.0/24");
  CHECK(parse_subnet("10.0.0.0/33").error().message ==
        "'10.0.0.0/33' has a bad prefix length; expected 0 to 32");
  CHECK_FALSE(parse_subnet("10.0.0.0/"));
  CHECK_FALSE(parse_subnet("10.0.0.0/2x"));
  CHECK_FALSE(parse_subnet("fd00::/129"));
  CHECK_FALSE(parse_subnet("host/24"));

  CHECK(parse_ip_address("239.1.2.3")->is_multicast());
  CHECK_FALSE(parse_ip_address("240.0.0.1")->is_multicast());
  CHECK(parse_ip_address("ff02::1")->is_multicast());
  CHECK_FALSE(parse_ip_address("fe80::1")->is_multicast());
  CHECK(parse_ip_address("1.2.3").error().message == "'1.2.3' is not an IPv4 or IPv6 address");
  CHECK(format_ip_address(*parse_ip_address("fd00:0::1")) == "fd00::1");
}

}  // namespace clusterd
