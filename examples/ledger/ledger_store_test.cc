#include "ledger_store.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace clusterd::ledger {
namespace {

/// A private directory under /tmp, removed at the end of the test.
struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/ledger-test-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string log() const { return path + "/ledger.log"; }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

}  // namespace

TEST_CASE("the store appends, refuses duplicates and rebuilds its index on reopen") {
  TempDir dir;
  {
    auto store = LedgerStore::open(dir.path);
    REQUIRE(store);
    CHECK(*store->append({"a", 1, "one"}) == LedgerStore::Outcome::Stored);
    CHECK(*store->append({"b", 1, "uno"}) == LedgerStore::Outcome::Stored);
    CHECK(*store->append({"a", 2, "two"}) == LedgerStore::Outcome::Stored);
    CHECK(*store->append({"a", 1, "again"}) == LedgerStore::Outcome::Duplicate);
    REQUIRE(store->sync());
    CHECK(store->count() == 3);
    CHECK(store->seqs("a") == std::vector<uint64_t>{1, 2});
    CHECK(store->seqs("nobody").empty());
  }
  CHECK(slurp(dir.log()) == encode_record({"a", 1, "one"}) + encode_record({"b", 1, "uno"}) +
                                encode_record({"a", 2, "two"}));
  auto reopened = LedgerStore::open(dir.path);
  REQUIRE(reopened);
  CHECK(reopened->load_report().records == 3);
  CHECK(reopened->load_report().clients == 2);
  CHECK(reopened->load_report().truncated_bytes == 0);
  CHECK(*reopened->append({"a", 2, "two"}) == LedgerStore::Outcome::Duplicate);
  CHECK(reopened->seqs("b") == std::vector<uint64_t>{1});
}

TEST_CASE("a torn last record is cut off at open and appends continue after it") {
  TempDir dir;
  std::string good = encode_record({"a", 1, "one"});
  std::string torn = encode_record({"a", 2, "two"}).substr(0, 10);
  spit(dir.log(), good + torn);
  {
    auto store = LedgerStore::open(dir.path);
    REQUIRE(store);
    CHECK(store->load_report().truncated_bytes == torn.size());
    CHECK(store->count() == 1);
    CHECK(*store->append({"a", 2, "two"}) == LedgerStore::Outcome::Stored);
    REQUIRE(store->sync());
  }
  CHECK(slurp(dir.log()) == good + encode_record({"a", 2, "two"}));
}

TEST_CASE("damage before the last record refuses to open") {
  TempDir dir;
  std::string bad = encode_record({"a", 2, "two"});
  bad[0] = bad[0] == '0' ? '1' : '0';
  spit(dir.log(), encode_record({"a", 1, "one"}) + bad + encode_record({"a", 3, "three"}));
  auto store = LedgerStore::open(dir.path);
  REQUIRE_FALSE(store);
  CHECK(store.error().message.find("damaged") != std::string::npos);
}

TEST_CASE("a missing or non-directory data dir is refused with a clear message") {
  TempDir dir;
  auto missing = LedgerStore::open(dir.path + "/nope");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().errno_value == ENOENT);
  CHECK(missing.error().message.find("/nope") != std::string::npos);
  spit(dir.path + "/file", "x");
  auto file = LedgerStore::open(dir.path + "/file");
  REQUIRE_FALSE(file);
  CHECK(file.error().message.find("not a directory") != std::string::npos);
}

TEST_CASE("two stores cannot share a data directory") {
  TempDir dir;
  auto first = LedgerStore::open(dir.path);
  REQUIRE(first);
  auto second = LedgerStore::open(dir.path);
  REQUIRE_FALSE(second);
  CHECK(second.error().message.find("in use") != std::string::npos);
}

}  // namespace clusterd::ledger
