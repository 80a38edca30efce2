#include "engine_loop.h"

#include "log.h"

namespace clusterd {
namespace {

// Resource timers are short and few; 1 ms accuracy keeps restart delays and health checks on
// time instead of sd-event's default 250 ms coalescing window.
constexpr Usec kTimerAccuracyUsec = 1000;

Usec to_usec(Duration d) { return d.count() <= 0 ? 0 : static_cast<Usec>(d.count()) * 1000; }

}  // namespace

Result<void> Timer::arm(sd_event* loop, Duration after, const std::string& name,
                        std::function<void()> fn, int priority) {
  fn_ = std::move(fn);
  if (auto r = set(loop, to_usec(after), true, name); !r) return r;
  sd_event_source_set_priority(source_.get(), priority);
  armed_ = true;
  return {};
}

Result<void> Timer::arm_at(sd_event* loop, MonoTime when, const std::string& name,
                           std::function<void()> fn, int priority) {
  fn_ = std::move(fn);
  if (auto r = set(loop, when.usec, false, name); !r) return r;
  sd_event_source_set_priority(source_.get(), priority);
  armed_ = true;
  return {};
}

// Creates the event source on first use and names it then; later arms only move it.
Result<void> Timer::set(sd_event* loop, Usec usec, bool relative, const std::string& name) {
  if (!source_) {
    sd_event_source* s = nullptr;
    int r = relative ? sd_event_add_time_relative(loop, &s, CLOCK_BOOTTIME, usec,
                                                  kTimerAccuracyUsec, on_fire, this)
                     : sd_event_add_time(loop, &s, CLOCK_BOOTTIME, usec, kTimerAccuracyUsec,
                                         on_fire, this);
    if (r < 0) return fail_errno(r, "cannot add timer {}", name);
    source_.reset(s);
    sd_event_source_set_description(s, name.c_str());
    return {};
  }
  int r = relative ? sd_event_source_set_time_relative(source_.get(), usec)
                   : sd_event_source_set_time(source_.get(), usec);
  if (r < 0) return fail_errno(r, "cannot re-arm timer {}", name);
  sd_event_source_set_enabled(source_.get(), SD_EVENT_ONESHOT);
  return {};
}

void Timer::disarm() {
  if (source_) sd_event_source_set_enabled(source_.get(), SD_EVENT_OFF);
  armed_ = false;
}

int Timer::on_fire(sd_event_source*, uint64_t, void* userdata) noexcept {
  auto* self = static_cast<Timer*>(userdata);
  self->armed_ = false;
  // A copy: the callback may re-arm this timer or destroy its owner.
  auto fn = self->fn_;
  if (fn) fn();
  return 0;
}

void Deferred::post(std::function<void()> fn) {
  queue_.push_back(std::move(fn));
  if (!source_) {
    sd_event_source* s = nullptr;
    int r = sd_event_add_defer(loop_, &s, on_run, this);
    if (r < 0) {
      log(LogLevel::Err, {}, "cannot add a deferred event source: {}", std::strerror(-r));
      return;
    }
    sd_event_source_set_description(s, "engine-deferred");
    source_.reset(s);
  } else {
    sd_event_source_set_enabled(source_.get(), SD_EVENT_ONESHOT);
  }
}

int Deferred::on_run(sd_event_source*, void* userdata) noexcept {
  auto* self = static_cast<Deferred*>(userdata);
  auto queue = std::move(self->queue_);
  self->queue_.clear();
  for (auto& fn : queue) fn();
  return 0;
}

}  // namespace clusterd
