#include "cluster_service.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>

#include "byte_order.h"
#include "incarnation.h"
#include "ip_driver.h"
#include "log.h"
#include "disk_driver.h"
#include "netlink_watcher.h"
#include "qdisk_timing.h"

namespace clusterd {
namespace {

using nlohmann::json;

/// The longest the housekeeping (sync, reconcile, retries) waits; deadlines (Raft, quorum, safe
/// takeover, joining hold) arm the timer earlier, and events poke it at once.
constexpr Duration kHousekeepingMax{100};
/// The quorum disk's id in the quorum guard (node ids are 1..255; the guard's ids are 8 bits).
constexpr std::uint8_t kGuardDiskId = 0;
/// How long a report or forwarded command is retried before the caller hears of a failure.
constexpr Duration kRequestTimeout{3000};
/// A report not followed by a matching record is sent again after this long.
constexpr Duration kReportRetry{1000};
/// Compact the Raft log every this many applied entries.
constexpr Index kCompactEvery = 64;

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }
std::span<const std::uint8_t> span_of(const Bytes& b) { return {b.data(), b.size()}; }

/// A node's votes in the quorum: its configured votes, or 0 in disk-only mode, where the disk
/// alone votes (MSCS 1.0: the holder of the quorum disk is the cluster).
std::uint32_t quorum_votes(const Config& config, const NodeConfig& node) {
  return config.quorum.mode == QuorumMode::DiskOnly ? 0 : node.votes;
}

/// Whether a node may campaign: it has votes, or in disk-only mode it campaigns on the disk's
/// vote (docs/quorum-disk.md, "Elections in disk-only mode").
bool may_campaign(const Config& config, const NodeConfig& node) {
  return quorum_votes(config, node) > 0 || config.quorum.mode == QuorumMode::DiskOnly;
}

RaftTiming raft_timing(const Config& config) {
  // Elections follow the failure detector: D - interval, so a follower's vote is free again by
  // the time the detector declares its leader unreachable (docs/membership.md).
  Duration interval = config.heartbeat.interval;
  Duration detection = interval * config.heartbeat.misses;
  RaftTiming t;
  t.heartbeat_interval = interval;
  t.election_timeout_min = std::max(detection - interval, interval * 2);
  t.election_timeout_max = t.election_timeout_min * 2;
  t.lease_margin = t.election_timeout_min / 100 + interval / 2;
  t.zero_vote_candidacy = config.quorum.mode == QuorumMode::DiskOnly;
  return t;
}

/// Margin W between "nobody hears the node" and "its groups may start elsewhere"
/// (docs/membership.md: the bound holds with any W >= 0; W absorbs loop lateness on our side).
Duration takeover_margin(Duration detection) {
  return std::clamp(detection / 25, Duration(1), Duration(20));
}

QuorumTiming quorum_timing(const Config& config) {
  QuorumTiming t;
  t.detection = config.heartbeat.interval * config.heartbeat.misses;
  t.stop_budget = std::min(Duration(150), t.detection / 3);
  t.margin = std::max(Duration(5), std::min(Duration(30), t.detection / 16));
  return t;
}

GroupState group_state_of(GroupPhase phase) {
  switch (phase) {
    case GroupPhase::Online:
      return GroupState::Online;
    case GroupPhase::Starting:
    case GroupPhase::Stopping:
      return GroupState::Pending;
    case GroupPhase::Failed:
      return GroupState::Failed;
    case GroupPhase::Offline:
      return GroupState::Offline;
  }
  return GroupState::Offline;
}

json command_json(const ClusterCommand& c) {
  return {{"kind", c.kind}, {"group", c.group}, {"node", c.node}, {"on", c.on}, {"text", c.text}};
}

ClusterCommand command_from(const json& j) {
  return {j.at("kind").get<std::string>(), j.at("group").get<std::string>(),
          j.at("node").get<std::string>(), j.at("on").get<bool>(), j.at("text").get<std::string>()};
}

/// A report's answer: nothing to do (reconcile() retries until the record shows the report
/// applied). Not inlined: g++ 12 warns falsely about std::expected inside std::function.
[[gnu::noinline]] void note_report_answer(Result<PeerBytes> answer) {
  if (!answer) log(LogLevel::Debug, {}, "report not answered: {}", answer.error().to_string());
}

int local_hour() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm.tm_hour;
}

}  // namespace

ClusterService::ClusterService(ClusterContext context)
    : context_(std::move(context)), config_(context_.config) {}

ClusterService::~ClusterService() {
  timer_.reset();
  transport_.reset();
  heartbeats_.reset();
}

Result<std::unique_ptr<ClusterService>> ClusterService::start(ClusterContext context) {
  std::unique_ptr<ClusterService> s(new ClusterService(std::move(context)));
  auto keys = load_cluster_keys(s->config_->cluster.authkey_path);
  if (!keys) return std::unexpected(keys.error());
  auto incarnation = next_incarnation(s->context_.state_dir);
  if (!incarnation) return std::unexpected(incarnation.error());
  if (auto r = s->open(*keys, *incarnation); !r) return std::unexpected(r.error());
  if (auto r = s->start_timer(); !r) return std::unexpected(r.error());
  s->process_ready();
  return s;
}

Result<void> ClusterService::open(const ClusterKeys& keys, std::uint64_t incarnation) {
  const Config& config = *config_;
  auto hb = HeartbeatOptions::from_config(config, context_.node, keys.heartbeat, incarnation);
  if (!hb) return std::unexpected(hb.error());
  std::uint8_t self = hb->self;
  auto heartbeats = HeartbeatService::create(
      context_.loop, *hb, [this](const DetectorEvent& e) { on_detector_event(e); });
  if (!heartbeats) return std::unexpected(heartbeats.error());
  heartbeats_ = std::move(*heartbeats);
  // From the first frame on: joining until caught up (no frame may claim otherwise before).
  hb_status_.flags = join_flags(joined_);
  heartbeats_->set_status(hb_status_);
  auto tp = PeerTransportOptions::from_config(config, context_.node, keys.transport, incarnation);
  if (!tp) return std::unexpected(tp.error());
  auto transport = PeerTransport::create(context_.loop, *tp);
  if (!transport) return std::unexpected(transport.error());
  transport_ = std::move(*transport);
  transport_->set_link_state([this](std::uint8_t node, std::size_t network) {
    return heartbeats_->detector().link_up(node, network);
  });

  auto storage = RaftStorage::open(context_.state_dir);
  if (!storage) return std::unexpected(storage.error());
  storage_.emplace(std::move(*storage));
  // Before the RaftNode exists: the quorum disk's checkpoint may be newer than what we persisted.
  if (auto r = start_disk(self); !r) return r;
  auto restored = decode_state(span_of(storage_->state().snapshot.data));
  if (!restored) return std::unexpected(restored.error());
  state_ = std::move(*restored);
  // The committed configuration wins over the file this daemon started with (it is newer or
  // the same: every committed version was also saved to the file).
  take_committed_config();

  VoterMap voters;
  std::map<std::uint8_t, std::uint32_t> votes;
  for (const auto& n : config.nodes) {
    voters[n.id] = quorum_votes(config, n);
    votes[static_cast<std::uint8_t>(n.id)] = quorum_votes(config, n);
  }
  add_disk_voter(voters, votes);
  RaftTiming timing = raft_timing(config);
  if (auto r = validate_raft_settings(self, voters, timing); !r) return r;
  raft_ = std::make_unique<RaftNode>(self, voters, timing, storage_->state(), mono_now(),
                                     incarnation * 1000003u + self);
  guard_ = std::make_unique<QuorumGuard>(self, votes, quorum_timing(config));
  heartbeats_->set_sent_listener([this](std::uint64_t seq, MonoTime at) { guard_->sent(seq, at); });
  heartbeats_->set_frame_listener([this](const HeartbeatFrame& f) { on_frame(f); });
  register_handlers();
  log(LogLevel::Notice, {}, "cluster service started: node {} (id {}), incarnation {}, term {}",
      context_.node, self, incarnation, storage_->state().hard.term);
  return {};
}

