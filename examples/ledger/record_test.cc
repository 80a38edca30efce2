#include "record.h"

#include <doctest/doctest.h>

namespace clusterd::ledger {

TEST_CASE("crc32c matches the published check value") {
  // RFC 3720 B.4 / the CRC catalogue: CRC-32C("123456789") = 0xE3069283.
  CHECK(crc32c("123456789") == 0xE3069283u);
  CHECK(crc32c("") == 0u);
  CHECK(crc32c("6789", crc32c("12345")) == 0xE3069283u);
}

TEST_CASE("a record survives encoding, payload spaces and all") {
  Record r{"client-1", 42, "hello world  with spaces"};
  std::string line = encode_record(r);
  CHECK(line.back() == '\n');
  CHECK(line.substr(9) == "client-1 42 hello world  with spaces\n");
  auto decoded = decode_record(std::string_view(line).substr(0, line.size() - 1));
  REQUIRE(decoded);
  CHECK(*decoded == r);
}

TEST_CASE("an empty payload round-trips") {
  Record r{"c", 7, ""};
  std::string line = encode_record(r);
  auto decoded = decode_record(std::string_view(line).substr(0, line.size() - 1));
  REQUIRE(decoded);
  CHECK(*decoded == r);
}

TEST_CASE("a flipped byte anywhere fails the checksum") {
  std::string line = encode_record({"c", 1, "payload"});
  line.pop_back();
  for (size_t i = 0; i < line.size(); ++i) {
    std::string damaged = line;
    damaged[i] ^= 0x01;
    CHECK_MESSAGE(!decode_record(damaged), "byte ", i);
  }
}

TEST_CASE("scan_log reads every intact record") {
  std::string log =
      encode_record({"a", 1, "x"}) + encode_record({"b", 1, "y"}) + encode_record({"a", 2, "z"});
  LogScan scan = scan_log(log);
  CHECK(scan.records.size() == 3);
  CHECK(scan.valid_bytes == log.size());
  CHECK_FALSE(scan.torn_tail);
  CHECK_FALSE(scan.corrupt);
  CHECK(scan.records[2] == Record{"a", 2, "z"});
}

TEST_CASE("scan_log treats an unfinished last record as torn") {
  std::string good = encode_record({"a", 1, "x"});
  std::string next = encode_record({"a", 2, "yyyy"});
  for (size_t cut = 1; cut < next.size(); ++cut) {
    LogScan scan = scan_log(good + next.substr(0, cut));
    CHECK(scan.torn_tail);
    CHECK_FALSE(scan.corrupt);
    CHECK(scan.valid_bytes == good.size());
    CHECK(scan.records.size() == 1);
  }
}

TEST_CASE("scan_log treats a complete but damaged last line, or zeros, as torn") {
  std::string good = encode_record({"a", 1, "x"});
  std::string bad = encode_record({"a", 2, "y"});
  bad[12] ^= 0x20;
  CHECK(scan_log(good + bad).torn_tail);
  CHECK(scan_log(good + std::string(4096, '\0')).torn_tail);
}

TEST_CASE("scan_log reports damage followed by more records as corruption") {
  std::string first = encode_record({"a", 1, "x"});
  std::string bad = encode_record({"a", 2, "y"});
  bad[12] ^= 0x20;
  LogScan scan = scan_log(first + bad + encode_record({"a", 3, "z"}));
  CHECK(scan.corrupt);
  CHECK_FALSE(scan.torn_tail);
  CHECK(scan.corrupt_offset == first.size());
}

TEST_CASE("client ids are limited to a safe alphabet") {
  CHECK(valid_client_id("c-0123abcd"));
  CHECK(valid_client_id("node1:app_2.x"));
  CHECK_FALSE(valid_client_id(""));
  CHECK_FALSE(valid_client_id("has space"));
  CHECK_FALSE(valid_client_id(std::string(65, 'a')));
  CHECK(valid_client_id(std::string(64, 'a')));
}

}  // namespace clusterd::ledger
