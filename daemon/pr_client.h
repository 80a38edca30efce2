// The persistent-reservation sequences the disk resource needs, each on one nexus and each
// ending with READ RESERVATION confirming that we hold the LUN as Exclusive Access (the step
// that catches "another node took it meanwhile"). The protocol is in docs/disks.md.
//
// Every sequence that ends holding the LUN (and the periodic check) then removes every other
// registration, so READ KEYS shows the owner alone; docs/disks.md argues why that is safe.
//
// Failures carry an IoFailure kind (scsi_command.h): Conflict when another node holds the LUN
// (we are fenced, or may not take it), Vacant when nobody does (the target lost its state:
// call restore() if this node is still the rightful owner), Unreachable/Timeout when the
// target did not answer (reconnect, then reclaim()).
#pragma once

#include <cstdint>
#include <vector>

#include "error.h"
#include "scsi_pr.h"

namespace clusterd {

/// Runs the sequences for one node on one device (an IscsiSession in the per-disk helper).
class PrClient {
 public:
  /// `device` must outlive this object; the key is reservation_key(cluster_id, node_id).
  PrClient(PersistentReservations& device, std::uint32_t cluster_id, std::uint32_t node_id);

  /// This node's key.
  std::uint64_t key() const { return key_; }

  /// First start: register, reserve. Another holder: Conflict "reserved by node N" (and our
  /// registration is withdrawn again), unless `take_over` is set, which preempts it.
  Result<void> acquire(bool take_over = false);
  /// After a node failure: register, then PREEMPT (AND ABORT where the target has it) the
  /// holder's key, which fences it, and remove every other registration.
  /// `victims` empty: whoever holds it; otherwise only a holder among them is preempted.
  Result<void> take_over(const std::vector<std::uint64_t>& victims = {});
  /// After a deliberate reconnect (a new nexus): register ignoring the existing key, preempt
  /// our own old key (moving the reservation to this nexus), confirm. Conflict if another
  /// node took the LUN meanwhile; Vacant if the target lost the reservation.
  Result<void> reclaim();
  /// After a target reset lost the reservation (29/00, READ RESERVATION empty): the rightful
  /// owner registers and reserves again. Conflict if another node reserved first.
  Result<void> restore();
  /// Offline: release the reservation and withdraw every registration of our key. Succeeds
  /// once neither is left, also when another node had fenced us.
  Result<void> release();
  /// IsAlive: READ RESERVATION shows us holding the LUN as Exclusive Access; then every other
  /// registration is removed (the owner's defence against stale keys).
  Result<void> check();

 private:
  Result<void> register_here();
  /// Unregisters our key on this nexus, best effort (after losing the LUN).
  void withdraw();
  Result<void> hold(const TakeOverPolicy& policy, const char* sequence);
  Result<void> hold_once(const TakeOverPolicy& policy, const char* sequence,
                         bool* step_conflicted);
  Result<void> preempt(std::uint64_t victim);
  /// Once we hold the LUN: removes every registration but ours on this nexus (a fenced
  /// owner's key, a helper killed in the middle of a reclaim): MSCS's defence.
  Result<void> evict_others(const char* sequence);
  Result<void> confirm(const char* sequence);
  Result<void> confirm_released();
  std::string who(std::uint64_t key) const;

  PersistentReservations& device_;
  std::uint32_t cluster_id_;
  std::uint64_t key_;
};

}  // namespace clusterd