void ClusterService::register_handlers() {
  transport_->on_message(static_cast<std::uint16_t>(PeerType::Raft),
                         [this](const PeerMessage& m) { on_raft_message(m); });
  transport_->on_message(static_cast<std::uint16_t>(PeerType::Echo),
                         [this](const PeerMessage& m) { on_echo(m); });
  transport_->on_request(static_cast<std::uint16_t>(PeerType::Report),
                         [this](const PeerMessage& m, PeerReply r) { on_report_request(m, r); });
  transport_->on_request(static_cast<std::uint16_t>(PeerType::Command),
                         [this](const PeerMessage& m, PeerReply r) { on_command_request(m, r); });
  transport_->on_request(static_cast<std::uint16_t>(PeerType::Sync),
                         [this](const PeerMessage& m, PeerReply r) { on_sync_request(m, r); });
}

Result<void> ClusterService::start_timer() {
  sd_event_source* source = nullptr;
  int r = sd_event_add_time(context_.loop, &source, CLOCK_BOOTTIME, 0, 0, on_timer, this);
  if (r < 0) return fail_errno(r, "could not add the cluster service timer");
  timer_.reset(source);
  sd_event_source_set_description(source, "cluster-tick");
  sd_event_source_set_priority(source, SD_EVENT_PRIORITY_IMPORTANT);
  return {};
}

int ClusterService::on_timer(sd_event_source*, uint64_t, void* userdata) noexcept {
  auto* self = static_cast<ClusterService*>(userdata);
  self->tick();
  self->arm_timer(mono_now());
  return 0;
}

void ClusterService::poke() {
  if (!timer_) return;
  sd_event_source_set_time(timer_.get(), 0);  // in the past: due on the next iteration
  sd_event_source_set_enabled(timer_.get(), SD_EVENT_ONESHOT);
}

void ClusterService::arm_timer(MonoTime now) {
  if (!timer_) return;
  // Accuracy 0: sd-event would otherwise coalesce a wakeup up to 250 ms late.
  sd_event_source_set_time(timer_.get(), next_wakeup(now).usec);
  sd_event_source_set_time_accuracy(timer_.get(), 1);
  sd_event_source_set_enabled(timer_.get(), SD_EVENT_ONESHOT);
}

// Brings the timer forward to `at` when it is armed later (never delays it: a poke stays due).
// Deadlines made outside tick() (a new leader's takeover margin, Raft's timers after a message)
// would otherwise wait for the next housekeeping, up to an interval late.
void ClusterService::wake_by(MonoTime at) {
  if (!timer_) return;
  int enabled = SD_EVENT_OFF;
  std::uint64_t armed = 0;
  if (sd_event_source_get_enabled(timer_.get(), &enabled) >= 0 && enabled != SD_EVENT_OFF &&
      sd_event_source_get_time(timer_.get(), &armed) >= 0 && armed <= at.usec)
    return;
  sd_event_source_set_time(timer_.get(), at.usec);
  sd_event_source_set_time_accuracy(timer_.get(), 1);
  sd_event_source_set_enabled(timer_.get(), SD_EVENT_ONESHOT);
}

MonoTime ClusterService::next_wakeup(MonoTime now) const {
  // Housekeeping at least every interval (at most kHousekeepingMax); every deadline that can
  // change a decision sooner arms the timer exactly.
  MonoTime next = now + std::min(config_->heartbeat.interval, kHousekeepingMax);
  // Only deadlines still ahead: tick() has just handled the ones that passed, and one that stays
  // in the past (a takeover waiting for a proposal in flight) must not spin the loop.
  auto consider = [&](MonoTime at) {
    if (at > now) next = std::min(next, at);
  };
  consider(raft_->next_deadline());
  if (auto stop = guard_->stop_deadline(now)) consider(*stop);
  if (kill_at_) consider(*kill_at_);
  if (fence_grace_) consider(*fence_grace_);
  Duration w = takeover_margin(detection());
  for (const auto& [node, since] : unheard_since_) consider(since + w);
  if (leading()) {
    if (auto end = joining_hold_end(joining_since_, term_began_, detection())) consider(*end);
  }
  return next;
}

void ClusterService::tick() {
  // Echoes and Raft messages that arrived while the loop stalled are read before any deadline
  // is judged: otherwise a late timer would see an old confirmation or a silent leader that
  // are sitting in the socket (the loop runs this timer before its socket sources).
  transport_->drain_all();
  MonoTime now = mono_now();
  raft_->tick(now);
  process_ready();
  // Also when the record is not new: we may have read it while we still had a leader.
  if (disk_record_.state) catch_up_from_disk(*disk_record_.state);
  send_disk_facts();
  check_quorum(now);
  sync();
  update_join();
  note_node_states(now);
  // Every node keeps the "nobody hears it since" times, not only the leader: a coordinator
  // elected because the old one died then finds the margin W already run (docs/membership.md).
  if (!leading()) note_unheard(now);
  coordinate();
  reconcile();
}

void ClusterService::on_frame(const HeartbeatFrame& frame) {
  PeerSeen& seen = seen_[frame.node_id];
  // Echo each new sequence at once (docs/membership.md, "Echoes"): the sender's confirmation is
  // then at most one interval plus a network hop old, so the quorum guard can run tight.
  if (frame.incarnation != seen.incarnation || frame.sequence > seen.sequence) {
    seen.incarnation = frame.incarnation;
    seen.sequence = frame.sequence;
    send_echo(frame.node_id, frame.sequence);
  }
  // A peer that stopped (or started) hearing someone can make that node safe to replace (or
  // not): decide now, not at the next housekeeping.
  if (frame.hears != seen.hears) {
    seen.hears = frame.hears;
    poke();
  }
}

// ---- Consensus ------------------------------------------------------------------------------

void ClusterService::on_raft_message(const PeerMessage& message) {
  auto decoded = decode_message(message.payload);
  if (!decoded) {
    log(LogLevel::Warning, {}, "Raft message from node {} dropped: {}", message.from,
        decoded.error().to_string());
    return;
  }
  if (decoded->from != message.from) return;  // the transport authenticated the sender
  raft_->tick(mono_now());
  raft_->step(*decoded);
  process_ready();
}

void ClusterService::process_ready() {
  bool applied = false;
  while (raft_->has_ready()) {
    RaftReady ready = raft_->ready();
    if (auto r = storage_->persist(ready); !r) {
      // Without durable state this node must not speak: a lost vote could elect two leaders.
      log(LogLevel::Err, {}, "could not persist the Raft state, not sending: {}",
          r.error().to_string());
      return;
    }
    for (const auto& m : ready.messages) {
      if (m.to == kDiskVoterId) {
        send_to_disk(m);
        continue;
      }
      Bytes bytes = encode_message(m);
      (void)transport_->send(static_cast<std::uint8_t>(m.to),
                             static_cast<std::uint16_t>(PeerType::Raft), span_of(bytes));
    }
    if (ready.snapshot) restore(*ready.snapshot);
    applied = applied || ready.snapshot.has_value();
    for (const auto& e : ready.committed) {
      apply_committed(e);
      applied = true;
    }
    if (ready.status) on_status(*ready.status);
    on_disk_ready(ready);
  }
  if (applied) {
    maybe_compact();
    coordinate();
    reconcile();
  }
  wake_by(next_wakeup(mono_now()));
}

