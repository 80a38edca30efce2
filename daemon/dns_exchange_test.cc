#include "dns_exchange.h"

#include <ctime>

#include <doctest/doctest.h>

#include "dns_test_server.h"
#include "loop_test_util.h"

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using testing::DnsTestServer;
using testing::TestLoop;

TsigKey key(std::uint8_t fill = 7) {
  return TsigKey{"upd-key", "hmac-sha256", std::vector<std::uint8_t>(32, fill)};
}

std::vector<std::uint8_t> update(std::uint16_t id) {
  return *encode_dns_update({id, "lab.test", "web.lab.test", 5, {*InetAddress::parse("10.0.0.1")}});
}

struct Outcome {
  std::optional<Result<DnsMessage>> result;
  DnsExchange::Done done() {
    return [this](Result<DnsMessage> r) { result = std::move(r); };
  }
};

}  // namespace

TEST_CASE("DNS servers are address literals with an optional port") {
  auto v4 = parse_dns_server("10.77.0.53");
  REQUIRE(v4);
  CHECK(v4->port == 53);
  CHECK(v4->to_string() == "10.77.0.53:53");
  CHECK(parse_dns_server("10.77.0.53:5353")->port == 5353);
  auto v6 = parse_dns_server("fd00::53");
  REQUIRE(v6);
  CHECK(v6->address.family == AF_INET6);
  CHECK(v6->port == 53);
  auto v6_port = parse_dns_server("[fd00::53]:5353");
  REQUIRE(v6_port);
  CHECK(v6_port->to_string() == "[fd00::53]:5353");
  CHECK_FALSE(parse_dns_server("ns1.lab.test"));
  CHECK_FALSE(parse_dns_server("10.0.0.1:0"));
  CHECK_FALSE(parse_dns_server("10.0.0.1:70000"));
  CHECK_FALSE(parse_dns_server("[fd00::53"));
  CHECK_FALSE(parse_dns_server("[fd00::53]x"));
  CHECK(parse_dns_server("ns1").error().message.find("not an IP address") != std::string::npos);
}

TEST_CASE("A DNS exchange resends until answered, ignoring answers that are not ours") {
  TestLoop loop;
  int seen = 0;
  DnsTestServer server(loop.get(), [&](const auto&, const DnsMessage& request)
                                       -> std::optional<std::vector<std::uint8_t>> {
    ++seen;
    if (seen == 1) return std::nullopt;  // Lost.
    if (seen == 2) {                     // Another id: a stray or forged answer.
      DnsMessage other = request;
      other.id ^= 1;
      return DnsTestServer::answer(other, DnsRcode::Refused);
    }
    return DnsTestServer::answer(request, DnsRcode::NoError);
  });
  Outcome out;
  auto exchange = DnsExchange::start(loop.get(), server.server(), update(0x1234), std::nullopt,
                                     {}, 10s, out.done());
  REQUIRE(exchange);
  REQUIRE(loop.run_until([&] { return out.result.has_value(); }, 10s));
  REQUIRE(*out.result);
  CHECK((*out.result)->id == 0x1234);
  CHECK((*out.result)->rcode() == DnsRcode::NoError);
  CHECK((*exchange)->sends() == 3);
  CHECK(server.requests().size() == 3);
  CHECK(server.wires()[0] == server.wires()[2]);  // The same message each time.
}

TEST_CASE("A DNS exchange ends with a clear error at its deadline") {
  TestLoop loop;
  DnsTestServer server(loop.get(), [](const auto&, const auto&) { return std::nullopt; });
  Outcome out;
  auto exchange = DnsExchange::start(loop.get(), server.server(), update(1), std::nullopt, {},
                                     600ms, out.done());
  REQUIRE(exchange);
  REQUIRE(loop.run_until([&] { return out.result.has_value(); }, 5s));
  REQUIRE_FALSE(*out.result);
  CHECK(out.result->error().message.starts_with("no answer from DNS server 127.0.0.1:"));
  CHECK(out.result->error().message.find("within 600ms") != std::string::npos);
  CHECK(server.requests().size() >= 2);  // 0 ms, 250 ms (and 750 ms if the loop got there)
}

TEST_CASE("A closed port is named in the timeout") {
  TestLoop loop;
  std::optional<DnsServer> closed;
  {
    DnsTestServer gone(loop.get(), [](const auto&, const auto&) { return std::nullopt; });
    closed = gone.server();
  }
  Outcome out;
  auto exchange = DnsExchange::start(loop.get(), *closed, update(1), std::nullopt, {}, 400ms,
                                     out.done());
  REQUIRE(exchange);
  REQUIRE(loop.run_until([&] { return out.result.has_value(); }, 5s));
  REQUIRE_FALSE(*out.result);
  CHECK(out.result->error().message.find("port is closed") != std::string::npos);
}

TEST_CASE("With a key, only correctly signed NOERROR answers count") {
  TestLoop loop;
  TsigKey ours = key(7);
  TsigKey theirs = key(9);
  int seen = 0;
  DnsTestServer server(loop.get(), [&](const auto&, const DnsMessage& request)
                                       -> std::optional<std::vector<std::uint8_t>> {
    auto reply = DnsTestServer::answer(request, DnsRcode::NoError);
    auto now = static_cast<std::uint64_t>(std::time(nullptr));
    // First signed with another key (forged), then unsigned, then properly.
    if (++seen == 1) tsig_sign(reply, theirs, now, kTsigFudge, request.tsig->mac);
    if (seen == 3) tsig_sign(reply, ours, now, kTsigFudge, request.tsig->mac);
    return reply;
  });
  auto wire = update(0x4242);
  auto mac = tsig_sign(wire, ours, static_cast<std::uint64_t>(std::time(nullptr)));
  REQUIRE(mac);
  Outcome out;
  auto exchange = DnsExchange::start(loop.get(), server.server(), wire, ours, *mac, 10s,
                                     out.done());
  REQUIRE(exchange);
  REQUIRE(loop.run_until([&] { return out.result.has_value(); }, 10s));
  REQUIRE(*out.result);
  CHECK((*out.result)->tsig.has_value());
  CHECK(seen == 3);
}

TEST_CASE("With a key, an unsigned refusal is taken as the answer") {
  TestLoop loop;
  DnsTestServer server(loop.get(), [&](const auto&, const DnsMessage& request) {
    return std::optional(DnsTestServer::answer(request, DnsRcode::NotAuth));
  });
  auto wire = update(7);
  auto mac = tsig_sign(wire, key(), 1000);
  Outcome out;
  auto exchange = DnsExchange::start(loop.get(), server.server(), wire, key(), *mac, 5s,
                                     out.done());
  REQUIRE(exchange);
  REQUIRE(loop.run_until([&] { return out.result.has_value(); }, 5s));
  REQUIRE(*out.result);
  CHECK(describe_rcode(**out.result) == "NOTAUTH");
}

TEST_CASE("Destroying an exchange drops its answer") {
  TestLoop loop;
  DnsTestServer server(loop.get(), [&](const auto&, const DnsMessage& request) {
    return std::optional(DnsTestServer::answer(request, DnsRcode::NoError));
  });
  bool called = false;
  auto exchange = DnsExchange::start(loop.get(), server.server(), update(3), std::nullopt, {},
                                     5s, [&](Result<DnsMessage>) { called = true; });
  REQUIRE(exchange);
  exchange->reset();
  loop.run_until([&] { return !server.requests().empty(); }, 2s);
  loop.run_for(50ms);
  CHECK_FALSE(called);
}

}  // namespace clusterd
