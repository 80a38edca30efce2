// STUB: replaced by the agents module.
#include "driver.h"

namespace clusterd {

const char* to_string(MonitorLevel) { return "?"; }
const char* to_string(ActionStatus) { return "?"; }
Result<std::unique_ptr<ResourceDriver>> make_driver(const ResourceConfig& config,
                                                    const DriverContext&) {
  return fail("resource type '{}' is not implemented", config.type);
}

}  // namespace clusterd
