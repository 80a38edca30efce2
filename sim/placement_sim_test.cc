#include "placement_sim.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

namespace clusterd::sim {

TEST_CASE("placement sim: seeded chaos never runs a group twice and places every group") {
  int runs = 0;
  for (std::uint64_t seed = 1; seed <= 1000; ++seed) {
    PlacementScenarioOptions o;
    o.seed = seed;
    o.nodes = seed % 2 ? 3 : 5;
    o.groups = 1 + static_cast<int>(seed % 4);
    auto r = run_placement_scenario(o);
    ++runs;
    if (!r.ok) {
      std::string trace;
      for (const auto& line : r.trace) trace += line + "\n";
      FAIL(fmt::format("seed {} ({} nodes): {}\n{}", seed, o.nodes, r.failure, trace));
    }
  }
  CHECK(runs == 1000);
}

TEST_CASE("placement sim: a scenario replays exactly from its seed") {
  PlacementScenarioOptions o;
  o.seed = 42;
  auto a = run_placement_scenario(o);
  auto b = run_placement_scenario(o);
  CHECK(a.ok);
  CHECK(a.trace == b.trace);
  CHECK(a.stats == b.stats);
}

}  // namespace clusterd::sim
