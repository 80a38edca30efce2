#include "raft_sim.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace clusterd::sim {

namespace {

constexpr std::size_t kTraceLines = 400;
constexpr std::uint16_t kCommandType = 1;
// Boot times differ between machines: each node's clock has its own origin, so the core must
// never compare times across nodes.
constexpr Usec kMaxClockOffset = 1'000'000'000'000ULL;

Usec to_usec(Duration d) { return static_cast<Usec>(d.count()) * 1000; }

bool chance(SplitMix64& rng, double p) {
  return static_cast<double>(rng.next() >> 11) / static_cast<double>(1ULL << 53) < p;
}

std::string text(const Bytes& b) { return std::string(b.begin(), b.end()); }

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

void put_u64(Bytes& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

std::uint64_t get_u64(const Bytes& in, std::size_t at) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8 && at + i < in.size(); ++i) v = (v << 8) | in[at + i];
  return v;
}

}  // namespace

// ---- ChecksumStateMachine ---------------------------------------------------------------------

std::uint64_t chain_digest(std::uint64_t digest, const Entry& entry) {
  // FNV-1a over the previous digest, the entry's position and its payload.
  std::uint64_t h = 1469598103934665603ULL ^ digest;
  auto mix = [&h](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ULL;
    }
  };
  mix(entry.index);
  mix(entry.term);
  mix(entry.type);
  for (std::uint8_t b : entry.data) mix(b);
  return h;
}

void ChecksumStateMachine::apply(const Entry& entry) {
  ++count_;
  digest_ = chain_digest(digest_, entry);
}

void ChecksumStateMachine::restore(const Bytes& snapshot) {
  count_ = get_u64(snapshot, 0);
  digest_ = get_u64(snapshot, 8);
}

Bytes ChecksumStateMachine::snapshot() const {
  Bytes out;
  put_u64(out, count_);
  put_u64(out, digest_);
  return out;
}

// ---- Simulation -------------------------------------------------------------------------------

struct Simulation::Node {
  NodeId id = 0;
  Usec clock_offset = 0;
  std::uint64_t incarnation = 0;
  PersistentState disk;
  std::unique_ptr<RaftNode> raft;
  std::unique_ptr<StateMachine> sm;
  Index applied = 0;
  std::uint64_t timer_generation = 0;
  std::optional<MonoTime> timer_deadline;
  RaftRole role = RaftRole::Follower;
  Usec role_changed_at = 0;
};

Simulation::Simulation(SimConfig config) : config_(std::move(config)), rng_(config_.seed) {
  if (!config_.make_state_machine)
    config_.make_state_machine = [] { return std::make_unique<ChecksumStateMachine>(); };
  faults_ = config_.faults;
  digests_.push_back(0);
  for (const auto& [id, votes] : config_.voters) {
    auto n = std::make_unique<Node>();
    n->id = id;
    n->clock_offset = 1'000'000 + rng_.below(kMaxClockOffset);
    nodes_[id] = std::move(n);
  }
  for (const auto& [id, n] : nodes_) restart(id);
}

Simulation::~Simulation() = default;

Simulation::Node& Simulation::at(NodeId id) { return *nodes_.at(id); }
const Simulation::Node& Simulation::at(NodeId id) const { return *nodes_.at(id); }

Duration Simulation::elapsed() const { return Duration(now_ / 1000); }

MonoTime Simulation::clock_of(const Node& n) const { return MonoTime{n.clock_offset + now_}; }

std::vector<NodeId> Simulation::ids() const {
  std::vector<NodeId> out;
  for (const auto& [id, n] : nodes_) out.push_back(id);
  return out;
}

void Simulation::note(const std::string& line) {
  trace_.push_back(fmt::format("[{:>9.3f} ms] {}", static_cast<double>(now_) / 1000.0, line));
  if (!config_.full_trace && trace_.size() > kTraceLines) trace_.pop_front();
}

void Simulation::violation(const std::string& what) {
  if (!failure_.empty()) return;
  failure_ = what;
  note("VIOLATION: " + what);
}

// ---- Event loop -------------------------------------------------------------------------------

