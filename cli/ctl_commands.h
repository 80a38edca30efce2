// The commands of clusterctl.
#pragma once

#include <string>

#include "ctl_args.h"

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

}  // namespace clusterd
