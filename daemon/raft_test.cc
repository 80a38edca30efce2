#include "raft.h"

#include <doctest/doctest.h>

#include <limits>
#include <memory>
#include <set>
#include <string>

namespace clusterd {
namespace {

constexpr std::uint16_t kCommand = 1;

RaftTiming test_timing() {
  RaftTiming t;
  t.election_timeout_min = Duration(100);
  t.election_timeout_max = Duration(200);
  t.heartbeat_interval = Duration(20);
  return t;
}

Bytes b(const std::string& s) { return Bytes(s.begin(), s.end()); }

Entry entry(Term term, Index index, std::uint16_t type = kCommand) {
  return Entry{term, index, type, b("x")};
}

// A hand-driven cluster: messages wait in `inflight` until deliver() hands them over, so a test
// decides exactly what arrives. Every Ready is handled like a daemon would (persist, send, apply).
struct Cluster {
  VoterMap voters;
  RaftTiming timing = test_timing();
  MonoTime now{1'000'000'000};
  std::map<NodeId, std::unique_ptr<RaftNode>> nodes;
  std::map<NodeId, PersistentState> disks;
  std::map<NodeId, std::vector<Entry>> applied;
  std::vector<Message> inflight;
  std::set<std::pair<NodeId, NodeId>> cut;  // directed: (from, to) dropped

  explicit Cluster(VoterMap v, std::map<NodeId, PersistentState> initial = {})
      : voters(std::move(v)), disks(std::move(initial)) {
    for (const auto& [id, votes] : voters) start(id);
  }

  void start(NodeId id) {
    nodes[id] = std::make_unique<RaftNode>(id, voters, timing, disks[id], now, id * 7919);
    applied[id].clear();
    collect(id);
  }

  RaftNode& node(NodeId id) { return *nodes.at(id); }

  void collect(NodeId id) {
    while (node(id).has_ready()) {
      RaftReady r = node(id).ready();
      PersistentState& d = disks[id];
      if (r.snapshot) {
        d.snapshot = *r.snapshot;
        d.entries.clear();
      }
      if (!r.entries.empty()) {
        d.entries.resize(r.entries.front().index - d.snapshot.index - 1);
        d.entries.insert(d.entries.end(), r.entries.begin(), r.entries.end());
      }
      if (r.hard_state) d.hard = *r.hard_state;
      inflight.insert(inflight.end(), r.messages.begin(), r.messages.end());
      applied[id].insert(applied[id].end(), r.committed.begin(), r.committed.end());
    }
  }

  // Delivers everything in flight, and what that causes, until the network is quiet.
  void deliver() {
    for (int round = 0; round < 1000 && !inflight.empty(); ++round) {
      auto batch = std::move(inflight);
      inflight.clear();
      for (const Message& m : batch) {
        if (cut.contains({m.from, m.to}) || !nodes.contains(m.to)) continue;
        node(m.to).tick(now);
        node(m.to).step(m);
        collect(m.to);
      }
    }
  }

  // Lets `d` pass in 5 ms steps, ticking every node and delivering at each step.
  void advance(Duration d) {
    for (MonoTime end = now + d; now < end;) {
      now = now + Duration(5);
      for (auto& [id, n] : nodes) {
        n->tick(now);
        collect(id);
      }
      deliver();
    }
  }

  void isolate(NodeId id) {
    for (const auto& [other, v] : voters) {
      cut.insert({id, other});
      cut.insert({other, id});
    }
  }

  void heal() { cut.clear(); }

  // Campaigns on `id` once the restart hold-off (no votes for a minimum election timeout after
  // start) is over.
  NodeId elect(NodeId id) {
    now = now + timing.election_timeout_min;
    node(id).campaign();
    collect(id);
    deliver();
    return id;
  }
};

VoterMap three() { return {{1, 1}, {2, 1}, {3, 1}}; }

std::vector<Message> take_messages(RaftNode& n) { return n.ready().messages; }

Message vote_request(NodeId from, NodeId to, Term term, Index last_index, Term last_term) {
  Message m;
  m.type = MessageType::Vote;
  m.from = from;
  m.to = to;
  m.term = term;
  m.log_index = last_index;
  m.log_term = last_term;
  return m;
}

Message append(NodeId from, NodeId to, Term term, Index prev, Term prev_term,
               std::vector<Entry> entries, Index commit) {
  Message m;
  m.type = MessageType::Append;
  m.from = from;
  m.to = to;
  m.term = term;
  m.log_index = prev;
  m.log_term = prev_term;
  m.entries = std::move(entries);
  m.commit = commit;
  return m;
}

PersistentState with_log(Term term, std::vector<Entry> entries, Index commit = 0) {
  PersistentState p;
  p.hard.term = term;
  p.hard.commit = commit;
  p.entries = std::move(entries);
  return p;
}

}  // namespace

TEST_CASE("raft roles have names") {
  std::set<std::string> names;
  for (int i = 0; i < kRaftRoleCount; ++i) {
    std::string name = to_string(static_cast<RaftRole>(i));
    CHECK(name != "?");
    names.insert(name);
  }
  CHECK(names.size() == kRaftRoleCount);
}

TEST_CASE("raft settings are validated") {
  CHECK(validate_raft_settings(1, three(), test_timing()));
  CHECK_FALSE(validate_raft_settings(4, three(), test_timing()));
  CHECK_FALSE(validate_raft_settings(1, {{1, 0}}, test_timing()));
  RaftTiming t = test_timing();
  t.heartbeat_interval = Duration(100);
  CHECK_FALSE(validate_raft_settings(1, three(), t));
  t = test_timing();
  t.election_timeout_max = Duration(50);
  CHECK_FALSE(validate_raft_settings(1, three(), t));
  t = test_timing();
  t.lease_margin = Duration(90);
  auto r = validate_raft_settings(1, three(), t);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("lease margin") != std::string::npos);
}

TEST_CASE("raft election: a quorum of votes elects; the leader commits a no-op") {
  Cluster c(three());
  c.elect(1);
  c.advance(test_timing().heartbeat_interval);  // the next heartbeat brings the commit index
  CHECK(c.node(1).status() == RaftStatus{RaftRole::Leader, 1, 1});
  CHECK(c.node(2).status() == RaftStatus{RaftRole::Follower, 1, 1});
  for (NodeId id : {1, 2, 3}) {
    REQUIRE(c.applied[id].size() == 1);
    CHECK(c.applied[id][0].type == kEntryNoop);
    CHECK(c.disks[id].hard.term == 1);
  }
  CHECK(c.disks[2].hard.vote == 1u);
}

TEST_CASE("raft election happens by itself after the election timeout") {
  Cluster c(three());
  c.advance(Duration(90));
  for (NodeId id : {1, 2, 3}) CHECK(c.node(id).status().role == RaftRole::Follower);
  c.advance(Duration(300));
  int leaders = 0;
  for (NodeId id : {1, 2, 3}) leaders += c.node(id).status().role == RaftRole::Leader;
  CHECK(leaders == 1);
}

TEST_CASE("raft proposals commit on the leader and fail elsewhere naming the leader") {
  Cluster c(three());
  c.elect(1);
  auto index = c.node(1).propose(kCommand, b("hello"));
  REQUIRE(index);
  CHECK(*index == 2);
  c.advance(test_timing().heartbeat_interval);
  for (NodeId id : {1, 2, 3}) {
    REQUIRE(c.applied[id].size() == 2);
    CHECK(c.applied[id][1].data == b("hello"));
  }
  auto refused = c.node(2).propose(kCommand, b("no"));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message == "node 2 is not the leader; node 1 is");
  CHECK_FALSE(c.node(1).propose(kEntryNoop, {}));
}

