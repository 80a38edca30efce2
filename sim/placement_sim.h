// The placement engine on top of the Raft simulator: every node applies committed entries to a
// real ClusterState (cluster_state.h), the simulated leader runs the real decide() and commits
// its actions, and a simulated node agent starts and stops groups from its own applied records
// and reports back, self-fencing the moment its side of a partition holds no quorum (the
// timing of the fence is argued in docs/membership.md; here it is instant). After every step it
// checks that no group runs on two nodes, and after the chaos that every group is placed within
// a bound once a quorum is stable.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cluster_state.h"
#include "raft_sim.h"

namespace clusterd::sim {

/// A ClusterState as the simulator's state machine. Commands carry the entry type in their
/// first two bytes (the simulator proposes with one type of its own).
class PlacementStateMachine : public StateMachine {
 public:
  void apply(const Entry& entry) override;
  void restore(const Bytes& snapshot) override;
  Bytes snapshot() const override;
  /// The replicated state.
  const ClusterState& state() const { return state_; }

 private:
  ClusterState state_;
};

/// The command bytes for an entry of `type` with `payload`.
Bytes wrap_command(EntryType type, const Bytes& payload);

/// One random placement scenario.
struct PlacementScenarioOptions {
  std::uint64_t seed = 1;
  int nodes = 3;
  int groups = 3;
  Duration chaos{3000};
  Duration settle{4000};
  bool full_trace = false;
};

/// Its outcome.
struct PlacementScenarioResult {
  bool ok = true;
  std::string failure;
  std::vector<std::string> trace;
  std::map<std::string, std::uint64_t> stats;
};

/// Runs one scenario; the same options give the same run.
PlacementScenarioResult run_placement_scenario(const PlacementScenarioOptions& options);

}  // namespace clusterd::sim