void ClusterService::apply_committed(const Entry& entry) {
  std::uint64_t version = state_.config_version;
  if (inflight_ && entry.index >= inflight_->second) inflight_.reset();
  auto changed = apply_entry(state_, entry);
  if (!changed) {
    log(LogLevel::Warning, {}, "{}", changed.error().to_string());
    return;
  }
  if (!changed->empty()) record("cluster", "", fmt::format("committed: {}", *changed));
  if (state_.config_version != version) {
    take_committed_config();
    publish_status();
  }
  if (static_cast<EntryType>(entry.type) == EntryType::Placement) note_detections();
}

void ClusterService::restore(const Snapshot& snapshot) {
  auto restored = decode_state(span_of(snapshot.data));
  if (!restored) {
    log(LogLevel::Err, {}, "{}", restored.error().to_string());
    return;
  }
  std::uint64_t version = state_.config_version;
  state_ = std::move(*restored);
  // A node that was down takes the cluster's newest configuration with the snapshot.
  if (state_.config_version != version) take_committed_config();
}

void ClusterService::take_committed_config() {
  if (!context_.apply_config || state_.config_version == 0) return;
  if (auto r = context_.apply_config(state_.config_yaml); !r)
    log(LogLevel::Err, {}, "committed configuration version {} does not apply here: {}",
        state_.config_version, r.error().to_string());
}

void ClusterService::note_detections() {
  // The leader adds when it detected the loss of a node to the timelines that loss opened.
  if (!leading()) return;
  for (const auto& t : state_.timelines) {
    if (t.cause != "node-loss" || t.id != state_.applied) continue;
    for (const auto& p : t.phases) {
      auto id = id_of(p.node);
      auto it = detected_.find(id);
      if (p.phase != "decided-mark-offline" || it == detected_.end()) continue;
      Usec wall = wall_now_usec() - (mono_now().usec - it->second.usec);
      (void)raft_->propose(static_cast<std::uint16_t>(EntryType::Timeline),
                           encode_timeline(t.group, {"detected", p.node, wall}));
    }
  }
}

void ClusterService::maybe_compact() {
  const Snapshot& stored = storage_->state().snapshot;
  if (state_.applied < stored.index + kCompactEvery) return;
  auto snapshot = raft_->compact(state_.applied, encode_state(state_));
  if (!snapshot) return;
  if (auto r = storage_->compact(*snapshot); !r)
    log(LogLevel::Warning, {}, "could not compact the Raft log: {}", r.error().to_string());
}

void ClusterService::on_status(const RaftStatus& status) {
  poke();  // a new term or coordinator: sync, join and decide without waiting
  hb_status_.term = status.term;
  hb_status_.coordinator = status.leader ? static_cast<std::uint8_t>(*status.leader) : 0;
  publish_status();
  std::string leader = status.leader ? name_of(static_cast<std::uint8_t>(*status.leader)) : "";
  record("membership", "",
         fmt::format("term {}: {} ({}), coordinator {}", status.term, to_string(status.role),
                     context_.node, leader.empty() ? "unknown" : leader));
  if (status.role != RaftRole::Leader) {
    inflight_.reset();
    drop_requests("the coordinator lost its role before deciding; try again");
    term_start_.reset();
  } else {
    term_start_ = raft_->last_index();  // the no-op of this term
    term_began_ = mono_now();
  }
  sync_index_.reset();  // a new leader: sync again with it before acting
}

Result<Index> ClusterService::propose(EntryType type, Bytes data) {
  auto index = raft_->propose(static_cast<std::uint16_t>(type), std::move(data));
  if (index) process_ready();
  return index;
}

// ---- Membership -----------------------------------------------------------------------------

std::uint8_t ClusterService::id_of(const std::string& name) const {
  const NodeConfig* n = config_->find_node(name);
  return n ? static_cast<std::uint8_t>(n->id) : 0;
}

std::string ClusterService::name_of(std::uint8_t id) const {
  for (const auto& n : config_->nodes)
    if (n.id == id) return n.name;
  return fmt::format("node-id-{}", id);
}

void ClusterService::on_detector_event(const DetectorEvent& event) {
  std::string node = name_of(event.node);
  switch (event.kind) {
    case DetectorEventKind::NodeReachable:
      record("membership", "", fmt::format("node {} is reachable", node));
      unheard_since_.erase(node);
      break;
    case DetectorEventKind::NodeUnreachable: {
      record("membership", "",
             fmt::format("node {} is unreachable{}", node, event.leaving ? " (it left)" : ""));
      detected_[event.node] = event.at;
      auto status = raft_->status();
      // Do not wait for an election timeout when the coordinator is gone: the lowest-id voter
      // that remains campaigns at once, the others keep their timers (no split vote).
      if (status.leader && *status.leader == event.node) {
        NodeSet reachable = heartbeats_->detector().reachable();
        std::uint8_t first = 0;
        for (const auto& n : config_->nodes)
          if (may_campaign(*config_, n) && reachable[n.id] && (first == 0 || n.id < first))
            first = static_cast<std::uint8_t>(n.id);
        if (first == raft_->id()) {
          raft_->tick(mono_now());
          raft_->campaign();
          process_ready();
        }
      }
      break;
    }
    default:
      break;
  }
  // Peers learn at once what we stopped (or started) hearing: it gates their takeover. Our own
  // decisions (safe nodes, joining) are due now too.
  if (event.kind == DetectorEventKind::NodeUnreachable ||
      event.kind == DetectorEventKind::NodeReachable) {
    heartbeats_->send_now();
    poke();
  }
}

void ClusterService::send_echo(std::uint8_t node, std::uint64_t sequence) {
  // Eight bytes, big-endian: no allocation beyond the transport's own. The holder of the quorum
  // disk adds four: how many microseconds ago its hold was last confirmed, which lets the
  // node count the disk's vote (docs/quorum-disk.md, "Followers of the holder").
  std::array<std::uint8_t, 12> payload{};
  put_be(payload.data(), sequence, 8);
  std::size_t size = 8;
  if (disk_held_ && disk_confirmed_) {
    Usec now = mono_now().usec;
    Usec age = now > disk_confirmed_->usec ? now - disk_confirmed_->usec : 0;
    if (age < 0xffffffffu) {
      put_be(payload.data() + 8, age, 4);
      size = 12;
    }
  }
  (void)transport_->send(node, static_cast<std::uint16_t>(PeerType::Echo),
                         std::span<const std::uint8_t>(payload.data(), size));
}

void ClusterService::on_echo(const PeerMessage& message) {
  const auto& p = message.payload;
  if (p.size() == 8 || p.size() == 12) {
    std::uint64_t sequence = get_be(p.data(), 8);
    guard_->echoed(message.from, sequence);
    if (p.size() == 12 && qdisk_) guard_->relayed(kGuardDiskId, sequence, get_be(p.data() + 8, 4));
    if (fence_grace_ || fenced_) poke();  // the awaited confirmation may be this one
    return;
  }
  // Daemons before the binary echo sent {"seq": N} (rolling upgrades).
  try {
    auto j = json::parse(p.begin(), p.end());
    guard_->echoed(message.from, j.at("seq").get<std::uint64_t>());
  } catch (const json::exception&) {
  }
}

