#include "outage.h"

#include <doctest/doctest.h>

namespace clusterd::ledger {

TEST_CASE("an outage runs from the last success to the first success after a failure") {
  OutageTracker t(0);
  t.success(100);
  t.success(110);
  t.failure();
  t.failure();
  CHECK(t.in_outage());
  CHECK(t.current(400) == 290);
  auto ended = t.success(610);
  REQUIRE(ended);
  CHECK(*ended == 500);
  CHECK_FALSE(t.in_outage());
  CHECK_FALSE(t.success(620));
  CHECK(t.outages() == std::vector<Millis>{500});
}

TEST_CASE("a failure before any success counts from the start") {
  OutageTracker t(1000);
  t.failure();
  CHECK(*t.success(1250) == 250);
}

TEST_CASE("the report includes an outage still going on") {
  OutageTracker t(0);
  t.success(10);
  t.failure();
  t.success(40);
  t.failure();
  CHECK(t.report(100) == std::vector<Millis>{30, 60});
  CHECK(t.max_outage(100) == 60);
  CHECK(t.max_outage(20) == 30);
  OutageTracker quiet(0);
  CHECK(quiet.report(50).empty());
  CHECK(quiet.max_outage(50) == 0);
}

TEST_CASE("backoff doubles up to the cap and resets") {
  Backoff b(10, 200);
  std::vector<Millis> delays;
  for (int i = 0; i < 7; ++i) delays.push_back(b.next());
  CHECK(delays == std::vector<Millis>{10, 20, 40, 80, 160, 200, 200});
  b.reset();
  CHECK(b.next() == 10);
}

TEST_CASE("the notifier warns once past warn-after and announces the return only if it warned") {
  OutageTracker t(0);
  OutageNotifier n(3000, 60000);
  t.failure();
  CHECK(n.update(t, 1000) == OutageNotifier::Notice::None);
  CHECK(n.update(t, 3000) == OutageNotifier::Notice::Unreachable);
  CHECK(n.update(t, 4000) == OutageNotifier::Notice::None);
  t.success(5000);
  CHECK(n.update(t, 5000) == OutageNotifier::Notice::Back);
  CHECK(n.update(t, 5001) == OutageNotifier::Notice::None);
  // A short outage is never announced, and neither is its end.
  t.failure();
  CHECK(n.update(t, 5100) == OutageNotifier::Notice::None);
  t.success(5200);
  CHECK(n.update(t, 5200) == OutageNotifier::Notice::None);
}

TEST_CASE("give up once the outage reaches the limit") {
  OutageTracker t(0);
  OutageNotifier n(3000, 60000);
  CHECK_FALSE(n.should_give_up(t, 100000));  // no outage at all
  t.failure();
  CHECK_FALSE(n.should_give_up(t, 59999));
  CHECK(n.should_give_up(t, 60000));
}

}  // namespace clusterd::ledger
