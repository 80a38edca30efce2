// The quorum disk as a Raft voter: the pure core (docs/quorum-disk.md). The on-disk codec of the
// reserved area (header, per-node slot pairs, records with epoch/PR generation/sequence and a
// checksum), the choice of the current record, and the decisions the node acting for the disk
// takes: grant the disk's vote, accept an append or a checkpoint, defend or lose the
// reservation, challenge a holder, and merge the disk's checkpoint into a starting node's state.
// No I/O here: the shell reads and writes the LUN and confirms its hold around these functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "clock.h"
#include "error.h"
#include "quorum_guard.h"
#include "raft_message.h"
#include "scsi_pr.h"

namespace clusterd {

/// The disk's id in the Raft voter map (no node has it: node ids are 1..255).
inline constexpr NodeId kDiskVoterId = 0xffffffff;

/// Block size of the reserved area; the header takes the first block.
inline constexpr std::uint32_t kDiskBlockSize = 4096;
/// Format of the header and of the records this code writes (and the newest it reads).
inline constexpr std::uint16_t kDiskFormat = 1;
/// Bytes before a record's payload.
inline constexpr std::uint32_t kRecordHeaderSize = 48;

// ---- Layout -----------------------------------------------------------------------------------

/// The reserved area's geometry, from its header block.
struct DiskLayout {
  std::uint32_t cluster_id = 0;
  std::uint16_t slot_count = 16;           ///< Nodes 1..slot_count have a slot pair each.
  std::uint32_t slot_size = 64 * 1024;     ///< Bytes per slot, a multiple of kDiskBlockSize.
  friend bool operator==(const DiskLayout&, const DiskLayout&) = default;

  /// Byte offset of slot `which` (0 or 1) of node `node` (1..slot_count).
  std::uint64_t slot_offset(NodeId node, int which) const;
  /// Bytes the whole area takes (header and every slot).
  std::uint64_t size() const;
};

/// Whether the layout is usable: cluster id set, slots present, slot size a multiple of the
/// block size and large enough for a record header.
Result<void> validate_layout(const DiskLayout& layout);
/// The header block (kDiskBlockSize bytes).
Bytes encode_header(const DiskLayout& layout);
/// Parses the header block; a blank, foreign, corrupt or newer-format header is an error.
Result<DiskLayout> decode_header(std::span<const std::uint8_t> block);

// ---- Records ----------------------------------------------------------------------------------

/// The disk voter's Raft state: what a node voter keeps in raft_storage, kept on the LUN.
struct DiskVoterState {
  Term term = 0;
  std::optional<NodeId> vote;  ///< In `term`.
  Index commit = 0;            ///< Known committed (at least checkpoint.index).
  std::uint64_t config_version = 0;  ///< Of the checkpoint, readable without parsing it.
  Snapshot checkpoint;               ///< The committed state as of checkpoint.index.
  std::vector<Entry> tail;           ///< Entries after the checkpoint, consecutive.
  friend bool operator==(const DiskVoterState&, const DiskVoterState&) = default;

