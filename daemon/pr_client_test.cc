// PrClient's sequences against a real tgtd (tgtd_fixture.h), two or three initiators with
// their own IQNs; skipped with a message when not root or tgtd is missing.
#include "pr_client.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "iscsi_session.h"
#include "loop_test_util.h"
#include "tgtd_fixture.h"

namespace clusterd {
namespace {

using testing::Tgtd;

constexpr std::uint32_t kCluster = 7;

/// One node: its session (own initiator IQN) and its PrClient on that session.
struct Node {
  std::unique_ptr<IscsiSession> session;
  std::unique_ptr<PrClient> pr;
};

/// A tgtd and a way to make nodes on it, for one test.
struct Cluster : testing::TgtdCase {

  Node node(std::uint32_t id) {
    auto target = tgtd->target_for(fmt::format("iqn.2024-01.org.clusterd.test:node{}", id));
    auto session = IscsiSession::connect(target);
    REQUIRE_MESSAGE(session.has_value(), (session ? "" : session.error().to_string()));
    Node n{std::move(*session), nullptr};
    n.pr = std::make_unique<PrClient>(*n.session, kCluster, id);
    return n;
  }
};

std::vector<std::byte> block_of(std::uint8_t value) {
  return std::vector<std::byte>(512, std::byte{value});
}

/// The failure kind of a result that must have failed.
template <typename T>
IoFailure failed_as(const Result<T>& result) {
  REQUIRE_FALSE(result.has_value());
  return failure_of(result.error());
}

std::vector<std::uint64_t> keys_on(IscsiSession& session) {
  auto keys = session.pr_read_keys();
  REQUIRE(keys.has_value());
  return keys->keys;
}

}  // namespace

TEST_CASE("PrClient: A acquires; B is fenced out; B takes over; A is fenced; only B's key left") {
  Cluster cluster;
  if (!cluster.start()) return;
  Node a = cluster.node(1);
  Node b = cluster.node(2);
  auto data = block_of(0xa1);
  std::vector<std::byte> buffer(512);

  REQUIRE(a.pr->acquire().has_value());
  REQUIRE(a.pr->check().has_value());
  REQUIRE(a.session->write(0, 1, data).has_value());

  // Exclusive Access: B may neither write nor read, and the failure says "conflict".
  CHECK(failed_as(b.session->write(0, 1, block_of(0xb1))) == IoFailure::Conflict);
  CHECK(failed_as(b.session->read(0, 1, buffer)) == IoFailure::Conflict);
  CHECK(b.session->connected());  // a conflict is an answer, not a broken nexus
  auto refused = b.pr->acquire();
  CHECK(failed_as(refused) == IoFailure::Conflict);
  CHECK(refused.error().message.find("node 1") != std::string::npos);
  CHECK(keys_on(*b.session) == std::vector<std::uint64_t>{a.pr->key()});  // B withdrew

  REQUIRE(b.pr->take_over({a.pr->key()}).has_value());
  REQUIRE(b.pr->check().has_value());
  REQUIRE(b.session->write(0, 1, block_of(0xb2)).has_value());
  REQUIRE(b.session->read(0, 1, buffer).has_value());
  CHECK(buffer == block_of(0xb2));

  CHECK(failed_as(a.session->write(0, 1, data)) == IoFailure::Conflict);
  CHECK(failed_as(a.pr->check()) == IoFailure::Conflict);
  CHECK(keys_on(*b.session) == std::vector<std::uint64_t>{b.pr->key()});
  // tgt tells the preempted nexus (2A/03) on its next command; we retried through it.
  CHECK(a.session->take_attentions().reservations_preempted);
}

TEST_CASE("PrClient: take_over with a victim list leaves another holder alone") {
  Cluster cluster;
  if (!cluster.start()) return;
  Node a = cluster.node(1);
  Node b = cluster.node(2);
  REQUIRE(a.pr->acquire().has_value());
  auto wrong = b.pr->take_over({reservation_key(kCluster, 3)});
  CHECK(failed_as(wrong) == IoFailure::Conflict);
  REQUIRE(a.pr->check().has_value());
  // acquire(take_over = true) is the same as take_over() with no list.
  REQUIRE(b.pr->acquire(true).has_value());
  CHECK(failed_as(a.pr->check()) == IoFailure::Conflict);
}

TEST_CASE("PrClient: reclaim after a reconnect keeps the LUN; after a take-over it fails") {
  Cluster cluster;
  if (!cluster.start()) return;
  Node a = cluster.node(1);
  Node b = cluster.node(2);
  REQUIRE(a.pr->acquire().has_value());

  REQUIRE(a.session->reconnect().has_value());
  // The new nexus is not the holder yet: Exclusive Access shuts it out too.
  CHECK(failed_as(a.session->write(0, 1, block_of(1))) == IoFailure::Conflict);
  REQUIRE(a.pr->reclaim().has_value());
  REQUIRE(a.session->write(0, 1, block_of(1)).has_value());
  // The old nexus's registration went with the preempt: one key, once.
  CHECK(keys_on(*a.session) == std::vector<std::uint64_t>{a.pr->key()});

  a.session->drop();                       // A's connection dies...
  REQUIRE(b.pr->take_over().has_value());  // ...and B takes over meanwhile
  REQUIRE(a.session->reconnect().has_value());
  auto lost = a.pr->reclaim();
  CHECK(failed_as(lost) == IoFailure::Conflict);
  CHECK(lost.error().message.find("node 2") != std::string::npos);
  CHECK(failed_as(a.session->write(0, 1, block_of(2))) == IoFailure::Conflict);
  REQUIRE(b.pr->check().has_value());
  // The fenced node withdrew the registration its reclaim made: only B's key is left.
  CHECK(keys_on(*b.session) == std::vector<std::uint64_t>{b.pr->key()});
}

TEST_CASE("PrClient: release leaves no reservation and no key, also from a new nexus") {
  Cluster cluster;
  if (!cluster.start()) return;
  Node a = cluster.node(1);
  Node b = cluster.node(2);

  REQUIRE(a.pr->acquire().has_value());
  REQUIRE(a.pr->release().has_value());
  auto after = a.session->pr_read_reservation();
  REQUIRE(after.has_value());
  CHECK_FALSE(after->holder.has_value());
  CHECK(keys_on(*a.session).empty());
  CHECK(failed_as(a.pr->check()) == IoFailure::Vacant);

  SUBCASE("after a reconnect the old nexus's registration and reservation go too") {
    REQUIRE(a.pr->acquire().has_value());
    REQUIRE(a.session->reconnect().has_value());
    REQUIRE(a.pr->release().has_value());
    CHECK(keys_on(*a.session).empty());
    REQUIRE(b.pr->acquire().has_value());  // free for anyone, without a take-over
  }
  SUBCASE("a fenced node's release succeeds and leaves the new owner alone") {
    REQUIRE(a.pr->acquire().has_value());
    REQUIRE(b.pr->take_over().has_value());
    REQUIRE(a.pr->release().has_value());
    REQUIRE(b.pr->check().has_value());
    CHECK(keys_on(*b.session) == std::vector<std::uint64_t>{b.pr->key()});
  }
}

namespace {

/// Registers `key` on `session` and nothing else: what a helper SIGKILLed between the first
/// and the last step of a reclaim leaves behind.
void register_stale(IscsiSession& session, std::uint64_t key) {
  REQUIRE(session.pr_out(PrOutAction::RegisterAndIgnoreExistingKey, PrType::ExclusiveAccess, 0, key)
              .has_value());
}

}  // namespace

TEST_CASE("PrClient: the owner's check removes every other registration and keeps the LUN") {
  Cluster cluster;
  if (!cluster.start()) return;
  Node a = cluster.node(1);
  Node c = cluster.node(3);
  REQUIRE(a.pr->acquire().has_value());
  register_stale(*c.session, reservation_key(kCluster, 3));
  CHECK(keys_on(*a.session) ==
        std::vector<std::uint64_t>{a.pr->key(), reservation_key(kCluster, 3)});

  REQUIRE(a.pr->check().has_value());
  CHECK(keys_on(*a.session) == std::vector<std::uint64_t>{a.pr->key()});
  REQUIRE(a.session->write(0, 1, block_of(0xa1)).has_value());
  CHECK(failed_as(c.session->write(0, 1, block_of(0xc1))) == IoFailure::Conflict);

  SUBCASE("our own key registered through a second nexus goes too; we keep holding") {
    Node again = cluster.node(1);
    register_stale(*again.session, a.pr->key());
    CHECK(keys_on(*a.session).size() == 2);
    REQUIRE(a.pr->check().has_value());
    CHECK(keys_on(*a.session) == std::vector<std::uint64_t>{a.pr->key()});
    REQUIRE(a.session->write(0, 1, block_of(0xa2)).has_value());
    CHECK(failed_as(again.session->write(0, 1, block_of(0xa3))) == IoFailure::Conflict);
  }
  SUBCASE("the defence never stops a later take-over, and never touches the new holder") {
    // B registered (a take-over's first step) and the owner's check removed it meanwhile: the
    // take-over registers again and wins; the old owner's next check finds itself fenced.
    Node b = cluster.node(2);
    register_stale(*b.session, b.pr->key());
    REQUIRE(a.pr->check().has_value());
    REQUIRE(b.pr->take_over({a.pr->key()}).has_value());
    auto fenced = a.pr->check();
    CHECK(failed_as(fenced) == IoFailure::Conflict);
    CHECK(fenced.error().message.find("node 2") != std::string::npos);
    REQUIRE(b.pr->check().has_value());
    CHECK(keys_on(*b.session) == std::vector<std::uint64_t>{b.pr->key()});
  }
}

TEST_CASE("PrClient: acquire and take-over remove stale registrations before anything is mounted") {
  Cluster cluster;
  if (!cluster.start()) return;
  Node a = cluster.node(1);
  Node b = cluster.node(2);
  Node c = cluster.node(3);
  std::uint64_t stale = reservation_key(kCluster, 3);

  SUBCASE("acquire of a free LUN") {
    register_stale(*c.session, stale);
    REQUIRE(a.pr->acquire().has_value());
    CHECK(keys_on(*a.session) == std::vector<std::uint64_t>{a.pr->key()});
  }
  SUBCASE("take-over from a dead owner, with a third key left by a killed reclaim") {
    REQUIRE(a.pr->acquire().has_value());
    register_stale(*c.session, stale);
    REQUIRE(b.pr->take_over({a.pr->key()}).has_value());
    CHECK(keys_on(*b.session) == std::vector<std::uint64_t>{b.pr->key()});
    CHECK(failed_as(a.pr->check()) == IoFailure::Conflict);
  }
  SUBCASE("a refused acquire removes nothing") {
    REQUIRE(a.pr->acquire().has_value());
    register_stale(*c.session, stale);
    CHECK(failed_as(b.pr->acquire()) == IoFailure::Conflict);
    CHECK(keys_on(*a.session) == std::vector<std::uint64_t>{a.pr->key(), stale});
  }
}

TEST_CASE("PrClient: a tgtd restart loses the reservation; the owner restores it") {
  Cluster cluster;
  if (!cluster.start()) return;
  Node a = cluster.node(1);
  Node b = cluster.node(2);
  REQUIRE(a.pr->acquire().has_value());
  REQUIRE(a.session->write(0, 1, block_of(0x11)).has_value());
  (void)a.session->take_attentions();

  REQUIRE(cluster.tgtd->restart().has_value());
  // Both sessions broke with the old process; the owner notices on its next command.
  CHECK(failed_as(a.session->test_unit_ready()) == IoFailure::Unreachable);
  REQUIRE(a.session->reconnect().has_value());
  REQUIRE(b.session->reconnect().has_value());
  AttentionLog seen = a.session->take_attentions();
  CHECK(seen.power_on_reset);  // 29/00 on the first command of the new nexus
  CHECK(failed_as(a.pr->check()) == IoFailure::Vacant);
  CHECK(failed_as(a.pr->reclaim()) == IoFailure::Vacant);

  REQUIRE(a.pr->restore().has_value());
  REQUIRE(a.pr->check().has_value());
  std::vector<std::byte> buffer(512);
  REQUIRE(a.session->read(0, 1, buffer).has_value());
  CHECK(buffer == block_of(0x11));  // the data outlived the restart; only the PR state did not
  CHECK(failed_as(b.session->read(0, 1, buffer)) == IoFailure::Conflict);
  CHECK(failed_as(b.pr->restore()) == IoFailure::Conflict);  // first come, first restored
}

}  // namespace clusterd
