#include "quorum_disk.h"

#include <algorithm>
#include <cstring>

#include "byte_codec.h"

namespace clusterd {
namespace {

constexpr char kHeaderMagic[8] = {'C', 'L', 'Q', 'D', 'I', 'S', 'K', '\0'};
constexpr char kRecordMagic[4] = {'C', 'L', 'Q', 'R'};
constexpr std::size_t kHeaderChecked = 24;  // header bytes covered by its checksum
constexpr std::size_t kRecordChecked = 40;  // record header bytes before the checksum
// Record flags (bytes 6-7, zero in records written before flags existed, which then read as
// "not released": a reader that ignores them only waits W where it need not).
constexpr std::uint64_t kRecordReleased = 1;

// FNV-1a 64 over several spans: enough to catch torn writes and stray bytes (not an
// adversary: only the reservation holder writes).
struct Fnv {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  void add(std::span<const std::uint8_t> s) {
    for (std::uint8_t c : s) h = (h ^ c) * 0x100000001b3ULL;
  }
};



Bytes encode_state(const DiskVoterState& s) {
  BeWriter w;
  w.u64(s.term);
  w.u32(s.vote.value_or(0));
  w.u64(s.commit);
  w.u64(s.config_version);
  w.u64(s.checkpoint.index);
  w.u64(s.checkpoint.term);
  w.bytes(s.checkpoint.data);
  w.u32(s.tail.size());
  for (const Entry& e : s.tail) {
    w.u64(e.term);
    w.u64(e.index);
    w.u16(e.type);
    w.bytes(e.data);
  }
  return w.take();
}

bool decode_entries(BeReader& r, DiskVoterState& s) {
  std::uint32_t count = 0;
  if (!r.u32(count)) return false;
  for (std::uint32_t i = 0; i < count; ++i) {
    Entry e;
    if (!r.u64(e.term) || !r.u64(e.index) || !r.u16(e.type) || !r.bytes(e.data)) return false;
    if (e.index != s.checkpoint.index + 1 + i) return false;  // the tail is consecutive
    s.tail.push_back(std::move(e));
  }
  return true;
}

std::optional<DiskVoterState> decode_state(std::span<const std::uint8_t> payload) {
  BeReader r(payload);
  DiskVoterState s;
  std::uint32_t vote = 0;
  if (!r.u64(s.term) || !r.u32(vote) || !r.u64(s.commit) || !r.u64(s.config_version) ||
      !r.u64(s.checkpoint.index) || !r.u64(s.checkpoint.term) || !r.bytes(s.checkpoint.data) ||
      !decode_entries(r, s) || !r.done()) {
    return std::nullopt;
  }
  if (vote != 0) s.vote = vote;
  return s;
}

bool all_zero(std::span<const std::uint8_t> s) {
  return std::all_of(s.begin(), s.end(), [](std::uint8_t c) { return c == 0; });
}

DecodedSlot problem(SlotProblem p, std::string reason) { return {std::nullopt, p, std::move(reason)}; }

bool contains(const std::vector<std::uint64_t>& keys, std::uint64_t key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

}  // namespace

// ---- Layout -----------------------------------------------------------------------------------

std::uint64_t DiskLayout::slot_offset(NodeId node, int which) const {
  return kDiskBlockSize + (std::uint64_t{node - 1} * 2 + static_cast<std::uint64_t>(which)) * slot_size;
}

std::uint64_t DiskLayout::size() const {
  return kDiskBlockSize + std::uint64_t{slot_count} * 2 * slot_size;
}

Result<void> validate_layout(const DiskLayout& l) {
  if (l.cluster_id == 0) return fail("The quorum disk layout has no cluster id.");
  if (l.slot_count == 0) return fail("The quorum disk layout has no slots.");
  if (l.slot_size < kDiskBlockSize || l.slot_size % kDiskBlockSize != 0) {
    return fail("The quorum disk slot size {} is not a positive multiple of {} bytes.",
                l.slot_size, kDiskBlockSize);
  }
  return {};
}

Bytes encode_header(const DiskLayout& l) {
  Bytes b(kDiskBlockSize, 0);
  std::memcpy(b.data(), kHeaderMagic, 8);
  put_be(b.data() + 8, kDiskFormat, 2);
  put_be(b.data() + 10, l.slot_count, 2);
  put_be(b.data() + 12, l.cluster_id, 4);
  put_be(b.data() + 16, l.slot_size, 4);
  Fnv f;
  f.add({b.data(), kHeaderChecked});
  put_be(b.data() + kHeaderChecked, f.h, 8);
  return b;
}

Result<DiskLayout> decode_header(std::span<const std::uint8_t> b) {
  if (b.size() < kHeaderChecked + 8) return fail("The quorum disk header is truncated.");
  if (all_zero(b.first(kHeaderChecked + 8))) return fail("The quorum disk is blank (no header).");
  if (std::memcmp(b.data(), kHeaderMagic, 8) != 0) {
    return fail("The quorum disk does not start with a clusterd header.");
  }
  auto format = get_be(b.data() + 8, 2);
  if (format > kDiskFormat) {
    return fail("The quorum disk has format {}, newer than this clusterd's {}.", format, kDiskFormat);
  }
  Fnv f;
  f.add(b.first(kHeaderChecked));
  if (f.h != get_be(b.data() + kHeaderChecked, 8)) {
    return fail("The quorum disk header fails its checksum.");
  }
  DiskLayout l;
  l.slot_count = static_cast<std::uint16_t>(get_be(b.data() + 10, 2));
  l.cluster_id = static_cast<std::uint32_t>(get_be(b.data() + 12, 4));
  l.slot_size = static_cast<std::uint32_t>(get_be(b.data() + 16, 4));
  if (auto ok = validate_layout(l); !ok) return std::unexpected(ok.error());
  return l;
}

// ---- Records ----------------------------------------------------------------------------------

Index DiskVoterState::last_index() const {
  return tail.empty() ? checkpoint.index : tail.back().index;
}

Term DiskVoterState::last_term() const { return tail.empty() ? checkpoint.term : tail.back().term; }

std::optional<Term> DiskVoterState::term_at(Index index) const {
  if (index == checkpoint.index) return checkpoint.term;
  if (index < checkpoint.index || index > last_index()) return std::nullopt;
  return tail[index - checkpoint.index - 1].term;
}

Result<Bytes> encode_record(const DiskRecord& r, std::uint32_t slot_size) {
  Bytes payload = encode_state(r.state);
  if (slot_size < kRecordHeaderSize || payload.size() > slot_size - kRecordHeaderSize) {
    return fail("The quorum disk record ({} bytes) does not fit a {}-byte slot.",
                payload.size() + kRecordHeaderSize, slot_size);
  }
  Bytes b(slot_size, 0);
  std::memcpy(b.data(), kRecordMagic, 4);
  put_be(b.data() + 4, kDiskFormat, 2);
  put_be(b.data() + 6, r.released ? kRecordReleased : 0, 2);
  put_be(b.data() + 8, r.cluster_id, 4);
  put_be(b.data() + 12, r.writer, 4);
  put_be(b.data() + 16, r.epoch, 8);
  put_be(b.data() + 24, r.pr_generation, 4);
  put_be(b.data() + 28, payload.size(), 4);
  put_be(b.data() + 32, r.sequence, 8);
  std::copy(payload.begin(), payload.end(), b.begin() + kRecordHeaderSize);
  Fnv f;
  f.add({b.data(), kRecordChecked});
  f.add(payload);
  put_be(b.data() + kRecordChecked, f.h, 8);
  return b;
}

const char* to_string(SlotProblem p) {
  static constexpr const char* kNames[kSlotProblemCount] = {
      "blank", "foreign", "torn", "newer-format", "wrong-writer", "malformed"};
  return kNames[static_cast<int>(p)];
}

DecodedSlot decode_record(std::span<const std::uint8_t> b, std::uint32_t cluster_id, NodeId owner) {
  if (b.size() < kRecordHeaderSize) return problem(SlotProblem::Malformed, "The slot is too short for a record.");
  if (all_zero(b.first(kRecordHeaderSize))) return problem(SlotProblem::Blank, "The slot was never written.");
  if (std::memcmp(b.data(), kRecordMagic, 4) != 0) {
    return problem(SlotProblem::Torn, "The slot does not start with a record (torn or overwritten).");
  }
  auto format = get_be(b.data() + 4, 2);
  if (format > kDiskFormat) {
    return problem(SlotProblem::NewerFormat,
                   fmt::format("The record has format {}, newer than this clusterd's {}.", format, kDiskFormat));
  }
  std::size_t length = get_be(b.data() + 28, 4);
  if (length > b.size() - kRecordHeaderSize) return problem(SlotProblem::Torn, "The record's length exceeds its slot (torn write).");
  auto payload = b.subspan(kRecordHeaderSize, length);
  Fnv f;
  f.add(b.first(kRecordChecked));
  f.add(payload);
  if (f.h != get_be(b.data() + kRecordChecked, 8)) return problem(SlotProblem::Torn, "The record fails its checksum (torn write).");
  DiskRecord r;
  r.cluster_id = static_cast<std::uint32_t>(get_be(b.data() + 8, 4));
  if (r.cluster_id != cluster_id) {
    return problem(SlotProblem::Foreign, fmt::format("The record belongs to cluster {}, not {}.", r.cluster_id, cluster_id));
  }
  r.writer = static_cast<NodeId>(get_be(b.data() + 12, 4));
  if (r.writer != owner) {
    return problem(SlotProblem::WrongWriter, fmt::format("The record in node {}'s slot was written by node {}.", owner, r.writer));
  }
  r.epoch = get_be(b.data() + 16, 8);
  r.pr_generation = static_cast<std::uint32_t>(get_be(b.data() + 24, 4));
  r.sequence = get_be(b.data() + 32, 8);
  r.released = (get_be(b.data() + 6, 2) & kRecordReleased) != 0;
  auto state = decode_state(payload);
  if (!state) return problem(SlotProblem::Malformed, "The record's payload is malformed despite a valid checksum.");
  r.state = std::move(*state);
  return {std::move(r), std::nullopt, {}};
}

bool record_newer(const DiskRecord& a, const DiskRecord& b) {
  return std::tie(a.epoch, a.pr_generation, a.sequence) > std::tie(b.epoch, b.pr_generation, b.sequence);
}

Result<std::optional<DiskRecord>> current_record(const std::vector<DecodedSlot>& slots) {
  std::optional<DiskRecord> best;
  for (const DecodedSlot& s : slots) {
    if (s.problem == SlotProblem::NewerFormat) {
      return fail("The quorum disk holds a record of a newer clusterd: {}", s.reason);
    }
    if (s.record && (!best || record_newer(*s.record, *best))) best = s.record;
  }
  return best;
}

DiskRecord next_record(std::uint32_t cluster_id, NodeId writer, std::uint64_t epoch,
                       std::uint32_t pr_generation, const std::optional<DiskRecord>& previous,
                       DiskVoterState state) {
  return DiskRecord{cluster_id, writer, epoch, pr_generation,
                    previous ? previous->sequence + 1 : 1, std::move(state)};
}

std::uint64_t next_epoch(const std::vector<DecodedSlot>& slots) {
  std::uint64_t top = 0;
  for (const DecodedSlot& s : slots) {
    if (s.record) top = std::max(top, s.record->epoch);
  }
  return top + 1;
}

// ---- The disk's vote and log ------------------------------------------------------------------

DiskVoteDecision decide_disk_vote(const DiskVoterState& state, const DiskVoteRequest& req) {
  const char* what = req.pre_vote ? "pre-vote" : "vote";
  if (req.term < state.term) {
    return {false, std::nullopt, fmt::format("{} for term {} is below the disk's term {}", what, req.term, state.term)};
  }
  bool up_to_date = req.last_term > state.last_term() ||
                    (req.last_term == state.last_term() && req.last_index >= state.last_index());
  bool newer_term = req.term > state.term;
  bool free = newer_term || !state.vote || *state.vote == req.candidate;
  if (!up_to_date) {
    return {false, std::nullopt,
            fmt::format("{}: candidate's log {}/{} is behind the disk's {}/{}", what, req.last_index,
                        req.last_term, state.last_index(), state.last_term())};
  }
  if (!free) {
    return {false, std::nullopt, fmt::format("{}: the disk voted for node {} in term {}", what, *state.vote, state.term)};
  }
  if (req.pre_vote) return {true, std::nullopt, "pre-vote granted"};
  DiskVoterState next = state;
  next.term = req.term;
  next.vote = req.candidate;
  if (next == state) return {true, std::nullopt, "vote already recorded"};
  return {true, std::move(next), fmt::format("vote for node {} in term {}", req.candidate, req.term)};
}

namespace {

// Appends `entries` (consecutive, after a matching prefix) to the disk's log: skips what it
// has, truncates at the first conflict. False if the conflict is at or below the commit index.
bool merge_entries(DiskVoterState& s, const std::vector<Entry>& entries) {
  for (const Entry& e : entries) {
    if (e.index <= s.checkpoint.index) continue;  // committed, and the leader has it too
    auto have = s.term_at(e.index);
    if (have == e.term) continue;
    if (have) {
      if (e.index <= s.commit) return false;
      s.tail.resize(e.index - s.checkpoint.index - 1);
    }
    s.tail.push_back(e);
  }
  return true;
}

}  // namespace

DiskAppendDecision decide_disk_append(const DiskVoterState& state, const Message& m) {
  if (m.type != MessageType::Append) {
    return {false, std::nullopt, state.last_index(), state.term, "the disk only takes appends here"};
  }
  if (m.term < state.term) {
    return {false, std::nullopt, state.last_index(), state.term,
            fmt::format("append from term {} is below the disk's term {}", m.term, state.term)};
  }
  DiskVoterState next = state;
  if (m.term > next.term) {
    next.term = m.term;
    next.vote.reset();
  }
  bool below = m.log_index < next.checkpoint.index;
  if (!below && next.term_at(m.log_index) != m.log_term) {
    DiskAppendDecision d{false, std::nullopt, next.last_index(), next.term,
                         fmt::format("the disk has no entry {}/{}", m.log_index, m.log_term)};
    if (next != state) d.write = std::move(next);  // the new term still counts
    return d;
  }
  if (!merge_entries(next, m.entries)) {
    return {false, std::nullopt, state.last_index(), state.term,
            "the append would truncate a committed entry of the disk"};
  }
  Index last_new = std::max<Index>(m.log_index + m.entries.size(), next.checkpoint.index);
  next.commit = std::max(next.commit, std::min(m.commit, last_new));
  DiskAppendDecision d{true, std::nullopt, last_new, next.term, "accepted"};
  if (next != state) d.write = std::move(next);
  return d;
}

std::optional<DiskVoterState> apply_checkpoint(const DiskVoterState& state, const Snapshot& cp,
                                               std::uint64_t config_version) {
  if (cp.index <= state.checkpoint.index) return std::nullopt;
  DiskVoterState next = state;
  if (state.term_at(cp.index) == cp.term) {
    next.tail.erase(next.tail.begin(), next.tail.begin() + (cp.index - state.checkpoint.index));
  } else {
    next.tail.clear();  // the tail contradicts committed state: it was never committed
  }
  next.checkpoint = cp;
  next.config_version = config_version;
  next.commit = std::max(next.commit, cp.index);
  return next;
}

namespace {

std::optional<Term> node_term_at(const PersistentState& p, Index index) {
  if (index == p.snapshot.index) return p.snapshot.term;
  if (index < p.snapshot.index || index > p.snapshot.index + p.entries.size()) return std::nullopt;
  return p.entries[index - p.snapshot.index - 1].term;
}

Index node_last_index(const PersistentState& p) { return p.snapshot.index + p.entries.size(); }

void install_checkpoint(PersistentState& p, const Snapshot& cp) {
  if (cp.index <= p.snapshot.index) return;
  if (node_term_at(p, cp.index) == cp.term) {
    p.entries.erase(p.entries.begin(), p.entries.begin() + (cp.index - p.snapshot.index));
  } else {
    p.entries.clear();
  }
  p.snapshot = cp;
}

void copy_tail(PersistentState& p, const DiskVoterState& disk) {
  Index last = node_last_index(p);
  if (last >= disk.last_index() || disk.term_at(last) != node_term_at(p, last)) return;
  for (const Entry& e : disk.tail) {
    if (e.index > last) p.entries.push_back(e);
  }
}

}  // namespace

PersistentState merge_checkpoint(const PersistentState& node, const DiskVoterState& disk) {
  PersistentState out = node;
  install_checkpoint(out, disk.checkpoint);
  copy_tail(out, disk);
  // Raise the commit index only as far as the node's log provably equals the disk's.
  Index commit = std::min(disk.commit, node_last_index(out));
  out.hard.commit = std::max(out.hard.commit, out.snapshot.index);
  if (node_term_at(out, commit) == disk.term_at(commit)) {
    out.hard.commit = std::max(out.hard.commit, commit);
  }
  if (disk.term > out.hard.term) {
    out.hard.term = disk.term;
    out.hard.vote.reset();
  }
  return out;
}

// ---- The reservation race ---------------------------------------------------------------------

Duration minimum_challenge_wait(const DiskTiming& disk, const QuorumTiming& q, Duration e) {
  return std::max(q.detection, e) + disk.period + 2 * disk.command_timeout + q.margin;
}

Result<void> validate_disk_timing(const DiskTiming& disk, const QuorumTiming& q, Duration e) {
  Duration cycle = disk.period + 2 * disk.command_timeout;
  if (cycle >= q.stop_after()) {
    return fail("The quorum disk's defence period plus two command timeouts ({} ms) must be "
                "shorter than the self-stop delay D - S - M ({} ms).",
                cycle.count(), q.stop_after().count());
  }
  Duration least = minimum_challenge_wait(disk, q, e);
  if (disk.challenge_wait < least) {
    return fail("The quorum disk's challenge wait ({} ms) must be at least max(D, election "
                "timeout) + period + 2 timeouts + margin ({} ms).",
                disk.challenge_wait.count(), least.count());
  }
  return {};
}

const char* to_string(DefenseAction a) {
  static constexpr const char* kNames[kDefenseActionCount] = {"hold", "defend", "hand-over",
                                                              "yield", "restore", "lost"};
  return kNames[static_cast<int>(a)];
}

DefenseDecision decide_defense(const DefenseInput& in) {
  if (!in.reservation.holder) return {DefenseAction::Restore, {}};
  if (in.reservation.holder->key != in.my_key) return {DefenseAction::Lost, {}};
  std::vector<std::uint64_t> challengers;
  for (std::uint64_t k : in.keys) {
    if (k != in.my_key && !contains(challengers, k)) challengers.push_back(k);
  }
  if (challengers.empty()) return {DefenseAction::Hold, {}};
  if (in.leader_key && contains(challengers, *in.leader_key)) return {DefenseAction::HandOver, {}};
  if (!in.legitimate) return {DefenseAction::Yield, {}};
  return {DefenseAction::Defend, std::move(challengers)};
}

const char* to_string(ChallengeStep s) {
  static constexpr const char* kNames[kChallengeStepCount] = {"register", "wait",    "defended",
                                                              "preempt",  "reserve", "held"};
  return kNames[static_cast<int>(s)];
}

ChallengeDecision decide_challenge(const ChallengeInput& in) {
  const auto& holder = in.reservation.holder;
  if (holder && holder->key == in.my_key) return {ChallengeStep::Held, 0, std::nullopt};
  if (!in.registered_at) return {ChallengeStep::Register, 0, std::nullopt};
  if (!contains(in.keys, in.my_key)) return {ChallengeStep::Defended, 0, std::nullopt};
  if (!holder && (in.rightful || in.released)) return {ChallengeStep::Reserve, 0, std::nullopt};
  MonoTime until = *in.registered_at + in.wait;
  if (in.now < until) return {ChallengeStep::Wait, 0, until};
  if (!holder) return {ChallengeStep::Reserve, 0, std::nullopt};
  return {ChallengeStep::Preempt, holder->key, std::nullopt};
}

}  // namespace clusterd