bool ClusterService::heard_by_anyone(std::uint8_t node) const {
  const FailureDetector& d = heartbeats_->detector();
  if (d.reachable(node)) return true;
  for (const auto& n : config_->nodes) {
    auto id = static_cast<std::uint8_t>(n.id);
    if (id == raft_->id() || id == node || !d.reachable(id)) continue;
    const PeerView* view = d.view(id);
    if (view != nullptr && view->hears[node]) return true;
  }
  return false;
}

NodeState ClusterService::node_state(const NodeConfig& node) const {
  // docs/membership.md, "Joining": every node judges alike from the peers' own heartbeats.
  auto id = static_cast<std::uint8_t>(node.id);
  const FailureDetector& d = heartbeats_->detector();
  NodeFacts facts;
  facts.self = id == raft_->id();
  facts.reachable = d.reachable(id);
  const PeerView* view = facts.self ? nullptr : d.view(id);
  facts.joined = facts.self ? joined_ : view != nullptr && !(view->flags & kHeartbeatJoining);
  auto flag = state_.admin.find(node.name);
  if (flag != state_.admin.end()) facts.admin = flag->second;
  return judge_node(facts);
}

CatchUpFacts ClusterService::catch_up_facts() const {
  return {raft_->status().leader.has_value(), fenced_, sync_index_, state_.applied};
}

void ClusterService::update_join() {
  bool now = joined(joined_, catch_up_facts());
  if (now == joined_) return;
  joined_ = now;
  publish_status();
  heartbeats_->send_now();  // peers (the coordinator) learn it without waiting an interval
}

void ClusterService::publish_status() {
  hb_status_.config_version = state_.config_version;
  hb_status_.flags = join_flags(joined_);
  heartbeats_->set_status(hb_status_);
}

void ClusterService::note_node_states(MonoTime now) {
  for (const auto& n : config_->nodes) {
    NodeState state = node_state(n);
    if (state == NodeState::Joining)
      joining_since_.try_emplace(n.name, now);
    else
      joining_since_.erase(n.name);
    auto [it, first] = shown_.try_emplace(n.name, NodeState::Down);
    if (!first && it->second == state) continue;
    if (first && state == NodeState::Down) continue;  // nothing happened yet
    std::string from = to_string(it->second);
    it->second = state;
    record_node(n.name, from, to_string(state));
  }
}

void ClusterService::note_unheard(MonoTime now) {
  // docs/membership.md: a down node is safe once neither we nor anyone we hear hears it (each
  // peer clears it D after its last frame, when the node has fenced itself), plus margin W.
  // (a) Only while we reach a quorum ourselves: a decision made without one could still commit
  // after the partition heals (the placement simulator found this).
  NodeSet reachable = heartbeats_->detector().reachable();
  std::uint64_t votes = 0, total = 0;
  for (const auto& n : config_->nodes) {
    total += quorum_votes(*config_, n);
    if (n.id == raft_->id() || reachable[n.id]) votes += quorum_votes(*config_, n);
  }
  auto [disk, disk_total] = disk_votes(now);
  votes += disk;
  total += disk_total;
  if (2 * votes <= total) {
    unheard_since_.clear();
    return;
  }
  for (const auto& n : config_->nodes) {
    auto id = static_cast<std::uint8_t>(n.id);
    if (id == raft_->id() || heard_by_anyone(id)) {
      unheard_since_.erase(n.name);
      continue;
    }
    auto [it, inserted] = unheard_since_.try_emplace(n.name, now);
    if (inserted) wake_by(now + takeover_margin(detection()));  // at W, not at housekeeping
  }
}

std::set<std::string> ClusterService::safe_nodes(MonoTime now) {
  note_unheard(now);
  std::set<std::string> safe;
  for (const auto& [node, since] : unheard_since_)
    if (now >= since + takeover_margin(detection())) safe.insert(node);
  return safe;
}

// ---- Coordinator ----------------------------------------------------------------------------

PlacementInput ClusterService::placement_input(MonoTime now) {
  PlacementInput in;
  in.config = config_;
  for (const auto& n : config_->nodes) in.view.nodes[n.name] = node_state(n);
  in.view.maintenance = state_.maintenance;
  in.view.quorate = true;  // the leader holds a quorum (check-quorum steps it down otherwise)
  in.state = state_.placement;
  in.requests = requests_;
  in.safe_nodes = safe_nodes(now);
  in.now = placement_time(wall_now_usec());
  in.hour = local_hour();
  return in;
}

void ClusterService::coordinate() {
  if (!leading() || inflight_ || raft_->commit_index() > state_.applied) return;
  // A new leader decides only once an entry of its own term (the no-op) is applied: then it
  // knows every committed owner (leader completeness), and no entry of an earlier term left in
  // its log can still commit behind a decision made without it.
  if (!term_start_ || state_.applied < *term_start_) return;
  // docs/membership.md, "Joining": decide only once joined ourselves, and give nodes that are
  // catching up a bounded moment, so groups go to the nodes the configuration prefers.
  MonoTime now = mono_now();
  if (!joined_ || hold_for_joining(joining_since_, term_began_, now, detection())) return;
  PlacementInput input = placement_input(now);
  auto actions = decide(input);
  std::vector<PlacementAction> acting;
  for (auto& a : actions) {
    if (a.kind == ActionKind::Refuse)
      record("placement", a.group, fmt::format("refused: {}", a.reason));
    if (a.kind != ActionKind::Wait && a.kind != ActionKind::Refuse) acting.push_back(a);
  }
  answer_requests(actions);
  requests_.clear();
  if (acting.empty()) return;
  auto index = propose(EntryType::Placement, encode_placement(acting, wall_now_usec()));
  if (index) inflight_ = std::make_pair(raft_->status().term, *index);
}

void ClusterService::on_report_request(const PeerMessage& message, PeerReply reply) {
  try {
    auto j = json::parse(message.payload.begin(), message.payload.end());
    GroupReport r{j.at("group").get<std::string>(), name_of(message.from), GroupPhase::Online};
    auto phase = j.at("phase").get<std::string>();
    for (int i = 0; i < kGroupPhaseCount; ++i)
      if (phase == to_string(static_cast<GroupPhase>(i))) r.phase = static_cast<GroupPhase>(i);
    auto index = propose(EntryType::Report, encode_report(r, wall_now_usec()));
    std::string answer = index ? "ok" : index.error().to_string();
    reply(span_of(bytes_of(answer)));
  } catch (const json::exception& e) {
    reply(span_of(bytes_of(std::string("malformed report"))));
  }
}

void ClusterService::on_command_request(const PeerMessage& message, PeerReply reply) {
  auto send = [reply](const Result<std::string>& result) {
    json answer = result ? json{{"ok", true}, {"text", *result}}
                         : json{{"ok", false}, {"text", result.error().message}};
    reply(span_of(bytes_of(answer.dump())));
  };
  ClusterCommand command;
  try {
    auto j = json::parse(message.payload.begin(), message.payload.end());
    command = command_from(j);
  } catch (const json::exception&) {
    return send(fail("malformed command"));
  }
  // Requests are answered once decided, which may be after this call (PeerReply allows it).
  execute(command, send);
}

