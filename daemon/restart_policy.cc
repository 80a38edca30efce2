// STUB: replaced by the engine module.
#include "restart_policy.h"

namespace clusterd {

const char* to_string(RestartDecision) { return "?"; }
RestartDecision RestartTracker::on_failure(const RestartPolicy&, MonoTime) {
  return RestartDecision::FailResource;
}
std::size_t RestartTracker::recent(Duration, MonoTime) const { return 0; }

}  // namespace clusterd
