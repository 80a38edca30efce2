// The wire format of the org.clusterd1 API: names, D-Bus signatures, and the functions that put
// the API structs into sd-bus messages and take them out again. The daemon and clusterctl both
// use these, so the two sides cannot disagree about a signature.
#pragma once

#include <systemd/sd-bus.h>

#include <string>
#include <vector>

#include "bus_view.h"
#include "config_load.h"
#include "event_history.h"

namespace clusterd {

inline constexpr const char* kBusObjectPath = "/org/clusterd1";
inline constexpr const char* kBusInterface = "org.clusterd1.Manager";
/// Any destination works peer-to-peer; busctl wants one, so we document this one.
inline constexpr const char* kBusServiceName = "org.clusterd1";

/// Named D-Bus errors of the API.
inline constexpr const char* kErrorAccessDenied = "org.clusterd1.Error.AccessDenied";
inline constexpr const char* kErrorNoSuchGroup = "org.clusterd1.Error.NoSuchGroup";
inline constexpr const char* kErrorNoSuchResource = "org.clusterd1.Error.NoSuchResource";
inline constexpr const char* kErrorFailed = "org.clusterd1.Error.Failed";
inline constexpr const char* kErrorShuttingDown = "org.clusterd1.Error.ShuttingDown";

/// D-Bus signatures of the API structs.
#define CLUSTERD_SIG_NODE "(sus)"
#define CLUSTERD_SIG_RESOURCE "(sssssuutsss)"
#define CLUSTERD_SIG_GROUP "(ssssa" CLUSTERD_SIG_RESOURCE ")"
#define CLUSTERD_SIG_EVENT "(ttsssssss)"
#define CLUSTERD_SIG_DIAGNOSTIC "(suus)"
#define CLUSTERD_SIG_STATUS "sssa" CLUSTERD_SIG_NODE "a" CLUSTERD_SIG_GROUP
#define CLUSTERD_SIG_APPLY_RESULT "ba" CLUSTERD_SIG_DIAGNOSTIC "as"

/// What Apply and Reload answer: either applied with a list of changes, or refused with the
/// diagnostics of the file.
struct ApplyResult {
  bool applied = false;
  Diagnostics diagnostics;
  std::vector<std::string> changes;  ///< One line each: "group web: added".
};

/// Appenders: return a negative errno on failure, as sd-bus does.
int bus_append(sd_bus_message* m, const std::vector<NodeView>& nodes);
int bus_append(sd_bus_message* m, const GroupView& group);
int bus_append(sd_bus_message* m, const std::vector<GroupView>& groups);
int bus_append(sd_bus_message* m, const StatusView& status);
int bus_append(sd_bus_message* m, const std::vector<Event>& events);
int bus_append(sd_bus_message* m, const ApplyResult& result);

/// Readers: return a negative errno on failure (e.g. -ENXIO for a wrong signature).
int bus_read(sd_bus_message* m, std::vector<NodeView>* nodes);
int bus_read(sd_bus_message* m, GroupView* group);
int bus_read(sd_bus_message* m, std::vector<GroupView>* groups);
int bus_read(sd_bus_message* m, StatusView* status);
int bus_read(sd_bus_message* m, std::vector<Event>* events);
int bus_read(sd_bus_message* m, ApplyResult* result);

}  // namespace clusterd
