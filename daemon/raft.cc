#include "raft.h"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

namespace clusterd {

namespace {

constexpr std::array<const char*, kRaftRoleCount> kRaftRoleNames = {"follower", "pre-candidate",
                                                                    "candidate", "leader"};

MonoTime later(MonoTime a, MonoTime b) { return a < b ? b : a; }

}  // namespace

const char* to_string(RaftRole role) {
  auto i = static_cast<std::size_t>(role);
  return i < kRaftRoleNames.size() ? kRaftRoleNames[i] : "?";
}

Result<void> validate_raft_settings(NodeId self, const VoterMap& voters, const RaftTiming& t) {
  if (!voters.contains(self)) return fail("node {} is not among the voters", self);
  std::uint64_t total = 0;
  for (const auto& [id, votes] : voters) total += votes;
  if (total == 0) return fail("the voters hold no votes, so no quorum can ever form");
  if (t.election_timeout_min.count() <= 0 || t.election_timeout_max < t.election_timeout_min)
    return fail("election timeout range {}..{} ms is not a positive, ordered range",
                t.election_timeout_min.count(), t.election_timeout_max.count());
  if (t.heartbeat_interval.count() <= 0 || t.heartbeat_interval >= t.election_timeout_min)
    return fail("heartbeat interval {} ms must be positive and below the election timeout {} ms",
                t.heartbeat_interval.count(), t.election_timeout_min.count());
  if (t.lease_margin.count() < 0 || t.lease_margin >= t.election_timeout_min - t.heartbeat_interval)
    return fail("lease margin {} ms leaves no lease within the election timeout {} ms",
                t.lease_margin.count(), t.election_timeout_min.count());
  if (t.max_entries_per_append == 0)
    return fail("at most 0 entries per append would never replicate");
  return {};
}

bool RaftReady::empty() const {
  return !snapshot && entries.empty() && !hard_state && messages.empty() && committed.empty() &&
         !status;
}

std::uint64_t SplitMix64::next() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

RaftNode::RaftNode(NodeId self, VoterMap voters, RaftTiming timing, PersistentState persisted,
                   MonoTime now, std::uint64_t seed)
    : self_(self), voters_(std::move(voters)), timing_(timing), rng_(seed) {
  for (const auto& [id, votes] : voters_) total_votes_ += votes;
  term_ = persisted.hard.term;
  vote_ = persisted.hard.vote;
  snapshot_ = std::move(persisted.snapshot);
  log_ = std::move(persisted.entries);
  commit_ = std::clamp(persisted.hard.commit, snapshot_.index, last_index());
  applied_ = snapshot_.index;
  persisted_hard_ = persisted.hard;
  now_ = now;
  leader_contact_ = now;
  reset_election_timer();
}

// ---- Log access -------------------------------------------------------------------------------

Index RaftNode::last_index() const { return snapshot_.index + log_.size(); }

Term RaftNode::last_term() const { return log_.empty() ? snapshot_.term : log_.back().term; }

std::optional<Term> RaftNode::term_at(Index index) const {
  if (index == snapshot_.index) return snapshot_.term;
  if (index < snapshot_.index || index > last_index()) return std::nullopt;
  return log_[index - first_index()].term;
}

// Raft 5.4.1: grant only to a candidate whose log ends in a later term, or as long in the same.
bool RaftNode::log_up_to_date(Index index, Term term) const {
  return term > last_term() || (term == last_term() && index >= last_index());
}

// Appends entries that start at or before last_index() + 1, replacing what they overlap; the
// pending Ready gets the same change so storage mirrors memory.
void RaftNode::append_local(std::vector<Entry> entries) {
  if (entries.empty()) return;
  Index first = entries.front().index;
  log_.resize(first - first_index());
  std::erase_if(ready_entries_, [first](const Entry& e) { return e.index >= first; });
  ready_entries_.insert(ready_entries_.end(), entries.begin(), entries.end());
  log_.insert(log_.end(), std::make_move_iterator(entries.begin()),
              std::make_move_iterator(entries.end()));
}

// Raft 5.3: skip entries we already hold, truncate at the first conflict, append the rest.
void RaftNode::truncate_and_append(const std::vector<Entry>& entries) {
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto term = term_at(entries[i].index);
    if (term && *term == entries[i].term) continue;
    append_local(
        std::vector<Entry>(entries.begin() + static_cast<std::ptrdiff_t>(i), entries.end()));
    return;
  }
}

