// The quorum disk arbiter: the process that acts for the disk voter on this node
// (docs/quorum-disk.md). It holds one iSCSI session to the quorum LUN, answers the Raft
// messages this node sends to kDiskVoterId by the write-then-confirm rule, defends the
// reservation while it holds it and challenges for it when this node needs the disk, and tells
// the daemon when the disk confirms it (for the quorum guard) and when it lost the disk.
//
// Synchronous on purpose: it runs in clusterd-qdisk, never on the daemon's loop, so a command
// may block for its deadline T without delaying a heartbeat. Passive: the helper's loop feeds it
// frames and time and sends what take_output() returns.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "block_device.h"
#include "clock.h"
#include "error.h"
#include "iscsi_session.h"
#include "qdisk_protocol.h"
#include "quorum_disk.h"
#include "scsi_pr.h"

namespace clusterd {

/// What the arbiter needs of the quorum LUN: blocks and persistent reservations on one I_T
/// nexus, and a new nexus when the old one is in doubt.
class QuorumLun {
 public:
  virtual ~QuorumLun() = default;
  /// The LUN's blocks.
  virtual BlockDevice& blocks() = 0;
  /// Writes that are durable when they return (FUA on a LUN).
  virtual Result<void> write_durable(std::uint64_t lba, std::uint32_t count,
                                     std::span<const std::byte> data) = 0;
  /// Persistent reservations on the current nexus.
  virtual PersistentReservations& reservations() = 0;
  /// Logs in again: a new nexus, which holds no registration.
  virtual Result<void> reconnect() = 0;
};

/// The quorum LUN over an IscsiSession (clusterd-qdisk's).
Result<std::unique_ptr<QuorumLun>> open_iscsi_quorum_lun(const IscsiTarget& target);

/// Who the arbiter is and how fast it moves.
struct ArbiterOptions {
  std::uint32_t cluster_id = 0;
  NodeId node_id = 0;
  DiskTiming timing;
  /// A challenger the holder defended against waits this long before it tries again.
  Duration backoff{1000};
  /// Slots laid out when this node formats a blank LUN (node ids 1..slot_count; at least our
  /// own id). The daemon passes the configuration's highest node id, at least 32.
  std::uint16_t slot_count = 32;
  std::uint32_t slot_size = 64 * 1024;
};

/// clusterd-qdisk's command line: the LUN, who we are, the timing, the control fd.
struct QdiskHelperOptions {
  std::vector<std::string> portals;  ///< --portal HOST[:PORT], repeatable.
  std::string target;                ///< --target IQN.
  int lun = 1;                       ///< --lun N.
  std::string initiator;             ///< --initiator IQN.
  ArbiterOptions arbiter;            ///< --cluster-id, --node-id, --period/--timeout/--wait/--backoff MS, --slots N.
  int control_fd = 3;                ///< --control-fd.
};

/// The helper's argv for `options` (program `helper`).
std::vector<std::string> qdisk_helper_argv(const std::string& helper,
                                           const QdiskHelperOptions& options);
/// Parses the arguments after the program name; the error names the offending argument.
Result<QdiskHelperOptions> parse_qdisk_args(std::span<const char* const> args);

/// The disk voter's agent on one node.
class QdiskArbiter {
 public:
  QdiskArbiter(QuorumLun& lun, ArbiterOptions options);

  /// Reads the header and the current record (reads are open to every node) and queues a
  /// Record frame: the checkpoint the daemon merges before it builds its RaftNode.
  Result<void> start(MonoTime now);
  /// One frame from the daemon.
  void handle(const QdiskFrame& frame, MonoTime now);
  /// Runs what is due: the holder's defence, the challenger's next step.
  void tick(MonoTime now);
  /// When tick() has something to do next.
  MonoTime next_deadline() const;
  /// Frames for the daemon, in order; clears them.
  std::vector<QdiskFrame> take_output();

  /// True while this node holds the disk (a confirmed tenure).
  bool holding() const { return held_; }
  /// True once a Release was handled: the helper exits after sending what is queued.
  bool finished() const { return finished_; }
  /// The disk's state as last read or written.
  const QdiskRecord& record() const { return record_; }

 private:
  // Reading and writing the reserved area.
  Result<void> read_area();
  Result<std::optional<DiskLayout>> read_header();
  Result<void> format();
  Result<std::vector<DecodedSlot>> read_slots(const DiskLayout& layout);
  Result<void> write_state(const DiskVoterState& state, bool released = false);

  // The reservation.
  struct Check {
    MonoTime sent;
    PrKeys keys;
    PrReservation reservation;
  };
  Result<Check> check();
  bool defend_round();
  void challenge(MonoTime now);
  void take_up(const std::string& how);
  void release();
  std::string release_held();
  void defended(const std::string& why);
  Result<void> begin_tenure(const std::string& how);
  Result<void> register_key();
  Result<void> restore();
  void io_failed(const Error& error);
  void lose(std::string reason);
  bool wants_disk() const;
  std::optional<std::uint64_t> leader_key() const;
  std::string who(std::uint64_t key) const;

  // The voter.
  void on_message(const Message& message);
  void answer_pending();
  void answer_vote(const Message& request);
  void answer_append(const Message& request);
  void answer_snapshot(const Message& request);
  void answer_pre_vote_unheld(const Message& request);
  void on_checkpoint(const Snapshot& snapshot, std::uint64_t config_version);
  void reply(Message message);
  void publish();

  QuorumLun& lun_;
  ArbiterOptions options_;
  std::uint64_t key_;
  MonoTime now_;

  // The disk as known.
  std::optional<DiskLayout> layout_;
  QdiskRecord record_;
  QdiskRecord published_;
  bool rightful_ = false;  ///< We wrote the current record.
  bool released_ = false;  ///< The current record's writer released the disk (clean shutdown).
  NodeId current_writer_ = 0;

  // The tenure.
  bool held_ = false;
  std::uint64_t epoch_ = 0;
  std::uint32_t generation_ = 0;
  std::optional<DiskRecord> last_written_;
  MonoTime next_check_;

  // The challenge.
  std::optional<MonoTime> registered_at_;
  MonoTime backoff_until_;
  MonoTime idle_check_;
  bool yielded_ = false;
  bool finished_ = false;

  QdiskFacts facts_;
  std::optional<Message> pending_vote_;
  std::optional<Message> pending_append_;
  std::vector<QdiskFrame> output_;
};

}  // namespace clusterd
