#include "clock.h"

#include <time.h>

namespace clusterd {

static Usec read_clock(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<Usec>(ts.tv_sec) * 1000000 + static_cast<Usec>(ts.tv_nsec) / 1000;
}

MonoTime mono_now() { return {read_clock(CLOCK_BOOTTIME)}; }

Usec wall_now_usec() { return read_clock(CLOCK_REALTIME); }

}  // namespace clusterd
