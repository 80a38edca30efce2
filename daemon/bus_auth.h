// Who may change the cluster through the API: root, or a member of cluster.admin_group.
// Peer-to-peer D-Bus gives us the caller's EUID only (no supplementary groups), so the groups
// come from the user database (getpwuid + getgrouplist).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "error.h"

namespace clusterd {

/// The pure rule: EUID 0 always; otherwise only when `admin_gid` is set and among `groups`.
bool may_change(uid_t euid, const std::vector<gid_t>& groups, std::optional<gid_t> admin_gid);

/// "permission denied: ACTION needs root or group GROUP" (or "needs root" without a group).
std::string access_denied_message(const std::string& action, const std::string& admin_group);

/// Every group `euid` belongs to by the user database (primary and supplementary); empty when
/// the user is unknown.
std::vector<gid_t> groups_of_user(uid_t euid);

/// The gid of group `name`, or nothing when there is no such group (or `name` is empty).
std::optional<gid_t> lookup_group(const std::string& name);

/// Applies the rule for `euid` with the admin group `admin_group` (may be empty); the error
/// carries access_denied_message.
Result<void> authorize_change(uid_t euid, const std::string& admin_group,
                              const std::string& action);

}  // namespace clusterd
