#include "quorum_disk.h"

#include "byte_order.h"
#include "raft.h"

#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>

namespace clusterd {
namespace {

constexpr std::uint32_t kCluster = 7;

Entry entry(Term term, Index index, std::string data = "x") {
  return Entry{term, index, 1, Bytes(data.begin(), data.end())};
}

Snapshot snapshot(Index index, Term term, std::string data = "state") {
  return Snapshot{index, term, Bytes(data.begin(), data.end())};
}

// A disk with checkpoint 3/1, tail 4/1 5/2, term 2, voted for 1, commit 4.
DiskVoterState sample_state() {
  DiskVoterState s;
  s.term = 2;
  s.vote = 1;
  s.commit = 4;
  s.config_version = 3;
  s.checkpoint = snapshot(3, 1);
  s.tail = {entry(1, 4), entry(2, 5, "five")};
  return s;
}

DiskRecord sample_record(NodeId writer = 2) {
  return DiskRecord{kCluster, writer, 5, 9, 11, sample_state()};
}

Message append(Term term, Index prev, Term prev_term, std::vector<Entry> entries, Index commit) {
  Message m;
  m.type = MessageType::Append;
  m.from = 1;
  m.to = kDiskVoterId;
  m.term = term;
  m.log_index = prev;
  m.log_term = prev_term;
  m.entries = std::move(entries);
  m.commit = commit;
  return m;
}

PrReservation held_by(std::uint64_t key) {
  PrReservation r;
  r.holder = PrReservation::Holder{key, PrType::WriteExclusive};
  return r;
}

const std::uint64_t kKey1 = reservation_key(kCluster, 1);
const std::uint64_t kKey2 = reservation_key(kCluster, 2);
const std::uint64_t kKey3 = reservation_key(kCluster, 3);

}  // namespace

// ---- Layout and codec -------------------------------------------------------------------------

TEST_CASE("quorum disk: the header round-trips and rejects blank, foreign, corrupt, newer") {
  DiskLayout l{kCluster, 8, 8192};
  Bytes b = encode_header(l);
  CHECK(b.size() == kDiskBlockSize);
  auto back = decode_header(b);
  REQUIRE(back);
  CHECK(*back == l);
  CHECK(decode_header(Bytes(kDiskBlockSize, 0)).error().message.find("blank") != std::string::npos);
  Bytes foreign = b;
  foreign[0] = 'X';
  CHECK(!decode_header(foreign));
  Bytes corrupt = b;
  corrupt[13] ^= 1;
  CHECK(decode_header(corrupt).error().message.find("checksum") != std::string::npos);
  Bytes newer = b;
  newer[9] = kDiskFormat + 1;
  CHECK(decode_header(newer).error().message.find("newer") != std::string::npos);
  CHECK(!decode_header(Bytes(10, 0)));
}

TEST_CASE("quorum disk: layout validation and slot offsets") {
  CHECK(validate_layout({kCluster, 16, 65536}));
  CHECK(!validate_layout({0, 16, 65536}));
  CHECK(!validate_layout({kCluster, 0, 65536}));
  CHECK(!validate_layout({kCluster, 16, 1000}));
  DiskLayout l{kCluster, 4, 8192};
  CHECK(l.slot_offset(1, 0) == 4096);
  CHECK(l.slot_offset(1, 1) == 4096 + 8192);
  CHECK(l.slot_offset(2, 0) == 4096 + 2 * 8192);
  CHECK(l.size() == 4096 + 8 * 8192);
  // Every slot of every node is distinct and inside the area.
  std::set<std::uint64_t> seen;
  for (NodeId n = 1; n <= 4; ++n) {
    for (int k = 0; k < 2; ++k) {
      CHECK(seen.insert(l.slot_offset(n, k)).second);
      CHECK(l.slot_offset(n, k) + l.slot_size <= l.size());
    }
  }
}

TEST_CASE("quorum disk: a record round-trips, with and without vote, tail and checkpoint") {
  for (int variant = 0; variant < 8; ++variant) {
    DiskRecord r = sample_record();
    if (variant & 1) r.state.vote.reset();
    if (variant & 2) r.state = DiskVoterState{};
    r.released = (variant & 4) != 0;
    auto bytes = encode_record(r, 8192);
    REQUIRE(bytes);
    CHECK(bytes->size() == 8192);
    DecodedSlot d = decode_record(*bytes, kCluster, 2);
    REQUIRE_MESSAGE(d.record, d.reason);
    CHECK(*d.record == r);
  }
}

TEST_CASE("quorum disk: the released flag sits in the record's bytes 6-7, under the checksum") {
  DiskRecord r = sample_record();
  Bytes plain = *encode_record(r, 4096);
  CHECK(plain[6] == 0);
  CHECK(plain[7] == 0);  // as records written before the flag existed: not released
  r.released = true;
  Bytes released = *encode_record(r, 4096);
  CHECK(released[7] == 1);
  Bytes forged = plain;
  forged[7] = 1;  // a flipped flag is a torn record, never a release
  CHECK(decode_record(forged, kCluster, 2).problem == SlotProblem::Torn);
}

TEST_CASE("quorum disk: a record that does not fit its slot is refused") {
  DiskRecord r = sample_record();
  r.state.checkpoint.data.assign(5000, 1);
  CHECK(encode_record(r, 8192));
  auto too_big = encode_record(r, 4096);
  REQUIRE(!too_big);
  CHECK(too_big.error().message.find("does not fit") != std::string::npos);
}

TEST_CASE("quorum disk: every flipped byte of a record is detected (torn writes)") {
  Bytes good = *encode_record(sample_record(), 4096);
  auto length = 48 + get_be(good.data() + 28, 4);
  for (std::size_t i = 0; i < length; ++i) {
    Bytes bad = good;
    bad[i] ^= 0x20;
    DecodedSlot d = decode_record(bad, kCluster, 2);
    CAPTURE(i);
    CHECK(!d.record);
    CHECK(d.problem.has_value());
  }
  // A write torn after the header: new header, old (here: zero) payload.
  Bytes torn = good;
  std::fill(torn.begin() + 48, torn.end(), 0);
  CHECK(decode_record(torn, kCluster, 2).problem == SlotProblem::Torn);
}

TEST_CASE("quorum disk: slot problems are named") {
  Bytes good = *encode_record(sample_record(2), 4096);
  CHECK(decode_record(Bytes(4096, 0), kCluster, 2).problem == SlotProblem::Blank);
  CHECK(decode_record(good, kCluster + 1, 2).problem == SlotProblem::Foreign);
  CHECK(decode_record(good, kCluster, 3).problem == SlotProblem::WrongWriter);
  CHECK(decode_record(Bytes(10, 1), kCluster, 2).problem == SlotProblem::Malformed);
  Bytes newer = good;
  newer[5] = kDiskFormat + 1;
  CHECK(decode_record(newer, kCluster, 2).problem == SlotProblem::NewerFormat);
  Bytes length = good;
  put_be(length.data() + 28, 5000, 4);
  CHECK(decode_record(length, kCluster, 2).problem == SlotProblem::Torn);
}

TEST_CASE("quorum disk: the SlotProblem, DefenseAction and ChallengeStep names are complete") {
  std::set<std::string> names;
  for (int i = 0; i < kSlotProblemCount; ++i) names.insert(to_string(static_cast<SlotProblem>(i)));
  CHECK(names.size() == kSlotProblemCount);
  names.clear();
  for (int i = 0; i < kDefenseActionCount; ++i) names.insert(to_string(static_cast<DefenseAction>(i)));
  CHECK(names.size() == kDefenseActionCount);
  names.clear();
  for (int i = 0; i < kChallengeStepCount; ++i) names.insert(to_string(static_cast<ChallengeStep>(i)));
  CHECK(names.size() == kChallengeStepCount);
  CHECK(std::string(to_string(DefenseAction::HandOver)) == "hand-over");
  CHECK(std::string(to_string(ChallengeStep::Preempt)) == "preempt");
}

// ---- The current record -----------------------------------------------------------------------

TEST_CASE("quorum disk: the current record is the greatest (epoch, PR generation, sequence)") {
  auto slot = [](std::uint64_t epoch, std::uint32_t gen, std::uint64_t seq, NodeId writer) {
    DiskRecord r = sample_record(writer);
    r.epoch = epoch;
    r.pr_generation = gen;
    r.sequence = seq;
    return DecodedSlot{r, std::nullopt, {}};
  };
  // A later tenure beats a higher sequence of an earlier one (a late, unconfirmed write).
  auto cur = current_record({slot(3, 10, 99, 1), slot(4, 2, 1, 2)});
  REQUIRE(cur);
  CHECK((*cur)->writer == 2);
  // Same epoch (the old holder's only write raced the preempt): the higher generation wins.
  cur = current_record({slot(4, 12, 1, 2), slot(4, 10, 5, 1)});
  CHECK((*cur)->writer == 2);
  // Same tenure: the later sequence.
  cur = current_record({slot(4, 10, 7, 1), slot(4, 10, 8, 1), DecodedSlot{std::nullopt, SlotProblem::Torn, "torn"}});
  CHECK((*cur)->sequence == 8);
  CHECK(next_epoch({slot(4, 10, 7, 1), slot(6, 1, 1, 3)}) == 7);
  CHECK(next_epoch({}) == 1);
}

TEST_CASE("quorum disk: a blank disk has no record; a newer-format record is an error") {
  auto none = current_record({DecodedSlot{std::nullopt, SlotProblem::Blank, "blank"}});
  REQUIRE(none);
  CHECK(!*none);
  auto newer = current_record({DecodedSlot{sample_record(), std::nullopt, {}},
                               DecodedSlot{std::nullopt, SlotProblem::NewerFormat, "format 2"}});
  REQUIRE(!newer);
  CHECK(newer.error().message.find("newer") != std::string::npos);
}

TEST_CASE("quorum disk: a torn write falls back to the writer's other slot") {
  DiskRecord first = next_record(kCluster, 2, 5, 9, std::nullopt, sample_state());
  CHECK(first.sequence == 1);
  DiskVoterState changed = sample_state();
  changed.term = 3;
  changed.vote.reset();
  DiskRecord second = next_record(kCluster, 2, 5, 9, first, changed);
  CHECK(second.sequence == 2);
  Bytes slot0 = *encode_record(first, 4096);
  Bytes slot1 = *encode_record(second, 4096);
  slot1[100] ^= 1;  // the second write was torn
  auto cur = current_record({decode_record(slot0, kCluster, 2), decode_record(slot1, kCluster, 2)});
  REQUIRE(cur);
  REQUIRE(*cur);
  CHECK(**cur == first);
}

// ---- Votes ------------------------------------------------------------------------------------

TEST_CASE("quorum disk: vote rules") {
  DiskVoterState s = sample_state();  // term 2, voted 1, last 5/2
  SUBCASE("a lower term is refused, nothing written") {
    auto d = decide_disk_vote(s, {1, 2, 9, 9, false});
    CHECK(!d.grant);
    CHECK(!d.write);
  }
  SUBCASE("the same term and candidate: granted again without a write") {
    auto d = decide_disk_vote(s, {2, 1, 5, 2, false});
    CHECK(d.grant);
    CHECK(!d.write);
  }
  SUBCASE("the same term, another candidate: refused") {
    auto d = decide_disk_vote(s, {2, 3, 9, 2, false});
    CHECK(!d.grant);
    CHECK(d.reason.find("voted for node 1") != std::string::npos);
  }
  SUBCASE("a higher term, up to date: granted and written") {
    auto d = decide_disk_vote(s, {3, 3, 5, 2, false});
    CHECK(d.grant);
    REQUIRE(d.write);
    CHECK(d.write->term == 3);
    CHECK(d.write->vote == 3u);
    CHECK(d.write->tail == s.tail);
  }
  SUBCASE("a higher term, behind: refused, but the term is not recorded (pre-vote spares it)") {
    auto d = decide_disk_vote(s, {3, 3, 4, 1, false});
    CHECK(!d.grant);
    CHECK(d.reason.find("behind") != std::string::npos);
  }
  SUBCASE("up-to-date check: a later last term wins over a longer log") {
    CHECK(decide_disk_vote(s, {3, 3, 1, 3, false}).grant);
    CHECK(!decide_disk_vote(s, {3, 3, 99, 1, false}).grant);
    CHECK(!decide_disk_vote(s, {3, 3, 4, 2, false}).grant);
  }
  SUBCASE("pre-vote: same rules, nothing written") {
    auto d = decide_disk_vote(s, {3, 3, 5, 2, true});
    CHECK(d.grant);
    CHECK(!d.write);
    CHECK(!decide_disk_vote(s, {2, 3, 5, 2, true}).grant);  // the disk voted for 1 in term 2
    CHECK(!decide_disk_vote(s, {3, 3, 3, 1, true}).grant);
  }
  SUBCASE("a fresh disk votes for anyone in term 1") {
    CHECK(decide_disk_vote(DiskVoterState{}, {1, 2, 0, 0, false}).write->vote == 2u);
  }
}

TEST_CASE("quorum disk: at most one vote per term, whatever the order of requests") {
  // Every interleaving of requests from three candidates in terms 1..3, each applied to the state
  // the previous decisions wrote: no term ends up with two granted candidates.
  for (int order = 0; order < 729; ++order) {
    DiskVoterState s;
    std::map<Term, std::set<NodeId>> granted;
    int code = order;
    for (int step = 0; step < 6; ++step, code /= 3) {
      NodeId c = static_cast<NodeId>(code % 3 + 1);
      Term t = static_cast<Term>((step + code) % 3 + 1);
      auto d = decide_disk_vote(s, {t, c, 0, 0, false});
      if (d.write) s = *d.write;
      if (d.grant) granted[t].insert(c);
    }
    for (auto& [t, cs] : granted) CHECK(cs.size() == 1);
  }
}

// ---- Appends and checkpoints ------------------------------------------------------------------

TEST_CASE("quorum disk: append rules") {
  DiskVoterState s = sample_state();  // checkpoint 3/1, tail 4/1 5/2, term 2, commit 4
  SUBCASE("a stale leader is refused with the disk's term") {
    auto d = decide_disk_append(s, append(1, 5, 2, {}, 5));
    CHECK(!d.accept);
    CHECK(d.term == 2);
  }
  SUBCASE("a heartbeat that changes nothing writes nothing") {
    auto d = decide_disk_append(s, append(2, 5, 2, {}, 4));
    CHECK(d.accept);
    CHECK(!d.write);
    CHECK(d.match == 5);
  }
  SUBCASE("a heartbeat that moves the commit index is written") {
    auto d = decide_disk_append(s, append(2, 5, 2, {}, 9));
    CHECK(d.accept);
    REQUIRE(d.write);
    CHECK(d.write->commit == 5);  // never past what the append showed to match
  }
  SUBCASE("new entries are appended") {
    auto d = decide_disk_append(s, append(2, 5, 2, {entry(2, 6), entry(2, 7)}, 5));
    REQUIRE(d.write);
    CHECK(d.write->last_index() == 7);
    CHECK(d.match == 7);
    CHECK(d.write->commit == 5);
  }
  SUBCASE("a missing previous entry is refused with a hint") {
    auto d = decide_disk_append(s, append(2, 7, 2, {entry(2, 8)}, 5));
    CHECK(!d.accept);
    CHECK(d.match == 5);
    auto mismatch = decide_disk_append(s, append(2, 5, 1, {}, 5));
    CHECK(!mismatch.accept);
  }
  SUBCASE("a higher term is adopted even when the append is refused") {
    auto d = decide_disk_append(s, append(4, 9, 4, {}, 5));
    CHECK(!d.accept);
    REQUIRE(d.write);
    CHECK(d.write->term == 4);
    CHECK(!d.write->vote);
  }
  SUBCASE("a conflicting uncommitted suffix is truncated") {
    auto d = decide_disk_append(s, append(3, 4, 1, {entry(3, 5, "new"), entry(3, 6)}, 4));
    CHECK(d.accept);
    REQUIRE(d.write);
    CHECK(d.write->tail.size() == 3);
    CHECK(d.write->term_at(5) == 3u);
    CHECK(d.write->term == 3);
  }
  SUBCASE("a conflict at or below the commit index is refused") {
    auto d = decide_disk_append(s, append(3, 3, 1, {entry(3, 4)}, 4));
    CHECK(!d.accept);
    CHECK(!d.write);
    CHECK(d.reason.find("committed") != std::string::npos);
  }
  SUBCASE("entries at or below the checkpoint are skipped (committed)") {
    auto d = decide_disk_append(s, append(2, 1, 1, {entry(1, 2), entry(1, 3), entry(1, 4)}, 4));
    CHECK(d.accept);
    CHECK(!d.write);
    CHECK(d.match == 4);
    auto below = decide_disk_append(s, append(2, 1, 1, {}, 1));
    CHECK(below.accept);
    CHECK(below.match == 3);
  }
  SUBCASE("duplicated appends are idempotent") {
    auto once = decide_disk_append(s, append(2, 5, 2, {entry(2, 6)}, 5));
    REQUIRE(once.write);
    auto twice = decide_disk_append(*once.write, append(2, 5, 2, {entry(2, 6)}, 5));
    CHECK(twice.accept);
    CHECK(!twice.write);
  }
  SUBCASE("only appends") {
    Message m = append(2, 5, 2, {}, 4);
    m.type = MessageType::Vote;
    CHECK(!decide_disk_append(s, m).accept);
  }
}

TEST_CASE("quorum disk: checkpoints") {
  DiskVoterState s = sample_state();
  CHECK(!apply_checkpoint(s, snapshot(3, 1), 3));  // not newer
  CHECK(!apply_checkpoint(s, snapshot(2, 1), 2));
  auto keep = apply_checkpoint(s, snapshot(4, 1, "s4"), 4);
  REQUIRE(keep);
  CHECK(keep->checkpoint.index == 4);
  CHECK(keep->config_version == 4);
  REQUIRE(keep->tail.size() == 1);
  CHECK(keep->tail[0].index == 5);
  CHECK(keep->commit == 4);
  auto past = apply_checkpoint(s, snapshot(9, 3), 5);
  REQUIRE(past);
  CHECK(past->tail.empty());
  CHECK(past->commit == 9);
  CHECK(past->last_index() == 9);
  auto conflicting = apply_checkpoint(s, snapshot(5, 3), 5);
  REQUIRE(conflicting);
  CHECK(conflicting->tail.empty());
  // The result still round-trips through the codec.
  DiskRecord r = sample_record();
  r.state = *keep;
  CHECK(decode_record(*encode_record(r, 4096), kCluster, 2).record == r);
}

// ---- Starting from the checkpoint -------------------------------------------------------------

TEST_CASE("quorum disk: a starting node merges the disk's checkpoint and tail") {
  DiskVoterState disk = sample_state();  // checkpoint 3/1, tail 4/1 5/2, commit 4, term 2
  SUBCASE("a node that was down installs the newer checkpoint and copies the tail") {
    PersistentState node;
    node.hard = {1, 1, 2};
    node.entries = {entry(1, 1), entry(1, 2)};
    PersistentState out = merge_checkpoint(node, disk);
    CHECK(out.snapshot == disk.checkpoint);
    REQUIRE(out.entries.size() == 2);
    CHECK(out.entries[1] == disk.tail[1]);
    CHECK(out.hard.commit == 4);
    CHECK(out.hard.term == 2);
    CHECK(!out.hard.vote);
  }
  SUBCASE("a node whose log diverges past the checkpoint keeps its own suffix, commit only to the checkpoint") {
    PersistentState node;
    node.hard = {3, 3, 1};
    node.entries = {entry(1, 1), entry(1, 2), entry(1, 3), entry(3, 4)};
    PersistentState out = merge_checkpoint(node, disk);
    CHECK(out.snapshot.index == 3);
    REQUIRE(out.entries.size() == 1);
    CHECK(out.entries[0].term == 3);
    CHECK(out.hard.commit == 3);
    CHECK(out.hard.term == 3);
    CHECK(out.hard.vote == 3u);  // its own term is higher: nothing raised
  }
  SUBCASE("a node whose log conflicts with the checkpoint drops it") {
    PersistentState node;
    node.entries = {entry(1, 1), entry(1, 2), entry(2, 3)};
    PersistentState out = merge_checkpoint(node, disk);
    CHECK(out.snapshot == disk.checkpoint);
    CHECK(out.entries == disk.tail);  // then its (empty) log is a prefix: the tail is copied
  }
  SUBCASE("a node ahead of the disk keeps everything") {
    PersistentState node;
    node.hard = {2, 1, 6};
    node.snapshot = snapshot(6, 2, "mine");
    node.entries = {entry(2, 7)};
    PersistentState out = merge_checkpoint(node, disk);
    CHECK(out.snapshot == node.snapshot);
    CHECK(out.entries == node.entries);
    CHECK(out.hard == node.hard);
  }
  SUBCASE("the disk's configuration can never be older than what the node ends with") {
    PersistentState node;
    PersistentState out = merge_checkpoint(node, disk);
    CHECK(out.snapshot.index >= disk.checkpoint.index);
    // And a node up to date with the disk can win the disk's vote.
    Index last = out.snapshot.index + out.entries.size();
    Term last_term = out.entries.empty() ? out.snapshot.term : out.entries.back().term;
    CHECK(decide_disk_vote(disk, {out.hard.term + 1, 2, last, last_term, false}).grant);
  }
}

// ---- Timing -----------------------------------------------------------------------------------

TEST_CASE("quorum disk: timing validation") {
  QuorumTiming q;  // D 500, S 150, M 30
  DiskTiming d;
  CHECK(validate_disk_timing(d, q, Duration(400)));
  CHECK(minimum_challenge_wait(d, q, Duration(400)) == Duration(730));
  CHECK(minimum_challenge_wait(d, q, Duration(1000)) == Duration(1230));
  CHECK(!validate_disk_timing(d, q, Duration(1000)));  // W must also outwait the lease
  DiskTiming slow = d;
  slow.period = Duration(250);
  auto e = validate_disk_timing(slow, q, Duration(400));
  REQUIRE(!e);
  CHECK(e.error().message.find("self-stop") != std::string::npos);
  DiskTiming impatient = d;
  impatient.challenge_wait = Duration(729);
  CHECK(!validate_disk_timing(impatient, q, Duration(400)));
}

// ---- Defence and challenge --------------------------------------------------------------------

TEST_CASE("quorum disk: the holder's defence") {
  DefenseInput in{kKey1, held_by(kKey1), {kKey1}, true, std::nullopt};
  CHECK(decide_defense(in).action == DefenseAction::Hold);
  SUBCASE("a challenger is removed when we are legitimate") {
    in.keys = {kKey1, kKey2, kKey3, kKey2};
    auto d = decide_defense(in);
    CHECK(d.action == DefenseAction::Defend);
    CHECK(d.preempt == std::vector<std::uint64_t>{kKey2, kKey3});
  }
  SUBCASE("not legitimate: yield") {
    in.keys = {kKey1, kKey2};
    in.legitimate = false;
    CHECK(decide_defense(in).action == DefenseAction::Yield);
    in.keys = {kKey1};
    CHECK(decide_defense(in).action == DefenseAction::Hold);
  }
  SUBCASE("our leader challenges: hand over, even with other challengers") {
    in.keys = {kKey1, kKey3, kKey2};
    in.leader_key = kKey2;
    CHECK(decide_defense(in).action == DefenseAction::HandOver);
    in.keys = {kKey1, kKey3};
    CHECK(decide_defense(in).action == DefenseAction::Defend);
  }
  SUBCASE("our key gone: lost, whatever else") {
    in.reservation = held_by(kKey2);
    in.keys = {kKey2};
    CHECK(decide_defense(in).action == DefenseAction::Lost);
    in.keys = {kKey1, kKey2};
    CHECK(decide_defense(in).action == DefenseAction::Lost);
  }
  SUBCASE("vacant after a target restart: restore at once") {
    in.reservation = PrReservation{};
    in.keys = {};
    CHECK(decide_defense(in).action == DefenseAction::Restore);
  }
}

TEST_CASE("quorum disk: the challenger's steps") {
  ChallengeInput in;
  in.my_key = kKey2;
  in.reservation = held_by(kKey1);
  in.keys = {kKey1};
  in.now = MonoTime{1'000'000};
  in.wait = Duration(730);
  CHECK(decide_challenge(in).step == ChallengeStep::Register);
  in.registered_at = MonoTime{1'000'000};
  in.keys = {kKey1, kKey2};
  auto wait = decide_challenge(in);
  CHECK(wait.step == ChallengeStep::Wait);
  CHECK(wait.until == MonoTime{1'730'000});
  in.now = MonoTime{1'729'999};
  CHECK(decide_challenge(in).step == ChallengeStep::Wait);
  in.now = MonoTime{1'730'000};
  auto pre = decide_challenge(in);
  CHECK(pre.step == ChallengeStep::Preempt);
  CHECK(pre.holder == kKey1);
  SUBCASE("removed by the defender at any time: defended") {
    in.keys = {kKey1};
    CHECK(decide_challenge(in).step == ChallengeStep::Defended);
  }
  SUBCASE("another challenger preempted first: our key is gone, we lost the race") {
    in.reservation = held_by(kKey3);
    in.keys = {kKey3};
    CHECK(decide_challenge(in).step == ChallengeStep::Defended);
  }
  SUBCASE("vacant: reserve after the wait, or at once when we are the rightful holder") {
    in.reservation = PrReservation{};
    CHECK(decide_challenge(in).step == ChallengeStep::Reserve);
    in.now = MonoTime{1'100'000};
    CHECK(decide_challenge(in).step == ChallengeStep::Wait);
    in.rightful = true;
    CHECK(decide_challenge(in).step == ChallengeStep::Reserve);
  }
  SUBCASE("vacant after a release (clean shutdown): reserve at once, nobody to outwait") {
    in.reservation = PrReservation{};
    in.now = MonoTime{1'100'000};
    in.released = true;
    CHECK(decide_challenge(in).step == ChallengeStep::Reserve);
  }
  SUBCASE("a release does not skip the wait while someone holds it") {
    in.released = true;
    in.now = MonoTime{1'100'000};
    CHECK(decide_challenge(in).step == ChallengeStep::Wait);
  }
  SUBCASE("rightful does not skip the wait while someone else holds it") {
    in.rightful = true;
    in.now = MonoTime{1'100'000};
    CHECK(decide_challenge(in).step == ChallengeStep::Wait);
  }
  SUBCASE("already ours") {
    in.reservation = held_by(kKey2);
    CHECK(decide_challenge(in).step == ChallengeStep::Held);
  }
}

}  // namespace clusterd

