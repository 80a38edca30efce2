#include "scsi_command.h"

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include <cerrno>

#include "byte_order.h"

namespace clusterd {

std::string_view to_string(IoFailure failure) {
  switch (failure) {
    case IoFailure::Conflict:
      return "conflict";
    case IoFailure::Vacant:
      return "vacant";
    case IoFailure::Unreachable:
      return "unreachable";
    case IoFailure::Timeout:
      return "timeout";
    case IoFailure::IllegalRequest:
      return "illegal-request";
    case IoFailure::Device:
      return "device";
  }
  return "unknown";
}

int errno_of(IoFailure failure) {
  switch (failure) {
    case IoFailure::Conflict:
      return EBADE;
    case IoFailure::Vacant:
      return ENODATA;
    case IoFailure::Unreachable:
      return ENOTCONN;
    case IoFailure::Timeout:
      return ETIMEDOUT;
    case IoFailure::IllegalRequest:
      return EINVAL;
    case IoFailure::Device:
      return EIO;
  }
  return EIO;
}

IoFailure failure_of(const Error& error) {
  switch (error.errno_value) {
    case EBADE:
      return IoFailure::Conflict;
    case ENODATA:
      return IoFailure::Vacant;
    case ENOTCONN:
      return IoFailure::Unreachable;
    case ETIMEDOUT:
      return IoFailure::Timeout;
    case EINVAL:
      return IoFailure::IllegalRequest;
    default:
      return IoFailure::Device;
  }
}

std::string_view to_string(UnitAttention attention) {
  switch (attention) {
    case UnitAttention::PowerOnReset:
      return "power-on-reset";
    case UnitAttention::ReservationsPreempted:
      return "reservations-preempted";
    case UnitAttention::ReservationsReleased:
      return "reservations-released";
    case UnitAttention::RegistrationsPreempted:
      return "registrations-preempted";
    case UnitAttention::Other:
      return "other";
  }
  return "unknown";
}

UnitAttention unit_attention_of(int ascq) {
  // SPC-3 annex D: ASC 29h is the whole "power on, reset, or bus device reset occurred" family.
  if ((ascq >> 8) == 0x29) return UnitAttention::PowerOnReset;
  switch (ascq) {
    case 0x2a03:
      return UnitAttention::ReservationsPreempted;
    case 0x2a04:
      return UnitAttention::ReservationsReleased;
    case 0x2a05:
      return UnitAttention::RegistrationsPreempted;
    default:
      return UnitAttention::Other;
  }
}

namespace {

Judgement fail_as(IoFailure failure) { return {Verdict::Fail, failure, std::nullopt}; }

Judgement retry() { return {Verdict::Retry, IoFailure::Device, std::nullopt}; }

Judgement judge_check_condition(int sense_key, int ascq) {
  switch (sense_key) {
    case SCSI_SENSE_UNIT_ATTENTION:
      return {Verdict::Retry, IoFailure::Device, unit_attention_of(ascq)};
    case SCSI_SENSE_RECOVERED_ERROR:
      return {};
    case SCSI_SENSE_ILLEGAL_REQUEST:
      return fail_as(IoFailure::IllegalRequest);
    // 04/01 "becoming ready" and ABORTED COMMAND (e.g. a transport hiccup) ask for a retry.
    case SCSI_SENSE_NOT_READY:
      return ascq == 0x0401 ? retry() : fail_as(IoFailure::Device);
    case SCSI_SENSE_COMMAND_ABORTED:
      return retry();
    default:
      return fail_as(IoFailure::Device);
  }
}

}  // namespace

Judgement judge(int status, int sense_key, int ascq) {
  switch (status) {
    case SCSI_STATUS_GOOD:
    case SCSI_STATUS_CONDITION_MET:
      return {};
    case SCSI_STATUS_CHECK_CONDITION:
      return judge_check_condition(sense_key, ascq);
    case SCSI_STATUS_RESERVATION_CONFLICT:
      return fail_as(IoFailure::Conflict);
    // SAM-5 5.3: BUSY, TASK SET FULL and TASK ABORTED mean the command did not run.
    case SCSI_STATUS_BUSY:
    case SCSI_STATUS_TASK_SET_FULL:
    case SCSI_STATUS_TASK_ABORTED:
      return retry();
    case SCSI_STATUS_TIMEOUT:
      return fail_as(IoFailure::Timeout);
    case SCSI_STATUS_CANCELLED:
    case SCSI_STATUS_ERROR:
      return fail_as(IoFailure::Unreachable);
    default:
      return fail_as(IoFailure::Device);
  }
}

Result<Capacity> parse_read_capacity16(std::span<const std::uint8_t> data) {
  if (data.size() < 12)
    return fail_errno(EIO, "READ CAPACITY(16) returned {} bytes, fewer than 12", data.size());
  Capacity capacity;
  capacity.block_count = get_be(data.data(), 8) + 1;
  capacity.block_size = static_cast<std::uint32_t>(get_be(data.data() + 8, 4));
  if (capacity.block_size == 0 || capacity.block_size % 512 != 0)
    return fail_errno(EIO, "READ CAPACITY(16) reports an unusable block size of {} bytes",
                      capacity.block_size);
  return capacity;
}

}  // namespace clusterd
