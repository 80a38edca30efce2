#include "ctl_args.h"

#include <doctest/doctest.h>

#include "ctl_commands.h"

namespace clusterd {

TEST_CASE("clusterctl: the bus comes from --bus, else $CLUSTERD_BUS, else the default") {
  CHECK(parse_ctl_args({"status"}, "")->bus == "/run/clusterd/bus");
  CHECK(parse_ctl_args({"status"}, "/tmp/env")->bus == "/tmp/env");
  CHECK(parse_ctl_args({"--bus", "/tmp/x", "status"}, "/tmp/env")->bus == "/tmp/x");
  CHECK(parse_ctl_args({"status", "--bus=/tmp/y"}, "")->bus == "/tmp/y");
}

TEST_CASE("clusterctl: command, arguments and options in any order") {
  auto o = parse_ctl_args({"online", "--timeout", "2m", "web/app", "--no-wait"}, "");
  REQUIRE(o);
  CHECK(o->command == "online");
  CHECK(o->args == std::vector<std::string>{"web/app"});
  CHECK(o->timeout == "2m");
  CHECK(o->no_wait);
  CHECK(check_command(*o));
  auto e = parse_ctl_args({"events", "--since", "42", "-f", "--json"}, "");
  REQUIRE(e);
  CHECK(e->since == 42);
  CHECK(e->follow);
  CHECK(e->json);
  CHECK(check_command(*e));
}

TEST_CASE("clusterctl: usage mistakes are explained") {
  CHECK(parse_ctl_args({"--bogus"}, "").error().message == "unknown option \"--bogus\"");
  CHECK(parse_ctl_args({"status", "--bus"}, "").error().message == "option --bus needs a value");
  CHECK_FALSE(parse_ctl_args({"events", "--since", "x1"}, ""));
  CHECK(check_command(*parse_ctl_args({"frobnicate"}, "")).error().message ==
        "unknown command \"frobnicate\"");
  CHECK(check_command(*parse_ctl_args({"online"}, "")).error().message ==
        "usage: clusterctl online GROUP|GROUP/RESOURCE [--timeout D] [--no-wait]");
  CHECK_FALSE(check_command(*parse_ctl_args({"status", "extra"}, "")));
  CHECK(check_command(*parse_ctl_args({"nodes", "--watch"}, "")).error().message ==
        "option --watch does not apply to \"nodes\" (usage: clusterctl nodes [--json])");
  CHECK_FALSE(check_command(*parse_ctl_args({"apply", "f.yaml", "--json"}, "")));
  CHECK(check_command(*parse_ctl_args({"resources", "web", "--json"}, "")));
}

TEST_CASE("clusterctl: targets are GROUP or GROUP/RESOURCE") {
  auto g = parse_target("web");
  REQUIRE(g);
  CHECK(g->group == "web");
  CHECK(g->resource.empty());
  auto r = parse_target("web/app");
  REQUIRE(r);
  CHECK(r->resource == "app");
  CHECK_FALSE(parse_target("web/"));
  CHECK_FALSE(parse_target("/app"));
  CHECK_FALSE(parse_target("a/b/c"));
}

TEST_CASE("clusterctl: every command has help with an example") {
  for (const char* cmd : {"status", "nodes", "groups", "resources", "events", "online", "offline",
                          "validate", "apply", "reload"}) {
    std::string help = ctl_help(cmd);
    CHECK_MESSAGE(help.find("clusterctl " + std::string(cmd)) != std::string::npos, cmd);
    CHECK_MESSAGE(help.find("Example") != std::string::npos, cmd);
    CHECK_MESSAGE(ctl_help("").find(std::string("  ") + cmd) != std::string::npos, cmd);
  }
  CHECK(ctl_help("nonsense").empty());
  CHECK(ctl_help("").find("4 permission denied") != std::string::npos);
}

TEST_CASE("clusterctl: waiting ends at the goal, or at a failure the daemon reported") {
  CHECK(judge_wait(true, "online", false) == WaitVerdict::Reached);
  CHECK(judge_wait(false, "offline", false) == WaitVerdict::Reached);
  CHECK(judge_wait(true, "online-pending", true) == WaitVerdict::Pending);
  CHECK(judge_wait(true, "partial-online", true) == WaitVerdict::Pending);
  CHECK(judge_wait(true, "failed", false) == WaitVerdict::Pending);
  CHECK(judge_wait(true, "failed", true) == WaitVerdict::Failed);
  CHECK(judge_wait(false, "failed", true) == WaitVerdict::Failed);
  CHECK(judge_wait(false, "online", true) == WaitVerdict::Pending);
}

TEST_CASE("clusterctl: move and drain wait only when asked, --timeout only with --wait") {
  auto m = parse_ctl_args({"move", "ledger", "node2", "--wait", "--timeout", "30s"}, "");
  REQUIRE(m);
  CHECK(m->wait);
  CHECK(m->timeout == "30s");
  CHECK(check_command(*m));
  CHECK_FALSE(parse_ctl_args({"move", "ledger"}, "")->wait);  // the default: answer at once
  CHECK(check_command(*parse_ctl_args({"drain", "node1", "--wait"}, "")));
  CHECK(check_command(*parse_ctl_args({"move", "ledger", "--timeout", "5s"}, "")).error().message ==
        "option --timeout needs --wait with \"move\" (usage: clusterctl move GROUP [NODE] "
        "[--wait [--timeout D]])");
  CHECK_FALSE(check_command(*parse_ctl_args({"pause", "node1", "--wait"}, "")));
  CHECK_FALSE(check_command(*parse_ctl_args({"online", "web", "--wait"}, "")));
}

namespace {

GroupView view(const char* state, const char* owner, const char* reason = "") {
  GroupView g;
  g.name = "ledger";
  g.state = state;
  g.owner = owner;
  g.reason = reason;
  return g;
}

Event placement_event(const char* group, const char* reason) {
  Event e;
  e.kind = "placement";
  e.group = group;
  e.reason = reason;
  return e;
}

}  // namespace

TEST_CASE("clusterctl: a move is done when online on its destination, failed or refused") {
  std::string why;
  MoveGoal to_node2{"ledger", "node1", "node2"};
  CHECK(judge_move(to_node2, view("online", "node1"), {}, &why) == WaitVerdict::Pending);
  CHECK(judge_move(to_node2, view("pending", "node1"), {}, &why) == WaitVerdict::Pending);
  CHECK(judge_move(to_node2, view("offline", ""), {}, &why) == WaitVerdict::Pending);
  CHECK(judge_move(to_node2, view("pending", "node2"), {}, &why) == WaitVerdict::Pending);
  CHECK(judge_move(to_node2, view("online", "node3"), {}, &why) == WaitVerdict::Pending);
  CHECK(judge_move(to_node2, view("online", "node2"), {}, &why) == WaitVerdict::Reached);
  // No destination given: any node but the old owner.
  MoveGoal anywhere{"ledger", "node1", ""};
  CHECK(judge_move(anywhere, view("online", "node1"), {}, &why) == WaitVerdict::Pending);
  CHECK(judge_move(anywhere, view("online", "node3"), {}, &why) == WaitVerdict::Reached);
  // A move to where it already is does not end by its state: only the refusal ends it.
  MoveGoal in_place{"ledger", "node2", "node2"};
  CHECK(judge_move(in_place, view("online", "node2"), {}, &why) == WaitVerdict::Pending);
  // Failed on the way: the reason is the daemon's.
  CHECK(judge_move(to_node2, view("failed", "node2", "vip failed"), {}, &why) ==
        WaitVerdict::Failed);
  CHECK(why == "ledger failed on node2: vip failed");
  // Refused by the coordinator (recorded after the request); another group's refusal is not ours.
  std::vector<Event> since{placement_event("web", "refused: no"),
                           placement_event("ledger", "committed: stop ledger")};
  CHECK(judge_move(to_node2, view("online", "node1"), since, &why) == WaitVerdict::Pending);
  since.push_back(placement_event("ledger", "refused: Node node2 is paused and takes no groups."));
  CHECK(judge_move(to_node2, view("online", "node1"), since, &why) == WaitVerdict::Failed);
  CHECK(why == "the coordinator refused to move ledger: Node node2 is paused and takes no groups.");
}

}  // namespace clusterd
