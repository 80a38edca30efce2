#include "placement_sim.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <optional>

namespace clusterd::sim {
namespace {

std::string name_of(NodeId id) { return fmt::format("node{}", id); }

ConfigPtr make_config(int nodes, int groups, SplitMix64& rng) {
  auto config = std::make_shared<Config>();
  config->cluster.name = "sim";
  config->cluster.id = 1;
  for (int i = 1; i <= nodes; ++i) {
    NodeConfig n;
    n.name = name_of(static_cast<NodeId>(i));
    n.id = static_cast<std::uint32_t>(i);
    config->nodes.push_back(n);
  }
  for (int g = 1; g <= groups; ++g) {
    GroupConfig group;
    group.name = fmt::format("g{}", g);
    std::vector<std::string> order;
    for (const auto& n : config->nodes) order.push_back(n.name);
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    order.resize(1 + rng.below(order.size()));
    group.preferred_owners = order;
    group.failback.mode = rng.below(2) ? FailbackMode::Immediate : FailbackMode::Never;
    config->groups.push_back(group);
  }
  return config;
}

/// The scenario driver: connectivity as it told the simulator, the nodes' agents, the leader's
/// coordinator, and the checks.
class Driver {
 public:
  Driver(Simulation& sim, ConfigPtr config) : sim_(sim), config_(std::move(config)) {
    for (NodeId id : sim_.ids()) side_[id] = 0;
  }

  void partition(const std::vector<std::vector<NodeId>>& groups) {
    sim_.partition(groups);
    int next = 1;
    for (auto& [id, side] : side_) side = -static_cast<int>(id);  // alone unless listed
    for (const auto& g : groups) {
      for (NodeId id : g) side_[id] = next;
      ++next;
    }
  }
  void heal() {
    sim_.heal();
    for (auto& [id, side] : side_) side = 0;
  }
  void crash(NodeId id) {
    sim_.crash(id);
    for (auto& [group, nodes] : running_) nodes.erase(id);
    synced_.erase(id);
  }

  /// One step of every agent and the coordinator, then the checks.
  void step() {
    for (NodeId id : sim_.ids()) fence_and_stop(id);
    for (NodeId id : sim_.ids()) start_and_report(id);
    coordinate();
    check_exclusive();
  }

  /// Groups with autostart that are not online anywhere, as a sentence; empty when all are.
  std::string unplaced() const {
    std::string out;
    for (const auto& g : config_->groups) {
      bool placed = false;
      for (NodeId id : sim_.ids()) {
        const ClusterState* s = state_of(id);
        if (s == nullptr || !quorate(id)) continue;
        PlacementRecord r = record_of(*s, g.name);
        if (r.phase == GroupPhase::Online && running_.count(g.name) &&
            running_.at(g.name).count(static_cast<NodeId>(std::stoi(r.node.substr(4)))))
          placed = true;
        if (r.phase == GroupPhase::Failed && r.node.empty()) placed = true;  // failed for good
      }
      if (!placed) out += " " + g.name;
    }
    return out;
  }

 private:
  bool connected(NodeId a, NodeId b) const {
    return sim_.is_up(a) && sim_.is_up(b) && (a == b || side_.at(a) == side_.at(b));
  }

  bool quorate(NodeId id) const {
    if (!sim_.is_up(id)) return false;
    std::size_t votes = 0;
    for (NodeId other : sim_.ids()) votes += connected(id, other) ? 1 : 0;
    return 2 * votes > sim_.ids().size();
  }

  const ClusterState* state_of(NodeId id) const {
    auto* sm = dynamic_cast<const PlacementStateMachine*>(sim_.state_machine(id));
    return sm ? &sm->state() : nullptr;
  }

  std::optional<NodeId> reachable_leader(NodeId id) const {
    auto leader = sim_.leader();
    if (!leader || !connected(id, *leader)) return std::nullopt;
    return leader;
  }

  // The quorum guard: a node without a quorum on its side stops everything at once. Any node
  // stops what its applied records do not give it.
  void fence_and_stop(NodeId id) {
    const ClusterState* s = state_of(id);
    if (!quorate(id) || s == nullptr) synced_.erase(id);
    for (auto& [group, nodes] : running_) {
      if (!nodes.count(id)) continue;
      PlacementRecord r = s ? record_of(*s, group) : PlacementRecord{};
      bool keep = quorate(id) && r.node == name_of(id) &&
                  (r.phase == GroupPhase::Starting || r.phase == GroupPhase::Online);
      if (!keep) {
        nodes.erase(id);
        sim_.note(fmt::format("agent n{} stops {}", id, group));
      }
    }
  }

