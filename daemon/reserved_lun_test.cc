// ReservedLun against a real tgtd (tgtd_fixture.h): acquire and take-over, every I/O judged
// (fenced -> EIO for good, lost connection -> reconnect + reclaim + retry, target restart ->
// vacant until restore). Skipped with a message when not root or tgtd is missing.
#include "reserved_lun.h"

#include <doctest/doctest.h>

#include <vector>

#include "loop_test_util.h"
#include "scsi_command.h"
#include "tgtd_fixture.h"

namespace clusterd {
namespace {

using testing::Tgtd;

constexpr std::uint32_t kCluster = 9;

struct Target : testing::TgtdCase {

  IscsiTarget of(std::uint32_t node) const {
    return tgtd->target_for(fmt::format("iqn.2024-01.org.clusterd.test:rl{}", node));
  }

  std::unique_ptr<ReservedLun> open(std::uint32_t node, LunStart how) {
    auto lun = ReservedLun::open(of(node), kCluster, node, how);
    REQUIRE_MESSAGE(lun.has_value(), (lun ? "" : lun.error().to_string()));
    return std::move(*lun);
  }

  LunReservationView view() const {
    auto v = read_lun_reservation(of(99));
    REQUIRE_MESSAGE(v.has_value(), (v ? "" : v.error().to_string()));
    return *v;
  }
};

std::vector<std::byte> block_of(std::uint8_t value) {
  return std::vector<std::byte>(512, std::byte{value});
}

}  // namespace

TEST_CASE("describe_reservation: holder and keys, one line each") {
  LunReservationView view{reservation_key(kCluster, 2), "exclusive-access",
                          {reservation_key(kCluster, 2), reservation_key(kCluster, 1)}};
  CHECK(describe_reservation(view, kCluster) ==
        "holder node 2 exclusive-access\nkey node 2\nkey node 1\n");
  CHECK(describe_reservation({}, kCluster) == "holder none\n");
}

TEST_CASE("ReservedLun: a held LUN refuses a plain start with the holder's name; take-over "
          "fences the old owner, whose I/O fails with EIO for good") {
  Target target;
  if (!target.start()) return;
  auto a = target.open(1, LunStart::Acquire);
  auto data = block_of(0x5a);
  std::vector<std::byte> buffer(512);
  REQUIRE(a->write(8, 1, data));

  auto refused = ReservedLun::open(target.of(2), kCluster, 2, LunStart::Acquire);
  REQUIRE_FALSE(refused.has_value());
  CHECK(failure_of(refused.error()) == IoFailure::Conflict);
  CHECK(refused.error().message.starts_with("the disk is held by node 1"));
  CHECK(target.view().keys == std::vector<std::uint64_t>{reservation_key(kCluster, 1)});

  bool told = false;
  a->set_fenced_handler([&] { told = true; });
  auto b = target.open(2, LunStart::TakeOver);
  REQUIRE(b->read(8, 1, buffer));
  CHECK(buffer == data);

  auto write = a->write(8, 1, block_of(0x11));
  REQUIRE_FALSE(write.has_value());
  CHECK(write.error().errno_value == EIO);
  CHECK(told);
  REQUIRE(a->fenced());
  CHECK(*a->fenced() == "reservation lost: held by node 2");
  CHECK(a->check_reservation().error().errno_value == EBADE);
  CHECK(a->read(8, 1, buffer).error().errno_value == EIO);
  CHECK(b->check_reservation());

  // The fenced node's release leaves the new owner alone.
  CHECK(a->release_reservation());
  auto view = target.view();
  CHECK(view.holder == reservation_key(kCluster, 2));
  CHECK(view.keys == std::vector<std::uint64_t>{reservation_key(kCluster, 2)});
}

TEST_CASE("ReservedLun: a lost connection is reconnected and reclaimed, and the I/O retried") {
  Target target;
  if (!target.start()) return;
  auto a = target.open(1, LunStart::Acquire);
  a->session().drop();
  auto data = block_of(0x77);
  REQUIRE(a->write(3, 1, data));
  std::vector<std::byte> buffer(512);
  REQUIRE(a->read(3, 1, buffer));
  CHECK(buffer == data);
  CHECK(a->check_reservation());
  // Only one registration of our key is left: the reclaim preempted the old nexus's.
  CHECK(target.view().keys == std::vector<std::uint64_t>{reservation_key(kCluster, 1)});
}

TEST_CASE("ReservedLun: a reclaim that finds another holder fences") {
  Target target;
  if (!target.start()) return;
  auto a = target.open(1, LunStart::Acquire);
  a->session().drop();
  auto b = target.open(2, LunStart::TakeOver);
  CHECK(a->write(0, 1, block_of(1)).error().errno_value == EIO);
  REQUIRE(a->fenced());
  CHECK(*a->fenced() == "reservation lost: held by node 2");
  CHECK(b->check_reservation());
}

TEST_CASE("ReservedLun: after a target restart I/O fails until restore; then it works again") {
  Target target;
  if (!target.start()) return;
  auto a = target.open(1, LunStart::Acquire);
  REQUIRE(target.tgtd->restart());
  auto checked = a->check_reservation();
  REQUIRE_FALSE(checked.has_value());
  CHECK(failure_of(checked.error()) == IoFailure::Vacant);
  CHECK(a->vacant());
  CHECK(a->write(0, 1, block_of(2)).error().errno_value == EIO);
  REQUIRE(a->restore_reservation());
  CHECK_FALSE(a->vacant());
  CHECK(a->write(0, 1, block_of(2)));
  CHECK(a->check_reservation());
  CHECK(target.view().holder == reservation_key(kCluster, 1));
  CHECK_FALSE(a->fenced());
}

}  // namespace clusterd
