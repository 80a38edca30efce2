#include "bus_auth.h"

#include <doctest/doctest.h>

#include <algorithm>

namespace clusterd {

TEST_CASE("authorization: root may always change the cluster") {
  CHECK(may_change(0, {}, std::nullopt));
  CHECK(may_change(0, {5}, gid_t{7}));
}

TEST_CASE("authorization: others only as members of the admin group") {
  CHECK_FALSE(may_change(1000, {1000, 27}, std::nullopt));
  CHECK_FALSE(may_change(1000, {1000, 27}, gid_t{50}));
  CHECK(may_change(1000, {1000, 50}, gid_t{50}));
  CHECK_FALSE(may_change(1000, {}, gid_t{50}));
}

TEST_CASE("authorization: the refusal says what is needed") {
  CHECK(access_denied_message("OnlineGroup", "clusteradm") ==
        "permission denied: OnlineGroup needs root or group clusteradm");
  CHECK(access_denied_message("Apply", "") == "permission denied: Apply needs root");
}

TEST_CASE("authorization: the user database is consulted for groups") {
  // Debian's nobody (65534) has the primary group nogroup (65534).
  auto groups = groups_of_user(65534);
  CHECK(std::find(groups.begin(), groups.end(), gid_t{65534}) != groups.end());
  CHECK(lookup_group("root") == gid_t{0});
  CHECK_FALSE(lookup_group("no-such-group-here"));
  CHECK_FALSE(lookup_group(""));
  CHECK(authorize_change(0, "", "Reload"));
  CHECK_FALSE(authorize_change(65534, "", "Reload"));
  CHECK(authorize_change(65534, "nogroup", "Reload"));
  CHECK(authorize_change(65534, "root", "Reload").error().message ==
        "permission denied: Reload needs root or group root");
}

}  // namespace clusterd
