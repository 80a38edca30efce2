#include "name_driver.h"

#include <unistd.h>

#include <ctime>
#include <fstream>

#include <doctest/doctest.h>

#include "dns_test_server.h"
#include "loop_test_util.h"
#include "ocf_agent.h"
#include "param_test_util.h"
#include "process_driver.h"

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using testing::DnsTestServer;
using testing::TempDir;
using testing::TestLoop;
using testing::list;
using testing::scalar;

constexpr const char* kKeyText =
    "key \"upd-key\" {\n\talgorithm hmac-sha256;\n"
    "\tsecret \"mgnrS8IknhnaK0Jv8yPNLf2HevZ6CawP2TXHJhmk198=\";\n};\n";

Result<NameParams> parse(std::initializer_list<std::pair<const char*, const char*>> items) {
  Params params;
  for (auto [k, v] : items) params[k] = scalar(v);
  return parse_name_params(params);
}

ResourceConfig resource(std::string name, std::string type, Params params,
                        std::vector<std::string> depends = {}) {
  ResourceConfig r;
  r.name = std::move(name);
  r.type = std::move(type);
  r.params = std::move(params);
  r.depends = std::move(depends);
  r.timeouts.start = 3s;
  r.timeouts.stop = 600ms;
  r.monitor.timeout = 600ms;
  return r;
}

// vip (ip) <- vip6 (ip) <- web (name) <- app (process, hostname network-name)
std::shared_ptr<GroupConfig> group(Params name_params, const std::string& command = "true") {
  auto g = std::make_shared<GroupConfig>();
  g->name = "ledger";
  g->resources.push_back(resource("vip", "ip", {{"address", scalar("10.0.0.5/24")}}));
  g->resources.push_back(resource("vip6", "ip", {{"address", scalar("fd00::5/64")}}, {"vip"}));
  g->resources.push_back(resource("web", "name", std::move(name_params), {"vip6"}));
  g->resources.push_back(resource(
      "app", "process",
      {{"command", scalar("/bin/sh")}, {"args", list({"-c", command})},
       {"hostname", scalar("network-name")}},
      {"web"}));
  return g;
}

DriverContext context(TestLoop& loop, std::shared_ptr<GroupConfig> g) {
  DriverContext c;
  c.loop = loop.get();
  c.node_name = "node1";
  c.group = "ledger";
  c.group_definition = [g] { return std::shared_ptr<const GroupConfig>(g); };
  return c;
}

template <typename Action>
ActionResult run(TestLoop& loop, Action action) {
  std::optional<ActionResult> result;
  action([&](ActionResult r) { result = std::move(r); });
  REQUIRE(loop.run_until([&] { return result.has_value(); }, 10s));
  return *result;
}

InetAddress addr(const char* text) { return *InetAddress::parse(text); }

// A server that applies updates to one name's address set, signs with the key when asked to
// and answers queries for A records from that set.
struct FakeZone {
  std::vector<InetAddress> records;
  std::optional<TsigKey> key;
  DnsRcode update_rcode = DnsRcode::NoError;
  bool silent = false;

  DnsTestServer::Responder responder() {
    return [this](const std::vector<std::uint8_t>& wire, const DnsMessage& request)
               -> std::optional<std::vector<std::uint8_t>> {
      if (silent) return std::nullopt;
      std::vector<std::uint8_t> reply;
      if (request.opcode() == 5) {
        if (update_rcode == DnsRcode::NoError) records = added(wire);
        reply = DnsTestServer::answer(request, update_rcode);
      } else {
        std::vector<InetAddress> v4;
        for (const auto& a : records)
          if (a.family == AF_INET) v4.push_back(a);
        reply = query_type(wire, request) == DnsType::A
                    ? DnsTestServer::answer_a(request, "web.lab.test", v4, 5)
                    : DnsTestServer::answer(request, DnsRcode::NoError);
      }
      if (key && request.tsig)
        tsig_sign(reply, *key, static_cast<std::uint64_t>(std::time(nullptr)), kTsigFudge,
                  request.tsig->mac);
      return reply;
    };
  }

  // The question's type: the two bytes before its class, after the 12-byte header and name.
  static DnsType query_type(const std::vector<std::uint8_t>& wire, const DnsMessage&) {
    std::size_t at = 12;
    while (wire[at] != 0) at += wire[at] + 1;
    return static_cast<DnsType>(wire[at + 1] << 8 | wire[at + 2]);
  }

