// Outage accounting for the client: pure bookkeeping over timestamps the caller supplies, so it
// can be tested without a clock or a network.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace clusterd::ledger {

/// Milliseconds on a monotonic clock.
using Millis = int64_t;

/// Tracks outages. An outage runs from the last success before a failure to the first success
/// after it (so it includes the request that failed and the time spent noticing); a failure
/// before any success counts from the start of the run.
class OutageTracker {
 public:
  /// Starts tracking at `start` (the beginning of the run).
  explicit OutageTracker(Millis start) : last_success_(start) {}

  /// A request succeeded at `now`; returns the outage it ended, if one was going on.
  std::optional<Millis> success(Millis now);
  /// A request (or connection attempt) failed.
  void failure() { in_outage_ = true; }

  /// True between a failure and the next success.
  bool in_outage() const { return in_outage_; }
  /// How long the current outage has lasted at `now`; 0 when there is none.
  Millis current(Millis now) const { return in_outage_ ? now - last_success_ : 0; }
  /// Every finished outage, in order.
  const std::vector<Millis>& outages() const { return outages_; }
  /// Finished outages plus the current one measured up to `now` (for a final report).
  std::vector<Millis> report(Millis now) const;
  /// The longest of report(now); 0 when there was none.
  Millis max_outage(Millis now) const;

 private:
  Millis last_success_;
  bool in_outage_ = false;
  std::vector<Millis> outages_;
};

/// Exponential reconnect backoff: `initial`, doubling up to `cap`; reset after a success.
class Backoff {
 public:
  Backoff(Millis initial, Millis cap) : initial_(initial), cap_(cap), next_(initial) {}
  /// The delay to wait now; the following one doubles (up to the cap).
  Millis next();
  /// Back to the initial delay.
  void reset() { next_ = initial_; }

 private:
  Millis initial_;
  Millis cap_;
  Millis next_;
};

/// Decides when to tell the user about an outage: once when it passes `warn_after`, once when
/// it ends (only if it was announced), and when to give up.
class OutageNotifier {
 public:
  enum class Notice { None, Unreachable, Back };

  OutageNotifier(Millis warn_after, Millis give_up) : warn_after_(warn_after), give_up_(give_up) {}
  /// What to print given the tracker's state at `now`.
  Notice update(const OutageTracker& tracker, Millis now);
  /// True once the current outage has lasted `give_up` or longer.
  bool should_give_up(const OutageTracker& tracker, Millis now) const {
    return tracker.current(now) >= give_up_;
  }

 private:
  Millis warn_after_;
  Millis give_up_;
  bool warned_ = false;
};

}  // namespace clusterd::ledger