void Simulation::schedule(Usec at, std::function<void()> run) {
  events_.push(Event{at, next_seq_++, std::move(run)});
}

bool Simulation::run_one(Usec limit) {
  if (events_.empty() || events_.top().at > limit || !failure_.empty()) return false;
  Event e = events_.top();
  events_.pop();
  now_ = std::max(now_, e.at);
  ++stats_["events"];
  e.run();
  return true;
}

void Simulation::run_for(Duration d) {
  Usec limit = now_ + to_usec(d);
  while (run_one(limit)) {
  }
  if (failure_.empty()) now_ = limit;
}

bool Simulation::run_until(const std::function<bool()>& done, Duration limit) {
  Usec end = now_ + to_usec(limit);
  if (done()) return true;
  while (run_one(end)) {
    if (!failure_.empty()) return false;
    if (done()) return true;
  }
  if (failure_.empty()) now_ = end;
  return done();
}

// ---- Faults -----------------------------------------------------------------------------------

bool Simulation::connected(NodeId a, NodeId b) const {
  return !cut_.contains({std::min(a, b), std::max(a, b)});
}

void Simulation::set_link(NodeId a, NodeId b, bool up) {
  std::pair<NodeId, NodeId> link{std::min(a, b), std::max(a, b)};
  if (up) {
    cut_.erase(link);
  } else {
    cut_.insert(link);
  }
}

void Simulation::partition(const std::vector<std::vector<NodeId>>& groups) {
  std::map<NodeId, int> group_of;
  std::string desc;
  for (std::size_t i = 0; i < groups.size(); ++i) {
    desc += " {";
    for (NodeId id : groups[i]) {
      group_of[id] = static_cast<int>(i);
      desc += fmt::format(" {}", id);
    }
    desc += " }";
  }
  for (NodeId a : ids()) {
    for (NodeId b : ids()) {
      if (a < b)
        set_link(a, b, group_of.contains(a) && group_of.contains(b) && group_of[a] == group_of[b]);
    }
  }
  note("partition" + desc);
}

void Simulation::isolate(NodeId id) {
  for (NodeId other : ids()) {
    if (other != id) set_link(id, other, false);
  }
  note(fmt::format("isolate n{}", id));
}

void Simulation::cut(NodeId a, NodeId b) {
  set_link(a, b, false);
  note(fmt::format("cut n{} - n{}", a, b));
}

void Simulation::heal() {
  cut_.clear();
  note("heal");
}

void Simulation::set_faults(const NetworkFaults& f) {
  faults_ = f;
  note(fmt::format("faults drop={:.2f} dup={:.2f} delay={}..{}ms", f.drop, f.duplicate,
                   f.min_delay.count(), f.max_delay.count()));
}

void Simulation::crash(NodeId id) {
  Node& n = at(id);
  if (!n.raft) return;
  n.raft.reset();
  n.sm.reset();
  n.timer_deadline.reset();
  ++n.timer_generation;
  n.role = RaftRole::Follower;
  note(fmt::format("crash n{}", id));
}

void Simulation::restart(NodeId id) {
  Node& n = at(id);
  if (n.raft) return;
  ++n.incarnation;
  std::uint64_t seed = config_.seed * 0x9e3779b97f4a7c15ULL + id * 1000003ULL + n.incarnation;
  n.raft =
      std::make_unique<RaftNode>(id, config_.voters, config_.timing, n.disk, clock_of(n), seed);
  n.sm = config_.make_state_machine();
  n.applied = 0;
  if (n.disk.snapshot.index > 0) {
    n.sm->restore(n.disk.snapshot.data);
    n.applied = n.disk.snapshot.index;
    check_state(n);
  }
  note(fmt::format("start n{} (incarnation {}, term {}, vote {}, snapshot {}, {} entries)", id,
                   n.incarnation, n.disk.hard.term,
                   n.disk.hard.vote ? fmt::format("n{}", *n.disk.hard.vote) : "-",
                   n.disk.snapshot.index, n.disk.entries.size()));
  drain(n);
}

bool Simulation::is_up(NodeId id) const { return at(id).raft != nullptr; }