  // The addresses an UPDATE adds: the records of class IN in the update section.
  static std::vector<InetAddress> added(const std::vector<std::uint8_t>& wire) {
    std::vector<InetAddress> out;
    std::size_t at = 12;
    auto skip_name = [&] {
      while (wire[at] != 0) at += wire[at] + 1;
      ++at;
    };
    skip_name();
    at += 4;  // Zone section.
    unsigned count = wire[8] << 8 | wire[9];
    for (unsigned i = 0; i < count; ++i) {
      skip_name();
      unsigned type = wire[at] << 8 | wire[at + 1];
      unsigned klass = wire[at + 2] << 8 | wire[at + 3];
      unsigned length = wire[at + 8] << 8 | wire[at + 9];
      at += 10;
      if (klass == kDnsClassIn)
        out.push_back(*InetAddress::from_bytes(type == 1 ? AF_INET : AF_INET6, &wire[at], length));
      at += length;
    }
    return out;
  }
};

}  // namespace

TEST_CASE("name params are validated") {
  auto plain = parse({{"name", "Ledger"}});
  REQUIRE(plain);
  CHECK(plain->name == "ledger");
  CHECK(plain->fqdn.empty());
  CHECK(plain->ttl == kDefaultNameTtl);
  CHECK_FALSE(plain->dns_server);

  auto fqdn = parse({{"name", "ledger.lab.test"}, {"dns_server", "10.77.0.53"}});
  REQUIRE(fqdn);
  CHECK(fqdn->fqdn == "ledger.lab.test");
  CHECK(fqdn->zone == "lab.test");
  auto zoned = parse({{"name", "ledger"}, {"zone", "lab.test."}, {"dns_server", "10.0.0.1:5353"},
                      {"ttl", "1m"}});
  REQUIRE(zoned);
  CHECK(zoned->fqdn == "ledger.lab.test");
  CHECK(zoned->dns_server->port == 5353);
  CHECK(zoned->ttl == 60);

  CHECK(parse({}).error().message == "name is required");
  CHECK_FALSE(parse({{"name", "led_ger"}}));
  CHECK(parse({{"name", "ledger"}, {"dns_server", "10.0.0.1"}})
            .error().message.find("single label") != std::string::npos);
  CHECK(parse({{"name", "a.other.test"}, {"zone", "lab.test"}})
            .error().message == "name 'a.other.test' is not in zone 'lab.test'");
  CHECK_FALSE(parse({{"name", "a"}, {"ttl", "1500ms"}}));
  CHECK_FALSE(parse({{"name", "a"}, {"ttl", "8d"}}));
  CHECK_FALSE(parse({{"name", "a"}, {"ttl", "soon"}}));
  CHECK_FALSE(parse({{"name", "a.b"}, {"dns_server", "ns1.lab.test"}}));
  CHECK(parse({{"name", "a.b"}, {"dns_server", "10.0.0.1"}, {"tsig_key_file", "k.conf"}})
            .error().message.find("absolute") != std::string::npos);
  CHECK(parse({{"name", "a.b"}, {"tsig_key_file", "/k.conf"}})
            .error().message == "tsig_key_file is set but dns_server is not");
  CHECK(parse({{"name", "a"}, {"colour", "blue"}})
            .error().message == "unknown parameter colour for a name resource");

  Params explicit_addresses{{"name", scalar("a")},
                            {"addresses", list({"10.0.0.9", "fd00::9/64"})}};
  auto with = parse_name_params(explicit_addresses);
  REQUIRE(with);
  CHECK(with->addresses == std::vector{addr("10.0.0.9"), addr("fd00::9")});
  Params bad{{"name", scalar("a")}, {"addresses", list({"10.0.0.300"})}};
  CHECK_FALSE(parse_name_params(bad));
}

TEST_CASE("the name type's metadata lists every parameter the parser takes") {
  TypeInfo info = name_type_info();
  CHECK(info.name == "name");
  for (const char* p : {"name", "dns_server", "zone", "ttl", "tsig_key_file", "addresses"})
    CHECK(info.find(p) != nullptr);
  CHECK(info.find("name")->required);
}

TEST_CASE("a name registers the addresses of the ip resources below it") {
  auto g = group({{"name", scalar("web")}});
  NameParams params = *parse_name_params(g->resources[2].params);
  auto addresses = name_addresses(g.get(), "web", params);
  REQUIRE(addresses);
  CHECK(*addresses == std::vector{addr("fd00::5"), addr("10.0.0.5")});
  params.addresses = {addr("192.0.2.1")};
  CHECK(*name_addresses(g.get(), "web", params) == std::vector{addr("192.0.2.1")});
  params.addresses.clear();
  CHECK(name_addresses(nullptr, "web", params)->empty());
  CHECK(name_addresses(g.get(), "vip", params)->size() == 1);  // Itself, were it a name.
}

