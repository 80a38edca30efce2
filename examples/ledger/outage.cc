#include "outage.h"

#include <algorithm>
#include <utility>

namespace clusterd::ledger {

std::optional<Millis> OutageTracker::success(Millis now) {
  std::optional<Millis> ended;
  if (in_outage_) {
    ended = now - last_success_;
    outages_.push_back(*ended);
    in_outage_ = false;
  }
  last_success_ = now;
  return ended;
}

std::vector<Millis> OutageTracker::report(Millis now) const {
  auto all = outages_;
  if (in_outage_) all.push_back(current(now));
  return all;
}

Millis OutageTracker::max_outage(Millis now) const {
  auto all = report(now);
  return all.empty() ? 0 : *std::max_element(all.begin(), all.end());
}

Millis Backoff::next() {
  Millis delay = next_;
  next_ = std::min(cap_, next_ * 2);
  return delay;
}

OutageNotifier::Notice OutageNotifier::update(const OutageTracker& tracker, Millis now) {
  if (!tracker.in_outage()) {
    bool was_warned = std::exchange(warned_, false);
    return was_warned ? Notice::Back : Notice::None;
  }
  if (!warned_ && tracker.current(now) >= warn_after_) {
    warned_ = true;
    return Notice::Unreachable;
  }
  return Notice::None;
}

}  // namespace clusterd::ledger
