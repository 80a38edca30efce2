// Dependency ordering inside a group, as pure functions over the group's configuration and the
// current resource states: a group comes online in dependency order and goes offline in reverse;
// independent resources move in parallel.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "resource_state.h"

namespace clusterd {

using StateMap = std::map<std::string, ResourceState>;

/// A dependency cycle as a path "a -> b -> ... -> a" (first name repeated at the end), if any.
/// Dependencies on names that are not in the group are ignored here (the loader reports them).
std::optional<std::vector<std::string>> find_dependency_cycle(const GroupConfig& group);

/// Resources to start now to bring `targets` online: offline ones among `targets` whose
/// dependencies are all online. Resources missing from `states` count as offline.
std::vector<std::string> next_to_start(const GroupConfig& group, const StateMap& states,
                                       const std::vector<std::string>& targets);

/// Resources to stop now to take `targets` offline: online or failed ones among `targets` that
/// no online or pending resource depends on.
std::vector<std::string> next_to_stop(const GroupConfig& group, const StateMap& states,
                                      const std::vector<std::string>& targets);

/// `name` and everything it needs, transitively (what bringing `name` online requires).
std::vector<std::string> with_dependencies(const GroupConfig& group, const std::string& name);

/// `name` and everything that needs it, transitively (what taking `name` offline requires).
std::vector<std::string> with_dependents(const GroupConfig& group, const std::string& name);

/// All resource names of the group, in file order.
std::vector<std::string> all_resources(const GroupConfig& group);

}  // namespace clusterd
