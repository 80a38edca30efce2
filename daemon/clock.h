// Time for the daemon: CLOCK_BOOTTIME for every timer and deadline (immune to wall-clock jumps,
// keeps running in suspend), wall-clock only for what people read.
#pragma once

#include <chrono>
#include <cstdint>

namespace clusterd {

using Duration = std::chrono::milliseconds;
/// Microseconds on CLOCK_BOOTTIME, the unit sd-event uses.
using Usec = std::uint64_t;

/// Monotonic point in time (CLOCK_BOOTTIME), microseconds.
struct MonoTime {
  Usec usec = 0;
  friend auto operator<=>(const MonoTime&, const MonoTime&) = default;
  MonoTime operator+(Duration d) const { return {usec + static_cast<Usec>(d.count()) * 1000}; }
  /// Milliseconds from `earlier` to this point (negative if earlier is later).
  std::int64_t ms_since(MonoTime earlier) const {
    return (static_cast<std::int64_t>(usec) - static_cast<std::int64_t>(earlier.usec)) / 1000;
  }
};

/// Now on CLOCK_BOOTTIME.
MonoTime mono_now();
/// Wall-clock now, microseconds since the epoch (for event history and logs only).
Usec wall_now_usec();

}  // namespace clusterd