  /// Index of the last entry (of the tail, else of the checkpoint).
  Index last_index() const;
  /// Term of the last entry (of the tail, else of the checkpoint).
  Term last_term() const;
  /// Term of the entry at `index`, if the disk knows it (checkpoint index or the tail).
  std::optional<Term> term_at(Index index) const;
};

/// One record in a slot.
struct DiskRecord {
  std::uint32_t cluster_id = 0;
  NodeId writer = 0;                 ///< Must own the slot it is in.
  std::uint64_t epoch = 0;           ///< The writer's tenure as holder.
  std::uint32_t pr_generation = 0;   ///< PRgeneration the writer saw confirming its hold.
  std::uint64_t sequence = 0;        ///< Counts the writer's records.
  DiskVoterState state;
  /// The writer's last record of its tenure: it released the reservation and unregistered (a
  /// clean shutdown), so a vacancy after it is not a tgtd restart's and nobody need wait W.
  bool released = false;
  friend bool operator==(const DiskRecord&, const DiskRecord&) = default;
};

/// The record as the bytes of one slot (`slot_size` long, zero-padded); an error when the
/// state does not fit.
Result<Bytes> encode_record(const DiskRecord& record, std::uint32_t slot_size);

/// Why a slot holds no usable record.
enum class SlotProblem { Blank, Foreign, Torn, NewerFormat, WrongWriter, Malformed };
inline constexpr int kSlotProblemCount = 6;
/// "blank", "foreign", "torn", "newer-format", "wrong-writer", "malformed".
const char* to_string(SlotProblem problem);

/// A slot decoded: the record, or why there is none (with one sentence).
struct DecodedSlot {
  std::optional<DiskRecord> record;
  std::optional<SlotProblem> problem;
  std::string reason;
};

/// Decodes slot bytes that node `owner`'s slot holds, for cluster `cluster_id`.
DecodedSlot decode_record(std::span<const std::uint8_t> slot, std::uint32_t cluster_id,
                          NodeId owner);

/// True when `a` supersedes `b`: greater (epoch, pr_generation, sequence).
bool record_newer(const DiskRecord& a, const DiskRecord& b);

/// The current record among decoded slots (nullopt: no record yet, a fresh disk). A slot with a
/// newer format is an error: ignoring it could forget a vote or a commit. Blank and torn slots
/// are skipped (a torn write was never confirmed, so it never counted).
Result<std::optional<DiskRecord>> current_record(const std::vector<DecodedSlot>& slots);

/// The record a holder writes next: `state`, in its tenure `epoch`, after `previous` (its own
/// last record, or nullopt).
DiskRecord next_record(std::uint32_t cluster_id, NodeId writer, std::uint64_t epoch,
                       std::uint32_t pr_generation, const std::optional<DiskRecord>& previous,
                       DiskVoterState state);

/// The epoch of a new tenure: one more than any record seen.
std::uint64_t next_epoch(const std::vector<DecodedSlot>& slots);

// ---- The disk's vote and log ------------------------------------------------------------------

/// A (pre-)vote request addressed to the disk.
struct DiskVoteRequest {
  Term term = 0;
  NodeId candidate = 0;
  Index last_index = 0;
  Term last_term = 0;
  bool pre_vote = false;
};

/// What the disk answers, and what must be written and confirmed before the answer counts.
struct DiskVoteDecision {
  bool grant = false;
  std::optional<DiskVoterState> write;  ///< Nullopt: nothing changes on disk.
  std::string reason;                   ///< Why (for traces and refusals).
};

/// Raft's vote rules for the disk voter: no vote below the disk's term; a higher term is
/// adopted (vote cleared); grant iff not voted for another in the term and the candidate's log
/// is at least as up to date as the disk's. A pre-vote changes nothing.
DiskVoteDecision decide_disk_vote(const DiskVoterState& state, const DiskVoteRequest& request);

/// What the disk answers an Append, and what must be written first.
struct DiskAppendDecision {
  bool accept = false;
  std::optional<DiskVoterState> write;  ///< Nullopt: nothing changes (a plain heartbeat).
  Index match = 0;  ///< Accepted: the disk's last index matching the leader; refused: a hint.
  Term term = 0;    ///< The disk's term after the decision (tells a stale leader).
  std::string reason;
};

/// Raft's follower rules for an Append (`message.type` Append) on the disk's log: refuse a
/// lower term; log matching against checkpoint and tail; skip what the disk has, truncate a
/// conflicting uncommitted suffix, append the rest; commit = min(leader commit, last new).
DiskAppendDecision decide_disk_append(const DiskVoterState& state, const Message& message);

/// The committed `checkpoint` (with its configuration version) replaces the disk's if newer;
/// the tail up to it is dropped. Nullopt when the disk already has it or a newer one. The
/// caller guarantees `checkpoint` is committed (it is the leader's applied state).
std::optional<DiskVoterState> apply_checkpoint(const DiskVoterState& state,
                                               const Snapshot& checkpoint,
                                               std::uint64_t config_version);

/// Merges the disk's state into what a starting node persisted: a newer checkpoint becomes its
/// snapshot (keeping its log only if it holds the checkpoint's entry with its term), the tail
/// is copied when the node's log is a prefix of the disk's, the term is raised to the disk's
/// (vote cleared when it was raised), the commit index to the disk's.
PersistentState merge_checkpoint(const PersistentState& node, const DiskVoterState& disk);

// ---- The reservation race ---------------------------------------------------------------------

/// The defence period and the challenge wait (docs/quorum-disk.md, "Timing").
struct DiskTiming {
  Duration period{100};          ///< P: how often the holder checks keys and reservation.
  Duration command_timeout{50};  ///< T: the deadline of one command on the quorum LUN.
  Duration challenge_wait{730};  ///< W: how long a challenger's key must survive.
};

/// Checks P + 2T < D - S - M and W >= max(D, E) + P + 2T + M for the quorum timing and the
/// minimum election timeout E.
Result<void> validate_disk_timing(const DiskTiming& disk, const QuorumTiming& quorum,
                                  Duration election_timeout_min);
/// The smallest valid W for these settings.
Duration minimum_challenge_wait(const DiskTiming& disk, const QuorumTiming& quorum,
                                Duration election_timeout_min);

/// What the holder sees at a check (READ KEYS, READ RESERVATION) and knows.
struct DefenseInput {
  std::uint64_t my_key = 0;
  PrReservation reservation;
  std::vector<std::uint64_t> keys;
  /// The nodes we hear, with the disk, hold a quorum (or we are the disk-only holder).
  bool legitimate = false;
  /// The key of the leader we follow in the current term, when it is not us.
  std::optional<std::uint64_t> leader_key;
};

/// The holder's move.
enum class DefenseAction {
  Hold,      ///< Ours and unchallenged: the check confirms the disk (c_disk = its send time).
  Defend,    ///< Ours, challenged: PREEMPT `preempt` (registrations only), then we still hold.
  HandOver,  ///< Our leader challenges: RELEASE so it can RESERVE; we stop counting the disk.
  Yield,     ///< Challenged but not legitimate: let it go; we stop counting the disk.
  Restore,   ///< Vacant (the target lost it): REGISTER and RESERVE at once.
  Lost,      ///< Another key holds it: stop counting the disk; stop groups that needed it.
};
inline constexpr int kDefenseActionCount = 6;
/// "hold", "defend", "hand-over", "yield", "restore", "lost".
const char* to_string(DefenseAction action);

/// The holder's decision, and the keys to preempt when defending.
struct DefenseDecision {
  DefenseAction action = DefenseAction::Hold;
  std::vector<std::uint64_t> preempt;
};

/// Decides a check's outcome for the node that believes it holds the disk.
DefenseDecision decide_defense(const DefenseInput& input);

/// What a node that needs the disk and does not hold it sees and knows.
struct ChallengeInput {
  std::uint64_t my_key = 0;
  PrReservation reservation;
  std::vector<std::uint64_t> keys;
  /// When our key was registered for this challenge (our clock); nullopt: not yet.
  std::optional<MonoTime> registered_at;
  MonoTime now;
  Duration wait{730};
  /// We wrote the current record (the rightful holder after a tgtd restart): no wait.
  bool rightful = false;
  /// The current record says its writer released the disk (a clean shutdown): a vacancy is
  /// free to take at once, nobody is left to outwait.
  bool released = false;
};

/// The challenger's next step.
enum class ChallengeStep {
  Register,  ///< REGISTER our key; the wait starts when it is confirmed.
  Wait,      ///< Our key is registered; the wait is not over.
  Defended,  ///< Our key was removed: the holder is alive and defends. Give up for now.
  Preempt,   ///< The wait is over: PREEMPT `holder` (first preempt wins), then confirm.
  Reserve,   ///< Vacant and we may take it: RESERVE, then confirm.
  Held,      ///< We hold it already.
};
inline constexpr int kChallengeStepCount = 6;
/// "register", "wait", "defended", "preempt", "reserve", "held".
const char* to_string(ChallengeStep step);

/// The challenger's decision; `holder` set for Preempt, `until` for Wait.
struct ChallengeDecision {
  ChallengeStep step = ChallengeStep::Register;
  std::uint64_t holder = 0;
  std::optional<MonoTime> until;
};

/// Decides the challenger's next step.
ChallengeDecision decide_challenge(const ChallengeInput& input);

}  // namespace clusterd
