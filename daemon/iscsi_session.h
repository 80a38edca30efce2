// One iSCSI session to one LUN, through libiscsi: the block device of the per-disk helper and
// the nexus its persistent reservations belong to (docs/disks.md). Synchronous: only the helper
// process uses it, never the daemon's loop. Each command is built as a scsi_task, sent with
// iscsi_scsi_command_async and waited for by one small poll loop with a deadline (wait()), so an
// asynchronous variant on sd-event can reuse the building and judging and replace only wait().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "block_device.h"
#include "clock.h"
#include "error.h"
#include "handle.h"
#include "scsi_command.h"
#include "scsi_pr.h"

struct iscsi_context;
struct scsi_task;

namespace clusterd {

/// Where the LUN is and who we are.
struct IscsiTarget {
  std::vector<std::string> portals;  ///< "host:port" or "[v6]:port", tried in order.
  std::string target_iqn;
  int lun = 1;
  std::string initiator_iqn;  ///< The node's own initiator name (one per node).
  /// Every command, the connect and the login fail after this long without an answer (our
  /// own deadline: libiscsi's timeout counts whole seconds and may fire up to one early).
  /// Milliseconds: the quorum LUN's commands have deadlines of tens of ms (docs/quorum-disk.md).
  std::chrono::milliseconds timeout{5000};
  int retries = 5;  ///< Sends per command while the target answers "not executed, retry".
};

/// The unit attentions seen since they were last taken (see IscsiSession::take_attentions()).
struct AttentionLog {
  bool power_on_reset = false;           ///< 29/xx: reservations may be gone.
  bool reservations_preempted = false;   ///< 2A/03: another node preempted us.
  bool reservations_released = false;    ///< 2A/04
  bool registrations_preempted = false;  ///< 2A/05
  bool other = false;
  /// Records one attention.
  void add(UnitAttention attention);
  /// True when none was seen.
  bool empty() const;
};

/// Where a libiscsi callback reports one completion.
struct IscsiCompletion {
  bool finished = false;
  int status = -1;  ///< libiscsi's status: a SCSI status or SCSI_STATUS_CANCELLED/ERROR/TIMEOUT.
};

/// Destroys a libiscsi context; commands still in flight complete as CANCELLED.
struct IscsiContextFree {
  void operator()(iscsi_context* context) const noexcept;
};
using IscsiContextPtr = std::unique_ptr<iscsi_context, IscsiContextFree>;

/// A logged-in session to one LUN with automatic reconnect off: when the connection drops,
/// every call fails Unreachable until reconnect() makes a new (unregistered) nexus.
class IscsiSession final : public BlockDevice, public PersistentReservations {
 public:
  /// Logs in at the first portal that answers, then reads the capacity. The error names every
  /// portal tried and why it failed.
  static Result<std::unique_ptr<IscsiSession>> connect(const IscsiTarget& target);
  ~IscsiSession() override;
  IscsiSession(const IscsiSession&) = delete;
  IscsiSession& operator=(const IscsiSession&) = delete;

  /// Drops the current connection (if any) and logs in again: a NEW I_T nexus, which holds no
  /// registration until the caller registers again (PrClient::reclaim()).
  Result<void> reconnect();
  /// Closes the connection without logging out (for tests: what a crash looks like).
  void drop();
  /// True while logged in (until a command finds the connection gone, or drop()).
  bool connected() const { return static_cast<bool>(context_); }
  /// The portal of the current (or last) login.
  const std::string& portal() const { return portal_; }
  /// The unit attentions seen since the last call, cleared by it. Fresh logins report 29/00
  /// (tgt raises it on every new nexus), so callers look at what happens after that.
  AttentionLog take_attentions();

  // BlockDevice
  std::uint32_t block_size() const override { return capacity_.block_size; }
  std::uint64_t block_count() const override { return capacity_.block_count; }
  Result<void> read(std::uint64_t lba, std::uint32_t count, std::span<std::byte> out) override;
  Result<void> write(std::uint64_t lba, std::uint32_t count,
                     std::span<const std::byte> data) override;
  /// SYNCHRONIZE CACHE(16) over the whole LUN, (10) when the target lacks (16).
  Result<void> flush() override;
  /// WRITE(16) with FUA: durable when it returns, without a flush.
  Result<void> write_through(std::uint64_t lba, std::uint32_t count,
                             std::span<const std::byte> data);
  /// TEST UNIT READY (allowed under any reservation: a liveness probe of the nexus).
  Result<void> test_unit_ready();

  // PersistentReservations
  Result<void> pr_out(PrOutAction action, PrType type, std::uint64_t key,
                      std::uint64_t sa_key) override;
  Result<PrKeys> pr_read_keys() override;
  Result<PrReservation> pr_read_reservation() override;
  Result<PrCapabilities> pr_report_capabilities() override;
  Result<bool> supports_preempt_and_abort() override;

 private:
  /// One command: how to build its task (fresh for every send), and its data buffers.
  struct Command;
  explicit IscsiSession(const IscsiTarget& target) : target_(target) {}
  Result<void> login_anywhere();
  Result<void> new_context();
  Result<void> login(const std::string& portal);
  Result<void> read_capacity();
  Result<void> execute(const Command& command);
  Result<int> send_once(const Command& command, scsi_task* task);
  Result<void> wait(const bool& finished, MonoTime deadline, const char* what);
  Result<std::vector<std::uint8_t>> pr_in(PrInAction action, std::uint16_t length);
  Result<void> transfer(const char* what, std::uint64_t lba, std::uint32_t count,
                        std::size_t bytes) const;
  Result<void> write16(std::uint64_t lba, std::uint32_t count, std::span<const std::byte> data,
                       bool fua);

  IscsiTarget target_;
  /// libiscsi may report on a connect again when that connection dies much later (iscsi.h),
  /// so the connect's completion lives as long as the session; declared before context_ so
  /// the context goes first.
  IscsiCompletion connect_done_;
  IscsiContextPtr context_;
  std::string portal_;
  Capacity capacity_;
  AttentionLog attentions_;
  int preempt_and_abort_ = -1;  ///< -1 not asked yet, else 0/1.
};

}  // namespace clusterd