// ---- Roles ------------------------------------------------------------------------------------

void RaftNode::set_term(Term term) {
  term_ = term;
  vote_.reset();
}

void RaftNode::set_vote(std::optional<NodeId> vote) { vote_ = vote; }

void RaftNode::reset_election_timer() {
  auto span = static_cast<std::uint64_t>(
      (timing_.election_timeout_max - timing_.election_timeout_min).count());
  auto jitter = span > 0 ? rng_.below(span) : 0;
  election_deadline_ = now_ + timing_.election_timeout_min + Duration(jitter);
}

void RaftNode::become_follower(Term term, std::optional<NodeId> leader) {
  if (term != term_) set_term(term);
  role_ = RaftRole::Follower;
  leader_ = leader;
  votes_received_.clear();
  progress_.clear();
  reset_election_timer();
}

// Thesis 9.6: ask first whether we could win, without touching the term; a node cut off from
// the quorum thus never inflates terms and cannot disrupt the leader when it comes back.
void RaftNode::become_pre_candidate() {
  role_ = RaftRole::PreCandidate;
  leader_.reset();
  progress_.clear();
  votes_received_ = {{self_, true}};
  reset_election_timer();
  if (is_quorum(weight(self_))) return become_candidate();
  request_votes(MessageType::PreVote, term_ + 1);
}

void RaftNode::become_candidate() {
  set_term(term_ + 1);
  set_vote(self_);
  role_ = RaftRole::Candidate;
  leader_.reset();
  votes_received_ = {{self_, true}};
  reset_election_timer();
  if (is_quorum(weight(self_))) return become_leader();
  request_votes(MessageType::Vote, term_);
}

// Thesis 6.4: a new leader cannot know what is committed until it commits an entry of its own
// term, so it appends a no-op at once.
void RaftNode::become_leader() {
  role_ = RaftRole::Leader;
  leader_ = self_;
  votes_received_.clear();
  became_leader_at_ = now_;
  progress_.clear();
  for (const auto& [id, votes] : voters_) {
    if (id != self_) progress_[id] = Progress{0, last_index() + 1, true, std::nullopt};
  }
  append_local({Entry{term_, last_index() + 1, kEntryNoop, {}}});
  heartbeat_deadline_ = now_ + timing_.heartbeat_interval;
  broadcast_append();
  maybe_commit();
}

// ---- Inputs -----------------------------------------------------------------------------------

void RaftNode::tick(MonoTime now) {
  now_ = later(now_, now);
  if (role_ == RaftRole::Leader) {
    if (now_ >= check_quorum_deadline()) return become_follower(term_, std::nullopt);
    if (now_ >= heartbeat_deadline_) {
      heartbeat_deadline_ = now_ + timing_.heartbeat_interval;
      broadcast_append();
    }
    return;
  }
  if (now_ >= election_deadline_ && may_campaign()) campaign();
}

void RaftNode::campaign() {
  if (role_ == RaftRole::Leader || !may_campaign()) return;
  become_pre_candidate();
}

Result<Index> RaftNode::propose(std::uint16_t type, Bytes data) {
  if (type == kEntryNoop) return fail("entry type {} is reserved for the leader's no-op", type);
  if (role_ != RaftRole::Leader) {
    if (leader_) return fail("node {} is not the leader; node {} is", self_, *leader_);
    return fail("node {} is not the leader and knows of none (election in progress)", self_);
  }
  Index index = last_index() + 1;
  append_local({Entry{term_, index, type, std::move(data)}});
  for (auto& [id, pr] : progress_) {
    if (!pr.probing) send_append(id);
  }
  maybe_commit();
  return index;
}