// ---- Node I/O ---------------------------------------------------------------------------------

Result<Index> Simulation::propose(NodeId id, Bytes data) {
  Node& n = at(id);
  if (!n.raft) return fail("node {} is down", id);
  std::string what = text(data);
  auto r = n.raft->propose(kCommandType, std::move(data));
  if (r) {
    note(fmt::format("n{} proposed '{}' at {}", id, what, *r));
  } else {
    note(fmt::format("n{} refused '{}': {}", id, what, r.error().message));
  }
  drain(n);
  return r;
}

void Simulation::transmit(const Message& m) {
  ++stats_["messages"];
  if (!connected(m.from, m.to) || chance(rng_, faults_.drop)) {
    ++stats_["dropped"];
    note("lost " + describe(m));
    return;
  }
  Bytes bytes = encode_message(m);
  int copies = chance(rng_, faults_.duplicate) ? 2 : 1;
  Usec span = to_usec(faults_.max_delay - faults_.min_delay) + 1;
  for (int i = 0; i < copies; ++i) {
    Usec at = now_ + to_usec(faults_.min_delay) + rng_.below(span);
    schedule(at, [this, to = m.to, bytes] { deliver(to, bytes); });
  }
  note("send " + describe(m) + (copies > 1 ? " (twice)" : ""));
}

void Simulation::deliver(NodeId to, const Bytes& bytes) {
  auto m = decode_message(bytes);
  if (!m) return violation("an encoded message failed to decode: " + m.error().message);
  Node& n = at(to);
  if (!n.raft || !connected(m->from, to)) {
    ++stats_["dropped"];
    note("lost on arrival " + describe(*m));
    return;
  }
  note("recv " + describe(*m));
  n.raft->tick(clock_of(n));  // the shell's contract: step() runs at the time of the last tick
  n.raft->step(*m);
  drain(n);
}

void Simulation::on_tick(NodeId id, std::uint64_t generation) {
  Node& n = at(id);
  if (!n.raft || generation != n.timer_generation) return;
  n.timer_deadline.reset();
  n.raft->tick(clock_of(n));
  drain(n);
}

// Arms the node's timer at its next deadline plus some scheduling slop, unless already armed
// for that deadline.
void Simulation::arm_timer(Node& n) {
  if (!n.raft) return;
  MonoTime deadline = n.raft->next_deadline();
  if (deadline.usec == std::numeric_limits<Usec>::max() || n.timer_deadline == deadline) return;
  n.timer_deadline = deadline;
  Usec target = deadline.usec > n.clock_offset ? deadline.usec - n.clock_offset : 0;
  Usec at = std::max(target, now_ + 1) + rng_.below(to_usec(config_.timer_slop) + 1);
  schedule(at, [this, id = n.id, g = ++n.timer_generation] { on_tick(id, g); });
}

// Handles the node's output as a daemon would: persist, then send, then apply.
void Simulation::drain(Node& n) {
  while (n.raft && n.raft->has_ready() && failure_.empty()) {
    RaftReady r = n.raft->ready();
    persist(n, r);
    if (r.status) check_status(n, *r.status);
    for (const Message& m : r.messages) {
      if (m.type == MessageType::VoteResponse && !m.reject &&
          (n.disk.hard.term != m.term || n.disk.hard.vote != m.to))
        violation(fmt::format("n{} granted its vote to n{} in term {} before persisting it", n.id,
                              m.to, m.term));
      transmit(m);
    }
    apply(n, r);
  }
  maybe_compact(n);
  arm_timer(n);
  check_leases();
  check_leaders_step_down();
}

