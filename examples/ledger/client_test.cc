#include "client.h"

#include <doctest/doctest.h>

namespace clusterd::ledger {

TEST_CASE("check_read_back finds lost and doubly stored records") {
  ClientReport r;
  check_read_back({1, 2, 3, 4}, {1, 3, 3, 5}, r);
  CHECK(r.lost_seqs == std::vector<uint64_t>{2, 4});
  CHECK(r.duplicates == 1);
  CHECK(r.read_back == 3);
  CHECK(r.verified);
  CHECK(exit_code(r) == 1);
  check_read_back({1, 2}, {2, 1}, r);
  CHECK(r.lost_seqs.empty());
  CHECK(r.duplicates == 0);
  CHECK(exit_code(r) == 0);
}

TEST_CASE("giving up wins over everything for the exit code") {
  ClientReport r;
  r.gave_up = true;
  CHECK(exit_code(r) == 3);
}

TEST_CASE("the JSON report carries every field on one line") {
  ClientReport r;
  r.client_id = "c-1";
  r.acked = 5;
  r.lost_seqs = {2, 4};
  r.verified = true;
  r.outages_ms = {120, 30};
  r.reconnects = 2;
  r.elapsed_ms = 999;
  std::string json = to_json(r);
  CHECK(json.find('\n') == std::string::npos);
  CHECK(json.find(R"("acked": 5)") != std::string::npos);
  CHECK(json.find(R"("lost": 2)") != std::string::npos);
  CHECK(json.find(R"("lost_seqs": [2, 4])") != std::string::npos);
  CHECK(json.find(R"("outages_ms": [120, 30])") != std::string::npos);
  CHECK(json.find(R"("max_outage_ms": 120)") != std::string::npos);
  CHECK(json.find(R"("reconnects": 2)") != std::string::npos);
  CHECK(json.find(R"("elapsed_ms": 999)") != std::string::npos);
  CHECK(json.find(R"("verified": true)") != std::string::npos);
}

TEST_CASE("an unverified run reports lost as null") {
  ClientReport r;
  r.gave_up = true;
  CHECK(to_json(r).find(R"("lost": null)") != std::string::npos);
  CHECK(to_json(r).find(R"("gave_up": true)") != std::string::npos);
}

TEST_CASE("random client ids are valid and differ") {
  std::string a = random_client_id();
  CHECK(valid_client_id(a));
  CHECK(a != random_client_id());
}

}  // namespace clusterd::ledger