Result<Snapshot> RaftNode::compact(Index index, Bytes data) {
  if (index <= snapshot_.index)
    return fail("cannot compact to entry {}: the log is already compacted to {}", index,
                snapshot_.index);
  if (index > applied_)
    return fail("cannot compact to entry {}: only {} entries are applied", index, applied_);
  Term term = *term_at(index);
  log_.erase(log_.begin(), log_.begin() + static_cast<std::ptrdiff_t>(index - snapshot_.index));
  snapshot_ = Snapshot{index, term, std::move(data)};
  return snapshot_;
}

void RaftNode::step(const Message& m) {
  if (m.to != self_ || m.from == self_ || !voters_.contains(m.from)) return;
  if (!step_term(m)) return;
  switch (m.type) {
    case MessageType::PreVote:
    case MessageType::Vote:
      return step_vote_request(m);
    case MessageType::PreVoteResponse:
    case MessageType::VoteResponse:
      return step_vote_response(m);
    case MessageType::Append:
      return step_append(m);
    case MessageType::InstallSnapshot:
      return step_snapshot(m);
    case MessageType::AppendResponse:
      return step_append_response(m);
  }
}

// Term rules common to every message. Returns false when the message needs no further handling.
bool RaftNode::step_term(const Message& m) {
  bool vote_request = m.type == MessageType::PreVote || m.type == MessageType::Vote;
  if (m.term > term_) {
    // Check-quorum's other half: while we hear from a leader, nobody can take over, so a
    // rejoining node cannot depose it (thesis 4.2.3). The request is dropped unanswered.
    if (vote_request && in_lease()) return false;
    // A pre-vote, and a granted pre-vote answer, speak of a term nobody is in yet.
    if (m.type == MessageType::PreVote) return true;
    if (m.type == MessageType::PreVoteResponse && !m.reject) return true;
    bool from_leader = m.type == MessageType::Append || m.type == MessageType::InstallSnapshot;
    become_follower(m.term, from_leader ? std::optional<NodeId>(m.from) : std::nullopt);
    return true;
  }
  if (m.term < term_) {
    // Tell a stale leader or pre-candidate about the newer term, so it steps down or gives up.
    if (m.type == MessageType::Append || m.type == MessageType::InstallSnapshot) {
      send(MessageType::AppendResponse, m.from).reject = true;
    } else if (m.type == MessageType::PreVote) {
      send(MessageType::PreVoteResponse, m.from).reject = true;
    }
    return false;
  }
  return true;
}

void RaftNode::step_vote_request(const Message& m) {
  bool pre = m.type == MessageType::PreVote;
  bool can_vote = vote_ == m.from || (!vote_ && !leader_) || (pre && m.term > term_);
  bool grant = can_vote && log_up_to_date(m.log_index, m.log_term);
  if (grant && !pre) {
    set_vote(m.from);  // persisted by the Ready before the answer below is sent
    reset_election_timer();
  }
  Message& reply = send(pre ? MessageType::PreVoteResponse : MessageType::VoteResponse, m.from);
  reply.reject = !grant;
  if (pre && grant) reply.term = m.term;  // a granted pre-vote answers in the requested term
}

void RaftNode::step_vote_response(const Message& m) {
  bool counts = (role_ == RaftRole::PreCandidate && m.type == MessageType::PreVoteResponse &&
                 (m.reject || m.term == term_ + 1)) ||
                (role_ == RaftRole::Candidate && m.type == MessageType::VoteResponse);
  if (!counts) return;
  votes_received_.emplace(m.from, !m.reject);  // the first answer of a voter counts
  std::uint64_t granted = 0;
  std::uint64_t rejected = 0;
  for (const auto& [id, yes] : votes_received_) (yes ? granted : rejected) += weight(id);
  if (is_quorum(granted)) {
    if (role_ == RaftRole::PreCandidate) return become_candidate();
    return become_leader();
  }
  if (!is_quorum(total_votes_ - rejected)) become_follower(term_, std::nullopt);
}

// A message from the leader of our term: it exists, so stop campaigning and restart the timer.
void RaftNode::heard_from_leader(NodeId leader) {
  if (role_ != RaftRole::Follower) become_follower(term_, leader);
  leader_ = leader;
  leader_contact_ = now_;
  reset_election_timer();
}