void Simulation::persist(Node& n, const RaftReady& r) {
  PersistentState& d = n.disk;
  if (r.snapshot) {
    d.snapshot = *r.snapshot;
    d.entries.clear();
  }
  if (!r.entries.empty()) {
    Index first = r.entries.front().index;
    Index last = d.snapshot.index + d.entries.size();
    if (first <= d.snapshot.index || first > last + 1)
      return violation(fmt::format("n{} asked to persist entries from {} onto a log {}..{}", n.id,
                                   first, d.snapshot.index, last));
    d.entries.resize(first - d.snapshot.index - 1);
    d.entries.insert(d.entries.end(), r.entries.begin(), r.entries.end());
  }
  if (!r.hard_state) return;
  const HardState& h = *r.hard_state;
  if (h.term < d.hard.term)
    return violation(fmt::format("n{} persisted term {} after term {}", n.id, h.term, d.hard.term));
  if (h.vote) {
    auto [it, fresh] = votes_.emplace(std::pair{n.id, h.term}, *h.vote);
    if (!fresh && it->second != *h.vote)
      return violation(
          fmt::format("n{} voted for n{} and n{} in term {}", n.id, it->second, *h.vote, h.term));
  }
  d.hard = h;
}

void Simulation::check_status(Node& n, const RaftStatus& s) {
  note(fmt::format("n{} is {} in term {} (leader {})", n.id, to_string(s.role), s.term,
                   s.leader ? fmt::format("n{}", *s.leader) : "unknown"));
  if (s.role != n.role) n.role_changed_at = now_;
  n.role = s.role;
  if (s.role != RaftRole::Leader) return;
  ++stats_["elections"];
  auto [it, fresh] = leaders_.emplace(s.term, n.id);
  if (!fresh && it->second != n.id)
    violation(fmt::format("two leaders in term {}: n{} and n{}", s.term, it->second, n.id));
}

void Simulation::apply(Node& n, const RaftReady& r) {
  if (r.snapshot) {
    const Snapshot& s = *r.snapshot;
    if (s.index > history_.size() || history_[s.index - 1].term != s.term)
      return violation(fmt::format("n{} installed snapshot {}/{} that is not in the history", n.id,
                                   s.index, s.term));
    n.sm->restore(s.data);
    n.applied = s.index;
    ++stats_["snapshots"];
    note(fmt::format("n{} installed snapshot {}/{}", n.id, s.index, s.term));
  }
  for (const Entry& e : r.committed) {
    check_entry(n, e);
    if (!failure_.empty()) return;
    n.sm->apply(e);
    n.applied = e.index;
  }
  check_state(n);
}

// With the checksum state machine, the state itself must match the history's at that point.
void Simulation::check_state(Node& n) {
  auto* checksum = dynamic_cast<const ChecksumStateMachine*>(n.sm.get());
  if (!checksum) return;
  if (n.applied >= digests_.size() || checksum->digest() != digests_[n.applied])
    violation(fmt::format("n{} state after entry {} differs from the history's", n.id, n.applied));
}

// Every node applies one history: entry i is the same everywhere, applied in order, never lost.
void Simulation::check_entry(Node& n, const Entry& e) {
  if (e.index != n.applied + 1)
    return violation(fmt::format("n{} applied entry {} after entry {}", n.id, e.index, n.applied));
  ++stats_["applied"];
  if (e.index <= history_.size()) {
    if (history_[e.index - 1] != e)
      violation(fmt::format("n{} applied entry {} from term {} where the history has term {}", n.id,
                            e.index, e.term, history_[e.index - 1].term));
    return;
  }
  history_.push_back(e);
  digests_.push_back(chain_digest(digests_.back(), e));
  note(fmt::format("committed {}/{} '{}' (first applied by n{})", e.index, e.term, text(e.data),
                   n.id));
}

void Simulation::maybe_compact(Node& n) {
  if (!n.raft || n.applied < n.disk.snapshot.index + config_.compact_every) return;
  auto snap = n.raft->compact(n.applied, n.sm->snapshot());
  if (!snap) return violation(fmt::format("n{} could not compact: {}", n.id, snap.error().message));
  PersistentState& d = n.disk;
  d.entries.erase(d.entries.begin(),
                  d.entries.begin() + static_cast<std::ptrdiff_t>(snap->index - d.snapshot.index));
  d.snapshot = *snap;
  note(fmt::format("n{} compacted to {}", n.id, snap->index));
}