void ClusterService::execute(const ClusterCommand& c, Answer done) {
  if (!leading()) return done(fail("this node is not the coordinator any more; try again"));
  std::optional<RequestKind> kind;
  if (c.kind == "move") kind = RequestKind::Move;
  if (c.kind == "online") kind = RequestKind::Online;
  if (c.kind == "offline") kind = RequestKind::Offline;
  if (!kind) return done(execute_admin(c));
  if (config_->find_group(c.group) == nullptr)
    return done(fail("there is no group called \"{}\"", c.group));
  requests_.push_back({*kind, c.group, c.node});
  request_answers_.push_back(std::move(done));
  coordinate();
}

Result<std::string> ClusterService::execute_admin(const ClusterCommand& c) {
  auto admin = [&](NodeFlag flag) -> Result<std::string> {
    if (config_->find_node(c.node) == nullptr)
      return fail("there is no node called \"{}\"", c.node);
    auto index = propose(EntryType::Admin, encode_admin({c.node, flag, false}));
    if (!index) return std::unexpected(index.error());
    return fmt::format("node {}: {} submitted", c.node, c.kind);
  };
  if (c.kind == "pause") return admin(NodeFlag::Paused);
  if (c.kind == "drain") return admin(NodeFlag::Draining);
  if (c.kind == "resume") return admin(NodeFlag::None);
  if (c.kind == "maintenance") {
    auto index = propose(EntryType::Admin, encode_admin({"", NodeFlag::None, c.on}));
    if (!index) return std::unexpected(index.error());
    return fmt::format("maintenance mode {} submitted", c.on ? "on" : "off");
  }
  if (c.kind == "apply") {
    std::uint64_t version = state_.config_version + 1;
    auto index = propose(EntryType::Config, encode_config(version, c.text));
    if (!index) return std::unexpected(index.error());
    return fmt::format("configuration version {} submitted", version);
  }
  return fail("unknown command \"{}\"", c.kind);
}

void ClusterService::answer_requests(const std::vector<PlacementAction>& actions) {
  // Each request is acted on or refused by exactly one decide() (placement.h).
  for (std::size_t i = 0; i < request_answers_.size(); ++i) {
    std::string accepted;
    std::optional<std::string> refused;
    for (const auto& a : actions) {
      if (a.request != static_cast<int>(i)) continue;
      if (a.kind == ActionKind::Refuse) refused = a.reason;
      else if (a.kind != ActionKind::Wait) accepted += (accepted.empty() ? "" : " ") + a.reason;
    }
    const PlacementRequest& r = requests_[i];
    if (refused)
      request_answers_[i](fail("{}", *refused));
    else
      request_answers_[i](fmt::format("{} {} accepted by the coordinator{}{}", to_string(r.kind),
                                      r.group, accepted.empty() ? "" : ": ", accepted));
  }
  request_answers_.clear();
}

void ClusterService::drop_requests(const std::string& why) {
  auto answers = std::move(request_answers_);
  request_answers_.clear();
  requests_.clear();
  for (auto& answer : answers) answer(fail("{}", why));
}

void ClusterService::submit(ClusterCommand command, std::function<void(Result<std::string>)> done) {
  if (leading()) return execute(command, std::move(done));
  auto leader = raft_->status().leader;
  if (!leader) {
    done(fail("there is no coordinator right now (no quorum, or an election is running)"));
    return;
  }
  std::string payload = command_json(command).dump();
  // A refusal comes after the D-Bus call that forwarded the command returned: it is recorded
  // here too, so `clusterctl move --wait` on this node sees it (the coordinator records its own).
  auto answered = [alive = std::weak_ptr<bool>(alive_), this, group = command.group,
                   done = std::move(done)](Result<std::string> result) {
    if (!result && !group.empty() && !alive.expired())
      record("placement", group, fmt::format("refused: {}", result.error().message));
    done(std::move(result));
  };
  transport_->request(static_cast<std::uint8_t>(*leader),
                      static_cast<std::uint16_t>(PeerType::Command), span_of(bytes_of(payload)),
                      kRequestTimeout, [answered](Result<PeerBytes> answer) {
                        if (!answer) return answered(std::unexpected(answer.error()));
                        try {
                          auto j = json::parse(answer->begin(), answer->end());
                          if (j.at("ok").get<bool>())
                            return answered(j.at("text").get<std::string>());
                          answered(fail("{}", j.at("text").get<std::string>()));
                        } catch (const json::exception&) {
                          answered(fail("the coordinator's answer is malformed"));
                        }
                      });
}

// ---- Node agent -----------------------------------------------------------------------------

void ClusterService::on_sync_request(const PeerMessage&, PeerReply reply) {
  // Only a leader inside its lease knows that no newer leader committed anything it lacks.
  auto lease = raft_->lease_expiry();
  // The last index, not the commit index: a decision still pending in the log (made while the
  // asking node was lost) must be applied there before it starts anything.
  bool ok =
      leading() && lease && mono_now() < *lease && term_start_ && state_.applied >= *term_start_;
  json answer = ok ? json{{"commit", raft_->last_index()}} : json{{"commit", nullptr}};
  reply(span_of(bytes_of(answer.dump())));
}

void ClusterService::sync() {
  if (sync_index_ || sync_pending_ || fenced_) return;
  if (leading()) {
    if (term_start_) sync_index_ = *term_start_;
    return;
  }
  auto leader = raft_->status().leader;
  if (!leader) return;
  sync_pending_ = true;
  transport_->request(static_cast<std::uint8_t>(*leader),
                      static_cast<std::uint16_t>(PeerType::Sync), {}, Duration(500),
                      [alive = std::weak_ptr<bool>(alive_), this](Result<PeerBytes> answer) {
                        if (alive.expired()) return;
                        sync_pending_ = false;
                        if (!answer || fenced_) return;
                        auto j = json::parse(answer->begin(), answer->end(), nullptr, false);
                        if (j.is_object() && j.contains("commit") && j["commit"].is_number())
                          sync_index_ = j["commit"].get<Index>();
                        poke();  // caught up: joining ends, reconcile may act
                      });
}

bool ClusterService::current() const {
  // Act only on state that is current: a known leader, a quorum that confirms us, and every
  // entry committed before we (re)joined applied.
  return raft_->status().leader.has_value() && !fenced_ && sync_index_ &&
         state_.applied >= *sync_index_;
}

void ClusterService::reconcile() {
  if (context_.manager == nullptr) return;
  bool current = this->current();
  for (const auto& g : context_.manager->status()) {
    PlacementRecord r = record_of(state_, g.name);
    bool mine = r.node == context_.node;
    bool want = mine && (r.phase == GroupPhase::Starting || r.phase == GroupPhase::Online);
    std::uint64_t epoch = state_.epochs.contains(g.name) ? state_.epochs.at(g.name) : 0;
    // Starting: once per epoch (a new decision). Online: only if this daemon has not started it
    // yet (it restarted); never again on the report that turned Starting into Online.
    bool start = r.phase == GroupPhase::Starting
                     ? !started_epoch_.contains(g.name) || started_epoch_.at(g.name) != epoch
                     : !started_epoch_.contains(g.name);
    if (want && current && start) {
      started_epoch_[g.name] = epoch;
      failed_.erase(g.name);
      auto reason = fmt::format("committed placement: {} on {} ({})", to_string(r.phase),
                                context_.node, to_string(r.cause));
      if (auto res = context_.manager->online_group(g.name, reason); !res)
        log(LogLevel::Err, {{"GROUP", g.name}}, "could not start group {}: {}", g.name,
            res.error().to_string());
    }
    if (!want && g.state != GroupState::Offline && !(g.state == GroupState::Failed && !mine)) {
      if (started_epoch_.erase(g.name) > 0 || g.state != GroupState::Failed)
        (void)context_.manager->offline_group(
            g.name, mine ? "committed placement: stop here"
                         : "the committed placement does not run the group here");
    }
    if (!mine || !current) continue;
    bool failed = failed_.contains(g.name) ||
                  (r.phase == GroupPhase::Starting && g.state == GroupState::Failed);
    if ((r.phase == GroupPhase::Starting || r.phase == GroupPhase::Online) && failed)
      report(g.name, GroupPhase::Failed);
    else if (r.phase == GroupPhase::Starting && g.state == GroupState::Online)
      report(g.name, GroupPhase::Online);
    else if (r.phase == GroupPhase::Stopping &&
             (g.state == GroupState::Offline || g.state == GroupState::Failed))
      report(g.name, GroupPhase::Offline);
  }
}

