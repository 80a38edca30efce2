#include "raft_sim.h"

#include <doctest/doctest.h>

namespace clusterd::sim {
}  // namespace clusterd::sim
