// The arbiter against a real tgtd (tgtd_fixture.h): each node an arbiter with its own session
// and initiator IQN, driven by time as clusterd-qdisk drives it. Short timing (P 20 ms,
// W 150 ms), generous command deadlines: the machine is shared.
#include "qdisk_arbiter.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <thread>

#include "cluster_state.h"
#include "tgtd_fixture.h"

namespace clusterd {
namespace {

constexpr std::uint32_t kCluster = 9;

struct Node {
  std::unique_ptr<QuorumLun> lun;
  std::unique_ptr<QdiskArbiter> arbiter;
  std::vector<QdiskFrame> out;  ///< Everything it sent, in order.
  bool alive = true;            ///< False: not ticked (a frozen or dead node).

  void collect() {
    for (auto& f : arbiter->take_output()) out.push_back(std::move(f));
  }
  void send(const QdiskFrame& f) {
    arbiter->handle(f, mono_now());
    collect();
  }
  /// The last Raft reply of `type`, if any.
  std::optional<Message> reply(MessageType type) const {
    for (auto it = out.rbegin(); it != out.rend(); ++it)
      if (it->kind == QdiskKind::Raft && it->message.type == type) return it->message;
    return std::nullopt;
  }
  std::size_t count(QdiskKind kind) const {
    return std::count_if(out.begin(), out.end(), [&](const QdiskFrame& f) { return f.kind == kind; });
  }
};

struct Cluster : testing::TgtdCase {
  std::vector<std::unique_ptr<Node>> nodes;

  Node& add(NodeId id) {
    auto target = tgtd->target_for(fmt::format("iqn.2024-01.org.clusterd.test:q{}", id));
    auto lun = open_iscsi_quorum_lun(target);
    REQUIRE_MESSAGE(lun.has_value(), (lun ? "" : lun.error().to_string()));
    ArbiterOptions o;
    o.cluster_id = kCluster;
    o.node_id = id;
    o.timing = {Duration(20), Duration(2000), Duration(150)};
    o.backoff = Duration(300);
    o.slot_count = 8;
    auto node = std::make_unique<Node>();
    node->lun = std::move(*lun);
    node->arbiter = std::make_unique<QdiskArbiter>(*node->lun, o);
    auto ok = node->arbiter->start(mono_now());
    REQUIRE_MESSAGE(ok.has_value(), (ok ? "" : ok.error().to_string()));
    node->collect();
    nodes.push_back(std::move(node));
    return *nodes.back();
  }