// ---- Seeded random check of the write rule against a target without PREEMPT AND ABORT ---------

namespace clusterd {
namespace {

// A LUN as tgt behaves: a write accepted while its sender holds the reservation may land some
// steps later, after a preempt (no PREEMPT AND ABORT). Nodes race for the reservation and ask
// the disk for votes with read -> decide -> write -> confirm; a vote counts only once confirmed.
struct RaceModel {
  static constexpr NodeId kNodes = 3;
  DiskLayout layout{kCluster, kNodes, 4096};
  std::map<std::uint64_t, Bytes> slots;  // offset -> bytes
  std::optional<NodeId> holder;
  std::uint32_t pr_generation = 0;
  struct InFlight {
    std::uint64_t offset;
    Bytes bytes;
    int lands_at;
  };
  std::vector<InFlight> in_flight;
  struct Node {
    std::uint64_t epoch = 0;
    std::uint32_t generation = 0;
    std::optional<DiskRecord> last;  // own last record
    std::optional<DiskRecord> pending;
    std::optional<DiskVoteRequest> pending_vote;
    int confirm_at = -1;
  };
  std::map<NodeId, Node> nodes;
  std::map<Term, std::set<NodeId>> counted;

  std::vector<DecodedSlot> read_all() {
    std::vector<DecodedSlot> out;
    for (NodeId n = 1; n <= kNodes; ++n) {
      for (int k = 0; k < 2; ++k) {
        auto it = slots.find(layout.slot_offset(n, k));
        Bytes b = it == slots.end() ? Bytes(4096, 0) : it->second;
        out.push_back(decode_record(b, kCluster, n));
      }
    }
    return out;
  }
  DiskVoterState current() {
    auto r = current_record(read_all());
    REQUIRE(r);
    return *r ? (*r)->state : DiskVoterState{};
  }
  void acquire(NodeId n) {
    pr_generation += 2;  // REGISTER and PREEMPT (or RESERVE after REGISTER)
    holder = n;
    nodes[n].epoch = next_epoch(read_all());
    nodes[n].generation = pr_generation;
    nodes[n].pending.reset();  // a new tenure forgets an unconfirmed write
  }
  void ask(NodeId n, Term term, int step, SplitMix64& rng) {
    Node& me = nodes[n];
    if (holder != n || me.pending) return;
    DiskVoteRequest req{term, n, 0, 0, false};
    auto d = decide_disk_vote(current(), req);
    if (!d.write) return;
    DiskRecord r = next_record(kCluster, n, me.epoch, me.generation, me.last, *d.write);
    std::uint64_t offset = layout.slot_offset(n, static_cast<int>(r.sequence % 2));
    in_flight.push_back({offset, *encode_record(r, 4096), step + static_cast<int>(rng.below(4))});
    me.pending = r;
    me.pending_vote = req;
    me.confirm_at = in_flight.back().lands_at + 1;
  }
  void land(int step) {
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      if (it->lands_at <= step) {
        slots[it->offset] = it->bytes;
        it = in_flight.erase(it);
      } else {
        ++it;
      }
    }
  }
  void confirm(NodeId n, int step) {
    Node& me = nodes[n];
    if (!me.pending || step < me.confirm_at) return;
    if (holder == n) {  // READ RESERVATION after the write completed: still ours
      counted[me.pending->state.term].insert(n);
      me.last = me.pending;
    }
    me.pending.reset();
  }
  // Every counted vote is visible in the current record: same term and vote, or a later term.
  void check() {
    DiskVoterState s = current();
    for (auto& [term, who] : counted) {
      REQUIRE(who.size() == 1);
      CHECK(s.term >= term);
      if (s.term == term) CHECK(s.vote == *who.begin());
    }
  }
};

}  // namespace

TEST_CASE("quorum disk: racing holders with late-landing writes never count two votes in a term") {
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    CAPTURE(seed);
    SplitMix64 rng(seed);
    RaceModel m;
    for (int step = 0; step < 200; ++step) {
      NodeId n = static_cast<NodeId>(rng.below(RaceModel::kNodes) + 1);
      switch (rng.below(3)) {
        case 0: m.acquire(n); break;
        case 1: m.ask(n, static_cast<Term>(rng.below(6) + 1 + step / 20), step, rng); break;
        default: break;
      }
      m.land(step);
      for (NodeId k = 1; k <= RaceModel::kNodes; ++k) m.confirm(k, step);
      m.check();
    }
  }
}

}  // namespace clusterd