void RaftNode::step_append(const Message& m) {
  if (role_ == RaftRole::Leader) return;  // two leaders in one term cannot happen
  heard_from_leader(m.from);
  if (m.log_index >= commit_) {
    auto term = term_at(m.log_index);
    if (!term || *term != m.log_term) return reply_append(m, true, last_index());
  }
  // Entries up to our commit index are here already and final (perhaps compacted away): skip.
  std::vector<Entry> fresh;
  for (const Entry& e : m.entries) {
    if (e.index > commit_) fresh.push_back(e);
  }
  truncate_and_append(fresh);
  Index last_new = std::max(commit_, m.log_index + m.entries.size());
  commit_to(std::min(m.commit, last_new));
  reply_append(m, false, last_new);
}

// Raft 7: keep our log if it already holds the snapshot's last entry, else replace it all.
void RaftNode::step_snapshot(const Message& m) {
  if (role_ == RaftRole::Leader || !m.snapshot) return;
  heard_from_leader(m.from);
  const Snapshot& s = *m.snapshot;
  if (s.index <= commit_) return reply_append(m, false, commit_);
  if (term_at(s.index) == s.term) {
    commit_to(s.index);
    return reply_append(m, false, s.index);
  }
  snapshot_ = s;
  log_.clear();
  commit_ = applied_ = s.index;
  ready_snapshot_ = s;
  ready_entries_.clear();
  reply_append(m, false, s.index);
}

void RaftNode::reply_append(const Message& request, bool reject, Index hint) {
  Message& reply = send(MessageType::AppendResponse, request.from);
  reply.log_index = request.log_index;
  reply.reject = reject;
  reply.hint = hint;
  reply.lease_stamp = request.lease_stamp;
}

void RaftNode::step_append_response(const Message& m) {
  if (role_ != RaftRole::Leader) return;
  auto it = progress_.find(m.from);
  if (it == progress_.end()) return;
  Progress& pr = it->second;
  // Any answer in our term proves the follower accepted us when it got the stamped message.
  pr.acked_stamp = std::max(pr.acked_stamp.value_or(0), m.lease_stamp);
  if (m.reject) {
    bool stale = pr.probing ? m.log_index != pr.next - 1 : m.log_index <= pr.match;
    if (stale) return;
    pr.next = std::max(pr.match + 1, std::min(m.log_index, m.hint + 1));
    pr.probing = true;
    return send_append(m.from);
  }
  if (m.hint <= pr.match) return;  // old news
  pr.match = m.hint;
  pr.probing = false;
  pr.next = std::max(pr.next, pr.match + 1);
  if (pr.next <= last_index() && pr.match + 1 == pr.next) send_append(m.from);  // none in flight
  maybe_commit();
}

// ---- Leader -----------------------------------------------------------------------------------

void RaftNode::broadcast_append() {
  for (const auto& [id, pr] : progress_) send_append(id);
}

// Sends the follower what it lacks from `next` on, or the snapshot when that is compacted away.
// In probing mode the same range is re-sent (each heartbeat doubles as a retransmission); once
// replicating, `next` moves on optimistically and a reject brings it back.
void RaftNode::send_append(NodeId to) {
  Progress& pr = progress_.at(to);
  if (pr.next < first_index()) {
    pr.next = snapshot_.index + 1;
    pr.probing = true;
    Message& m = send(MessageType::InstallSnapshot, to);
    m.lease_stamp = now_.usec;
    m.snapshot = snapshot_;
    return;
  }
  Index prev = pr.next - 1;
  Index end = std::min(last_index(), prev + timing_.max_entries_per_append);
  Message& m = send(MessageType::Append, to);
  m.log_index = prev;
  m.log_term = *term_at(prev);
  m.commit = commit_;
  m.lease_stamp = now_.usec;
  for (Index i = pr.next; i <= end; ++i) m.entries.push_back(log_[i - first_index()]);
  if (!pr.probing) pr.next = end + 1;
}