  /// Ticks every live arbiter when due until `done` holds; fails after `limit`.
  template <typename F>
  void run_until(F done, Duration limit = Duration(5000)) {
    MonoTime end = mono_now() + limit;
    while (!done()) {
      REQUIRE(mono_now() < end);
      MonoTime next = end;
      for (auto& n : nodes) {
        if (!n->alive) continue;
        n->arbiter->tick(mono_now());
        n->collect();
        next = std::min(next, n->arbiter->next_deadline());
      }
      if (done()) return;
      std::int64_t wait = std::clamp<std::int64_t>(next.ms_since(mono_now()), 0, 20);
      std::this_thread::sleep_for(Duration(wait));  // time must pass for the waits, not a sync
    }
  }
};

Message to_disk(MessageType type, NodeId from, Term term) {
  Message m;
  m.type = type;
  m.from = from;
  m.to = kDiskVoterId;
  m.term = term;
  return m;
}

}  // namespace

TEST_CASE("arbiter: a blank LUN is formatted by the first holder, which gets the disk's vote") {
  Cluster c;
  if (!c.start()) return;
  Node& a = c.add(1);
  REQUIRE(a.count(QdiskKind::Record) == 1);
  CHECK_FALSE(a.out[0].record.formatted);
  CHECK_FALSE(a.out[0].record.state);

  a.send(facts_frame({1, true}));
  a.send(raft_frame(to_disk(MessageType::Vote, 1, 1)));
  c.run_until([&] { return a.reply(MessageType::VoteResponse).has_value(); });
  CHECK(a.arbiter->holding());
  CHECK_FALSE(a.reply(MessageType::VoteResponse)->reject);
  CHECK(a.reply(MessageType::VoteResponse)->from == kDiskVoterId);
  CHECK(a.count(QdiskKind::Held) == 1);
  CHECK(a.count(QdiskKind::Confirmed) >= 1);

  // Another node reads what A wrote (reads are open) and sees A holding the disk.
  Node& b = c.add(2);
  const QdiskRecord& r = b.out.at(0).record;
  CHECK(r.formatted);
  CHECK(r.holder == 1);
  REQUIRE(r.state);
  CHECK(r.state->term == 1);
  CHECK(r.state->vote == NodeId{1});
}

TEST_CASE("arbiter: a legitimate holder defends; a silent one is preempted and then lost") {
  Cluster c;
  if (!c.start()) return;
  Node& a = c.add(1);
  Node& b = c.add(2);
  a.send(facts_frame({1, true}));
  a.send(raft_frame(to_disk(MessageType::Vote, 1, 1)));
  c.run_until([&] { return a.arbiter->holding(); });

  // B campaigns in term 2 while A holds and defends: B's registration is removed.
  b.send(raft_frame(to_disk(MessageType::Vote, 2, 2)));
  c.run_until([&] { return b.reply(MessageType::VoteResponse).has_value(); });
  CHECK(b.reply(MessageType::VoteResponse)->reject);
  CHECK(a.arbiter->holding());
  CHECK_FALSE(b.arbiter->holding());

  // A stops answering (frozen): after the wait B preempts it and records its vote.
  // (after B's back-off: the holder was alive a moment ago)
  a.alive = false;
  MonoTime later = mono_now() + Duration(350);
  c.run_until([&] { return mono_now() >= later; });
  b.out.clear();
  b.send(raft_frame(to_disk(MessageType::Vote, 2, 3)));
  c.run_until([&] { return b.reply(MessageType::VoteResponse).has_value(); });
  CHECK_FALSE(b.reply(MessageType::VoteResponse)->reject);
  CHECK(b.arbiter->holding());

  // A thaws: its first check finds its key gone.
  a.alive = true;
  c.run_until([&] { return a.count(QdiskKind::Lost) == 1; });
  CHECK_FALSE(a.arbiter->holding());
  auto lost = std::find_if(a.out.begin(), a.out.end(),
                           [](const QdiskFrame& f) { return f.kind == QdiskKind::Lost; });
  CHECK(lost->reason.find("held by node 2") != std::string::npos);
}

TEST_CASE("arbiter: appends are acknowledged after the write; the checkpoint is read at start") {
  Cluster c;
  if (!c.start()) return;
  Node& a = c.add(1);
  a.send(facts_frame({1, true}));
  a.send(raft_frame(to_disk(MessageType::Vote, 1, 1)));
  c.run_until([&] { return a.arbiter->holding(); });

  Message append = to_disk(MessageType::Append, 1, 1);
  append.entries = {Entry{1, 1, 0, {}}, Entry{1, 2, 7, {'x'}}};
  append.commit = 2;
  append.lease_stamp = 4242;
  a.send(raft_frame(append));
  auto ack = a.reply(MessageType::AppendResponse);
  REQUIRE(ack);
  CHECK_FALSE(ack->reject);
  CHECK(ack->hint == 2);
  CHECK(ack->lease_stamp == 4242);

  ClusterState state;
  state.config_version = 5;
  state.applied = 2;
  Snapshot snapshot{2, 1, encode_state(state)};
  a.send(checkpoint_frame(snapshot, 5));

  Node& b = c.add(2);
  const QdiskRecord& r = b.out.at(0).record;
  REQUIRE(r.state);
  CHECK(r.state->checkpoint == snapshot);
  CHECK(r.state->config_version == 5);
  CHECK(r.state->commit == 2);
  CHECK(r.state->tail.empty());
}

TEST_CASE("arbiter: a clean release marks the disk, and the next holder takes it at once") {
  Cluster c;
  if (!c.start()) return;
  Node& a = c.add(1);
  Node& b = c.add(2);
  a.send(facts_frame({1, true}));
  a.send(raft_frame(to_disk(MessageType::Vote, 1, 1)));
  c.run_until([&] { return a.arbiter->holding(); });

  a.send(release_frame());
  REQUIRE(a.count(QdiskKind::Released) == 1);
  CHECK(a.out.back().kind == QdiskKind::Released);
  CHECK(a.out.back().reason ==
        "marked the quorum disk released and released its reservation; unregistered");
  CHECK(a.arbiter->finished());
  CHECK_FALSE(a.arbiter->holding());
  a.alive = false;  // the helper exits

  b.send(raft_frame(to_disk(MessageType::Vote, 2, 2)));
  c.run_until([&] { return b.reply(MessageType::VoteResponse).has_value(); });
  CHECK_FALSE(b.reply(MessageType::VoteResponse)->reject);
  auto held = std::find_if(b.out.begin(), b.out.end(),
                           [](const QdiskFrame& f) { return f.kind == QdiskKind::Held; });
  REQUIRE(held != b.out.end());
  // Not "after a challenge of ... ms": nobody was left to outwait.
  CHECK(held->reason == "reserved it at once: node 1 released it");
  // B's own first record is not marked: a vacancy after B (a tgtd restart) means waiting again.
  Node& observer = c.add(3);
  CHECK(observer.out.at(0).record.holder == 2);
}

TEST_CASE("arbiter: a node without a slot never challenges, and says why") {
  Cluster c;
  if (!c.start()) return;
  Node& a = c.add(1);  // formats the LUN with 8 slots
  a.send(facts_frame({1, true}));
  a.send(raft_frame(to_disk(MessageType::Vote, 1, 1)));
  c.run_until([&] { return a.arbiter->holding(); });
  Node& late = c.add(9);
  CHECK(late.out.at(0).record.slots == 8);
  late.send(raft_frame(to_disk(MessageType::Vote, 9, 2)));
  c.run_until([&] { return late.reply(MessageType::VoteResponse).has_value(); });
  CHECK(late.reply(MessageType::VoteResponse)->reject);
  CHECK(a.arbiter->holding());  // never registered, so never preempted it
  CHECK_FALSE(late.arbiter->holding());
}

TEST_CASE("arbiter: the command line round-trips and names what is wrong") {
  QdiskHelperOptions o;
  o.portals = {"10.0.0.1:3260", "10.0.1.1"};
  o.target = "iqn.2024-01.x:q";
  o.lun = 2;
  o.initiator = "iqn.2024-01.x:n1";
  o.arbiter.cluster_id = 7;
  o.arbiter.node_id = 3;
  o.arbiter.timing = {Duration(100), Duration(50), Duration(730)};
  o.arbiter.backoff = Duration(900);
  auto argv = qdisk_helper_argv("/x/clusterd-qdisk", o);
  std::vector<const char*> args;
  for (std::size_t i = 1; i < argv.size(); ++i) args.push_back(argv[i].c_str());
  auto back = parse_qdisk_args(args);
  REQUIRE(back);
  CHECK(back->portals == o.portals);
  CHECK(back->target == o.target);
  CHECK(back->lun == 2);
  CHECK(back->arbiter.node_id == 3);
  CHECK(back->arbiter.timing.challenge_wait == Duration(730));
  CHECK(back->arbiter.backoff == Duration(900));
  CHECK(back->arbiter.slot_count == 32);
  std::vector<const char*> bad = {"--portal", "x", "--lun", "-1"};
  CHECK(parse_qdisk_args(bad).error().message == "--lun: '-1' is not a whole number up to 16383");
  std::vector<const char*> odd = {"--portal"};
  CHECK(parse_qdisk_args(odd).error().message == "--portal needs a value");
}

}  // namespace clusterd