void ClusterService::report(const std::string& group, GroupPhase phase) {
  std::uint64_t epoch = state_.epochs.contains(group) ? state_.epochs.at(group) : 0;
  MonoTime now = mono_now();
  auto it = reported_.find(group);
  if (it != reported_.end() && it->second.epoch == epoch && it->second.phase == phase &&
      now < it->second.at + kReportRetry)
    return;
  reported_[group] = {epoch, phase, now};
  if (phase == GroupPhase::Failed) failed_.erase(group);
  GroupReport r{group, context_.node, phase};
  if (leading()) {
    (void)propose(EntryType::Report, encode_report(r, wall_now_usec()));
    return;
  }
  auto leader = raft_->status().leader;
  if (!leader) return;
  std::string payload =
      json{{"group", group}, {"phase", to_string(phase)}, {"epoch", epoch}}.dump();
  transport_->request(static_cast<std::uint8_t>(*leader),
                      static_cast<std::uint16_t>(PeerType::Report), span_of(bytes_of(payload)),
                      kRequestTimeout, note_report_answer);
}

void ClusterService::on_local_change() { reconcile(); }

void ClusterService::on_group_failed(const std::string& group) {
  // Reported from the next tick: this runs inside the manager's own callback.
  failed_.insert(group);
  poke();
}

void ClusterService::check_quorum(MonoTime now) {
  if (guard_->quorate(now)) {
    fence_grace_.reset();
    if (fenced_) {
      record("quorum", "", "a quorum confirms this node again; groups follow the coordinator");
      fenced_ = false;
      kill_at_.reset();
    }
    return;
  }
  if (!fenced_ && !fence_grace_ && guard_->confirmed(now)) {
    // docs/membership.md, "The echo grace": a stalled loop finds its confirmation old while the
    // echoes that renew it wait in the socket behind this timer. Send a heartbeat and give its
    // echo a moment; the hard kill stays at C + D - M, so the bound does not move.
    fence_grace_ = now + guard_->timing().echo_grace(config_->heartbeat.interval);
    heartbeats_->send_now();
    return;
  }
  if (!fenced_ && fence_grace_ && now < *fence_grace_) return;
  if (!fenced_) self_fence(now);
  if (kill_at_ && now >= *kill_at_) {
    kill_leftovers();
    remove_leftover_addresses();
    kill_at_.reset();
  }
}

void ClusterService::self_fence(MonoTime now, const std::string& why) {
  fenced_ = true;
  fence_grace_.reset();
  sync_index_.reset();
  joined_ = false;  // it rejoins once a quorum confirms it and it caught up again
  publish_status();
  auto c = guard_->confirmed(now);
  fence_reason_ =
      !why.empty() ? why
      : c ? fmt::format("no quorum has confirmed hearing this node for {} ms", now.ms_since(*c))
        : std::string("no quorum has confirmed hearing this node yet");
  bool any = false;
  for (const auto& g : context_.manager->status()) {
    if (g.state == GroupState::Offline) continue;
    any = true;
    started_epoch_.erase(g.name);
    (void)context_.manager->offline_group(g.name, fmt::format("self-fence: {}", fence_reason_));
  }
  if (!any) return;  // nothing runs here: nothing to fence
  kill_at_ = guard_->kill_deadline(now);
  record("quorum", "",
         fmt::format("quorum lost, taking every group offline: {}; hard deadline in {} ms",
                     fence_reason_, kill_at_->ms_since(now)));
}

void ClusterService::remove_leftover_addresses() {
  // A watcher of our own rather than the ip drivers' shared one: the drivers hear of the
  // removal as a removal by someone else and fail their resource, which the engine then
  // stops (its target is offline since the self-stop began) instead of adding it again.
  auto netlink = NetlinkWatcher::create(context_.loop);
  if (!netlink) {
    record("quorum", "",
           fmt::format("self-fence hard deadline: could not look for virtual IPs left: {}",
                       netlink.error().to_string()));
    return;
  }
  for (const auto& left : remove_resource_addresses(**netlink, *config_)) {
    std::string address = fmt::format("{}/{}", left.address.to_string(), left.prefixlen);
    if (left.removed)
      record("quorum", left.group,
             fmt::format("self-fence hard deadline: removed address {} of resource {} from {}",
                         address, left.resource, left.ifname));
    else
      record("quorum", left.group,
             fmt::format("self-fence hard deadline: could not remove address {} of resource {} "
                         "from {}: {}",
                         address, left.resource, left.ifname, left.removed.error().to_string()));
  }
}

void ClusterService::kill_leftovers() {
  for (const auto& g : context_.manager->status()) {
    for (const auto& r : g.resources) {
      if (r.main_pid <= 0 || r.state == ResourceState::Offline) continue;
      pid_t pgid = getpgid(r.main_pid);
      if (pgid > 1) ::kill(-pgid, SIGKILL);
      ::kill(r.main_pid, SIGKILL);
      record(
          "quorum", g.name,
          fmt::format("self-fence hard deadline: killed resource {} (pid {})", r.name, r.main_pid));
    }
  }
}

void ClusterService::leave() {
  // The disk first: a peer that hears us leave may campaign at once and then finds it free.
  release_disk();
  if (heartbeats_) heartbeats_->leave();
}

// ---- API views ------------------------------------------------------------------------------

std::vector<NodeView> ClusterService::nodes() const {
  std::vector<NodeView> out;
  for (const auto& n : config_->nodes) {
    NodeState s = node_state(n);
    out.push_back({n.name, n.id, to_string(s)});
  }
  return out;
}

std::vector<GroupStatus> ClusterService::groups(std::vector<GroupStatus> local) const {
  for (auto& g : local) {
    if (!g.owner.empty()) continue;  // runs (or runs down) here
    PlacementRecord r = record_of(state_, g.name);
    if (r.node.empty() || r.node == context_.node) continue;
    g.owner = r.node;
    g.state = group_state_of(r.phase);
    g.reason = fmt::format("{} on {} ({})", to_string(r.phase), r.node, to_string(r.cause));
  }
  return local;
}