// Raft 5.4.2: the highest index a quorum (by votes) holds is committed, but only if it is from
// the current term; earlier entries become committed with it.
void RaftNode::maybe_commit() {
  std::vector<std::pair<Index, std::uint64_t>> matches{{last_index(), weight(self_)}};
  for (const auto& [id, pr] : progress_) matches.emplace_back(pr.match, weight(id));
  std::sort(matches.begin(), matches.end(), std::greater<>());
  std::uint64_t votes = 0;
  for (const auto& [index, w] : matches) {
    votes += w;
    if (!is_quorum(votes)) continue;
    if (index > commit_ && term_at(index) == term_) {
      commit_to(index);
      for (const auto& [id, pr] : progress_) {
        if (!pr.probing) send_append(id);  // tell followers now, not at the next heartbeat
      }
    }
    return;
  }
}

void RaftNode::commit_to(Index index) { commit_ = std::max(commit_, index); }

// The send time of the newest message a quorum (by votes, counting ourselves now) answered.
std::optional<std::uint64_t> RaftNode::lease_start() const {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> stamps{{now_.usec, weight(self_)}};
  for (const auto& [id, pr] : progress_) {
    if (pr.acked_stamp) stamps.emplace_back(*pr.acked_stamp, weight(id));
  }
  std::sort(stamps.begin(), stamps.end(), std::greater<>());
  std::uint64_t votes = 0;
  for (const auto& [stamp, w] : stamps) {
    votes += w;
    if (is_quorum(votes)) return stamp;
  }
  return std::nullopt;
}

Duration RaftNode::lease_length() const {
  return timing_.election_timeout_min - timing_.lease_margin;
}

// Check-quorum (thesis 6.2): a leader that a quorum has not answered for a lease length steps
// down; a new leader gets one lease length from its election to gather answers.
MonoTime RaftNode::check_quorum_deadline() const {
  auto start = lease_start();
  MonoTime from = later(became_leader_at_, MonoTime{start.value_or(0)});
  return from + lease_length();
}

std::optional<MonoTime> RaftNode::lease_expiry() const {
  if (role_ != RaftRole::Leader) return std::nullopt;
  auto start = lease_start();
  if (!start) return std::nullopt;
  return MonoTime{*start} + lease_length();
}

// True while we must not help anyone else become leader: we are the leader, or a leader spoke
// to us less than a minimum election timeout ago (or we restarted that recently).
bool RaftNode::in_lease() const {
  return role_ == RaftRole::Leader || now_ < leader_contact_ + timing_.election_timeout_min;
}

// ---- Elections --------------------------------------------------------------------------------

void RaftNode::request_votes(MessageType type, Term term) {
  for (const auto& [id, votes] : voters_) {
    if (id == self_ || votes == 0) continue;
    Message& m = send(type, id);
    m.term = term;
    m.log_index = last_index();
    m.log_term = last_term();
  }
}

std::uint64_t RaftNode::weight(NodeId id) const {
  auto it = voters_.find(id);
  return it == voters_.end() ? 0 : it->second;
}

// ---- Output -----------------------------------------------------------------------------------

Message& RaftNode::send(MessageType type, NodeId to) {
  Message& m = ready_messages_.emplace_back();
  m.type = type;
  m.from = self_;
  m.to = to;
  m.term = term_;
  return m;
}

MonoTime RaftNode::next_deadline() const {
  if (role_ == RaftRole::Leader) return std::min(heartbeat_deadline_, check_quorum_deadline());
  if (!may_campaign()) return MonoTime{std::numeric_limits<Usec>::max()};
  return election_deadline_;
}

bool RaftNode::has_ready() const {
  return ready_snapshot_ || !ready_entries_.empty() || !ready_messages_.empty() ||
         applied_ < commit_ || HardState{term_, vote_, commit_} != persisted_hard_ ||
         status() != reported_status_;
}

RaftReady RaftNode::ready() {
  RaftReady r;
  r.snapshot = std::exchange(ready_snapshot_, std::nullopt);
  r.entries = std::exchange(ready_entries_, {});
  HardState hard{term_, vote_, commit_};
  if (hard != persisted_hard_) r.hard_state = persisted_hard_ = hard;
  r.messages = std::exchange(ready_messages_, {});
  for (Index i = applied_ + 1; i <= commit_; ++i) r.committed.push_back(log_[i - first_index()]);
  applied_ = commit_;
  if (status() != reported_status_) r.status = reported_status_ = status();
  return r;
}

}  // namespace clusterd
