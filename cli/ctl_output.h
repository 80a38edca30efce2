// Human-readable output of clusterctl: aligned tables and event lines.
#pragma once

#include <nlohmann/json.hpp>

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

/// "term 3, coordinator node1, quorum yes (node2 is follower)" and a newline.
std::string format_cluster_line(const nlohmann::json& cluster);
/// The GetCluster JSON as text: the line above, then nodes and counters.
std::string format_cluster(const nlohmann::json& cluster);
/// Failover timelines as text, one block per timeline.
std::string format_timelines(const nlohmann::json& timelines);

}  // namespace clusterd