TEST_CASE("resources above a name get it as their network name") {
  auto g = group({{"name", scalar("Web.lab.test")}});
  CHECK(network_name_of(g.get(), "app") == "web.lab.test");
  CHECK(network_name_of(g.get(), "web") == "");
  CHECK(network_name_of(g.get(), "vip") == "");
  CHECK(network_name_of(g.get(), "missing") == "");
  CHECK(network_name_of(nullptr, "app") == "");

  TestLoop loop;
  OcfAgentPath agent{"/usr/lib/ocf/resource.d/heartbeat/Dummy", "heartbeat", "Dummy"};
  auto env = ocf_environment(g->resources[3], context(loop, g), agent, OcfAction::Start, 20s,
                             std::nullopt);
  CHECK(std::find(env.begin(), env.end(), "CLUSTER_NETWORK_NAME=web.lab.test") != env.end());
  auto below = ocf_environment(g->resources[0], context(loop, g), agent, OcfAction::Start, 20s,
                               std::nullopt);
  for (const auto& e : below) CHECK_FALSE(e.starts_with("CLUSTER_NETWORK_NAME="));
}

TEST_CASE("a process above a name runs with it as host name and CLUSTER_NETWORK_NAME") {
  TempDir dir;
  std::string out = dir.path() + "/seen";
  auto g = group({{"name", scalar("ledger.lab.test")}},
                 "echo \"$CLUSTER_NETWORK_NAME $(hostname)\" > " + out + "; exec sleep 30");
  TestLoop loop;
  auto driver = ProcessDriver::create(g->resources[3], context(loop, g));
  REQUIRE(driver);
  CHECK(run(loop, [&](auto done) { (*driver)->start(done); }).status == ActionStatus::Ok);
  std::string line;
  REQUIRE(loop.run_until([&] {
    std::ifstream in(out);
    return std::getline(in, line) && !line.empty();
  }));
  CHECK(line == "ledger.lab.test ledger");
  char ours[256] = {};
  gethostname(ours, sizeof ours - 1);
  CHECK(std::string(ours) != "ledger");  // Only the child's UTS namespace has it.
  CHECK(run(loop, [&](auto done) { (*driver)->stop(done); }).status == ActionStatus::Ok);
}

TEST_CASE("hostname network-name without a name below fails the start clearly") {
  auto g = group({{"name", scalar("ledger")}});
  g->resources[3].depends.clear();
  TestLoop loop;
  auto driver = ProcessDriver::create(g->resources[3], context(loop, g));
  REQUIRE(driver);
  auto r = run(loop, [&](auto done) { (*driver)->start(done); });
  CHECK(r.status == ActionStatus::InvalidConfig);
  CHECK(r.reason == "resource app: hostname is network-name, but it depends on no name resource");
  Params bad{{"command", scalar("true")}, {"hostname", scalar("-bad")}};
  CHECK_FALSE(parse_process_params("app", bad));
}

TEST_CASE("name driver without a DNS server: online at once, nothing sent") {
  TestLoop loop;
  auto g = group({{"name", scalar("web")}});
  auto driver = NameDriver::create(g->resources[2], context(loop, g));
  REQUIRE(driver);
  CHECK(run(loop, [&](auto d) { (*driver)->start(d); }).status == ActionStatus::Ok);
  CHECK(run(loop, [&](auto d) { (*driver)->monitor(MonitorLevel::IsAlive, d); }).status ==
        ActionStatus::Ok);
  CHECK(run(loop, [&](auto d) { (*driver)->stop(d); }).status == ActionStatus::Ok);
}

