#include "loop_test_util.h"

#include <algorithm>

namespace clusterd::testing {

EventPtr new_loop() {
  sd_event* loop = nullptr;
  sd_event_new(&loop);
  return EventPtr(loop);
}

bool run_until(sd_event* loop, const std::function<bool()>& done, Duration limit) {
  constexpr Usec kRecheck = 5000;
  MonoTime deadline = mono_now() + limit;
  while (!done()) {
    MonoTime now = mono_now();
    if (now >= deadline) return false;
    if (sd_event_run(loop, std::min(deadline.usec - now.usec, kRecheck)) < 0) return false;
  }
  return true;
}

void run_for(sd_event* loop, Duration span) {
  run_until(loop, [] { return false; }, span);
}

}  // namespace clusterd::testing
