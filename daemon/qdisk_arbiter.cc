#include "qdisk_arbiter.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "block_io.h"
#include "byte_order.h"
#include "cluster_state.h"
#include "iscsi_session.h"
#include "log.h"

namespace clusterd {
namespace {

// The quorum LUN is held Write Exclusive: reads open to all (the checkpoint at start, pre-votes),
// writes only from the holder's nexus (docs/quorum-disk.md, "Who writes the disk").
constexpr PrType kType = PrType::WriteExclusive;

bool blank(std::span<const std::uint8_t> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

std::span<std::byte> as_bytes(Bytes& b) { return {reinterpret_cast<std::byte*>(b.data()), b.size()}; }

std::uint64_t round_up(std::uint64_t n, std::uint64_t to) { return (n + to - 1) / to * to; }

class IscsiQuorumLun final : public QuorumLun {
 public:
  explicit IscsiQuorumLun(std::unique_ptr<IscsiSession> session) : session_(std::move(session)) {}
  BlockDevice& blocks() override { return *session_; }
  Result<void> write_durable(std::uint64_t lba, std::uint32_t count,
                             std::span<const std::byte> data) override {
    return session_->write_through(lba, count, data);
  }
  PersistentReservations& reservations() override { return *session_; }
  Result<void> reconnect() override { return session_->reconnect(); }

 private:
  std::unique_ptr<IscsiSession> session_;
};

}  // namespace

Result<std::unique_ptr<QuorumLun>> open_iscsi_quorum_lun(const IscsiTarget& target) {
  auto session = IscsiSession::connect(target);
  if (!session) return std::unexpected(session.error());
  return std::unique_ptr<QuorumLun>(new IscsiQuorumLun(std::move(*session)));
}

QdiskArbiter::QdiskArbiter(QuorumLun& lun, ArbiterOptions options)
    : lun_(lun),
      options_(options),
      key_(reservation_key(options.cluster_id, options.node_id)) {}

std::vector<QdiskFrame> QdiskArbiter::take_output() { return std::exchange(output_, {}); }

// ---- The reserved area ------------------------------------------------------------------------

Result<std::optional<DiskLayout>> QdiskArbiter::read_header() {
  Bytes block(kDiskBlockSize);
  auto n = read_bytes(lun_.blocks(), 0, as_bytes(block));
  if (!n) return std::unexpected(n.error());
  if (*n < block.size()) return fail("The quorum LUN is smaller than one {}-byte block.", kDiskBlockSize);
  if (blank(block)) return std::optional<DiskLayout>();
  auto layout = decode_header(block);
  if (!layout) return std::unexpected(layout.error());
  if (layout->cluster_id != options_.cluster_id)
    return fail("The quorum LUN belongs to cluster {}, not {}.", layout->cluster_id,
                options_.cluster_id);
  return std::optional<DiskLayout>(*layout);
}

Result<std::vector<DecodedSlot>> QdiskArbiter::read_slots(const DiskLayout& layout) {
  // Most slots are blank: read the first block of each, and the rest only where a record is
  // longer than that.
  std::vector<DecodedSlot> slots;
  for (NodeId node = 1; node <= layout.slot_count; ++node) {
    for (int which = 0; which < 2; ++which) {
      std::uint64_t at = layout.slot_offset(node, which);
      Bytes bytes(kDiskBlockSize);
      auto n = read_bytes(lun_.blocks(), at, as_bytes(bytes));
      if (!n) return std::unexpected(n.error());
      if (blank(std::span(bytes).first(kRecordHeaderSize))) continue;
      std::uint64_t length = kRecordHeaderSize + get_be(bytes.data() + 28, 4);
      if (length > kDiskBlockSize && length <= layout.slot_size) {
        bytes.resize(round_up(length, kDiskBlockSize));
        auto more = read_bytes(lun_.blocks(), at, as_bytes(bytes));
        if (!more) return std::unexpected(more.error());
      }
      slots.push_back(decode_record(bytes, layout.cluster_id, node));
    }
  }
  return slots;
}

Result<void> QdiskArbiter::read_area() {
  auto layout = read_header();
  if (!layout) return std::unexpected(layout.error());
  layout_ = *layout;
  record_.formatted = layout_.has_value();
  record_.slots = layout_ ? layout_->slot_count : 0;
  record_.state.reset();
  rightful_ = false;
  released_ = false;
  if (!layout_) return {};
  auto slots = read_slots(*layout_);
  if (!slots) return std::unexpected(slots.error());
  auto current = current_record(*slots);
  if (!current) return std::unexpected(current.error());
  if (*current) {
    record_.state = (*current)->state;
    rightful_ = (*current)->writer == options_.node_id;
    released_ = (*current)->released;
    current_writer_ = (*current)->writer;
  }
  return {};
}

Result<void> QdiskArbiter::format() {
  // Slots for every node id the configuration has (the daemon passes its highest), never fewer
  // than our own: a node without a slot could never hold the disk.
  auto slots = static_cast<std::uint16_t>(std::max<std::uint32_t>(options_.slot_count, options_.node_id));
  DiskLayout layout{options_.cluster_id, slots, options_.slot_size};
  if (auto ok = validate_layout(layout); !ok) return ok;
  std::uint64_t have = device_bytes(lun_.blocks());
  if (have < layout.size())
    return fail("The quorum LUN has {} bytes, less than the {} its area needs.", have, layout.size());
  Bytes header = encode_header(layout);
  std::uint32_t bs = lun_.blocks().block_size();
  auto ok = lun_.write_durable(0, kDiskBlockSize / bs, as_bytes(header));
  if (!ok) return ok;
  log(LogLevel::Notice, {}, "formatted the blank quorum LUN: {} slots of {} bytes",
      layout.slot_count, layout.slot_size);
  layout_ = layout;
  record_.formatted = true;
  record_.slots = layout.slot_count;
  return {};
}

Result<void> QdiskArbiter::write_state(const DiskVoterState& state, bool released) {
  DiskRecord record = next_record(options_.cluster_id, options_.node_id, epoch_, generation_,
                                  last_written_, state);
  record.released = released;
  auto bytes = encode_record(record, layout_->slot_size);
  if (!bytes) return std::unexpected(bytes.error());
  // Only the blocks the record covers: the checksum ends with its payload.
  std::uint64_t length = kRecordHeaderSize + get_be(bytes->data() + 28, 4);
  bytes->resize(round_up(length, kDiskBlockSize));
  std::uint32_t bs = lun_.blocks().block_size();
  // Alternate slots, so the previous record survives a torn write (docs/quorum-disk.md).
  std::uint64_t at = layout_->slot_offset(options_.node_id, static_cast<int>(record.sequence % 2));
  auto ok = lun_.write_durable(at / bs, static_cast<std::uint32_t>(bytes->size() / bs),
                               as_bytes(*bytes));
  if (!ok) return ok;
  last_written_ = std::move(record);
  record_.state = state;
  rightful_ = true;
  released_ = released;
  current_writer_ = options_.node_id;
  return {};
}

// ---- The reservation --------------------------------------------------------------------------

std::string QdiskArbiter::who(std::uint64_t key) const {
  return describe_key(key, options_.cluster_id);
}

std::optional<std::uint64_t> QdiskArbiter::leader_key() const {
  if (facts_.leader == 0 || facts_.leader == options_.node_id) return std::nullopt;
  return reservation_key(options_.cluster_id, facts_.leader);
}

bool QdiskArbiter::wants_disk() const {
  return pending_vote_ || pending_append_ || facts_.leader == options_.node_id;
}

Result<QdiskArbiter::Check> QdiskArbiter::check() {
  Check c;
  c.sent = mono_now();
  auto keys = lun_.reservations().pr_read_keys();
  if (!keys) return std::unexpected(keys.error());
  auto reservation = lun_.reservations().pr_read_reservation();
  if (!reservation) return std::unexpected(reservation.error());
  c.keys = std::move(*keys);
  c.reservation = *reservation;
  NodeId holder = 0;
  if (c.reservation.holder)
    if (auto owner = key_owner(c.reservation.holder->key);
        owner && owner->cluster_id == options_.cluster_id)
      holder = owner->node_id;
  record_.holder = holder;
  return c;
}

Result<void> QdiskArbiter::register_key() {
  return lun_.reservations().pr_out(PrOutAction::RegisterAndIgnoreExistingKey, kType, 0, key_);
}

Result<void> QdiskArbiter::restore() {
  // Vacant while we hold: the target lost its state (tgt restart, no APTPL); our record is the
  // newest, so we reserve again at once (docs/quorum-disk.md, "tgtd restart").
  if (auto ok = register_key(); !ok) return ok;
  auto ok = lun_.reservations().pr_out(PrOutAction::Reserve, kType, key_, 0);
  if (ok) log(LogLevel::Notice, {}, "the quorum LUN's reservation was gone; restored it");
  return ok;
}

void QdiskArbiter::lose(std::string reason) {
  pending_vote_.reset();
  pending_append_.reset();
  registered_at_.reset();
  if (!held_) return;
  held_ = false;
  log(LogLevel::Warning, {}, "quorum disk: {}", reason);
  output_.push_back(lost_frame(std::move(reason)));
}

void QdiskArbiter::io_failed(const Error& error) {
  if (error.errno_value == EBADE) return lose(fmt::format("reservation conflict: {}", error.to_string()));
  log(LogLevel::Warning, {}, "quorum LUN: {}; logging in again", error.to_string());
  registered_at_.reset();  // a registration belongs to the old nexus
  next_check_ = now_ + options_.timing.period;
  if (auto ok = lun_.reconnect(); !ok) {
    log(LogLevel::Warning, {}, "quorum LUN: {}", ok.error().to_string());
    return;
  }
  if (!held_) return;
  // Our key may still hold it through the old nexus: move it here (register, preempt our own
  // key), unless someone else took it meanwhile.
  auto c = check();
  if (!c) return;
  if (!c->reservation.holder) {
    if (auto ok = restore(); !ok) log(LogLevel::Warning, {}, "quorum LUN: {}", ok.error().to_string());
    return;
  }
  if (c->reservation.holder->key != key_)
    return lose(fmt::format("preempted: the quorum disk is held by {}", who(c->reservation.holder->key)));
  if (auto ok = register_key(); !ok) return;
  (void)lun_.reservations().pr_out(PrOutAction::Preempt, kType, key_, key_);
}

bool QdiskArbiter::defend_round() {
  auto c = check();
  if (!c) {
    io_failed(c.error());
    return false;
  }
  next_check_ = c->sent + options_.timing.period;
  DefenseDecision d = decide_defense(
      {key_, c->reservation, c->keys.keys, facts_.legitimate, leader_key()});
  switch (d.action) {
    case DefenseAction::Hold:
      break;
    case DefenseAction::Defend:
      for (std::uint64_t victim : d.preempt) {
        auto ok = lun_.reservations().pr_out(PrOutAction::Preempt, kType, key_, victim);
        if (!ok) {
          io_failed(ok.error());
          return false;
        }
        log(LogLevel::Notice, {}, "quorum disk: defended against {}", who(victim));
      }
      break;
    case DefenseAction::HandOver:
      (void)lun_.reservations().pr_out(PrOutAction::Release, kType, key_, 0);
      lose(fmt::format("handed the quorum disk over to the leader, node {}", facts_.leader));
      return false;
    case DefenseAction::Yield:
      yielded_ = true;
      lose("challenged while this side holds no quorum; not defending the quorum disk");
      return false;
    case DefenseAction::Restore:
      if (auto ok = restore(); !ok) io_failed(ok.error());
      next_check_ = mono_now();  // confirm at once
      return false;
    case DefenseAction::Lost:
      lose(fmt::format("preempted: the quorum disk is held by {}",
                       who(c->reservation.holder->key)));
      return false;
  }
  output_.push_back(confirmed_frame(c->sent));
  return true;
}

void QdiskArbiter::challenge(MonoTime now) {
  if (now < backoff_until_) return;
  // Without a slot we could never write the disk's state: winning it would only fence the
  // holder. Refuse before any registration (the daemon reports why, from the Record's slots).
  if (layout_ && options_.node_id > layout_->slot_count)
    return defended(fmt::format("node id {} has no slot on the quorum disk (it has slots for "
                                "nodes 1 to {})", options_.node_id, layout_->slot_count));
  auto c = check();
  if (!c) return io_failed(c.error());
  // A vacancy is free at once only after a clean release or for the writer of the current
  // record; what the disk says about that may be newer than our last read.
  if (!c->reservation.holder && !rightful_ && !released_)
    if (auto ok = read_area(); !ok) return io_failed(ok.error());
  ChallengeInput in{key_, c->reservation, c->keys.keys, registered_at_, now,
                    options_.timing.challenge_wait, rightful_, released_};
  ChallengeDecision d = decide_challenge(in);
  std::int64_t waited = registered_at_ ? mono_now().ms_since(*registered_at_) : 0;
  std::string how;
  Result<void> ok;
  switch (d.step) {
    case ChallengeStep::Register:
      ok = register_key();
      if (ok) registered_at_ = mono_now();  // the wait runs from the registration's completion
      break;
    case ChallengeStep::Wait:
      return;
    case ChallengeStep::Defended:
      return defended("the holder removed our registration");
    case ChallengeStep::Preempt:
      ok = lun_.reservations().pr_out(PrOutAction::Preempt, kType, key_, d.holder);
      if (ok) log(LogLevel::Notice, {}, "quorum disk: preempted {}", who(d.holder));
      how = fmt::format("preempted {} after a challenge of {} ms", who(d.holder), waited);
      break;
    case ChallengeStep::Reserve:
      ok = lun_.reservations().pr_out(PrOutAction::Reserve, kType, key_, 0);
      how = released_ ? fmt::format("reserved it at once: node {} released it", current_writer_)
            : rightful_ ? std::string("reserved it at once: this node wrote its current record")
                        : fmt::format("reserved the vacant disk after a challenge of {} ms", waited);
      break;
    case ChallengeStep::Held:
      if (yielded_ && !facts_.legitimate) return;
      // Perhaps through the nexus of an arbiter before us: move it to ours.
      ok = register_key();
      if (ok) ok = lun_.reservations().pr_out(PrOutAction::Preempt, kType, key_, key_);
      how = "took over this node's own reservation";
      break;
  }
  if (!ok && ok.error().errno_value == EBADE) return defended(ok.error().to_string());
  if (!ok) return io_failed(ok.error());
  if (d.step == ChallengeStep::Register) {
    // Nobody to outwait: reserve now rather than a period later.
    if (!c->reservation.holder && (rightful_ || released_)) challenge(mono_now());
    return;
  }
  take_up(how);
}

void QdiskArbiter::take_up(const std::string& how) {
  if (auto begun = begin_tenure(how); !begun) {
    log(LogLevel::Warning, {}, "quorum disk: could not take it up: {}", begun.error().to_string());
    held_ = true;  // so that lose() reports it
    lose(begun.error().to_string());
  }
}

void QdiskArbiter::defended(const std::string& why) {
  log(LogLevel::Notice, {}, "quorum disk: challenge defended ({}); next try in {} ms", why,
      options_.backoff.count());
  registered_at_.reset();
  backoff_until_ = now_ + options_.backoff;
  if (pending_vote_) {
    Message refusal = *std::exchange(pending_vote_, std::nullopt);
    Message r;
    r.type = MessageType::VoteResponse;
    r.to = refusal.from;
    r.term = refusal.term;
    r.reject = true;
    reply(r);
  }
  pending_append_.reset();
}

Result<void> QdiskArbiter::begin_tenure(const std::string& how) {
  auto header = read_header();
  if (!header) return std::unexpected(header.error());
  layout_ = *header;
  if (!layout_)
    if (auto ok = format(); !ok) return ok;
  if (options_.node_id > layout_->slot_count)
    return fail("node id {} has no slot on the quorum disk (it has slots for nodes 1 to {})",
                options_.node_id, layout_->slot_count);
  auto slots = read_slots(*layout_);
  if (!slots) return std::unexpected(slots.error());
  auto current = current_record(*slots);
  if (!current) return std::unexpected(current.error());
  // A new tenure: an epoch above every record seen, our sequence after our own newest record.
  epoch_ = next_epoch(*slots);
  last_written_.reset();
  for (const DecodedSlot& s : *slots)
    if (s.record && s.record->writer == options_.node_id &&
        (!last_written_ || s.record->sequence > last_written_->sequence))
      last_written_ = s.record;
  auto c = check();
  if (!c) return std::unexpected(c.error());
  if (!c->reservation.holder || c->reservation.holder->key != key_)
    return fail_errno(EBADE, "the quorum disk was taken by {} as we took it up",
                      c->reservation.holder ? who(c->reservation.holder->key) : "nobody");
  generation_ = c->reservation.generation;
  DiskVoterState state = *current ? (*current)->state : DiskVoterState{};
  if (auto ok = write_state(state); !ok) return ok;
  held_ = true;
  yielded_ = false;
  registered_at_.reset();
  log(LogLevel::Notice, {}, "quorum disk: holding it (epoch {}, term {}): {}", epoch_, state.term,
      how);
  output_.push_back(held_frame(c->sent, how));
  if (!defend_round()) return {};
  publish();
  answer_pending();
  return {};
}

// ---- Clean shutdown -----------------------------------------------------------------------------

void QdiskArbiter::release() {
  // docs/quorum-disk.md, "Clean shutdown": hand the disk over so that the next holder need not
  // outwait a challenge, and leave no registration behind (a stale key would be preempted).
  pending_vote_.reset();
  pending_append_.reset();
  std::string what = held_ ? release_held() : std::string("did not hold the quorum disk");
  // REGISTER AND IGNORE EXISTING KEY with service action key 0 unregisters (SPC-3 5.6.7):
  // the holder's key (RELEASE keeps it registered) or a challenger's.
  auto gone = lun_.reservations().pr_out(PrOutAction::RegisterAndIgnoreExistingKey, kType, 0, 0);
  what += gone ? std::string("; unregistered")
               : fmt::format("; could not unregister: {}", gone.error().to_string());
  held_ = false;
  registered_at_.reset();
  finished_ = true;
  log(LogLevel::Notice, {}, "quorum disk, clean shutdown: {}", what);
  output_.push_back(released_frame(what));
}

std::string QdiskArbiter::release_held() {
  // The mark first, written and confirmed like any change: a successor that reads it after our
  // RELEASE knows the vacancy is no tgtd restart and that no live holder is left to outwait.
  DiskVoterState state = record_.state.value_or(DiskVoterState{});
  auto marked = write_state(state, true);
  if (marked) {
    auto c = check();
    if (!c) marked = std::unexpected(c.error());
    else if (!c->reservation.holder || c->reservation.holder->key != key_)
      return "had lost the quorum disk before it could release it";
  }
  auto ok = lun_.reservations().pr_out(PrOutAction::Release, kType, key_, 0);
  if (!ok) return fmt::format("could not release the quorum disk: {}", ok.error().to_string());
  if (!marked)
    return fmt::format("released the quorum disk without marking it ({}): the next holder waits "
                       "out a challenge", marked.error().to_string());
  return "marked the quorum disk released and released its reservation";
}

// ---- Driving ----------------------------------------------------------------------------------

Result<void> QdiskArbiter::start(MonoTime now) {
  now_ = now;
  if (auto ok = read_area(); !ok) return ok;
  if (auto c = check(); !c) return std::unexpected(c.error());
  output_.push_back(record_frame(record_));
  published_ = record_;
  idle_check_ = now + options_.timing.period;
  return {};
}

void QdiskArbiter::tick(MonoTime now) {
  now_ = now;
  if (finished_) return;  // released: nothing more to do but exit
  if (held_) {
    if (now >= next_check_) (void)defend_round();
  } else if (wants_disk()) {
    challenge(now);
  } else if (now >= idle_check_) {
    // Not ours: now and then, who holds it and what it says, so that `clusterctl cluster` on
    // any node shows a record at most 10 P old (and a release is seen before a challenge).
    idle_check_ = now + options_.timing.period * 10;
    auto c = check();
    auto ok = c ? read_area() : Result<void>(std::unexpected(c.error()));
    if (!ok) io_failed(ok.error());
  }
  publish();
}

MonoTime QdiskArbiter::next_deadline() const {
  if (held_) return next_check_;
  if (!wants_disk()) return idle_check_;
  if (now_ < backoff_until_) return backoff_until_;
  if (!registered_at_) return now_;
  return std::min(*registered_at_ + options_.timing.challenge_wait, now_ + options_.timing.period);
}

void QdiskArbiter::handle(const QdiskFrame& frame, MonoTime now) {
  now_ = now;
  if (finished_) return;
  switch (frame.kind) {
    case QdiskKind::Raft:
      on_message(frame.message);
      break;
    case QdiskKind::Facts:
      facts_ = frame.facts;
      break;
    case QdiskKind::Checkpoint:
      on_checkpoint(frame.snapshot, frame.config_version);
      break;
    case QdiskKind::Release:
      release();
      break;
    default:
      log(LogLevel::Warning, {}, "quorum disk: unexpected {} frame from the daemon, ignoring it",
          to_string(frame.kind));
  }
  publish();
}

void QdiskArbiter::publish() {
  if (record_ == published_) return;
  published_ = record_;
  output_.push_back(record_frame(record_));
}

void QdiskArbiter::reply(Message message) {
  message.from = kDiskVoterId;
  output_.push_back(raft_frame(std::move(message)));
}

// ---- The voter --------------------------------------------------------------------------------

void QdiskArbiter::on_message(const Message& m) {
  if (m.to != kDiskVoterId || m.from != options_.node_id) return;
  switch (m.type) {
    case MessageType::PreVote:
      return held_ ? answer_vote(m) : answer_pre_vote_unheld(m);
    case MessageType::Vote:
      if (!held_ && now_ < backoff_until_) {
        pending_vote_ = m;
        return defended("a challenge was defended a moment ago");
      }
      pending_vote_ = m;
      break;
    case MessageType::Append:
    case MessageType::InstallSnapshot:
      pending_append_ = m;
      break;
    default:
      return;
  }
  answer_pending();
}

void QdiskArbiter::answer_pending() {
  if (!held_) return;
  if (pending_vote_) answer_vote(*std::exchange(pending_vote_, std::nullopt));
  if (!held_ || !pending_append_) return;
  Message m = *std::exchange(pending_append_, std::nullopt);
  if (m.type == MessageType::Append) answer_append(m);
  else answer_snapshot(m);
}

namespace {

Message vote_answer(const Message& request, const DiskVoteDecision& d, Term disk_term) {
  bool pre = request.type == MessageType::PreVote;
  Message r;
  r.type = pre ? MessageType::PreVoteResponse : MessageType::VoteResponse;
  r.to = request.from;
  r.reject = !d.grant;
  // A refused pre-vote must not raise the candidate's term (its request names term + 1).
  r.term = pre ? (d.grant ? request.term : std::max(disk_term, request.term - 1))
               : std::max(disk_term, request.term);
  return r;
}

DiskVoteRequest vote_request(const Message& m) {
  return {m.term, m.from, m.log_index, m.log_term, m.type == MessageType::PreVote};
}

}  // namespace

void QdiskArbiter::answer_pre_vote_unheld(const Message& m) {
  // Reads are open: the disk's state decides without the reservation. Right after a defended
  // challenge the holder is alive and legitimate, so the disk is not free for us.
  if (now_ < backoff_until_) {
    DiskVoteDecision no{false, std::nullopt, "defended"};
    return reply(vote_answer(m, no, 0));
  }
  if (auto ok = read_area(); !ok) {
    log(LogLevel::Warning, {}, "quorum disk: cannot read it for a pre-vote: {}", ok.error().to_string());
    return io_failed(ok.error());
  }
  DiskVoterState state = record_.state.value_or(DiskVoterState{});
  reply(vote_answer(m, decide_disk_vote(state, vote_request(m)), state.term));
}

void QdiskArbiter::answer_vote(const Message& m) {
  DiskVoterState state = record_.state.value_or(DiskVoterState{});
  DiskVoteDecision d = decide_disk_vote(state, vote_request(m));
  if (d.write) {
    if (auto ok = write_state(*d.write); !ok) return io_failed(ok.error());
  }
  // A vote counts once written and confirmed; a pre-vote changes nothing.
  if (m.type == MessageType::Vote && !defend_round()) return;
  reply(vote_answer(m, d, state.term));
}

void QdiskArbiter::answer_append(const Message& m) {
  DiskVoterState state = record_.state.value_or(DiskVoterState{});
  DiskAppendDecision d = decide_disk_append(state, m);
  if (d.write) {
    if (auto ok = write_state(*d.write); !ok) return io_failed(ok.error());
  }
  // Persisted, then confirmed, then acknowledged; the check also echoes the lease stamp only
  // after READ KEYS showed no challenger (or removed it).
  if (!defend_round()) return;
  Message r;
  r.type = MessageType::AppendResponse;
  r.to = m.from;
  r.term = d.term;
  r.log_index = m.log_index;
  r.reject = !d.accept;
  r.hint = d.match;
  r.lease_stamp = m.lease_stamp;
  reply(r);
}

void QdiskArbiter::answer_snapshot(const Message& m) {
  DiskVoterState state = record_.state.value_or(DiskVoterState{});
  Message r;
  r.type = MessageType::AppendResponse;
  r.to = m.from;
  r.log_index = m.log_index;
  r.lease_stamp = m.lease_stamp;
  if (m.term < state.term || !m.snapshot) {
    r.term = state.term;
    r.reject = true;
    r.hint = state.last_index();
    return reply(r);
  }
  DiskVoterState next = state;
  if (m.term > next.term) {
    next.term = m.term;
    next.vote.reset();
  }
  auto decoded = decode_state(m.snapshot->data);
  std::uint64_t version = decoded ? decoded->config_version : 0;
  if (auto cp = apply_checkpoint(next, *m.snapshot, version)) next = std::move(*cp);
  if (next != state) {
    if (auto ok = write_state(next); !ok) return io_failed(ok.error());
  }
  if (!defend_round()) return;
  r.term = next.term;
  r.hint = std::max(m.snapshot->index, next.checkpoint.index);
  reply(r);
}

void QdiskArbiter::on_checkpoint(const Snapshot& snapshot, std::uint64_t config_version) {
  if (!held_) return;
  DiskVoterState state = record_.state.value_or(DiskVoterState{});
  auto next = apply_checkpoint(state, snapshot, config_version);
  if (!next) return;
  // Confirmed by the next check: a checkpoint is committed state, nobody waits for its ack.
  if (auto ok = write_state(*next); !ok) io_failed(ok.error());
}

// ---- The command line -------------------------------------------------------------------------

std::vector<std::string> qdisk_helper_argv(const std::string& helper, const QdiskHelperOptions& o) {
  std::vector<std::string> argv{helper};
  for (const auto& portal : o.portals) argv.insert(argv.end(), {"--portal", portal});
  const ArbiterOptions& a = o.arbiter;
  argv.insert(argv.end(),
              {"--target", o.target, "--lun", std::to_string(o.lun), "--initiator", o.initiator,
               "--cluster-id", std::to_string(a.cluster_id), "--node-id",
               std::to_string(a.node_id), "--period", std::to_string(a.timing.period.count()),
               "--timeout", std::to_string(a.timing.command_timeout.count()), "--wait",
               std::to_string(a.timing.challenge_wait.count()), "--backoff",
               std::to_string(a.backoff.count()), "--slots", std::to_string(a.slot_count),
               "--control-fd", std::to_string(o.control_fd)});
  return argv;
}

namespace {

Result<std::uint64_t> number(std::string_view flag, std::string_view text, std::uint64_t max) {
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || n > max)
    return fail("{}: '{}' is not a whole number up to {}", flag, text, max);
  return n;
}

Result<void> apply_flag(std::string_view flag, std::string_view value, QdiskHelperOptions& o) {
  auto set = [&](auto& field, std::uint64_t max) -> Result<void> {
    auto n = number(flag, value, max);
    if (!n) return std::unexpected(n.error());
    field = static_cast<std::remove_reference_t<decltype(field)>>(*n);
    return {};
  };
  auto ms = [&](Duration& field) -> Result<void> {
    std::uint64_t n = 0;
    if (auto ok = set(n, 3'600'000); !ok) return ok;
    if (n == 0) return fail("{} must be at least 1 ms", flag);
    field = Duration(n);
    return {};
  };
  ArbiterOptions& a = o.arbiter;
  if (flag == "--portal") o.portals.emplace_back(value);
  else if (flag == "--target") o.target = value;
  else if (flag == "--initiator") o.initiator = value;
  else if (flag == "--lun") return set(o.lun, 16383);
  else if (flag == "--cluster-id") return set(a.cluster_id, (1u << 24) - 1);
  else if (flag == "--node-id") return set(a.node_id, 255);
  else if (flag == "--control-fd") return set(o.control_fd, 1 << 20);
  else if (flag == "--period") return ms(a.timing.period);
  else if (flag == "--timeout") return ms(a.timing.command_timeout);
  else if (flag == "--wait") return ms(a.timing.challenge_wait);
  else if (flag == "--backoff") return ms(a.backoff);
  else if (flag == "--slots") {
    if (auto ok = set(a.slot_count, 255); !ok) return ok;
    if (a.slot_count == 0) return fail("--slots must be at least 1");
  }
  else return fail("unknown argument {}", flag);
  return {};
}

}  // namespace

Result<QdiskHelperOptions> parse_qdisk_args(std::span<const char* const> args) {
  QdiskHelperOptions o;
  for (std::size_t i = 0; i < args.size(); i += 2) {
    std::string_view flag = args[i];
    if (i + 1 >= args.size()) return fail("{} needs a value", flag);
    if (auto ok = apply_flag(flag, args[i + 1], o); !ok) return std::unexpected(ok.error());
  }
  if (o.portals.empty()) return fail("--portal is required");
  if (o.target.empty()) return fail("--target is required");
  if (o.initiator.empty()) return fail("--initiator is required");
  if (o.arbiter.cluster_id == 0 || o.arbiter.node_id == 0)
    return fail("--cluster-id and --node-id are required (the reservation key)");
  return o;
}

}  // namespace clusterd
