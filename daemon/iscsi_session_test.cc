// IscsiSession against a real tgtd (tgtd_fixture.h); skipped with a message when not root or
// tgtd is missing.
#include "iscsi_session.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "loop_test_util.h"
#include "tgtd_fixture.h"

namespace clusterd {
namespace {

using testing::Tgtd;

constexpr const char* kNode1 = "iqn.2024-01.org.clusterd.test:node1";

std::unique_ptr<IscsiSession> open_session(const IscsiTarget& target) {
  auto session = IscsiSession::connect(target);
  REQUIRE_MESSAGE(session.has_value(), (session ? "" : session.error().to_string()));
  return std::move(*session);
}

std::vector<std::byte> pattern(std::size_t bytes, unsigned seed) {
  std::vector<std::byte> data(bytes);
  for (std::size_t i = 0; i < bytes; ++i) data[i] = std::byte((i * 131 + seed) & 0xff);
  return data;
}

double seconds_since(MonoTime start) { return mono_now().ms_since(start) / 1000.0; }

}  // namespace

TEST_CASE("IscsiSession: capacity, then write, flush and read back on a real LUN") {
  testing::TgtdCase fixture;
  if (!fixture.start()) return;
  auto& tgtd = fixture.tgtd;
  auto session = open_session(tgtd->target_for(kNode1));
  CHECK(session->connected());
  CHECK(session->block_size() == 512);
  CHECK(session->block_count() == (16u << 20) / 512);

  auto data = pattern(8 * 512, 7);
  REQUIRE(session->write(100, 8, data).has_value());
  REQUIRE(session->flush().has_value());
  std::vector<std::byte> back(8 * 512);
  REQUIRE(session->read(100, 8, back).has_value());
  CHECK(back == data);

  SUBCASE("FUA writes land as well, and a second session sees them") {
    auto more = pattern(512, 99);
    REQUIRE(session->write_through(session->block_count() - 1, 1, more).has_value());
    auto other = open_session(tgtd->target_for("iqn.2024-01.org.clusterd.test:reader"));
    std::vector<std::byte> seen(512);
    REQUIRE(other->read(session->block_count() - 1, 1, seen).has_value());
    CHECK(seen == more);
  }
  SUBCASE("requests outside the LUN or with the wrong buffer size are refused locally") {
    std::vector<std::byte> one(512);
    auto past = session->read(session->block_count(), 1, one);
    REQUIRE_FALSE(past.has_value());
    CHECK(failure_of(past.error()) == IoFailure::IllegalRequest);
    CHECK_FALSE(session->write(0, 2, one).has_value());
    CHECK(session->connected());
  }
}

TEST_CASE("IscsiSession: portals are tried in order; none answering is Unreachable") {
  testing::TgtdCase fixture;
  if (!fixture.start()) return;
  auto& tgtd = fixture.tgtd;
  auto target = tgtd->target_for(kNode1);
  // Port 1 on loopback: nothing listens, the connect is refused at once.
  target.portals = {"127.0.0.1:1", tgtd->portal()};
  auto session = open_session(target);
  CHECK(session->portal() == tgtd->portal());
  // tgt raises 29/00 for every new nexus, restart or not: the login's TEST UNIT READY meets it.
  CHECK(session->take_attentions().power_on_reset);
  CHECK(session->take_attentions().empty());

  target.portals = {"127.0.0.1:1", "127.0.0.1:2"};
  auto none = IscsiSession::connect(target);
  REQUIRE_FALSE(none.has_value());
  CHECK(failure_of(none.error()) == IoFailure::Unreachable);
  CHECK(none.error().message.find("127.0.0.1:1") != std::string::npos);
  CHECK(none.error().message.find("127.0.0.1:2") != std::string::npos);
}

TEST_CASE("IscsiSession: a frozen target fails a call after the timeout, a killed one at once") {
  testing::TgtdCase fixture;
  if (!fixture.start()) return;
  auto& tgtd = fixture.tgtd;
  auto session = open_session(tgtd->target_for(kNode1, std::chrono::seconds(2)));
  std::vector<std::byte> block(512);

  tgtd->freeze();
  MonoTime start = mono_now();
  auto frozen = session->read(0, 1, block);
  double waited = seconds_since(start);
  tgtd->thaw();
  REQUIRE_FALSE(frozen.has_value());
  CHECK(failure_of(frozen.error()) == IoFailure::Timeout);
  CHECK_FALSE(session->connected());  // a timed-out nexus is not used again
  MESSAGE("frozen target: the read failed after " << waited << " s (timeout 2 s)");

  auto unconnected = session->read(0, 1, block);
  REQUIRE_FALSE(unconnected.has_value());
  CHECK(failure_of(unconnected.error()) == IoFailure::Unreachable);
  REQUIRE(session->reconnect().has_value());
  REQUIRE(session->read(0, 1, block).has_value());

  tgtd->kill();
  start = mono_now();
  auto killed = session->read(0, 1, block);
  waited = seconds_since(start);
  REQUIRE_FALSE(killed.has_value());
  CHECK(failure_of(killed.error()) == IoFailure::Unreachable);
  MESSAGE("killed target: the read failed after " << waited << " s");
  auto again = session->reconnect();
  REQUIRE_FALSE(again.has_value());
  CHECK(failure_of(again.error()) == IoFailure::Unreachable);
}

TEST_CASE("IscsiSession: persistent reservation commands on tgt") {
  testing::TgtdCase fixture;
  if (!fixture.start()) return;
  auto& tgtd = fixture.tgtd;
  auto session = open_session(tgtd->target_for(kNode1));
  const std::uint64_t key = reservation_key(5, 1);

  auto caps = session->pr_report_capabilities();
  REQUIRE(caps.has_value());
  CHECK(caps->supports(PrType::ExclusiveAccess));
  CHECK_FALSE(caps->persist_through_power_loss);  // tgt has no APTPL: a restart loses all
  auto abort = session->supports_preempt_and_abort();
  REQUIRE(abort.has_value());
  CHECK_FALSE(*abort);  // tgt 1.0.85 lacks PREEMPT AND ABORT

  auto empty = session->pr_read_keys();
  REQUIRE(empty.has_value());
  CHECK(empty->keys.empty());

  REQUIRE(session->pr_out(PrOutAction::Register, PrType::ExclusiveAccess, 0, key).has_value());
  REQUIRE(session->pr_out(PrOutAction::Reserve, PrType::ExclusiveAccess, key, 0).has_value());
  auto keys = session->pr_read_keys();
  REQUIRE(keys.has_value());
  CHECK(keys->keys == std::vector<std::uint64_t>{key});
  auto held = session->pr_read_reservation();
  REQUIRE(held.has_value());
  CHECK(holds_exclusive(*held, key));

  // What tgt answers to PREEMPT AND ABORT: ILLEGAL REQUEST, so the command was not executed.
  auto pa = session->pr_out(PrOutAction::PreemptAndAbort, PrType::ExclusiveAccess, key, key);
  REQUIRE_FALSE(pa.has_value());
  CHECK(failure_of(pa.error()) == IoFailure::IllegalRequest);

  // A wrong key is a RESERVATION CONFLICT (SPC-3 5.6.7), reported as such.
  auto wrong = session->pr_out(PrOutAction::Register, PrType::ExclusiveAccess, key + 1, 0);
  REQUIRE_FALSE(wrong.has_value());
  CHECK(failure_of(wrong.error()) == IoFailure::Conflict);

  REQUIRE(session->pr_out(PrOutAction::Clear, PrType::ExclusiveAccess, key, 0).has_value());
  auto cleared = session->pr_read_reservation();
  REQUIRE(cleared.has_value());
  CHECK_FALSE(cleared->holder.has_value());
}

}  // namespace clusterd
