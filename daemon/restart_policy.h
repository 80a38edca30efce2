// MSCS restart policy as a pure decision: restart up to RestartThreshold times within
// RestartPeriod, then fail (and fail the group when the resource affects it).
#pragma once

#include <cstddef>
#include <vector>

#include "clock.h"
#include "config.h"

namespace clusterd {

/// What to do about one resource failure.
enum class RestartDecision { Restart, FailResource, FailGroup };
inline constexpr int kRestartDecisionCount = 3;
/// "restart", "fail-resource", "fail-group".
const char* to_string(RestartDecision decision);

/// The decision for a failure when `recent_failures` failures (this one included) fall inside
/// the policy's period.
RestartDecision decide_restart(const RestartPolicy& policy, std::size_t recent_failures);

/// Remembers the failures of one resource inside the policy's period (a sliding window: a
/// failure counts while it is less than `period` old).
class RestartTracker {
 public:
  /// Records a failure at `now` and decides.
  RestartDecision on_failure(const RestartPolicy& policy, MonoTime now);
  /// Failures recorded within `period` before `now`.
  std::size_t recent(Duration period, MonoTime now) const;
  /// Forgets every failure (administrator brought the resource online again).
  void reset() { failures_.clear(); }

 private:
  // A vector, not a deque: it is empty for nearly every resource, and an empty std::deque
  // still allocates about 600 bytes.
  std::vector<MonoTime> failures_;
};

}  // namespace clusterd
