#include "raft_sim.h"

#include <doctest/doctest.h>
#include <fmt/core.h>

#include <chrono>
#include <string>

namespace clusterd::sim {
namespace {

Bytes b(const std::string& s) { return Bytes(s.begin(), s.end()); }

VoterMap voters(int n) {
  VoterMap v;
  for (int i = 1; i <= n; ++i) v[static_cast<NodeId>(i)] = 1;
  return v;
}

SimConfig config(int nodes, std::uint64_t seed = 7) {
  SimConfig c;
  c.seed = seed;
  c.voters = voters(nodes);
  return c;
}

// Runs until some node leads (and has a lease, so a quorum follows it).
NodeId wait_for_leader(Simulation& sim, Duration limit = Duration(3000)) {
  std::optional<NodeId> leader;
  bool ok = sim.run_until(
      [&] {
        leader = sim.leader();
        return leader && sim.node(*leader)->lease_expiry().has_value();
      },
      limit);
  REQUIRE_MESSAGE(sim.failure().empty(), sim.failure());
  REQUIRE(ok);
  return *leader;
}

bool applied_everywhere(Simulation& sim, const Bytes& data, const std::vector<NodeId>& ids) {
  for (NodeId id : ids) {
    if (!sim.applied(id, data)) return false;
  }
  return true;
}

std::string dump(const ScenarioResult& r) {
  std::string out;
  for (const auto& line : r.trace) out += line + "\n";
  return out;
}

}  // namespace

TEST_CASE("simulator: 1000 random scenarios with 3, 5 and 7 nodes keep every invariant") {
  auto start = std::chrono::steady_clock::now();
  int failures = 0;
  for (std::uint64_t seed = 1; seed <= 1000; ++seed) {
    ScenarioOptions o;
    o.seed = seed;
    o.nodes = seed % 3 == 0 ? 3 : seed % 3 == 1 ? 5 : 7;
    o.weighted = seed % 4 == 0;
    ScenarioResult r = run_scenario(o);
    if (!r.ok && ++failures <= 1) {
      FAIL_CHECK(
          fmt::format("seed {} ({} nodes{}): {}\nreplay: raftsim --seed {} --nodes {}{} "
                      "--trace\n{}",
                      seed, o.nodes, o.weighted ? ", weighted" : "", r.failure, seed, o.nodes,
                      o.weighted ? " --weighted" : "", dump(r)));
    }
  }
  CHECK(failures == 0);
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE(fmt::format("1000 scenarios in {:.1f} s", seconds));
}

TEST_CASE("simulator: a seed replays exactly") {
  ScenarioOptions o;
  o.seed = 4242;
  o.nodes = 5;
  o.full_trace = true;
  ScenarioResult a = run_scenario(o);
  ScenarioResult b = run_scenario(o);
  CHECK(a.ok);
  CHECK(a.trace.size() > 100);
  CHECK(a.trace == b.trace);
  CHECK(a.stats == b.stats);
  o.seed = 4243;
  CHECK(run_scenario(o).trace != a.trace);
}

TEST_CASE("simulator: a rejoining partitioned node does not depose a healthy leader") {
  Simulation sim(config(5));
  NodeId leader = wait_for_leader(sim);
  Term term = sim.node(leader)->status().term;
  NodeId loner = leader == 5 ? 4 : 5;
  sim.isolate(loner);
  sim.run_for(Duration(3000));  // it times out over and over
  CHECK(sim.node(loner)->status().term == term);
  sim.heal();
  REQUIRE(sim.run_until([&] { return sim.node(loner)->status().leader == leader; }, Duration(500)));
  sim.run_for(Duration(1000));
  REQUIRE(sim.failure().empty());
  CHECK(sim.leader() == leader);
  CHECK(sim.node(leader)->status().term == term);
}

TEST_CASE("simulator: an isolated leader steps down within its lease; the rest carry on") {
  SimConfig c = config(5, 11);
  Simulation sim(c);
  NodeId old = wait_for_leader(sim);
  sim.run_for(Duration(200));
  REQUIRE(sim.node(old)->lease_expiry());
  sim.isolate(old);
  Duration cut_at = sim.elapsed();
  REQUIRE(sim.run_until([&] { return sim.node(old)->status().role != RaftRole::Leader; },
                        Duration(1000)));
  // Step-down no later than one lease (the minimum election timeout) after the cut, plus the
  // timer slop.
  CHECK((sim.elapsed() - cut_at) <= c.timing.election_timeout_min + c.timer_slop);
  std::vector<NodeId> rest;
  for (NodeId id : sim.ids()) {
    if (id != old) rest.push_back(id);
  }
  NodeId fresh = wait_for_leader(sim);
  CHECK(fresh != old);
  REQUIRE(sim.propose(fresh, b("while-cut")));
  REQUIRE(
      sim.run_until([&] { return applied_everywhere(sim, b("while-cut"), rest); }, Duration(1000)));
  sim.heal();
  REQUIRE(sim.run_until([&] { return sim.applied(old, b("while-cut")); }, Duration(1000)));
  CHECK(sim.failure().empty());
}

TEST_CASE("simulator: committed entries survive every node crashing and restarting") {
  Simulation sim(config(3, 5));
  NodeId leader = wait_for_leader(sim);
  for (int i = 0; i < 30; ++i) REQUIRE(sim.propose(leader, b(fmt::format("e{}", i))));
  REQUIRE(
      sim.run_until([&] { return applied_everywhere(sim, b("e29"), sim.ids()); }, Duration(1000)));
  for (NodeId id : sim.ids()) sim.crash(id);
  sim.run_for(Duration(500));
  for (NodeId id : sim.ids()) sim.restart(id);
  for (NodeId id : sim.ids()) CHECK(sim.applied(id, b("e29")));  // re-applied from disk
  leader = wait_for_leader(sim);
  REQUIRE(sim.propose(leader, b("after")));
  REQUIRE(sim.run_until([&] { return applied_everywhere(sim, b("after"), sim.ids()); },
                        Duration(1000)));
  CHECK(sim.failure().empty());
}

// A state machine whose snapshots lose the state: the simulator must notice when a follower
// installs one.
class ForgetfulStateMachine : public ChecksumStateMachine {
 public:
  Bytes snapshot() const override { return Bytes(16, 0); }
};

TEST_CASE("simulator: the checks catch a state machine that diverges through snapshots") {
  SimConfig c = config(3, 3);
  c.compact_every = 5;
  c.make_state_machine = [] { return std::make_unique<ForgetfulStateMachine>(); };
  Simulation sim(c);
  NodeId leader = wait_for_leader(sim);
  NodeId lagging = leader == 3 ? 2 : 3;
  sim.isolate(lagging);
  for (int i = 0; i < 20; ++i) (void)sim.propose(leader, b(fmt::format("e{}", i)));
  sim.run_for(Duration(200));
  REQUIRE(sim.failure().empty());
  sim.heal();
  sim.run_for(Duration(1000));
  CHECK(sim.failure().find("differs from the history") != std::string::npos);
}

TEST_CASE("simulator: the state machine hook sees every committed entry in order") {
  class Counting : public StateMachine {
   public:
    explicit Counting(std::vector<Index>* seen) : seen_(seen) {}
    void apply(const Entry& e) override { seen_->push_back(e.index); }
    void restore(const Bytes&) override {}
    Bytes snapshot() const override { return {}; }

   private:
    std::vector<Index>* seen_;
  };
  std::map<int, std::vector<Index>> seen;
  int made = 0;
  SimConfig c = config(3, 9);
  c.compact_every = 1000;
  c.make_state_machine = [&] { return std::make_unique<Counting>(&seen[made++]); };
  Simulation sim(c);
  NodeId leader = wait_for_leader(sim);
  REQUIRE(sim.propose(leader, b("x")));
  REQUIRE(
      sim.run_until([&] { return applied_everywhere(sim, b("x"), sim.ids()); }, Duration(1000)));
  for (auto& [k, indexes] : seen) {
    REQUIRE(indexes.size() >= 2);
    for (std::size_t i = 0; i < indexes.size(); ++i) CHECK(indexes[i] == i + 1);
  }
}

}  // namespace clusterd::sim