  // A node (re)joining first applies the leader's commit index (ClusterService::sync); then it
  // starts what its records give it and reports.
  void start_and_report(NodeId id) {
    const ClusterState* s = state_of(id);
    auto leader = reachable_leader(id);
    if (s == nullptr || !quorate(id) || !leader) return;
    // Synced to the leader's last index: a decision still pending in its log (made while the
    // node was lost) is applied before anything starts. A new leader means a new sync.
    if (!synced_.count(id) || synced_.at(id).first != *leader)
      synced_[id] = {*leader, sim_.node(*leader)->last_index()};
    if (s->applied < synced_.at(id).second) return;
    for (const auto& g : config_->groups) {
      PlacementRecord r = record_of(*s, g.name);
      if (r.node != name_of(id)) continue;
      bool& runs = flag(g.name, id);
      if ((r.phase == GroupPhase::Starting || r.phase == GroupPhase::Online) && !runs) {
        running_[g.name].insert(id);
        sim_.note(fmt::format("agent n{} starts {}", id, g.name));
      }
      if (r.phase == GroupPhase::Starting) report(*leader, g.name, id, GroupPhase::Online, *s);
      if (r.phase == GroupPhase::Stopping) report(*leader, g.name, id, GroupPhase::Offline, *s);
    }
  }

  bool& flag(const std::string& group, NodeId id) {
    scratch_ = running_[group].count(id) > 0;
    return scratch_;
  }

  void report(NodeId leader, const std::string& group, NodeId id, GroupPhase phase,
              const ClusterState& s) {
    auto key = std::make_tuple(group, id, s.epochs.count(group) ? s.epochs.at(group) : 0);
    // Retried until the record moves on, as the real agent does (reports are idempotent).
    auto it = reported_.find(key);
    if (it != reported_.end() && sim_.elapsed() < it->second + Duration(200)) return;
    reported_[key] = sim_.elapsed();
    (void)sim_.propose(
        leader, wrap_command(EntryType::Report, encode_report({group, name_of(id), phase}, now())));
  }

  Usec now() const { return static_cast<Usec>(sim_.elapsed().count()) * 1000; }

  void coordinate() {
    auto leader = sim_.leader();
    if (!leader) return;
    const RaftNode* raft = sim_.node(*leader);
    const ClusterState* s = state_of(*leader);
    if (raft == nullptr || s == nullptr || s->applied < raft->commit_index()) return;
    // Leader completeness: decide only once an entry of this term (the no-op) is applied;
    // before that, entries of earlier terms in its log may still commit with it.
    Term term = raft->status().term;
    if (!term_start_.count(term)) term_start_[term] = raft->last_index();
    if (s->applied < term_start_.at(term)) return;
    if (inflight_ && inflight_->first == raft->status().term && s->applied < inflight_->second)
      return;
    PlacementInput in;
    in.config = config_;
    for (NodeId id : sim_.ids()) {
      bool up = connected(*leader, id);
      in.view.nodes[name_of(id)] = up ? NodeState::Up : NodeState::Down;
      // Lost nodes are safe at once when the leader's side holds a quorum (the simulated fence
      // is instant; docs/membership.md gives the real bound). A leader cut off from the quorum
      // declares nobody safe: its decision could commit after the partition heals.
      if (!up && quorate(*leader)) in.safe_nodes.insert(name_of(id));
    }
    in.state = s->placement;
    in.now = placement_time(now());
    std::vector<PlacementAction> acting;
    for (auto& a : decide(in))
      if (a.kind != ActionKind::Wait && a.kind != ActionKind::Refuse) acting.push_back(a);
    if (acting.empty()) return;
    std::string what;
    for (const auto& a : acting) what += "; " + format_action(a, in);
    sim_.note(fmt::format("coordinator n{} decides{}", *leader, what));
    auto index =
        sim_.propose(*leader, wrap_command(EntryType::Placement, encode_placement(acting, now())));
    if (index) inflight_ = std::make_pair(raft->status().term, *index);
  }

  void check_exclusive() {
    for (const auto& [group, nodes] : running_) {
      if (nodes.size() <= 1) continue;
      std::string who;
      for (NodeId id : nodes) who += fmt::format(" n{}", id);
      failure_ = fmt::format("group {} runs on{} at once", group, who);
    }
  }

