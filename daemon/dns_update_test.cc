#include "dns_update.h"

#include <doctest/doctest.h>

#include <fstream>
#include <set>

namespace clusterd {
namespace {

// Captured once from BIND 9.18 (Debian 12) in a network namespace: nsupdate and dig against
// named, with the key below (tsig-keygen -a hmac-sha256 nm-key). See tests/fixtures/dns/README.
constexpr const char* kKeyFile = R"(key "nm-key" {
	algorithm hmac-sha256;
	secret "mgnrS8IknhnaK0Jv8yPNLf2HevZ6CawP2TXHJhmk198=";
};
)";
constexpr std::uint64_t kTimeSigned = 0x6b07efa9;

// nsupdate -k key.conf: zone lab.test; update delete ledger.lab.test. A;
// update add ledger.lab.test. 5 A 10.77.0.100; send
constexpr const char* kNsupdateRequest =
    "559228000001000000020001036c616204746573740000060001066c6564676572c00c000100ff0000000000"
    "00c01a000100010000000500040a4d0064066e6d2d6b65790000fa00ff00000000003d0b686d61632d736861"
    "3235360000006b07efa9012c0020233d2391adfd1cba871c2769ee12c9062134f6cdead07ab113d51cffee41"
    "202e559200000000";
// named's NOERROR answer to it, signed.
constexpr const char* kNamedUpdateResponse =
    "5592a8000001000000000001036c616204746573740000060001066e6d2d6b65790000fa00ff00000000003d"
    "0b686d61632d7368613235360000006b07efa9012c002011526cd488eacd2dc4285cd70ef24a2a8101251487"
    "db3f2604685d1e79eb113f559200000000";
// dig -y's query for ledger.lab.test A (EDNS cookie), and named's answer (compressed names).
constexpr const char* kDigQuery =
    "008100200001000000000002066c6564676572036c61620474657374000001000100002904d000000000000c"
    "000a00085a65722cfe8f6ba2066e6d2d6b65790000fa00ff00000000003d0b686d61632d7368613235360000"
    "006b07efa9012c0020bcedf43721f2066c8690da8deac980d33db806c0b049ceabdd86324d9f6d2f17008100"
    "000000";
constexpr const char* kNamedQueryResponse =
    "008184000001000100010003066c6564676572036c616204746573740000010001c00c000100010000000500"
    "040a4d0064c013000200010000003c0005026e73c013c03d000100010000003c00047f00000100002904d000"
    "000000001c000a00185a65722cfe8f6ba2010000006b07efa95aa40b8b616a3214066e6d2d6b65790000fa00"
    "ff00000000003d0b686d61632d7368613235360000006b07efa9012c0020e2c216cb30e79251751cf3308b9f"
    "91d1acd49fdb290e50f58d6e039765839a51008100000000";

std::vector<std::uint8_t> hex(std::string_view text) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16)));
  return out;
}

TsigKey test_key() {
  auto key = parse_tsig_key(kKeyFile);
  REQUIRE(key);
  return *key;
}

InetAddress addr(const char* text) { return *InetAddress::parse(text); }

}  // namespace

TEST_CASE("DNS rcode names are complete") {
  std::set<std::string> names;
  for (auto rcode : kDnsRcodes) {
    auto name = to_string(rcode);
    CHECK_FALSE(name.starts_with("RCODE"));
    names.insert(name);
  }
  CHECK(names.size() == std::size(kDnsRcodes));
  CHECK(to_string(static_cast<DnsRcode>(23)) == "RCODE23");
}

TEST_CASE("DNS names are checked and folded to lower case") {
  CHECK(*check_dns_name("Ledger") == "ledger");
  CHECK(*check_dns_name("ledger.Lab.test.") == "ledger.lab.test");
  CHECK(*check_dns_name("3com-host.example") == "3com-host.example");
  CHECK_FALSE(check_dns_name(""));
  CHECK_FALSE(check_dns_name("."));
  CHECK_FALSE(check_dns_name("a..b"));
  CHECK_FALSE(check_dns_name("-web"));
  CHECK_FALSE(check_dns_name("web-.lab"));
  CHECK_FALSE(check_dns_name("web_1"));
  CHECK_FALSE(check_dns_name("web server"));
  CHECK_FALSE(check_dns_name(std::string(64, 'a')));
  CHECK(check_dns_name(std::string(63, 'a')));
  std::string long_name;
  for (int i = 0; i < 64; ++i) long_name += "abc.";
  CHECK_FALSE(check_dns_name(long_name));
  CHECK(check_dns_name("web_1").error().message.find("'_'") != std::string::npos);
}

