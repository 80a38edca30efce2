#include "systemd_manager.h"

#include <doctest/doctest.h>

namespace clusterd {

TEST_CASE("parse_systemd_bus picks the system bus, a user manager or a socket") {
  auto system = parse_systemd_bus("", "/run/user/0");
  REQUIRE(system);
  CHECK(system->system);
  CHECK(system->description == "the system bus");
  CHECK(*parse_systemd_bus("system", "") == *system);

  auto user = parse_systemd_bus("user", "/run/user/1000");
  REQUIRE(user);
  CHECK_FALSE(user->system);
  CHECK(user->address == "unix:path=/run/user/1000/systemd/private");
  CHECK(user->description == "/run/user/1000/systemd/private");

  auto path = parse_systemd_bus("/tmp/x/systemd/private", "");
  REQUIRE(path);
  CHECK(path->address == "unix:path=/tmp/x/systemd/private");

  auto address = parse_systemd_bus("unix:abstract=foo", "");
  REQUIRE(address);
  CHECK(address->address == "unix:abstract=foo");

  CHECK(parse_systemd_bus("user", "").error().message ==
        "CLUSTERD_SYSTEMD_BUS=user needs XDG_RUNTIME_DIR set to an absolute path");
  CHECK(parse_systemd_bus("user", "relative").error().message ==
        "CLUSTERD_SYSTEMD_BUS=user needs XDG_RUNTIME_DIR set to an absolute path");
  CHECK(parse_systemd_bus("session", "").error().message ==
        "CLUSTERD_SYSTEMD_BUS='session' is not 'system', 'user', an absolute socket path or a "
        "D-Bus address");
}

TEST_CASE("unit_object_path escapes like sd-bus") {
  // The same paths `busctl --user tree org.freedesktop.systemd1` shows.
  CHECK(unit_object_path("web.service") == "/org/freedesktop/systemd1/unit/web_2eservice");
  CHECK(unit_object_path("a-b@c:d.service") ==
        "/org/freedesktop/systemd1/unit/a_2db_40c_3ad_2eservice");
  CHECK(unit_object_path("1x.service") == "/org/freedesktop/systemd1/unit/_31x_2eservice");
  CHECK(unit_object_path("x1.service") == "/org/freedesktop/systemd1/unit/x1_2eservice");
  CHECK(unit_object_path("") == "/org/freedesktop/systemd1/unit/_");
}

TEST_CASE("UnitEventKind and JobKind have names") {
  for (int i = 0; i < kUnitEventKindCount; ++i) {
    CAPTURE(i);
    CHECK(std::string(to_string(static_cast<UnitEventKind>(i))) != "?");
  }
  CHECK(std::string(to_string(UnitEventKind::Resynced)) == "resynced");
  CHECK(std::string(to_string(static_cast<UnitEventKind>(kUnitEventKindCount))) == "?");
  CHECK(std::string(to_string(JobKind::Start)) == "start");
  CHECK(std::string(to_string(JobKind::Stop)) == "stop");
}

}  // namespace clusterd
