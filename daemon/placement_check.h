// Test support for the placement engine: the safety rules every decide() output must keep, and
// a closed loop that applies actions and the owners' reports until nothing changes.
#pragma once

#include <string>
#include <vector>

#include "placement.h"

namespace clusterd {

/// Every broken rule in `actions` for `input`, one sentence each (empty when none): two starts
/// of one group; a start of a group that may still run somewhere (online, starting or stopping
/// on a member, or on a lost node not confirmed safe); a start on a node that is not up or may
/// not own the group; a stop and a start of one group in one call (a move must wait for the
/// offline report); a stop of a group its node does not run; marking offline a group whose
/// lost owner is not confirmed safe; an action without a one-sentence reason.
std::vector<std::string> placement_violations(const PlacementInput& input,
                                              const std::vector<PlacementAction>& actions);

/// How a closed loop ended.
struct SettleResult {
  bool settled = false;  ///< A call changed nothing (only waits).
  int rounds = 0;        ///< decide() calls made.
  std::vector<std::string> violations;
  PlacementState state;  ///< The state reached.
};

/// Calls decide(), checks the output, applies it, lets every member that owns a starting or
/// stopping group report success, and repeats (requests are answered in the first round only)
/// until a call changes nothing or `max_rounds` calls were made.
SettleResult settle(PlacementInput input, int max_rounds);

}  // namespace clusterd
