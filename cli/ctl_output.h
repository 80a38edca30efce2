// Human-readable output of clusterctl: aligned tables and event lines.
#pragma once

#include <string>
#include <vector>

#include "bus_view.h"
#include "event_history.h"

namespace clusterd {

/// Columns padded to the widest cell; the last column is not padded.
std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows);

std::string format_nodes(const std::vector<NodeView>& nodes);
std::string format_groups(const std::vector<GroupView>& groups);
/// Every resource of `groups`, one row each, with its group.
std::string format_resources(const std::vector<GroupView>& groups);
std::string format_status(const StatusView& status);
/// "2024-05-01T12:00:00.123Z #7 resource web/app: offline -> online-pending: reason".
std::string format_event(const Event& event);

}  // namespace clusterd