// The lease claim of docs/consensus.md: at no moment do two nodes hold a valid leader lease.
void Simulation::check_leases() {
  std::optional<NodeId> holder;
  for (const auto& [id, n] : nodes_) {
    if (!n->raft) continue;
    auto expiry = n->raft->lease_expiry();
    if (!expiry || *expiry <= clock_of(*n)) continue;
    if (holder) return violation(fmt::format("n{} and n{} both hold a leader lease", *holder, id));
    holder = id;
  }
}

// Check-quorum's promise: a leader without a valid lease steps down within one lease length of
// its election or of its lease start, give or take the timer slop.
void Simulation::check_leaders_step_down() {
  Usec grace = to_usec(config_.timing.election_timeout_min - config_.timing.lease_margin) +
               to_usec(config_.timer_slop) + 1;
  for (const auto& [id, n] : nodes_) {
    if (!n->raft || n->role != RaftRole::Leader) continue;
    auto expiry = n->raft->lease_expiry();
    MonoTime now = clock_of(*n);
    bool lease_recent = expiry && now.usec < expiry->usec + to_usec(config_.timer_slop) + 1;
    if (!lease_recent && now_ > n->role_changed_at + grace)
      return violation(fmt::format("n{} still acts as leader without a quorum's answers", id));
  }
}

// ---- Queries ----------------------------------------------------------------------------------

std::optional<NodeId> Simulation::leader() const {
  std::optional<NodeId> best;
  Term best_term = 0;
  for (const auto& [id, n] : nodes_) {
    if (!n->raft) continue;
    RaftStatus s = n->raft->status();
    if (s.role == RaftRole::Leader && (!best || s.term > best_term)) {
      best = id;
      best_term = s.term;
    }
  }
  return best;
}

const RaftNode* Simulation::node(NodeId id) const { return at(id).raft.get(); }

const StateMachine* Simulation::state_machine(NodeId id) const { return at(id).sm.get(); }

bool Simulation::applied(NodeId id, const Bytes& data) const {
  const Node& n = at(id);
  if (!n.raft) return false;
  for (Index i = 1; i <= std::min<Index>(n.applied, history_.size()); ++i) {
    if (history_[i - 1].data == data && history_[i - 1].type == kCommandType) return true;
  }
  return false;
}

Duration Simulation::last_role_change(NodeId id) const {
  return Duration(at(id).role_changed_at / 1000);
}

// ---- Random scenarios -------------------------------------------------------------------------

