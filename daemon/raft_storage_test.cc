#include "raft_storage.h"

#include <doctest/doctest.h>

#include <fstream>

#include "loop_test_util.h"

namespace clusterd {

TEST_CASE("raft storage: a new node starts empty; what a Ready persists survives a reopen") {
  testing::TempDir dir;
  auto storage = RaftStorage::open(dir.path());
  REQUIRE(storage);
  CHECK(storage->state().hard == HardState{});
  RaftReady ready;
  ready.hard_state = HardState{3, 2, 1};
  ready.entries = {{3, 1, 0, {}}, {3, 2, 1, {'{', '}'}}};
  REQUIRE(storage->persist(ready));
  // A later Ready replaces entries from its first index on.
  RaftReady later;
  later.entries = {{4, 2, 2, {'x'}}};
  REQUIRE(storage->persist(later));

  auto reopened = RaftStorage::open(dir.path());
  REQUIRE(reopened);
  CHECK(reopened->state().hard == HardState{3, 2, 1});
  REQUIRE(reopened->state().entries.size() == 2);
  CHECK(reopened->state().entries[1] == Entry{4, 2, 2, {'x'}});
}

TEST_CASE("raft storage: a snapshot replaces the entries it covers") {
  testing::TempDir dir;
  auto storage = RaftStorage::open(dir.path());
  REQUIRE(storage);
  RaftReady ready;
  ready.entries = {{1, 1, 0, {}}, {1, 2, 0, {}}, {1, 3, 0, {}}};
  REQUIRE(storage->persist(ready));
  REQUIRE(storage->compact(Snapshot{2, 1, {'s'}}));
  auto reopened = RaftStorage::open(dir.path());
  REQUIRE(reopened);
  CHECK(reopened->state().snapshot == Snapshot{2, 1, {'s'}});
  REQUIRE(reopened->state().entries.size() == 1);
  CHECK(reopened->state().entries[0].index == 3);
}

TEST_CASE("raft storage: a corrupt file is an error, never a silent reset") {
  testing::TempDir dir;
  std::ofstream(dir.path() + "/raft.json") << "{not json";
  auto storage = RaftStorage::open(dir.path());
  REQUIRE_FALSE(storage);
  CHECK(storage.error().message.find("malformed") != std::string::npos);
}

}  // namespace clusterd
