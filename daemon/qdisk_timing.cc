#include "qdisk_timing.h"

namespace clusterd {

DiskTiming disk_timing(const Config& config) {
  Duration detection = config.heartbeat.interval * config.heartbeat.misses;
  DiskTiming t;
  t.period = std::max(Duration(1), detection / 5);
  t.command_timeout = std::max(Duration(1), detection / 10);
  t.challenge_wait = minimum_challenge_wait(t, cluster_quorum_timing(config),
                                            cluster_election_timeout_min(config));
  return t;
}

Result<void> check_disk_timing(const Config& config) {
  return validate_disk_timing(disk_timing(config), cluster_quorum_timing(config),
                              cluster_election_timeout_min(config));
}

}  // namespace clusterd
