// MSCS restart policy as a pure decision: restart up to RestartThreshold times within
// RestartPeriod, then fail (and fail the group when the resource affects it).
#pragma once

#include <cstddef>
#include <deque>

#include "clock.h"
#include "config.h"

namespace clusterd {

/// What to do about one resource failure.
enum class RestartDecision { Restart, FailResource, FailGroup };
const char* to_string(RestartDecision decision);

/// Remembers the failures of one resource inside the policy's period.
class RestartTracker {
 public:
  /// Records a failure at `now` and decides.
  RestartDecision on_failure(const RestartPolicy& policy, MonoTime now);
  /// Failures recorded within `period` before `now`.
  std::size_t recent(Duration period, MonoTime now) const;
  /// Forgets every failure (administrator brought the resource online again).
  void reset() { failures_.clear(); }

 private:
  std::deque<MonoTime> failures_;
};

}  // namespace clusterd
