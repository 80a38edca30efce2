#include "bus_auth.h"

#include <grp.h>
#include <pwd.h>

#include <algorithm>

namespace clusterd {

bool may_change(uid_t euid, const std::vector<gid_t>& groups, std::optional<gid_t> admin_gid) {
  if (euid == 0) return true;
  if (!admin_gid) return false;
  return std::find(groups.begin(), groups.end(), *admin_gid) != groups.end();
}

std::string access_denied_message(const std::string& action, const std::string& admin_group) {
  if (admin_group.empty()) return fmt::format("permission denied: {} needs root", action);
  return fmt::format("permission denied: {} needs root or group {}", action, admin_group);
}

std::vector<gid_t> groups_of_user(uid_t euid) {
  passwd* pw = getpwuid(euid);
  if (pw == nullptr) return {};
  // getgrouplist reports the needed size when the buffer is too small; two rounds suffice
  // unless the database changes in between.
  int count = 32;
  std::vector<gid_t> groups(static_cast<std::size_t>(count));
  for (int attempt = 0; attempt < 3; ++attempt) {
    int n = count;
    if (getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &n) >= 0) {
      groups.resize(static_cast<std::size_t>(n));
      return groups;
    }
    count = std::max(n, count * 2);
    groups.resize(static_cast<std::size_t>(count));
  }
  return {pw->pw_gid};
}

std::optional<gid_t> lookup_group(const std::string& name) {
  if (name.empty()) return std::nullopt;
  group* gr = getgrnam(name.c_str());
  if (gr == nullptr) return std::nullopt;
  return gr->gr_gid;
}

Result<void> authorize_change(uid_t euid, const std::string& admin_group,
                              const std::string& action) {
  if (euid == 0) return {};
  if (may_change(euid, groups_of_user(euid), lookup_group(admin_group))) return {};
  return fail("{}", access_denied_message(action, admin_group));
}

}  // namespace clusterd
