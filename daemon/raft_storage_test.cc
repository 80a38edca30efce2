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

TEST_CASE("raft storage: a commit-only Ready writes nothing; term and vote always do") {
  testing::TempDir dir;
  auto storage = RaftStorage::open(dir.path());
  REQUIRE(storage);
  RaftReady ready;
  ready.hard_state = HardState{2, 1, 0};
  ready.entries = {{2, 1, 0, {}}};
  REQUIRE(storage->persist(ready));
  RaftReady commit;
  commit.hard_state = HardState{2, 1, 1};
  REQUIRE(storage->persist(commit));
  CHECK(storage->state().hard.commit == 1);
  auto reopened = RaftStorage::open(dir.path());
  REQUIRE(reopened);
  CHECK(reopened->state().hard == HardState{2, 1, 0});  // the commit index is a lower bound
  RaftReady vote;
  vote.hard_state = HardState{3, 2, 1};
  REQUIRE(storage->persist(vote));
  auto again = RaftStorage::open(dir.path());
  REQUIRE(again);
  CHECK(again->state().hard == HardState{3, 2, 1});
}

TEST_CASE("raft storage: a torn newest slot falls back to the other one") {
  testing::TempDir dir;
  auto storage = RaftStorage::open(dir.path());
  REQUIRE(storage);
  RaftReady first;
  first.hard_state = HardState{1, 1, 0};
  REQUIRE(storage->persist(first));  // generation 1: raft.1
  RaftReady second;
  second.hard_state = HardState{2, 2, 0};
  REQUIRE(storage->persist(second));  // generation 2: raft.0
  {
    // A crash in the middle of writing generation 2: its checksum no longer matches.
    std::fstream f(dir.path() + "/raft.0", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('#');
  }
  auto reopened = RaftStorage::open(dir.path());
  REQUIRE(reopened);
  CHECK(reopened->state().hard == HardState{1, 1, 0});
  // Writing on continues after the newest valid generation, into the torn slot.
  RaftReady third;
  third.hard_state = HardState{3, 3, 0};
  REQUIRE(reopened->persist(third));
  auto last = RaftStorage::open(dir.path());
  REQUIRE(last);
  CHECK(last->state().hard == HardState{3, 3, 0});
}

TEST_CASE("raft storage: an earlier release's raft.json is read once, then slots take over") {
  testing::TempDir dir;
  std::ofstream(dir.path() + "/raft.json")
      << R"({"term":5,"vote":2,"commit":0,"snapshot":{"index":0,"term":0,"data":""},)"
      << R"("entries":[]})";
  auto storage = RaftStorage::open(dir.path());
  REQUIRE(storage);
  CHECK(storage->state().hard == HardState{5, 2, 0});
  RaftReady ready;
  ready.hard_state = HardState{6, 3, 0};
  REQUIRE(storage->persist(ready));
  auto reopened = RaftStorage::open(dir.path());
  REQUIRE(reopened);
  CHECK(reopened->state().hard == HardState{6, 3, 0});
}

TEST_CASE("raft storage: slots that are all corrupt are an error, never a silent reset") {
  testing::TempDir dir;
  std::ofstream(dir.path() + "/raft.0") << "garbage";
  auto storage = RaftStorage::open(dir.path());
  REQUIRE_FALSE(storage);
  CHECK(storage.error().message.find("malformed") != std::string::npos);
}

TEST_CASE("raft storage: a corrupt file is an error, never a silent reset") {
  testing::TempDir dir;
  std::ofstream(dir.path() + "/raft.json") << "{not json";
  auto storage = RaftStorage::open(dir.path());
  REQUIRE_FALSE(storage);
  CHECK(storage.error().message.find("malformed") != std::string::npos);
}

}  // namespace clusterd