TEST_CASE("name driver registers, checks and deletes its records with TSIG") {
  TestLoop loop;
  TempDir dir;
  std::string key_file = dir.path() + "/upd.key";
  std::ofstream(key_file) << kKeyText;
  TsigKey key = *parse_tsig_key(kKeyText);
  FakeZone zone;
  zone.key = key;
  DnsTestServer server(loop.get(), zone.responder());
  auto g = group({{"name", scalar("web")},
                  {"zone", scalar("lab.test")},
                  {"dns_server", scalar(server.server().to_string())},
                  {"ttl", scalar("7s")},
                  {"tsig_key_file", scalar(key_file)}});
  auto driver = NameDriver::create(g->resources[2], context(loop, g));
  REQUIRE(driver);

  CHECK(run(loop, [&](auto d) { (*driver)->start(d); }).status == ActionStatus::Ok);
  REQUIRE(server.requests().size() == 1);
  const DnsMessage& update = server.requests()[0];
  CHECK(update.opcode() == 5);
  REQUIRE(update.tsig);
  CHECK(tsig_verify(server.wires()[0], update, key, {},
                    static_cast<std::uint64_t>(std::time(nullptr))));
  CHECK(zone.records == std::vector{addr("fd00::5"), addr("10.0.0.5")});
  // TTL of the first added record: after header, zone (lab.test), two deletes of web.lab.test.
  std::size_t ttl_at = 12 + 10 + 4 + 2 * (14 + 10) + 14 + 4;
  CHECK(server.wires()[0][ttl_at + 3] == 7);

  SUBCASE("IsAlive finds the records") {
    // Only A is answered with data by the fake zone; AAAA comes back empty: a mismatch.
    zone.records = {addr("10.0.0.5")};
    auto r = run(loop, [&](auto d) { (*driver)->monitor(MonitorLevel::IsAlive, d); });
    CHECK(r.status == ActionStatus::Failed);
    CHECK(r.reason.find("has 10.0.0.5 for web.lab.test, not fd00::5, 10.0.0.5") !=
          std::string::npos);
  }
  SUBCASE("an unreachable server does not fail the name") {
    zone.silent = true;
    auto r = run(loop, [&](auto d) { (*driver)->monitor(MonitorLevel::IsAlive, d); });
    CHECK(r.status == ActionStatus::Ok);
  }
  SUBCASE("LooksAlive asks nobody") {
    std::size_t before = server.requests().size();
    CHECK(run(loop, [&](auto d) { (*driver)->monitor(MonitorLevel::LooksAlive, d); }).status ==
          ActionStatus::Ok);
    CHECK(server.requests().size() == before);
  }
  SUBCASE("stop deletes the records") {
    auto r = run(loop, [&](auto d) { (*driver)->stop(d); });
    CHECK(r.status == ActionStatus::Ok);
    CHECK(r.reason.empty());
    CHECK(zone.records.empty());
  }
  SUBCASE("stop with the server gone is still offline, with a note") {
    zone.silent = true;
    auto r = run(loop, [&](auto d) { (*driver)->stop(d); });
    CHECK(r.status == ActionStatus::Ok);
    CHECK(r.reason.starts_with("DNS records of web.lab.test left in place: no answer"));
  }
}

TEST_CASE("name driver: IsAlive passes when the server has exactly our records") {
  TestLoop loop;
  FakeZone zone;
  DnsTestServer server(loop.get(), zone.responder());
  auto g = group({{"name", scalar("web.lab.test")},
                  {"dns_server", scalar(server.server().to_string())},
                  {"addresses", list({"10.0.0.7"})}});
  auto driver = NameDriver::create(g->resources[2], context(loop, g));
  REQUIRE(driver);
  CHECK(run(loop, [&](auto d) { (*driver)->start(d); }).status == ActionStatus::Ok);
  CHECK(zone.records == std::vector{addr("10.0.0.7")});
  CHECK(run(loop, [&](auto d) { (*driver)->monitor(MonitorLevel::IsAlive, d); }).status ==
        ActionStatus::Ok);
  zone.records = {addr("10.0.0.8")};  // Someone changed it behind our back.
  CHECK(run(loop, [&](auto d) { (*driver)->monitor(MonitorLevel::IsAlive, d); }).status ==
        ActionStatus::Failed);
}

TEST_CASE("name driver: a refused update fails the start with the server's answer") {
  TestLoop loop;
  FakeZone zone;
  zone.update_rcode = DnsRcode::Refused;
  DnsTestServer server(loop.get(), zone.responder());
  auto g = group({{"name", scalar("web.lab.test")},
                  {"dns_server", scalar(server.server().to_string())}});
  auto driver = NameDriver::create(g->resources[2], context(loop, g));
  REQUIRE(driver);
  auto r = run(loop, [&](auto d) { (*driver)->start(d); });
  CHECK(r.status == ActionStatus::Failed);
  CHECK(r.reason == fmt::format("DNS server {} refused the update of web.lab.test: REFUSED",
                                server.server().to_string()));
}

TEST_CASE("name driver: no answer within the start timeout is a timeout") {
  TestLoop loop;
  FakeZone zone;
  zone.silent = true;
  DnsTestServer server(loop.get(), zone.responder());
  auto g = group({{"name", scalar("web.lab.test")},
                  {"dns_server", scalar(server.server().to_string())}});
  g->resources[2].timeouts.start = 500ms;
  auto driver = NameDriver::create(g->resources[2], context(loop, g));
  REQUIRE(driver);
  auto r = run(loop, [&](auto d) { (*driver)->start(d); });
  CHECK(r.status == ActionStatus::Timeout);
  CHECK(r.reason.starts_with("registering web.lab.test in DNS: no answer from DNS server"));
}

TEST_CASE("name driver: a name with nothing to register is a configuration error") {
  TestLoop loop;
  auto g = group({{"name", scalar("web.lab.test")}, {"dns_server", scalar("127.0.0.1:9")}});
  g->resources[2].depends.clear();
  auto driver = NameDriver::create(g->resources[2], context(loop, g));
  REQUIRE(driver);
  auto r = run(loop, [&](auto d) { (*driver)->start(d); });
  CHECK(r.status == ActionStatus::InvalidConfig);
  CHECK(r.reason.find("no address to register") != std::string::npos);
}

}  // namespace clusterd
