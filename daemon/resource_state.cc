// STUB: replaced by the engine module.
#include "resource_state.h"

namespace clusterd {

const char* to_string(ResourceState) { return "?"; }
bool transition_allowed(ResourceState, ResourceState) { return true; }
const char* to_string(GroupState) { return "?"; }
GroupState derive_group_state(const std::vector<ResourceState>&) { return GroupState::Offline; }

}  // namespace clusterd
