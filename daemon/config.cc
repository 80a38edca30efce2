#include "config.h"

namespace clusterd {

const char* to_string(FailbackMode mode) {
  switch (mode) {
    case FailbackMode::Never: return "never";
    case FailbackMode::Immediate: return "immediate";
    case FailbackMode::Window: return "window";
  }
  return "?";
}

const char* to_string(NetworkRole role) {
  switch (role) {
    case NetworkRole::Client: return "client";
    case NetworkRole::Cluster: return "cluster";
    case NetworkRole::All: return "all";
  }
  return "?";
}

const char* to_string(QuorumMode mode) {
  switch (mode) {
    case QuorumMode::NodeMajority: return "node-majority";
    case QuorumMode::NodeAndDiskMajority: return "node-and-disk-majority";
    case QuorumMode::DiskOnly: return "disk-only";
  }
  return "?";
}

}  // namespace clusterd
