#include "event_history.h"

#include <doctest/doctest.h>

namespace clusterd {
namespace {

Event resource_event(const std::string& resource, const std::string& to, std::string reason) {
  Event e;
  e.kind = "resource";
  e.node = "node1";
  e.group = "web";
  e.resource = resource;
  e.from = "offline";
  e.to = to;
  e.reason = std::move(reason);
  return e;
}

}  // namespace

TEST_CASE("the event history stamps events and gives them back as they were added") {
  EventHistory history;
  CHECK(history.last_seq() == 0);
  const Event& added = history.add(resource_event("ip", "online", "started"));
  CHECK(added.seq == 1);
  CHECK(added.wall_usec != 0);
  CHECK(added.mono.usec != 0);
  Event stamped = resource_event("disk", "failed", "a reason longer than any short string");
  stamped.wall_usec = 42;
  history.add(stamped);
  CHECK(history.last_seq() == 2);

  auto all = history.since(0);
  REQUIRE(all.size() == 2);
  CHECK(all[0].seq == 1);
  CHECK(all[0].kind == "resource");
  CHECK(all[0].node == "node1");
  CHECK(all[0].group == "web");
  CHECK(all[0].resource == "ip");
  CHECK(all[0].from == "offline");
  CHECK(all[0].to == "online");
  CHECK(all[0].reason == "started");
  CHECK(all[1].wall_usec == 42);
  CHECK(all[1].reason == "a reason longer than any short string");
  CHECK(history.since(1).size() == 1);
  CHECK(history.since(0, 1)[0].seq == 2);
}

TEST_CASE("the event history drops the oldest events past its capacity, and their texts") {
  EventHistory history(3);
  for (int i = 0; i < 10; ++i)
    history.add(resource_event("r" + std::to_string(i), "online", "reason " + std::to_string(i)));
  auto kept = history.since(0);
  REQUIRE(kept.size() == 3);
  CHECK(kept[0].seq == 8);
  CHECK(kept[0].resource == "r7");
  CHECK(kept[2].reason == "reason 9");
  // Texts shared by the dropped events and the kept ones survive.
  CHECK(kept[0].group == "web");
  CHECK(kept[0].from == "offline");
  // resource, node1, web, offline, online, and r7-r9 with their reasons: nothing of the rest.
  CHECK(history.text_count() == 11);
}

TEST_CASE("the event history tells its listener about each event") {
  EventHistory history;
  std::vector<std::uint64_t> heard;
  history.set_listener([&](const Event& e) { heard.push_back(e.seq); });
  history.add(resource_event("ip", "online", "started"));
  history.add(resource_event("ip", "offline", "stopped"));
  CHECK(heard == std::vector<std::uint64_t>{1, 2});
}

}  // namespace clusterd
