#include "scsi_command.h"

#include <doctest/doctest.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include <cerrno>
#include <vector>

namespace clusterd {
namespace {

const IoFailure kAllFailures[] = {IoFailure::Conflict,       IoFailure::Vacant,
                                  IoFailure::Unreachable,    IoFailure::Timeout,
                                  IoFailure::IllegalRequest, IoFailure::Device};

const UnitAttention kAllAttentions[] = {
    UnitAttention::PowerOnReset, UnitAttention::ReservationsPreempted,
    UnitAttention::ReservationsReleased, UnitAttention::RegistrationsPreempted,
    UnitAttention::Other};

}  // namespace

TEST_CASE("IoFailure: every kind has a name and an errno that maps back to it") {
  for (IoFailure failure : kAllFailures) {
    CHECK(to_string(failure) != "unknown");
    CHECK(failure_of(Error{errno_of(failure), "x"}) == failure);
  }
  CHECK(errno_of(IoFailure::Conflict) == EBADE);  // the kernel's errno for a conflict
  CHECK(failure_of(Error{0, "no errno"}) == IoFailure::Device);
  CHECK(failure_of(Error{ENOMEM, "other errno"}) == IoFailure::Device);
}

TEST_CASE("UnitAttention: every kind has a name; ASC/ASCQ pairs map as SPC-3 lists them") {
  for (UnitAttention attention : kAllAttentions) CHECK(to_string(attention) != "unknown");
  CHECK(unit_attention_of(0x2900) == UnitAttention::PowerOnReset);
  CHECK(unit_attention_of(0x2901) == UnitAttention::PowerOnReset);
  CHECK(unit_attention_of(0x2907) == UnitAttention::PowerOnReset);  // I_T nexus loss
  CHECK(unit_attention_of(0x2a03) == UnitAttention::ReservationsPreempted);
  CHECK(unit_attention_of(0x2a04) == UnitAttention::ReservationsReleased);
  CHECK(unit_attention_of(0x2a05) == UnitAttention::RegistrationsPreempted);
  CHECK(unit_attention_of(0x2a09) == UnitAttention::Other);  // capacity changed
}

TEST_CASE("judge: good, retry and failure kinds") {
  CHECK(judge(SCSI_STATUS_GOOD, 0, 0).verdict == Verdict::Done);
  CHECK(judge(SCSI_STATUS_CONDITION_MET, 0, 0).verdict == Verdict::Done);

  SUBCASE("a unit attention means not executed: retry, and say which") {
    auto j = judge(SCSI_STATUS_CHECK_CONDITION, SCSI_SENSE_UNIT_ATTENTION, 0x2900);
    CHECK(j.verdict == Verdict::Retry);
    REQUIRE(j.attention.has_value());
    CHECK(*j.attention == UnitAttention::PowerOnReset);
  }
  SUBCASE("busy, task set full and aborted tasks are retried without an attention") {
    for (int status : {SCSI_STATUS_BUSY, SCSI_STATUS_TASK_SET_FULL, SCSI_STATUS_TASK_ABORTED}) {
      auto j = judge(status, 0, 0);
      CHECK(j.verdict == Verdict::Retry);
      CHECK_FALSE(j.attention.has_value());
    }
    CHECK(judge(SCSI_STATUS_CHECK_CONDITION, SCSI_SENSE_NOT_READY, 0x0401).verdict ==
          Verdict::Retry);
  }
  SUBCASE("RESERVATION CONFLICT is its own kind: fenced, not unreachable") {
    auto j = judge(SCSI_STATUS_RESERVATION_CONFLICT, 0, 0);
    CHECK(j.verdict == Verdict::Fail);
    CHECK(j.failure == IoFailure::Conflict);
  }
  SUBCASE("transport outcomes") {
    CHECK(judge(SCSI_STATUS_TIMEOUT, 0, 0).failure == IoFailure::Timeout);
    CHECK(judge(SCSI_STATUS_CANCELLED, 0, 0).failure == IoFailure::Unreachable);
    CHECK(judge(SCSI_STATUS_ERROR, 0, 0).failure == IoFailure::Unreachable);
  }
  SUBCASE("sense keys that fail for good") {
    auto illegal = judge(SCSI_STATUS_CHECK_CONDITION, SCSI_SENSE_ILLEGAL_REQUEST, 0x2400);
    CHECK(illegal.verdict == Verdict::Fail);
    CHECK(illegal.failure == IoFailure::IllegalRequest);
    auto medium = judge(SCSI_STATUS_CHECK_CONDITION, SCSI_SENSE_MEDIUM_ERROR, 0x1100);
    CHECK(medium.verdict == Verdict::Fail);
    CHECK(medium.failure == IoFailure::Device);
    CHECK(judge(SCSI_STATUS_CHECK_CONDITION, SCSI_SENSE_NOT_READY, 0x3a00).verdict ==
          Verdict::Fail);
  }
}

TEST_CASE("parse_read_capacity16: last LBA + 1 and block size; short or odd data refused") {
  std::vector<std::uint8_t> data(32, 0);
  data[7] = 0xff;  // last LBA 0x1ff...
  data[6] = 0x01;
  data[10] = 0x02;  // block length 512
  auto capacity = parse_read_capacity16(data);
  REQUIRE(capacity.has_value());
  CHECK(capacity->block_count == 0x200);
  CHECK(capacity->block_size == 512);

  CHECK_FALSE(parse_read_capacity16(std::span(data).first(11)).has_value());
  data[10] = 0;
  data[11] = 100;  // 100-byte blocks: not a disk we can serve
  CHECK_FALSE(parse_read_capacity16(data).has_value());
}

}  // namespace clusterd