 public:
  std::string failure_;

 private:
  Simulation& sim_;
  ConfigPtr config_;
  std::map<NodeId, int> side_;
  std::map<std::string, std::set<NodeId>> running_;
  std::map<NodeId, std::pair<NodeId, Index>> synced_;
  std::map<std::tuple<std::string, NodeId, std::uint64_t>, Duration> reported_;
  std::optional<std::pair<Term, Index>> inflight_;
  std::map<Term, Index> term_start_;
  bool scratch_ = false;
};

void chaos(Driver& d, Simulation& sim, SplitMix64& rng, std::map<NodeId, Duration>& down) {
  auto ids = sim.ids();
  NodeId any = ids[rng.below(ids.size())];
  auto roll = rng.below(100);
  if (roll < 8) {
    std::vector<std::vector<NodeId>> groups(2);
    for (NodeId id : ids) groups[rng.below(2)].push_back(id);
    d.partition(groups);
  } else if (roll < 16) {
    d.heal();
  } else if (roll < 20 && sim.is_up(any)) {
    d.crash(any);
    down[any] = sim.elapsed() + Duration(rng.below(600));
  }
}

}  // namespace

void PlacementStateMachine::apply(const Entry& entry) {
  Entry inner = entry;
  if (entry.type != kEntryNoop && entry.data.size() >= 2) {
    inner.type = static_cast<std::uint16_t>(entry.data[0] << 8 | entry.data[1]);
    inner.data.assign(entry.data.begin() + 2, entry.data.end());
  }
  (void)apply_entry(state_, inner);
  state_.applied = entry.index;
}

void PlacementStateMachine::restore(const Bytes& snapshot) {
  if (auto s = decode_state(snapshot)) state_ = std::move(*s);
}

Bytes PlacementStateMachine::snapshot() const { return encode_state(state_); }

Bytes wrap_command(EntryType type, const Bytes& payload) {
  auto t = static_cast<std::uint16_t>(type);
  Bytes out(payload.size() + 2);
  out[0] = static_cast<std::uint8_t>(t >> 8);
  out[1] = static_cast<std::uint8_t>(t);
  std::copy(payload.begin(), payload.end(), out.begin() + 2);
  return out;
}

PlacementScenarioResult run_placement_scenario(const PlacementScenarioOptions& o) {
  SplitMix64 rng(o.seed ^ 0x91ace5eed0ULL);
  SimConfig config;
  config.seed = o.seed;
  config.full_trace = o.full_trace;
  config.voters.clear();
  for (int i = 1; i <= o.nodes; ++i) config.voters[static_cast<NodeId>(i)] = 1;
  config.faults = NetworkFaults{0.03, 0.01, Duration(1), Duration(8)};
  config.compact_every = 5 + rng.below(20);
  config.make_state_machine = [] { return std::make_unique<PlacementStateMachine>(); };
  Simulation sim(config);
  Driver driver(sim, make_config(o.nodes, o.groups, rng));
  std::map<NodeId, Duration> down;
  auto failed = [&] { return !sim.failure().empty() || !driver.failure_.empty(); };
  while (sim.elapsed() < o.chaos && !failed()) {
    sim.run_for(Duration(10));
    for (auto it = down.begin(); it != down.end();)
      it = sim.elapsed() >= it->second ? (sim.restart(it->first), down.erase(it)) : std::next(it);
    chaos(driver, sim, rng, down);
    driver.step();
  }
  // A stable quorum (everyone, on a clean network) must place every group within the bound.
  for (auto& [id, at] : down) sim.restart(id);
  driver.heal();
  sim.set_faults(NetworkFaults{0, 0, Duration(1), Duration(5)});
  std::string stuck;
  if (!failed()) {
    bool placed = sim.run_until(
        [&] {
          driver.step();
          return failed() || driver.unplaced().empty();
        },
        o.settle);
    if (!placed)
      stuck =
          fmt::format("liveness: not placed within {} ms:{}", o.settle.count(), driver.unplaced());
  }
  PlacementScenarioResult result;
  result.failure = !sim.failure().empty()     ? sim.failure()
                   : !driver.failure_.empty() ? driver.failure_
                                              : stuck;
  result.ok = result.failure.empty();
  result.trace = sim.trace();
  result.stats = sim.stats();
  return result;
}

}  // namespace clusterd::sim