namespace {

// Picks a random quorum (by votes) of the voters.
std::vector<NodeId> random_quorum(const VoterMap& voters, SplitMix64& rng) {
  std::vector<NodeId> ids;
  std::uint64_t total = 0;
  for (const auto& [id, votes] : voters) {
    ids.push_back(id);
    total += votes;
  }
  for (std::size_t i = ids.size(); i > 1; --i) std::swap(ids[i - 1], ids[rng.below(i)]);
  std::vector<NodeId> q;
  std::uint64_t votes = 0;
  for (NodeId id : ids) {
    if (2 * votes > total) break;
    q.push_back(id);
    votes += voters.at(id);
  }
  return q;
}

void random_partition(Simulation& sim, SplitMix64& rng) {
  std::vector<std::vector<NodeId>> groups(2 + rng.below(2));
  for (NodeId id : sim.ids()) groups[rng.below(groups.size())].push_back(id);
  sim.partition(groups);
}

NetworkFaults random_faults(SplitMix64& rng) {
  NetworkFaults f;
  f.drop = static_cast<double>(rng.below(31)) / 100.0;
  f.duplicate = static_cast<double>(rng.below(11)) / 100.0;
  f.min_delay = Duration(rng.below(3));
  f.max_delay = f.min_delay + Duration(1 + rng.below(40));
  return f;
}

std::optional<NodeId> leader_among(const Simulation& sim, const std::vector<NodeId>& ids) {
  for (NodeId id : ids) {
    const RaftNode* n = sim.node(id);
    if (n && n->status().role == RaftRole::Leader) return id;
  }
  return std::nullopt;
}

// One random fault or client action, every few milliseconds of the chaos phase.
void chaos_step(Simulation& sim, SplitMix64& rng, std::map<NodeId, Duration>& down,
                std::uint64_t& proposals) {
  auto ids = sim.ids();
  NodeId any = ids[rng.below(ids.size())];
  auto roll = rng.below(100);
  if (roll < 35) {
    NodeId to = roll < 30 ? sim.leader().value_or(any) : any;
    for (auto burst = 1 + rng.below(4); burst > 0; --burst)
      (void)sim.propose(to, bytes_of(fmt::format("c{}", ++proposals)));
  } else if (roll < 42) {
    random_partition(sim, rng);
  } else if (roll < 50) {
    sim.heal();
  } else if (roll < 54) {
    sim.isolate(any);
  } else if (roll < 62) {
    NodeId other = ids[rng.below(ids.size())];
    if (other != any) sim.cut(any, other);
  } else if (roll < 67 && sim.is_up(any)) {
    sim.crash(any);
    down[any] = sim.elapsed() + Duration(rng.below(800));
  } else if (roll < 72) {
    sim.set_faults(random_faults(rng));
  }
}

void restart_due(Simulation& sim, std::map<NodeId, Duration>& down) {
  for (auto it = down.begin(); it != down.end();) {
    if (sim.elapsed() >= it->second) {
      sim.restart(it->first);
      it = down.erase(it);
    } else {
      ++it;
    }
  }
}

// After the chaos: connect a quorum on a clean network; within `settle` one of them must lead
// and commit a proposal on every member of the quorum.
std::string settle(Simulation& sim, const VoterMap& voters, Duration limit) {
  auto quorum = random_quorum(voters, sim.rng());
  for (NodeId id : quorum) sim.restart(id);
  sim.partition({quorum});
  sim.set_faults(NetworkFaults{0, 0.02, Duration(1), Duration(10)});
  Bytes marker = bytes_of("settle");
  Term proposed_in = 0;
  Duration start = sim.elapsed();
  bool ok = sim.run_until(
      [&] {
        auto leader = leader_among(sim, quorum);
        if (leader && sim.node(*leader)->status().term != proposed_in) {
          proposed_in = sim.node(*leader)->status().term;
          (void)sim.propose(*leader, marker);
        }
        return std::all_of(quorum.begin(), quorum.end(),
                           [&](NodeId id) { return sim.applied(id, marker); });
      },
      limit);
  if (ok || !sim.failure().empty()) return {};
  std::string members;
  for (NodeId id : quorum) members += fmt::format(" n{}", id);
  std::string why = fmt::format(
      "liveness: quorum{} connected since {} ms, yet no proposal committed on all of them within "
      "{} ms",
      members, start.count(), limit.count());
  sim.note(why);
  return why;
}

}  // namespace

ScenarioResult run_scenario(const ScenarioOptions& o) {
  SplitMix64 rng(o.seed ^ 0x5eed5eed5eed5eedULL);
  SimConfig config;
  config.seed = o.seed;
  config.full_trace = o.full_trace;
  config.voters.clear();
  for (int i = 1; i <= o.nodes; ++i)
    config.voters[static_cast<NodeId>(i)] =
        o.weighted ? 1 + static_cast<std::uint32_t>(rng.below(3)) : 1;
  config.faults = NetworkFaults{0.05, 0.02, Duration(1), Duration(15)};
  // Short Appends make followers hold partial suffixes: the stuff of Raft's figure 8.
  config.timing.max_entries_per_append = std::size_t{1} << rng.below(5);
  config.compact_every = 3 + rng.below(20);
  Simulation sim(config);
  std::map<NodeId, Duration> down;
  std::uint64_t proposals = 0;
  while (sim.elapsed() < o.chaos && sim.failure().empty()) {
    sim.run_for(Duration(5 + rng.below(30)));
    restart_due(sim, down);
    chaos_step(sim, rng, down, proposals);
  }
  std::string stuck;
  if (sim.failure().empty()) stuck = settle(sim, config.voters, o.settle);
  ScenarioResult result;
  result.failure = sim.failure().empty() ? stuck : sim.failure();
  result.trace = sim.trace();
  result.ok = result.failure.empty();
  result.stats = sim.stats();
  return result;
}

}  // namespace clusterd::sim