TEST_CASE("BIND key files are parsed") {
  TsigKey key = test_key();
  CHECK(key.name == "nm-key");
  CHECK(key.algorithm == "hmac-sha256");
  CHECK(key.secret.size() == 32);
  CHECK(key.secret[0] == 0x9a);  // "mgnr" -> 9a 09 eb
  // Comments, another layout, a trailing dot.
  auto other = parse_tsig_key("# made by hand\nkey Upd.Key. { secret \"AAEC\"; // two\n"
                              "algorithm HMAC-SHA256; };");
  REQUIRE(other);
  CHECK(other->name == "upd.key");
  CHECK(other->secret == std::vector<std::uint8_t>{0, 1, 2});
  CHECK_FALSE(parse_tsig_key("options { };"));
  CHECK_FALSE(parse_tsig_key("key \"k\" { algorithm hmac-sha256; };"));
  CHECK_FALSE(parse_tsig_key("key \"k\" { secret \"AAEC\"; };"));
  CHECK_FALSE(parse_tsig_key("key \"k\" { algorithm hmac-sha256; secret \"!!\"; };"));
  auto md5 = parse_tsig_key("key \"k\" { algorithm hmac-md5; secret \"AAEC\"; };");
  REQUIRE_FALSE(md5);
  CHECK(md5.error().message.find("not supported") != std::string::npos);
  auto missing = read_tsig_key_file("/nonexistent/key.conf");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().errno_value == ENOENT);
}

TEST_CASE("An UPDATE replaces the name's A and AAAA records") {
  DnsUpdate update{0x5592, "lab.test", "ledger.lab.test", 5,
                   {addr("10.77.0.100"), addr("fd00:77:0:1::100")}};
  auto wire = encode_dns_update(update);
  REQUIRE(wire);
  // Worked out from RFC 2136 by hand: header (opcode 5, ZOCOUNT 1, UPCOUNT 4); zone section
  // lab.test SOA IN; delete A RRset and AAAA RRset (class ANY, TTL 0, no data); two adds.
  std::string name = "066c6564676572036c6162047465737400";
  auto expected = hex(
      "559228000001000000040000"
      "036c6162047465737400" "00060001" +
      name + "0001" "00ff" "00000000" "0000" +
      name + "001c" "00ff" "00000000" "0000" +
      name + "0001" "0001" "00000005" "0004" "0a4d0064" +
      name + "001c" "0001" "00000005" "0010" "fd000077000000010000000000000100");
  CHECK(*wire == expected);
  // Decoded back: the update section is not part of `answers` (that is the prerequisites).
  auto decoded = decode_dns_message(*wire);
  REQUIRE(decoded);
  CHECK(decoded->opcode() == 5);
  CHECK_FALSE(decoded->is_response());
  CHECK(decoded->answers.empty());

  DnsUpdate remove{1, "lab.test", "ledger.lab.test", 5, {}};
  CHECK(encode_dns_update(remove)->size() == 12 + 14 + 2 * (17 + 10));
  DnsUpdate outside{1, "lab.test", "ledger.other.test", 5, {}};
  auto refused = encode_dns_update(outside);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message == "name 'ledger.other.test' is not in zone 'lab.test'");
}

TEST_CASE("A query asks the authority without recursion") {
  auto wire = encode_dns_query(0x81, "Ledger.lab.test", DnsType::A);
  REQUIRE(wire);
  CHECK(*wire == hex("008100000001000000000000066c6564676572036c61620474657374000001" "0001"));
}

TEST_CASE("TSIG signing reproduces nsupdate's signed request byte for byte") {
  auto full = hex(kNsupdateRequest);
  auto decoded = decode_dns_message(full);
  REQUIRE(decoded);
  REQUIRE(decoded->tsig);
  CHECK(decoded->tsig->key_name == "nm-key");
  CHECK(decoded->tsig->algorithm == "hmac-sha256");
  CHECK(decoded->tsig->time_signed == kTimeSigned);
  CHECK(decoded->tsig->fudge == 300);
  // Our signature over nsupdate's unsigned message is nsupdate's signature.
  std::vector<std::uint8_t> message(full.begin(), full.begin() + decoded->tsig->offset);
  message[11] = 0;  // ARCOUNT before signing.
  auto mac = tsig_sign(message, test_key(), kTimeSigned);
  REQUIRE(mac);
  CHECK(*mac == decoded->tsig->mac);
  CHECK(message == full);
  CHECK(tsig_verify(full, *decoded, test_key(), {}, kTimeSigned));
}

