// The quorum disk's timing at the cluster's heartbeat settings (docs/quorum-disk.md, "Timing and
// the safety argument"): the defence period P, the command timeout T and the challenge wait W
// all derive from the failure detector's D, so one setting (heartbeat) moves them together.
#pragma once

#include "config.h"
#include "error.h"
#include "quorum_disk.h"
#include "quorum_guard.h"

namespace clusterd {

/// The quorum guard's timing the cluster service uses at `config`'s heartbeat settings. Defined
/// in cluster_service.cc, beside the function it forwards to, so the two never drift apart.
QuorumTiming cluster_quorum_timing(const Config& config);
/// The cluster service's minimum election timeout E at `config`'s heartbeat settings (also
/// defined in cluster_service.cc).
Duration cluster_election_timeout_min(const Config& config);

/// P = D/5, T = D/10 (100 ms and 50 ms at the default D of 500 ms), W the least wait that
/// validate_disk_timing accepts.
DiskTiming disk_timing(const Config& config);

/// validate_disk_timing at the cluster's settings.
Result<void> check_disk_timing(const Config& config);

}  // namespace clusterd
