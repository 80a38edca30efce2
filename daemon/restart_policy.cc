#include "restart_policy.h"

#include <algorithm>
#include <iterator>

namespace clusterd {
namespace {

constexpr const char* kDecisionNames[] = {"restart", "fail-resource", "fail-group"};
static_assert(std::size(kDecisionNames) == kRestartDecisionCount);

bool inside(MonoTime failure, Duration period, MonoTime now) {
  return failure <= now && now.usec - failure.usec < static_cast<Usec>(period.count()) * 1000;
}

}  // namespace

const char* to_string(RestartDecision decision) {
  int i = static_cast<int>(decision);
  return i >= 0 && i < kRestartDecisionCount ? kDecisionNames[i] : "?";
}

// MSCS: a resource is restarted while it has failed at most RestartThreshold times within
// RestartPeriod; the failure past that fails it, and with RestartAction "restart and fail
// over" (affects_group) fails its group too.
RestartDecision decide_restart(const RestartPolicy& policy, std::size_t recent_failures) {
  if (policy.restart && recent_failures <= policy.threshold) return RestartDecision::Restart;
  return policy.affects_group ? RestartDecision::FailGroup : RestartDecision::FailResource;
}

RestartDecision RestartTracker::on_failure(const RestartPolicy& policy, MonoTime now) {
  // Forget what slid out of the window first, so the list stays bounded by the threshold.
  std::erase_if(failures_, [&](MonoTime t) { return !inside(t, policy.period, now); });
  failures_.push_back(now);
  return decide_restart(policy, failures_.size());
}

std::size_t RestartTracker::recent(Duration period, MonoTime now) const {
  return static_cast<std::size_t>(std::count_if(
      failures_.begin(), failures_.end(), [&](MonoTime t) { return inside(t, period, now); }));
}

}  // namespace clusterd
