// Test helpers for code on an sd-event loop: drive the real loop until a condition holds, with a
// deadline (never a sleep).
#pragma once

#include <functional>

#include <systemd/sd-event.h>

#include "clock.h"
#include "handle.h"

namespace clusterd::testing {

/// An sd-event loop of its own.
EventPtr new_loop();

/// Runs `loop` until `done()` holds or `limit` passes; returns done().
bool run_until(sd_event* loop, const std::function<bool()>& done,
               Duration limit = std::chrono::seconds(5));

/// Runs `loop` for `span` (to show that something does NOT happen within it).
void run_for(sd_event* loop, Duration span);

}  // namespace clusterd::testing
