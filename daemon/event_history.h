// The flight recorder: a bounded ring of recent events (state transitions with their reasons,
// administrator actions, configuration changes) for `clusterctl events`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
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

/// Bounded history of events; the oldest are dropped first. Stored compactly: every text is
/// kept once however many events repeat it (names, states, most reasons), so a full history
/// costs about a third of what 2000 Events would.
class EventHistory {
 public:
  /// Keeps at most `capacity` events.
  explicit EventHistory(std::size_t capacity = 2000) : capacity_(capacity) {}
  EventHistory(const EventHistory&) = delete;  // Stored events point into this object's texts.
  EventHistory& operator=(const EventHistory&) = delete;

  /// Stamps `event` (seq, clocks when unset), stores it, tells the listener; returns the
  /// stamped event (valid until the next add).
  const Event& add(Event event);
  /// Events with seq > `after`, oldest first, at most `limit` (the newest ones) when limit > 0.
  std::vector<Event> since(std::uint64_t after, std::size_t limit = 0) const;
  /// Seq of the newest event, 0 when none.
  std::uint64_t last_seq() const { return next_seq_ - 1; }
  /// Distinct texts kept for the stored events (what their memory grows with).
  std::size_t text_count() const { return texts_.size(); }
  /// Called after each add (one listener: the D-Bus adapter).
  void set_listener(std::function<void(const Event&)> listener) { listener_ = std::move(listener); }

 private:
  /// Each distinct text once, with the number of its uses by stored events.
  using Texts = std::map<std::string, std::size_t>;

  /// An Event as stored: its texts point into texts_.
  struct Stored {
    std::uint64_t seq;
    Usec wall_usec;
    MonoTime mono;
    Texts::iterator kind, node, group, resource, from, to, reason;
  };

  Texts::iterator keep(const std::string& text);
  void release(Texts::iterator text);
  Stored store(const Event& event);
  void drop_oldest();
  static Event expand(const Stored& stored);

  std::size_t capacity_;
  std::uint64_t next_seq_ = 1;
  Texts texts_;
  std::deque<Stored> events_;
  Event last_;
  std::function<void(const Event&)> listener_;
};

}  // namespace clusterd
