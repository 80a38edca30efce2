// Resource and group states (architecture rule 3): one transition table, group state derived.
#pragma once

#include <span>
#include <vector>

namespace clusterd {

/// MSCS resource states.
enum class ResourceState { Offline, OnlinePending, Online, OfflinePending, Failed };
inline constexpr int kResourceStateCount = 5;

/// "offline", "online-pending", "online", "offline-pending", "failed".
const char* to_string(ResourceState state);
/// True when the table allows `from` -> `to`.
bool transition_allowed(ResourceState from, ResourceState to);

/// One allowed transition and the event that takes it.
struct ResourceTransition {
  ResourceState from;
  ResourceState to;
  const char* when;  ///< What takes this transition, for people and tests.
};

/// Every allowed transition; anything not listed is refused.
std::span<const ResourceTransition> resource_transitions();

/// MSCS group states, derived from the group's resources.
enum class GroupState { Offline, Online, PartialOnline, Pending, Failed };
inline constexpr int kGroupStateCount = 5;

/// "offline", "online", "partial-online", "pending", "failed".
const char* to_string(GroupState state);
/// Failed if any resource failed; Pending if any is pending; Online if all online; Offline if
/// all offline (or none); PartialOnline otherwise.
GroupState derive_group_state(const std::vector<ResourceState>& states);

}  // namespace clusterd
