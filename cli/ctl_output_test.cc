#include "ctl_output.h"

#include <doctest/doctest.h>

namespace clusterd {

TEST_CASE("tables align columns and leave the last one unpadded") {
  CHECK(format_table({"A", "BB"}, {{"xyz", "1"}, {"q", "22"}}) == "A    BB\nxyz  1\nq    22\n");
}

TEST_CASE("resources show group/name, type with agent, dashes for no pid") {
  GroupView g{"web", "online", "node1", "", {}};
  g.resources.push_back({"app", "process", "", "online", "started", 1, 77, 0, "ok", "", ""});
  g.resources.push_back({"d", "ocf", "heartbeat:Dummy", "offline", "", 0, 0, 0, "", "", ""});
  std::string out = format_resources({g});
  CHECK(out.find("web/app   process              online   77   1         started") !=
        std::string::npos);
  CHECK(out.find("web/d     ocf:heartbeat:Dummy  offline  -    0") != std::string::npos);
}

TEST_CASE("a resource stopped after a failure still shows the failure") {
  GroupView g{"web", "offline", "", "", {}};
  g.resources.push_back({"svc", "service", "", "offline", "stopped", 0, 0, 0, "", "",
                         "start failed: unit web.service failed: Result=exit-code"});
  g.resources.push_back({"f", "process", "", "failed", "exited with status 3", 0, 0, 0, "", "",
                         "exited with status 3"});
  std::string out = format_resources({g});
  CHECK(out.find("stopped (last failure: start failed: unit web.service failed: "
                 "Result=exit-code)") != std::string::npos);
  CHECK(out.find("exited with status 3 (last failure") == std::string::npos);
}

TEST_CASE("event lines carry time, number, subject, transition and reason") {
  Event e;
  e.seq = 3;
  e.wall_usec = 1714564800123456;
  e.kind = "resource";
  e.group = "web";
  e.resource = "app";
  e.from = "offline";
  e.to = "online-pending";
  e.reason = "requested";
  CHECK(format_event(e) ==
        "2024-05-01T12:00:00.123Z #3 resource web/app: offline -> online-pending: requested");
  Event d;
  d.seq = 1;
  d.kind = "daemon";
  d.reason = "started";
  CHECK(format_event(d) == "1970-01-01T00:00:00.000Z #1 daemon: started");
}

}  // namespace clusterd