TEST_CASE("TSIG verification of named's responses") {
  TsigKey key = test_key();
  auto request = decode_dns_message(hex(kNsupdateRequest));
  REQUIRE(request);
  auto wire = hex(kNamedUpdateResponse);
  auto response = decode_dns_message(wire);
  REQUIRE(response);
  CHECK(response->is_response());
  CHECK(response->rcode() == DnsRcode::NoError);
  CHECK(tsig_verify(wire, *response, key, request->tsig->mac, kTimeSigned + 10));

  SUBCASE("the request's MAC is part of the digest") {
    auto other_mac = request->tsig->mac;
    other_mac[0] ^= 1;
    CHECK_FALSE(tsig_verify(wire, *response, key, other_mac, kTimeSigned));
  }
  SUBCASE("a changed byte breaks the signature") {
    auto forged = wire;
    forged[3] = 0x05;  // NOERROR -> REFUSED
    auto decoded = decode_dns_message(forged);
    REQUIRE(decoded);
    auto r = tsig_verify(forged, *decoded, key, request->tsig->mac, kTimeSigned);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("does not match") != std::string::npos);
  }
  SUBCASE("another key") {
    TsigKey other = key;
    other.secret[5] ^= 0xff;
    CHECK_FALSE(tsig_verify(wire, *response, other, request->tsig->mac, kTimeSigned));
  }
  SUBCASE("outside the fudge") {
    auto r = tsig_verify(wire, *response, key, request->tsig->mac, kTimeSigned + 301);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("fudge") != std::string::npos);
  }
}

TEST_CASE("A compressed answer with EDNS and TSIG decodes to the registered address") {
  auto wire = hex(kNamedQueryResponse);
  auto response = decode_dns_message(wire);
  REQUIRE(response);
  CHECK(response->id == 0x81);
  CHECK(response->rcode() == DnsRcode::NoError);
  CHECK(answer_addresses(*response, "ledger.lab.test") == std::vector{addr("10.77.0.100")});
  CHECK(answer_ttl(*response, "ledger.lab.test") == 5u);
  CHECK(answer_addresses(*response, "ns.lab.test").empty());  // Additional, not an answer.
  auto query = decode_dns_message(hex(kDigQuery));
  REQUIRE(query);
  REQUIRE(query->tsig);
  CHECK(tsig_verify(hex(kDigQuery), *query, test_key(), {}, kTimeSigned));
  CHECK(tsig_verify(wire, *response, test_key(), query->tsig->mac, kTimeSigned));
}

TEST_CASE("Malformed messages are refused, not overrun") {
  CHECK_FALSE(decode_dns_message(hex("0081")));
  auto wire = hex(kNamedQueryResponse);
  for (std::size_t cut = 12; cut < wire.size(); cut += 7) {
    std::vector<std::uint8_t> part(wire.begin(), wire.begin() + cut);
    CHECK_FALSE(decode_dns_message(part));
  }
  // A compression pointer to itself.
  auto loop = hex("000084000001000000000000c00c00010001");
  auto r = decode_dns_message(loop);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("points forward or loops") != std::string::npos);
}

TEST_CASE("Our own signed UPDATE verifies, and an unsigned one does not") {
  TsigKey key = test_key();
  auto wire = encode_dns_update({7, "lab.test", "web.lab.test", 5, {addr("10.0.0.1")}});
  REQUIRE(wire);
  auto unsigned_decoded = decode_dns_message(*wire);
  REQUIRE(unsigned_decoded);
  CHECK_FALSE(tsig_verify(*wire, *unsigned_decoded, key, {}, 1000));
  auto mac = tsig_sign(*wire, key, 1000);
  REQUIRE(mac);
  auto decoded = decode_dns_message(*wire);
  REQUIRE(decoded);
  CHECK(tsig_verify(*wire, *decoded, key, {}, 1000));
  // Signing named's unsigned answer with the request's MAC gives named's signature.
  auto named = hex(kNamedUpdateResponse);
  auto named_decoded = decode_dns_message(named);
  auto request = decode_dns_message(hex(kNsupdateRequest));
  std::vector<std::uint8_t> answer(named.begin(), named.begin() + named_decoded->tsig->offset);
  answer[11] = 0;
  REQUIRE(tsig_sign(answer, key, kTimeSigned, kTsigFudge, request->tsig->mac));
  CHECK(answer == named);
}

}  // namespace clusterd
