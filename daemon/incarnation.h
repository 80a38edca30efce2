// The incarnation number: a counter that grows with every start of the daemon, persisted under
// the state directory. Peers use (incarnation, sequence) to tell a restarted node from a
// replayed frame: a frame from an older incarnation is stale whatever its sequence.
#pragma once

#include <cstdint>
#include <string>

#include "error.h"

namespace clusterd {

/// Name of the counter file inside the state directory.
inline constexpr const char* kIncarnationFile = "incarnation";

/// Reads the counter in `state_dir`/incarnation, computes the next value, and stores it durably
/// (written to a temporary file, fsync, rename, fsync of the directory) before returning it.
/// The next value is max(stored + 1, wall-clock seconds), so a node whose state directory was
/// wiped still starts above what peers remember, as long as its clock is roughly right.
/// A missing file counts as 0; an unreadable or malformed one is an error (never silently reset).
Result<std::uint64_t> next_incarnation(const std::string& state_dir);

}  // namespace clusterd
