// The flight recorder: a bounded ring of recent events (state transitions with their reasons,
// administrator actions, configuration changes) for `clusterctl events`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "clock.h"

namespace clusterd {

/// One recorded event.
struct Event {
  std::uint64_t seq = 0;  ///< Assigned by EventHistory, grows by one per event.
  Usec wall_usec = 0;     ///< Wall clock, for people.
  MonoTime mono;          ///< CLOCK_BOOTTIME, for durations.
  std::string kind;       ///< "resource", "group", "config", "daemon", "action".
  std::string node;       ///< Node the event happened on.
  std::string group;      ///< Group name, or empty.
  std::string resource;   ///< Resource name, or empty.
  std::string from;       ///< Previous state, or empty.
  std::string to;         ///< New state, or empty.
  std::string reason;     ///< Why, in one sentence.
};

/// Bounded history of events; the oldest are dropped first.
class EventHistory {
 public:
  /// Keeps at most `capacity` events.
  explicit EventHistory(std::size_t capacity = 2000) : capacity_(capacity) {}

  /// Stamps `event` (seq, clocks when unset), stores it, tells the listener; returns the stored copy.
  const Event& add(Event event);
  /// Events with seq > `after`, oldest first, at most `limit` (the newest ones) when limit > 0.
  std::vector<Event> since(std::uint64_t after, std::size_t limit = 0) const;
  /// Seq of the newest event, 0 when none.
  std::uint64_t last_seq() const { return next_seq_ - 1; }
  /// Called after each add (one listener: the D-Bus adapter).
  void set_listener(std::function<void(const Event&)> listener) { listener_ = std::move(listener); }

 private:
  std::size_t capacity_;
  std::uint64_t next_seq_ = 1;
  std::deque<Event> events_;
  std::function<void(const Event&)> listener_;
};

}  // namespace clusterd
