// Small sd-event helpers for the resource engine: named one-shot timers on CLOCK_BOOTTIME owned
// by their object, and work deferred to the next loop iteration.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <systemd/sd-event.h>

#include "clock.h"
#include "error.h"
#include "handle.h"

namespace clusterd {

/// A named one-shot timer on CLOCK_BOOTTIME. Destroying it cancels it (style habit 9).
class Timer {
 public:
  Timer() = default;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  /// (Re)arms the timer to call `fn` once, `after` from now; `name` shows in sd-event debugging
  /// (the name given when the timer is first armed).
  /// `priority` orders timers that fall due together (lower runs first).
  Result<void> arm(sd_event* loop, Duration after, const std::string& name,
                   std::function<void()> fn, int priority = SD_EVENT_PRIORITY_NORMAL);
  /// (Re)arms the timer to call `fn` once at `when` (at once if that has passed).
  Result<void> arm_at(sd_event* loop, MonoTime when, const std::string& name,
                      std::function<void()> fn, int priority = SD_EVENT_PRIORITY_NORMAL);
  /// Cancels the timer if armed.
  void disarm();
  /// True while armed and not yet fired.
  bool armed() const { return armed_; }

 private:
  static int on_fire(sd_event_source* source, uint64_t usec, void* userdata) noexcept;
  Result<void> set(sd_event* loop, Usec usec, bool relative, const std::string& name);

  EventSourcePtr source_;
  std::function<void()> fn_;
  bool armed_ = false;
};

/// Runs closures on the next loop iteration, in order. Used to call back "from the loop" and to
/// destroy objects outside their own callbacks (a driver must not be freed inside its Done).
class Deferred {
 public:
  explicit Deferred(sd_event* loop) : loop_(loop) {}
  Deferred(const Deferred&) = delete;
  Deferred& operator=(const Deferred&) = delete;

  /// Queues `fn`; the queue runs once the current dispatch returns to the loop.
  void post(std::function<void()> fn);

 private:
  static int on_run(sd_event_source* source, void* userdata) noexcept;

  sd_event* loop_;
  EventSourcePtr source_;
  std::vector<std::function<void()>> queue_;
};

}  // namespace clusterd
