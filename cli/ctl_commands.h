// The commands of clusterctl.
#pragma once

#include <string>
#include <vector>

#include "bus_view.h"
#include "ctl_args.h"
#include "event_history.h"

namespace clusterd {

/// Runs the command in `options` (already checked); returns the exit code. Failures are
/// reported on stderr in one line.
int run_command(const CtlOptions& options);

/// Where waiting for a target state stands.
enum class WaitVerdict { Reached, Failed, Pending };

/// Judges `state` of the target for an online (or offline) request. `failed_is_final` is false
/// until the daemon reported a change since the request, so that an old "failed" state does
/// not end the wait before the daemon acted on it.
WaitVerdict judge_wait(bool online, const std::string& state, bool failed_is_final);

/// A group that `move --wait` or `drain --wait` follows.
struct MoveGoal {
  std::string group;
  std::string from;  ///< Its owner when the move was asked.
  std::string to;    ///< The destination; empty: any node but `from`.
};

/// Judges a move from the group as the daemon shows it now and the events recorded since the
/// request: Reached once the group is online on the destination (never the old owner); Failed,
/// with `why`, when it
/// failed or the coordinator refused the move (a "placement" event "refused: ..." of the
/// group); else Pending.
WaitVerdict judge_move(const MoveGoal& goal, const GroupView& now,
                       const std::vector<Event>& since, std::string* why);

}  // namespace clusterd
