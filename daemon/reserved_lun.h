// The LUN of a disk resource as the per-disk helper serves it: one iSCSI session (the nexus the
// reservation belongs to) under an Exclusive Access reservation held with this node's key, where
// every I/O failure is judged (docs/disk-resource.md):
//   - RESERVATION CONFLICT: another node preempted us (fenced). Every further I/O fails with EIO
//     and fenced() says who holds the LUN now; never retried.
//   - connection lost or timed out: reconnect once (a new nexus), reclaim the reservation on it
//     (PrClient::reclaim), retry the I/O once. A reclaim that finds another holder: fenced.
//   - reservation vacant (the target lost its state: tgt has no APTPL): I/O fails with EIO until
//     the daemon, which alone knows the group is still placed here, says restore.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "block_device.h"
#include "disk_helper.h"
#include "error.h"
#include "iscsi_session.h"
#include "pr_client.h"

namespace clusterd {

/// How the helper comes to hold the LUN at start.
enum class LunStart {
  Acquire,   ///< Reserve; another holder fails the start ("held by node N").
  TakeOver,  ///< Preempt whoever holds it (the daemon knows the old owner is gone).
};

/// Who holds the LUN and who is registered, as READ RESERVATION and READ KEYS show it.
struct LunReservationView {
  std::optional<std::uint64_t> holder;
  std::string type;  ///< "exclusive-access", or empty without a holder.
  std::vector<std::uint64_t> keys;
};

/// One line per fact: "holder node 2 exclusive-access" (or "holder none") then "key node 2"
/// for each registration, with keys described for `cluster_id`.
std::string describe_reservation(const LunReservationView& view, std::uint32_t cluster_id);

/// Connects without touching the reservation and reads who holds the LUN and who is registered
/// (clusterd-disk --show-reservation; READ is allowed under any reservation type).
Result<LunReservationView> read_lun_reservation(const IscsiTarget& target);

/// A LUN held under this node's reservation; see the top of this file.
class ReservedLun final : public BlockDevice, public ReservationGuard {
 public:
  /// Logs in, then acquires (or takes over) and confirms the reservation.
  static Result<std::unique_ptr<ReservedLun>> open(const IscsiTarget& target,
                                                   std::uint32_t cluster_id,
                                                   std::uint32_t node_id, LunStart how);
  ~ReservedLun() override;

  // BlockDevice
  std::uint32_t block_size() const override { return session_->block_size(); }
  std::uint64_t block_count() const override { return session_->block_count(); }
  Result<void> read(std::uint64_t lba, std::uint32_t count, std::span<std::byte> out) override;
  Result<void> write(std::uint64_t lba, std::uint32_t count,
                     std::span<const std::byte> data) override;
  Result<void> flush() override;

  // ReservationGuard
  Result<void> check_reservation() override;
  Result<void> restore_reservation() override;
  Result<void> release_reservation() override;
  const std::optional<std::string>& fenced() const override { return fenced_; }
  void set_fenced_handler(std::function<void()> handler) override {
    on_fenced_ = std::move(handler);
  }

  /// True while the target has lost the reservation and the daemon has not said restore.
  bool vacant() const { return vacant_; }
  /// The session (tests drop its connection).
  IscsiSession& session() { return *session_; }

 private:
  ReservedLun(std::unique_ptr<IscsiSession> session, std::uint32_t cluster_id,
              std::uint32_t node_id);
  Result<void> io(const char* what, const std::function<Result<void>()>& op);
  Result<void> judge(const char* what, const Error& error);
  Result<void> reconnect();
  Result<void> refuse_io(const char* what) const;
  void fence(const Error& why);

  std::unique_ptr<IscsiSession> session_;
  PrClient pr_;
  std::uint32_t cluster_id_;
  bool vacant_ = false;
  std::optional<std::string> fenced_;
  std::function<void()> on_fenced_;
};

}  // namespace clusterd