TEST_CASE("raft vote: persisted in the same Ready that answers, one per term, kept over restart") {
  RaftNode n(2, three(), test_timing(), {}, MonoTime{1'000'000'000}, 1);
  n.tick(MonoTime{1'000'000'000} + Duration(150));  // out of the restart hold-off
  (void)n.ready();
  n.step(vote_request(1, 2, 1, 0, 0));
  RaftReady r = n.ready();
  REQUIRE(r.hard_state);
  CHECK(r.hard_state->term == 1);
  CHECK(r.hard_state->vote == 1u);
  REQUIRE(r.messages.size() == 1);
  CHECK(r.messages[0].type == MessageType::VoteResponse);
  CHECK_FALSE(r.messages[0].reject);

  n.step(vote_request(3, 2, 1, 0, 0));
  auto second = take_messages(n);
  REQUIRE(second.size() == 1);
  CHECK(second[0].reject);

  // Restarted from what it persisted, it still refuses anyone else in term 1.
  PersistentState disk;
  disk.hard = *r.hard_state;
  MonoTime later{2'000'000'000};
  RaftNode again(2, three(), test_timing(), disk, later, 2);
  again.tick(later + Duration(150));
  (void)again.ready();
  again.step(vote_request(3, 2, 1, 0, 0));
  auto third = take_messages(again);
  REQUIRE(third.size() == 1);
  CHECK(third[0].reject);
  again.step(vote_request(1, 2, 1, 0, 0));  // the same candidate asking again gets it again
  auto fourth = take_messages(again);
  REQUIRE(fourth.size() == 1);
  CHECK_FALSE(fourth[0].reject);
}

TEST_CASE("raft vote: a candidate with a less up-to-date log is refused") {
  MonoTime t0{1'000'000'000};
  RaftNode n(2, three(), test_timing(), with_log(2, {entry(1, 1), entry(2, 2)}), t0, 1);
  n.tick(t0 + Duration(150));
  (void)n.ready();
  n.step(vote_request(1, 2, 3, 5, 1));  // longer log, older last term
  auto m = take_messages(n);
  REQUIRE(m.size() == 1);
  CHECK(m[0].reject);
  n.step(vote_request(3, 2, 3, 2, 2));  // same last entry: up to date
  m = take_messages(n);
  REQUIRE(m.size() == 1);
  CHECK_FALSE(m[0].reject);
}

TEST_CASE("raft pre-vote: an isolated node does not inflate terms nor depose the leader") {
  Cluster c(three());
  c.elect(1);
  c.isolate(3);
  c.advance(Duration(2000));  // n3 times out again and again
  CHECK(c.node(3).status().term == 1);
  CHECK(c.node(3).status().role == RaftRole::PreCandidate);
  CHECK(c.disks[3].hard.term == 1);
  c.heal();
  c.advance(Duration(500));
  CHECK(c.node(1).status() == RaftStatus{RaftRole::Leader, 1, 1});
  CHECK(c.node(3).status() == RaftStatus{RaftRole::Follower, 1, 1});
}

TEST_CASE("raft lease: a follower that hears from its leader ignores vote requests") {
  Cluster c(three());
  c.elect(1);
  c.advance(Duration(50));
  c.node(2).step(vote_request(3, 2, 5, 100, 5));
  auto m = take_messages(c.node(2));
  CHECK(m.empty());  // dropped unanswered
  CHECK(c.node(2).status().term == 1);
}

TEST_CASE("raft check-quorum: an isolated leader steps down within its lease") {
  Cluster c(three());
  c.elect(1);
  c.advance(Duration(60));
  auto lease = c.node(1).lease_expiry();
  REQUIRE(lease);
  CHECK(*lease > c.now);
  c.isolate(1);
  MonoTime cut_at = c.now;
  while (c.node(1).status().role == RaftRole::Leader && c.now < cut_at + Duration(1000))
    c.advance(Duration(5));
  CHECK(c.node(1).status().role == RaftRole::Follower);
  CHECK_FALSE(c.node(1).lease_expiry());
  // It stopped once its lease ran out (at most one tick late), never later than one election
  // timeout after the last acknowledged heartbeat was sent.
  CHECK(c.now >= *lease);
  CHECK(c.now <= *lease + Duration(5));
  CHECK(c.now.ms_since(cut_at) <= test_timing().election_timeout_min.count() + 5);
  // The other two elect a new leader once their own leases on n1 have run out.
  c.advance(Duration(500));
  bool new_leader =
      c.node(2).status().role == RaftRole::Leader || c.node(3).status().role == RaftRole::Leader;
  CHECK(new_leader);
}

TEST_CASE("raft log matching: reject on a gap, truncate a conflicting suffix") {
  MonoTime t0{1'000'000'000};
  // The follower has 1/t1 2/t1 3/t2 (3 from a leader that never committed it).
  RaftNode n(2, three(), test_timing(), with_log(2, {entry(1, 1), entry(1, 2), entry(2, 3)}, 1), t0,
             1);
  (void)n.ready();
  n.step(append(1, 2, 3, 5, 3, {entry(3, 6)}, 1));  // nothing at 5: reject with our last index
  auto m = take_messages(n);
  REQUIRE(m.size() == 1);
  CHECK(m[0].reject);
  CHECK(m[0].hint == 3);
  CHECK(m[0].log_index == 5);

  n.step(append(1, 2, 3, 2, 1, {entry(3, 3), entry(3, 4)}, 4));
  RaftReady r = n.ready();
  REQUIRE(r.entries.size() == 2);
  CHECK(r.entries[0].index == 3);  // storage drops its old 3 and appends from here
  CHECK(r.entries[0].term == 3);
  REQUIRE(r.messages.size() == 1);
  CHECK_FALSE(r.messages[0].reject);
  CHECK(r.messages[0].hint == 4);
  CHECK(n.last_index() == 4);
  CHECK(n.commit_index() == 4);
  REQUIRE(r.committed.size() == 3);  // 1 was committed before and came in the first Ready
  CHECK(r.committed[0].index == 2);
  CHECK(r.committed[1].term == 3);

  // A duplicate of an old Append changes nothing.
  n.step(append(1, 2, 3, 2, 1, {entry(3, 3)}, 4));
  r = n.ready();
  CHECK(r.entries.empty());
  CHECK(n.last_index() == 4);
}

TEST_CASE("raft commitment: a previous-term entry is not committed by counting replicas") {
  // Raft figure 8: n1 holds 2/t2 that nobody else has; it becomes leader in term 3.
  std::map<NodeId, PersistentState> disks;
  disks[1] = with_log(2, {entry(1, 1), entry(2, 2)}, 1);
  disks[2] = with_log(2, {entry(1, 1)}, 1);
  disks[3] = with_log(2, {entry(1, 1)}, 1);
  Cluster c(three(), disks);
  c.timing.max_entries_per_append = 1;  // one entry per Append: the leader's log arrives in steps
  c.nodes.clear();
  for (NodeId id : {1, 2, 3}) c.start(id);
  c.now = c.now + Duration(150);
  c.node(1).campaign();
  c.collect(1);
  // Let only the election and the first replication round happen, one message at a time, and
  // stop as soon as n2 holds 2/t2 (a quorum with n1) but not yet the no-op 3/t3.
  for (int i = 0; i < 200 && !c.inflight.empty(); ++i) {
    Message m = c.inflight.front();
    c.inflight.erase(c.inflight.begin());
    if (m.to == 3 && m.type == MessageType::Append) continue;  // n3 hears nothing from the leader
    if (m.to == 2 && m.type == MessageType::Append && c.node(2).last_index() == 2) break;
    c.node(m.to).tick(c.now);
    c.node(m.to).step(m);
    c.collect(m.to);
  }
  REQUIRE(c.node(1).status().role == RaftRole::Leader);
  REQUIRE(c.node(1).status().term == 3);
  REQUIRE(c.node(2).last_index() == 2);  // n1 and n2 hold 2/t2: a quorum, but from term 2
  CHECK(c.node(1).commit_index() == 1);
  // Once the term-3 no-op is on a quorum, both commit.
  c.inflight.clear();
  c.advance(Duration(40));
  CHECK(c.node(1).commit_index() == 3);
}

TEST_CASE("raft snapshot: a lagging follower gets the snapshot instead of compacted entries") {
  Cluster c(three());
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < 10; ++i) REQUIRE(c.node(1).propose(kCommand, b(std::to_string(i))));
  c.collect(1);
  c.deliver();
  CHECK(c.node(1).commit_index() == 11);
  CHECK_FALSE(c.node(1).compact(12, b("too far")));
  auto snap = c.node(1).compact(11, b("state@11"));
  REQUIRE(snap);
  CHECK(snap->term == 1);
  CHECK_FALSE(c.node(1).compact(5, b("again")));
  c.heal();
  c.advance(Duration(60));
  CHECK(c.disks[3].snapshot.index == 11);
  CHECK(c.disks[3].snapshot.data == b("state@11"));
  CHECK(c.node(3).commit_index() == 11);
  REQUIRE(c.node(1).propose(kCommand, b("after")));
  c.collect(1);
  c.advance(test_timing().heartbeat_interval);
  REQUIRE_FALSE(c.applied[3].empty());
  CHECK(c.applied[3].back().index == 12);
  CHECK(c.applied[3].back().data == b("after"));
}

TEST_CASE("raft restart: a node comes back from what it persisted and re-applies committed") {
  Cluster c(three());
  c.elect(1);
  REQUIRE(c.node(1).propose(kCommand, b("a")));
  c.collect(1);
  c.deliver();
  c.advance(Duration(40));  // heartbeats carry the commit index to followers
  REQUIRE(c.disks[2].hard.commit == 2);
  c.nodes.erase(2);
  c.start(2);
  CHECK(c.node(2).status().term == 1);
  REQUIRE(c.applied[2].size() == 2);
  CHECK(c.applied[2][1].data == b("a"));
}

TEST_CASE("raft weighted votes: quorum is more than half of all votes") {
  SUBCASE("a voter holding a majority of votes elects itself and commits alone") {
    Cluster c({{1, 3}, {2, 1}, {3, 1}});
    c.isolate(1);
    c.elect(1);
    CHECK(c.node(1).status().role == RaftRole::Leader);
    REQUIRE(c.node(1).propose(kCommand, b("alone")));
    c.collect(1);
    CHECK(c.node(1).commit_index() == 2);
  }
  SUBCASE("the others together hold too few votes") {
    Cluster c({{1, 3}, {2, 1}, {3, 1}});
    c.isolate(1);
    c.advance(Duration(1000));
    CHECK(c.node(2).status().role != RaftRole::Leader);
    CHECK(c.node(3).status().role != RaftRole::Leader);
    CHECK(c.node(2).status().term == 0);  // pre-vote kept the terms down too
  }
  SUBCASE("an even split of votes has no quorum") {
    Cluster c({{1, 1}, {2, 1}, {3, 1}, {4, 1}});
    c.isolate(3);
    c.isolate(4);
    c.advance(Duration(1000));
    CHECK(c.node(1).status().role != RaftRole::Leader);
    CHECK(c.node(2).status().role != RaftRole::Leader);
  }
  SUBCASE("a member with no votes replicates but never campaigns") {
    Cluster c({{1, 1}, {2, 1}, {3, 0}});
    c.isolate(1);
    c.isolate(2);
    c.advance(Duration(1000));
    CHECK(c.node(3).status().role == RaftRole::Follower);
    c.heal();
    c.advance(Duration(1000));
    REQUIRE((c.node(1).status().role == RaftRole::Leader ||
             c.node(2).status().role == RaftRole::Leader));
    CHECK(c.applied[3].size() == 1);
  }
}

namespace {

Message answer(MessageType type, NodeId from, NodeId to, Term term, bool grant) {
  Message m;
  m.type = type;
  m.from = from;
  m.to = to;
  m.term = term;
  m.reject = !grant;
  return m;
}

}  // namespace

TEST_CASE("raft zero-vote candidacy: a 0-vote node campaigns on the voters that have votes") {
  // The disk-only quorum: nodes 1 and 2 have no votes, voter 9 (the quorum disk) has the only
  // one; the node that wins voter 9 leads, and every commit needs voter 9.
  VoterMap voters{{1, 0}, {2, 0}, {9, 1}};
  RaftTiming t = test_timing();
  MonoTime now{1'000'000'000};
  SUBCASE("without the flag it never campaigns") {
    RaftNode n(1, voters, t, {}, now, 1);
    CHECK(n.next_deadline() == MonoTime{std::numeric_limits<Usec>::max()});
    n.tick(now + Duration(10'000));
    n.campaign();
    CHECK(n.status().role == RaftRole::Follower);
    CHECK(take_messages(n).empty());
  }
  t.zero_vote_candidacy = true;
  RaftNode n(1, voters, t, {}, now, 1);
  REQUIRE(n.next_deadline() < now + t.election_timeout_max + Duration(1));
  n.tick(now + t.election_timeout_max);
  auto pre = take_messages(n);
  REQUIRE(pre.size() == 1);  // node 2 has no vote to give
  CHECK(pre[0].type == MessageType::PreVote);
  CHECK(pre[0].to == 9);
  CHECK(n.status().role == RaftRole::PreCandidate);  // its own 0 votes are no quorum
  SUBCASE("the voter refuses: no leader") {
    n.step(answer(MessageType::PreVoteResponse, 9, 1, 0, false));
    CHECK(n.status().role == RaftRole::Follower);
    CHECK(n.status().term == 0);
  }
  SUBCASE("the voter grants: leader, and a commit waits for the voter's ack") {
    n.step(answer(MessageType::PreVoteResponse, 9, 1, 1, true));
    auto vote = take_messages(n);
    REQUIRE(vote.size() == 1);
    CHECK(vote[0].type == MessageType::Vote);
    CHECK(vote[0].to == 9);
    CHECK(vote[0].term == 1);
    n.step(answer(MessageType::VoteResponse, 9, 1, 1, true));
    CHECK(n.status().role == RaftRole::Leader);
    auto appends = take_messages(n);
    CHECK(appends.size() == 2);  // the no-op goes to node 2 as well
    CHECK(n.commit_index() == 0);
    Message ack = answer(MessageType::AppendResponse, 2, 1, 1, true);
    ack.log_index = 0;
    ack.hint = 1;
    n.step(ack);
    CHECK(n.commit_index() == 0);  // a 0-vote follower's ack counts for nothing
    ack.from = 9;
    n.step(ack);
    CHECK(n.commit_index() == 1);
    CHECK(n.lease_expiry().has_value());
  }
}

TEST_CASE("raft ignores messages from strangers and for others") {
  Cluster c(three());
  c.node(1).step(vote_request(9, 1, 5, 0, 0));
  c.node(1).step(vote_request(2, 3, 5, 0, 0));
  CHECK(take_messages(c.node(1)).empty());
  CHECK(c.node(1).status().term == 0);
}

}  // namespace clusterd
