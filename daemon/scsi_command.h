// Pure SCSI parts the iSCSI session stands on: how a completed command is judged (done, retry,
// or which kind of failure), the unit attentions that matter for reservations, and READ
// CAPACITY(16) parsing. No I/O here, so every rule is tested without a target.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "error.h"

namespace clusterd {

/// The kinds of failure a caller must tell apart. Carried in Error::errno_value (errno_of()),
/// so they survive being passed along as plain Errors; failure_of() reads them back.
enum class IoFailure {
  Conflict,        ///< RESERVATION CONFLICT, or another node holds the reservation: fenced.
  Vacant,          ///< The LUN has no reservation at all (the target lost it: restart/reset).
  Unreachable,     ///< No session, connection lost, or login refused.
  Timeout,         ///< No answer within the session's timeout.
  IllegalRequest,  ///< ILLEGAL REQUEST: command or field not supported, or LBA out of range.
  Device,          ///< Any other status or sense, or unit attentions beyond the retry budget.
};

/// "conflict", "vacant", ... for messages and tests.
std::string_view to_string(IoFailure failure);
/// The errno that carries `failure`: EBADE (the kernel's errno for a reservation conflict),
/// ENODATA, ENOTCONN, ETIMEDOUT, EINVAL, EIO.
int errno_of(IoFailure failure);
/// The failure an Error carries; Device for any errno not listed at errno_of().
IoFailure failure_of(const Error& error);

/// Unit attentions (SPC-3 4.5.6): the command was NOT executed and the device reports an event.
enum class UnitAttention {
  PowerOnReset,            ///< 29/xx: power on, reset, I_T nexus loss: reservations may be gone.
  ReservationsPreempted,   ///< 2A/03: another initiator preempted us (we are fenced).
  ReservationsReleased,    ///< 2A/04: the holder released the reservation.
  RegistrationsPreempted,  ///< 2A/05: our registration was removed.
  Other,                   ///< Any other (parameters or capacity changed, ...).
};

/// "power-on-reset", ... for messages and tests.
std::string_view to_string(UnitAttention attention);
/// The unit attention for `ascq` as libiscsi packs it (ASC << 8 | ASCQ).
UnitAttention unit_attention_of(int ascq);

/// What a command's completion means for the caller.
enum class Verdict {
  Done,   ///< Completed; the data (if any) is valid.
  Retry,  ///< Not executed (unit attention, busy, task set full, aborted): send it again.
  Fail,   ///< Failed for good; see Judgement::failure.
};

/// The verdict on one completion, with the failure kind and any unit attention reported.
struct Judgement {
  Verdict verdict = Verdict::Done;
  IoFailure failure = IoFailure::Device;   ///< Meaningful when verdict is Fail.
  std::optional<UnitAttention> attention;  ///< Set when the target reported one.
};

/// Judges a completion: `status` as libiscsi reports it (SCSI status, or its CANCELLED/ERROR/
/// TIMEOUT codes), `sense_key` and `ascq` from the sense data of a CHECK CONDITION.
Judgement judge(int status, int sense_key, int ascq);

/// READ CAPACITY(16) data (SBC-3 5.16.2).
struct Capacity {
  std::uint64_t block_count = 0;  ///< Last LBA + 1.
  std::uint32_t block_size = 0;   ///< Bytes per logical block.
};

/// Parses READ CAPACITY(16) parameter data (at least 12 bytes).
Result<Capacity> parse_read_capacity16(std::span<const std::uint8_t> data);

}  // namespace clusterd
