#include "protocol.h"

#include <doctest/doctest.h>

namespace clusterd::ledger {

TEST_CASE("APPEND parses client id, seq and the rest of the line as payload") {
  auto request = parse_request("APPEND c-1 17 some data here");
  REQUIRE(request);
  auto* append = std::get_if<AppendRequest>(&*request);
  REQUIRE(append);
  CHECK(append->record == Record{"c-1", 17, "some data here"});
}

TEST_CASE("APPEND without payload stores an empty one") {
  auto request = parse_request("APPEND c 3");
  REQUIRE(request);
  CHECK(std::get<AppendRequest>(*request).record == Record{"c", 3, ""});
}

TEST_CASE("a trailing carriage return is ignored") {
  auto request = parse_request("PING\r");
  REQUIRE(request);
  CHECK(std::holds_alternative<PingRequest>(*request));
}

TEST_CASE("READ, PING and COUNT parse") {
  auto read = parse_request("READ abc");
  REQUIRE(read);
  CHECK(std::get<ReadRequest>(*read).client_id == "abc");
  CHECK(std::holds_alternative<PingRequest>(*parse_request("PING")));
  CHECK(std::holds_alternative<CountRequest>(*parse_request("COUNT")));
}

TEST_CASE("malformed requests are refused with a reason") {
  CHECK_FALSE(parse_request(""));
  CHECK_FALSE(parse_request("append c 1 x"));
  CHECK_FALSE(parse_request("APPEND"));
  CHECK_FALSE(parse_request("APPEND c"));
  CHECK_FALSE(parse_request("APPEND c -1 x"));
  CHECK_FALSE(parse_request("APPEND c 1x y"));
  CHECK_FALSE(parse_request("APPEND c 99999999999999999999999 y"));
  CHECK_FALSE(parse_request("APPEND bad/id 1 y"));
  CHECK_FALSE(parse_request("READ"));
  CHECK_FALSE(parse_request("READ a b"));
  CHECK_FALSE(parse_request("PING now"));
  auto unknown = parse_request("DELETE everything");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message.find("DELETE") != std::string::npos);
}

TEST_CASE("format_request and parse_request agree") {
  Request requests[] = {AppendRequest{{"id", 5, "p q"}}, ReadRequest{"id"}, PingRequest{},
                        CountRequest{}};
  for (const Request& request : requests) {
    std::string line = format_request(request);
    REQUIRE(line.back() == '\n');
    line.pop_back();
    auto parsed = parse_request(line);
    REQUIRE(parsed);
    CHECK(parsed->index() == request.index());
  }
}

TEST_CASE("append replies round-trip, DUP included") {
  CHECK(format_append_reply({9, false}) == "OK 9\n");
  CHECK(format_append_reply({9, true}) == "OK 9 DUP\n");
  auto plain = parse_append_reply("OK 9");
  REQUIRE(plain);
  CHECK(plain->seq == 9);
  CHECK_FALSE(plain->duplicate);
  auto dup = parse_append_reply("OK 9 DUP");
  REQUIRE(dup);
  CHECK(dup->duplicate);
}

TEST_CASE("error and garbage replies are errors") {
  auto err = parse_append_reply("ERR disk full");
  REQUIRE_FALSE(err);
  CHECK(err.error().message.find("disk full") != std::string::npos);
  CHECK_FALSE(parse_append_reply("OK"));
  CHECK_FALSE(parse_append_reply("OK 9 MAYBE"));
  CHECK_FALSE(parse_append_reply("PONG"));
  CHECK(format_error("two\nlines") == "ERR two lines\n");
}

TEST_CASE("endpoints: IPv4, host names and bracketed IPv6") {
  CHECK(*parse_endpoint("0.0.0.0:7070") == Endpoint{"0.0.0.0", 7070});
  CHECK(*parse_endpoint("ledger.example:80") == Endpoint{"ledger.example", 80});
  CHECK(*parse_endpoint("[::1]:7070") == Endpoint{"::1", 7070});
  CHECK(*parse_endpoint("[fe80::1%eth0]:1") == Endpoint{"fe80::1%eth0", 1});
  CHECK(to_string(Endpoint{"::1", 7070}) == "[::1]:7070");
  CHECK(to_string(Endpoint{"10.0.0.1", 7070}) == "10.0.0.1:7070");
}

TEST_CASE("bad endpoints are refused") {
  CHECK_FALSE(parse_endpoint("7070"));
  CHECK_FALSE(parse_endpoint(":7070"));
  CHECK_FALSE(parse_endpoint("host:"));
  CHECK_FALSE(parse_endpoint("host:0"));
  CHECK_FALSE(parse_endpoint("host:65536"));
  CHECK_FALSE(parse_endpoint("::1:7070"));
  CHECK_FALSE(parse_endpoint("[::1]7070"));
  CHECK_FALSE(parse_endpoint("[]:7070"));
}

}  // namespace clusterd::ledger