json ClusterService::describe() const {
  RaftStatus s = raft_->status();
  MonoTime now = mono_now();
  json nodes = json::array();
  const FailureDetector& d = heartbeats_->detector();
  for (const auto& n : config_->nodes) {
    auto id = static_cast<std::uint8_t>(n.id);
    json node = {{"name", n.name},
                 {"id", n.id},
                 {"votes", quorum_votes(*config_, n)},
                 {"state", to_string(node_state(n))},
                 {"self", id == raft_->id()}};
    if (const PeerView* v = d.view(id)) {
      node["term"] = v->term;
      node["coordinator"] = v->coordinator ? name_of(v->coordinator) : "";
      node["last_heard_ms"] = now.ms_since(v->at);
    }
    nodes.push_back(node);
  }
  json networks = json::array();
  for (const auto& net : heartbeats_->networks()) {
    const HeartbeatCounters& c = heartbeats_->counters(net.index);
    json drops = json::object();
    for (int i = 0; i < kHeartbeatDropCount; ++i)
      drops[to_string(static_cast<HeartbeatDrop>(i))] = c.dropped[i];
    networks.push_back({{"name", net.name},
                        {"sent", c.sent},
                        {"received", c.received},
                        {"accepted", c.accepted},
                        {"dropped", c.total_dropped()},
                        {"drops", drops}});
  }
  const PeerCounters& pc = transport_->counters();
  json peer_drops = json::object();
  std::uint64_t peer_dropped = 0;
  for (int i = 0; i < kPeerDropCount; ++i) {
    peer_drops[to_string(static_cast<PeerDrop>(i))] = pc.dropped[i];
    peer_dropped += pc.dropped[i];
  }
  auto c = guard_->confirmed(now);
  json out = {{"node", context_.node},
          {"term", s.term},
          {"role", to_string(s.role)},
          {"coordinator", s.leader ? name_of(static_cast<std::uint8_t>(*s.leader)) : ""},
          {"quorate", guard_->quorate(now)},
          {"fenced", fenced_},
          {"confirmed_ms_ago", c ? json(now.ms_since(*c)) : json(nullptr)},
          {"commit", raft_->commit_index()},
          {"applied", state_.applied},
          {"config_version", state_.config_version},
          {"maintenance", state_.maintenance},
          {"nodes", nodes},
          {"heartbeat", networks},
          {"transport",
           {{"sent", pc.sent},
            {"accepted", pc.accepted},
            {"dropped", peer_dropped},
            {"drops", peer_drops}}}};
  if (qdisk_) out["quorum_disk"] = describe_disk(now);
  return out;
}

json ClusterService::timelines() const {
  json out = json::array();
  for (const auto& t : state_.timelines) {
    json phases = json::array();
    auto sorted = t.phases;
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.at_wall_usec < b.at_wall_usec; });
    for (const auto& p : sorted)
      phases.push_back({{"phase", p.phase},
                        {"node", p.node},
                        {"time", format_iso8601_ms(p.at_wall_usec)},
                        {"at_usec", p.at_wall_usec}});
    out.push_back({{"id", t.id}, {"group", t.group}, {"cause", t.cause}, {"phases", phases}});
  }
  return out;
}

void ClusterService::record_node(const std::string& node, const std::string& from,
                                 const std::string& to) {
  // The reason starts with the node it is about ("node3: ..."): the event's own node field
  // names the node that recorded it.
  std::string why = to == "joining"    ? "heard, catching up with the cluster"
                    : to == "down"     ? "not heard any more"
                    : from == "joining" ? "caught up with the cluster"
                                       : fmt::format("now {}", to);
  std::string reason = fmt::format("{}: {}", node, why);
  log(LogLevel::Notice, {{"EVENT", "node"}, {"NODE", node}, {"FROM", from}, {"TO", to}},
      "node {}: {} -> {} ({})", node, from, to, why);
  if (context_.history == nullptr) return;
  Event event;
  event.kind = "node";
  event.node = context_.node;
  event.from = from;
  event.to = to;
  event.reason = reason;
  context_.history->add(std::move(event));
}

void ClusterService::record(const std::string& kind, const std::string& group,
                            const std::string& reason) {
  log(LogLevel::Notice, {{"EVENT", kind}}, "{}", reason);
  if (context_.history == nullptr) return;
  Event event;
  event.kind = kind;
  event.node = context_.node;
  event.group = group;
  event.reason = reason;
  context_.history->add(std::move(event));
}

// ---- The quorum disk voter ---------------------------------------------------------------------

namespace {

/// How long the daemon waits at start for the disk's checkpoint (the arbiter's first record).
constexpr Duration kCheckpointWait{3000};

}  // namespace

Result<void> ClusterService::start_disk(std::uint8_t self) {
  const QuorumConfig& q = config_->quorum;
  if (!uses_disk(q.mode) || !q.disk) return {};
  QdiskHelperOptions o;
  o.portals = q.disk->portals;
  o.target = q.disk->target;
  o.lun = q.disk->lun;
  o.initiator = q.disk->initiator.empty() ? default_initiator(config_->cluster.name, context_.node)
                                          : q.disk->initiator;
  o.arbiter.cluster_id = config_->cluster.id;
  o.arbiter.node_id = self;
  o.arbiter.timing = disk_timing(*config_);
  o.arbiter.backoff = cluster_election_timeout_min(*config_);
  // A blank LUN gets a slot for every node id of the configuration (docs/quorum-disk.md).
  for (const auto& n : config_->nodes)
    o.arbiter.slot_count = std::max<std::uint16_t>(o.arbiter.slot_count, static_cast<std::uint16_t>(n.id));
  auto link = QdiskLink::start(
      context_.loop, qdisk_helper_argv(default_qdisk_helper(), o), kCheckpointWait,
      [this](const QdiskFrame& f) { on_disk_frame(f); },
      [this](const std::string& why) {
        disk_held_ = false;  // silent now: its last confirmation ages in the quorum guard
        disk_facts_.reset();  // the next arbiter hears them again
        record("quorum", "", fmt::format("quorum disk arbiter stopped: {}", why));
      });
  if (!link) return std::unexpected(link.error());
  qdisk_ = std::move(*link);
  applied_term_ = storage_->state().snapshot.term;
  const auto& first = qdisk_->initial_record();
  if (!first || !first->state) return {};
  return merge_disk_checkpoint(*first->state);
}

Result<void> ClusterService::merge_disk_checkpoint(const DiskVoterState& disk) {
  // docs/quorum-disk.md, "Starting and rejoining": the disk's committed state is installed when
  // it is newer, so an old configuration can never come back, also on a node started alone.
  const PersistentState& old = storage_->state();
  PersistentState merged = merge_checkpoint(old, disk);
  RaftReady r;
  if (merged.snapshot != old.snapshot) {
    r.snapshot = merged.snapshot;
    r.entries = merged.entries;
  } else if (merged.entries.size() > old.entries.size()) {
    r.entries.assign(merged.entries.begin() + static_cast<std::ptrdiff_t>(old.entries.size()),
                     merged.entries.end());
  }
  if (merged.hard != old.hard) r.hard_state = merged.hard;
  if (!r.snapshot && r.entries.empty() && !r.hard_state) return {};
  bool newer = r.snapshot.has_value();
  if (auto ok = storage_->persist(r); !ok) return ok;
  applied_term_ = storage_->state().snapshot.term;
  record("quorum", "",
         fmt::format("read the quorum disk's checkpoint: term {}, configuration version {}{}",
                     disk.term, disk.config_version,
                     newer ? ", newer than this node's state: installed" : ""));
  return {};
}

