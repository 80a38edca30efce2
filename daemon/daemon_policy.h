// Pure decisions of the daemon wiring: which groups start here at startup, what a new
// configuration changes, and the one-line status for systemd.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "resource_manager.h"

namespace clusterd {

/// The node that brings `group` online at startup: the first preferred owner; without preferred
/// owners, the first node of the configuration among its possible owners (all nodes when none
/// are listed). Empty when no node qualifies.
std::string autostart_node(const Config& config, const GroupConfig& group);

/// Groups with autostart: true whose autostart node is `node`, in configuration order.
std::vector<std::string> autostart_groups(const Config& config, const std::string& node);

/// What changes from `before` to `after`, one line each ("group web: added",
/// "resource web/ip: changed", "node node3: removed"); empty when nothing does.
std::vector<std::string> summarize_changes(const Config& before, const Config& after);

/// "3 groups, 2 online" (plus ", 1 failed" when any failed), for sd_notify STATUS=.
std::string status_line(const std::vector<GroupStatus>& groups);

}  // namespace clusterd
