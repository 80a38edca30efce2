// The `service` resource type: a systemd unit driven over sd-bus (MSCS "Generic Service").
// Online = LoadUnit, ResetFailedUnit when failed, StartUnit and its job to the end; offline =
// StopUnit and its job; health = the unit's ActiveState, which the shared SystemdManager keeps
// current from PropertiesChanged signals, so a unit that fails between actions is reported the
// moment systemd says so, not at the next poll. The action's timeout is a hard deadline even
// when the unit's own TimeoutStartSec/TimeoutStopSec is longer.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "config.h"
#include "driver.h"
#include "error.h"
#include "resource_types.h"
#include "systemd_manager.h"

namespace clusterd {

/// The parameters of a service resource, validated.
struct ServiceParams {
  std::string unit;          ///< Full unit name, "web.service".
  bool reset_failed = true;  ///< ResetFailedUnit before starting a failed unit.
};

/// Validates `params` of a service resource.
Result<ServiceParams> parse_service_params(const Params& params);

/// A unit name as systemd takes it: `.service` appended when there is no unit suffix; error for
/// characters systemd refuses, templates without an instance ("web@.service"), unknown suffixes
/// and names longer than 255 characters.
Result<std::string> normalize_unit_name(std::string_view name);

/// Metadata of the built-in `service` type for the configuration validator.
TypeInfo service_type_info();

/// What a start job's end means, given the unit's state read right after it.
ActionResult start_outcome(const std::string& unit, const std::string& job_result,
                           const UnitState& state);
/// What a stop job's end means: Ok once nothing of the unit runs, whatever the job said.
ActionResult stop_outcome(const std::string& unit, const std::string& job_result,
                          const UnitState& state);
/// A health check's answer from the unit's state.
ActionResult monitor_outcome(const std::string& unit, const UnitState& state);
/// Refuses units systemd could not load (not-found, bad-setting, masked, error); Ok otherwise.
ActionResult load_outcome(const std::string& unit, const UnitState& state);
/// The status for a failed D-Bus call (NoSuchUnit: NotInstalled, access denied: Permission).
ActionStatus status_for_bus_error(const Error& error);

/// The reason for a unit that stopped running on its own while online, or "" when its state
/// is still a running one. "unit web.service failed: Result=signal, main process 812 was
/// killed by SIGKILL (SubState=failed)".
std::string unsolicited_failure(const std::string& unit, const UnitState& state);
/// "Result=exit-code, main process 812 exited with status 1": systemd's explanation of the
/// unit's last end.
std::string describe_result(const UnitState& state);
/// The reason for an action that ran past its deadline, naming systemd's own timeout when it is
/// longer (or infinite): the resource's timeout ended the action first.
std::string timeout_reason(const std::string& unit, JobKind kind, Duration timeout,
                           std::optional<std::uint64_t> systemd_timeout_usec);

/// A driver for a service resource; needs `context.systemd` and `context.loop`.
Result<std::unique_ptr<ResourceDriver>> make_service_driver(const ResourceConfig& config,
                                                            const DriverContext& context);

}  // namespace clusterd
