#include "restart_policy.h"

#include <set>
#include <string>

#include <doctest/doctest.h>

namespace clusterd {
namespace {

using namespace std::chrono_literals;
using D = RestartDecision;

RestartPolicy policy(std::uint32_t threshold, Duration period, bool affects_group = false) {
  RestartPolicy p;
  p.threshold = threshold;
  p.period = period;
  p.affects_group = affects_group;
  return p;
}

MonoTime at_ms(std::int64_t ms) { return MonoTime{1'000'000} + Duration(ms); }

}  // namespace

TEST_CASE("every restart decision has a distinct name") {
  std::set<std::string> names;
  for (int i = 0; i < kRestartDecisionCount; ++i) {
    std::string name = to_string(static_cast<D>(i));
    CHECK(name != "?");
    names.insert(name);
  }
  CHECK(names.size() == kRestartDecisionCount);
  CHECK(std::string(to_string(static_cast<D>(kRestartDecisionCount))) == "?");
}

TEST_CASE("decide_restart over every threshold, count and flag") {
  for (std::uint32_t threshold = 0; threshold <= 4; ++threshold) {
    for (std::size_t count = 1; count <= 6; ++count) {
      for (bool restart : {false, true}) {
        for (bool affects : {false, true}) {
          RestartPolicy p = policy(threshold, 1min, affects);
          p.restart = restart;
          D failed = affects ? D::FailGroup : D::FailResource;
          D expected = restart && count <= threshold ? D::Restart : failed;
          CAPTURE(threshold);
          CAPTURE(count);
          CAPTURE(restart);
          CAPTURE(affects);
          CHECK(decide_restart(p, count) == expected);
        }
      }
    }
  }
}

TEST_CASE("threshold restarts within the period, then the resource fails") {
  RestartTracker t;
  RestartPolicy p = policy(3, 10s);
  CHECK(t.on_failure(p, at_ms(0)) == D::Restart);
  CHECK(t.on_failure(p, at_ms(100)) == D::Restart);
  CHECK(t.on_failure(p, at_ms(200)) == D::Restart);
  CHECK(t.recent(p.period, at_ms(200)) == 3);
  CHECK(t.on_failure(p, at_ms(300)) == D::FailResource);
  CHECK(t.recent(p.period, at_ms(300)) == 4);
}

TEST_CASE("affects_group turns the final failure into a group failure") {
  RestartTracker t;
  RestartPolicy p = policy(1, 10s, true);
  CHECK(t.on_failure(p, at_ms(0)) == D::Restart);
  CHECK(t.on_failure(p, at_ms(1)) == D::FailGroup);
}

TEST_CASE("restart: false fails at the first failure") {
  RestartTracker t;
  RestartPolicy p = policy(3, 10s);
  p.restart = false;
  CHECK(t.on_failure(p, at_ms(0)) == D::FailResource);
  p.affects_group = true;
  RestartTracker u;
  CHECK(u.on_failure(p, at_ms(0)) == D::FailGroup);
}

TEST_CASE("threshold 0 never restarts") {
  RestartTracker t;
  CHECK(t.on_failure(policy(0, 10s), at_ms(0)) == D::FailResource);
}

TEST_CASE("the window slides: old failures stop counting") {
  RestartTracker t;
  RestartPolicy p = policy(2, 1000ms);
  CHECK(t.on_failure(p, at_ms(0)) == D::Restart);
  CHECK(t.on_failure(p, at_ms(500)) == D::Restart);
  // At 1000 the first failure is exactly one period old: out of the window.
  CHECK(t.recent(p.period, at_ms(999)) == 2);
  CHECK(t.recent(p.period, at_ms(1000)) == 1);
  CHECK(t.on_failure(p, at_ms(1000)) == D::Restart);
  CHECK(t.on_failure(p, at_ms(1200)) == D::FailResource);
  CHECK(t.recent(p.period, at_ms(5000)) == 0);
  CHECK(t.on_failure(p, at_ms(5000)) == D::Restart);
}

TEST_CASE("a failure at a steady rate below the threshold restarts forever") {
  RestartTracker t;
  RestartPolicy p = policy(2, 1000ms);
  for (int i = 0; i < 50; ++i) REQUIRE(t.on_failure(p, at_ms(i * 600)) == D::Restart);
  CHECK(t.recent(p.period, at_ms(49 * 600)) == 2);
}

TEST_CASE("period 0 counts only the failure at hand") {
  RestartTracker t;
  RestartPolicy p = policy(1, 0ms);
  CHECK(t.on_failure(p, at_ms(0)) == D::Restart);
  CHECK(t.on_failure(p, at_ms(0)) == D::Restart);
  CHECK(t.recent(p.period, at_ms(0)) == 0);
}

TEST_CASE("reset forgets every failure") {
  RestartTracker t;
  RestartPolicy p = policy(1, 10s);
  CHECK(t.on_failure(p, at_ms(0)) == D::Restart);
  CHECK(t.on_failure(p, at_ms(1)) == D::FailResource);
  t.reset();
  CHECK(t.recent(p.period, at_ms(2)) == 0);
  CHECK(t.on_failure(p, at_ms(2)) == D::Restart);
}

}  // namespace clusterd