void ClusterService::catch_up_from_disk(const DiskVoterState& disk) {
  // The disk may hold entries committed with its ack alone (a leader and the disk, while we
  // were cut off). Without a leader nobody sends them to us, and the disk refuses to vote for a
  // log behind its own: take them from the disk as a starting node does, then build the
  // RaftNode again from the merged state (a restart, as far as the core can tell).
  if (raft_->status().leader || disk.commit <= raft_->commit_index()) return;
  if (auto ok = merge_disk_checkpoint(disk); !ok) {
    log(LogLevel::Err, {}, "could not take the quorum disk's newer state: {}", ok.error().to_string());
    return;
  }
  const PersistentState& merged = storage_->state();
  if (merged.hard.commit <= raft_->commit_index()) return;
  VoterMap voters;
  std::map<std::uint8_t, std::uint32_t> votes;
  for (const auto& n : config_->nodes) voters[n.id] = quorum_votes(*config_, n);
  add_disk_voter(voters, votes);
  MonoTime now = mono_now();
  raft_ = std::make_unique<RaftNode>(raft_->id(), voters, raft_timing(*config_), merged, now,
                                     now.usec ^ raft_->id());
  if (auto restored = decode_state(span_of(merged.snapshot.data)); restored) {
    std::uint64_t version = state_.config_version;
    state_ = std::move(*restored);
    if (state_.config_version != version) take_committed_config();
  }
  applied_term_ = merged.snapshot.term;
  process_ready();
  poke();
}

void ClusterService::add_disk_voter(VoterMap& voters,
                                    std::map<std::uint8_t, std::uint32_t>& votes) const {
  if (!qdisk_) return;
  voters[kDiskVoterId] = config_->quorum.disk->votes;
  votes[kGuardDiskId] = config_->quorum.disk->votes;
}

void ClusterService::send_to_disk(const Message& message) {
  if (qdisk_) (void)qdisk_->send(raft_frame(message));
}

void ClusterService::on_disk_frame(const QdiskFrame& frame) {
  switch (frame.kind) {
    case QdiskKind::Raft:
      if (!raft_) return;
      raft_->tick(mono_now());
      raft_->step(frame.message);
      process_ready();
      return;
    case QdiskKind::Held:
      disk_held_ = true;
      disk_taken_ = frame.reason;
      record("quorum", "", fmt::format("this node holds the quorum disk: {}", frame.reason));
      return;
    case QdiskKind::Confirmed:
      disk_held_ = true;
      disk_confirmed_ = frame.at;
      if (guard_) guard_->confirm(kGuardDiskId, frame.at);
      return;
    case QdiskKind::Lost:
      return on_disk_lost(frame.reason);
    case QdiskKind::Record:
      check_disk_slot(frame.record);
      disk_record_ = frame.record;
      if (raft_ && frame.record.state) catch_up_from_disk(*frame.record.state);
      return;
    default:
      return;
  }
}

void ClusterService::on_disk_lost(const std::string& reason) {
  disk_held_ = false;
  disk_confirmed_.reset();
  if (!guard_) return;
  guard_->forget(kGuardDiskId);
  record("quorum", "", fmt::format("quorum disk lost: {}", reason));
  // Our quorum needed the disk: stop at once, not at the guard's deadline (docs/quorum-disk.md).
  MonoTime now = mono_now();
  if (!guard_->quorate(now) && !fenced_) self_fence(now, fmt::format("quorum disk lost: {}", reason));
  poke();
}

void ClusterService::on_disk_ready(const RaftReady& ready) {
  if (!qdisk_) return;
  if (ready.snapshot) applied_term_ = ready.snapshot->term;
  if (!ready.committed.empty()) applied_term_ = ready.committed.back().term;
  // The committed state as of the applied index is the disk's next checkpoint (only the holder
  // writes it; the arbiter ignores it otherwise).
  if (state_.applied > disk_checkpoint_ && disk_held_) {
    disk_checkpoint_ = state_.applied;
    (void)qdisk_->send(checkpoint_frame({state_.applied, applied_term_, encode_state(state_)},
                                        state_.config_version));
  }
  send_disk_facts();
}

void ClusterService::send_disk_facts() {
  if (!qdisk_ || !raft_) return;
  NodeSet reachable = heartbeats_->detector().reachable();
  std::uint64_t votes = config_->quorum.disk->votes, total = votes;
  for (const auto& n : config_->nodes) {
    total += quorum_votes(*config_, n);
    if (n.id == raft_->id() || reachable[n.id]) votes += quorum_votes(*config_, n);
  }
  // Disk-only: nobody else votes, so the holder is always legitimate (MSCS 1.0) and defends.
  QdiskFacts facts{raft_->status().leader.value_or(0), 2 * votes > total};
  if (disk_facts_ == facts && qdisk_->running()) return;
  if (qdisk_->send(facts_frame(facts))) disk_facts_ = facts;
}

void ClusterService::check_disk_slot(const QdiskRecord& record) {
  // A LUN formatted for fewer nodes than the configuration has: say so once, clearly; the node
  // still reads the checkpoint and follows, but its arbiter never challenges for the disk.
  std::uint8_t self = id_of(context_.node);
  bool missing = record.formatted && self > record.slots;
  if (missing && !(disk_record_.formatted && self > disk_record_.slots))
    this->record("quorum", "",
                 fmt::format("node id {} has no slot on the quorum disk (formatted for nodes 1 "
                             "to {}): this node can never hold it; format the LUN again with "
                             "every node stopped, or give this node an id up to {}",
                             self, record.slots, record.slots));
}

void ClusterService::release_disk() {
  if (!qdisk_) return;
  // docs/quorum-disk.md, "Clean shutdown". Blocking, bounded: the loop is about to end, and a
  // release takes a write, a check, RELEASE and an unregister, each within T.
  Duration limit = disk_timing(*config_).command_timeout * 10 + Duration(500);
  auto what = qdisk_->release(limit);
  disk_held_ = false;
  record("quorum", "",
         what ? fmt::format("clean shutdown: {}", *what)
              : fmt::format("clean shutdown: the quorum disk may not be released: {}",
                            what.error().to_string()));
}

std::pair<std::uint64_t, std::uint64_t> ClusterService::disk_votes(MonoTime now) const {
  if (!qdisk_) return {0, 0};
  std::uint64_t votes = config_->quorum.disk->votes;
  bool ours = disk_held_ && disk_confirmed_ && now < *disk_confirmed_ + guard_->timing().stop_after();
  return {ours ? votes : 0, votes};
}

nlohmann::json ClusterService::describe_disk(MonoTime now) const {
  json disk = {{"votes", config_->quorum.disk->votes},
               {"arbiter_running", qdisk_->running()},
               {"held_here", disk_held_},
               {"taken", disk_held_ ? json(disk_taken_) : json(nullptr)},
               {"holder", disk_record_.holder ? json(name_of(static_cast<std::uint8_t>(disk_record_.holder)))
                                              : json(nullptr)},
               {"formatted", disk_record_.formatted},
               {"slots", disk_record_.slots},
               {"confirmed_ms_ago", disk_confirmed_ ? json(now.ms_since(*disk_confirmed_)) : json(nullptr)}};
  if (const auto& s = disk_record_.state) {
    disk["term"] = s->term;
    disk["vote"] = s->vote ? json(name_of(static_cast<std::uint8_t>(*s->vote))) : json(nullptr);
    disk["commit"] = s->commit;
    disk["config_version"] = s->config_version;
    disk["checkpoint_index"] = s->checkpoint.index;
  }
  return disk;
}

QuorumTiming cluster_quorum_timing(const Config& config) { return quorum_timing(config); }

Duration cluster_election_timeout_min(const Config& config) {
  return raft_timing(config).election_timeout_min;
}

}  // namespace clusterd
