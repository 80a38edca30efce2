#include "resource_types.h"

#include <doctest/doctest.h>

#include "loop_test_util.h"

namespace clusterd {

using namespace std::chrono_literals;

TEST_CASE("process_type_info describes the process parameters") {
  TypeInfo info = process_type_info();
  CHECK(info.name == "process");
  REQUIRE(info.find("command"));
  CHECK(info.find("command")->required);
  CHECK(info.find("args")->kind == ParamValue::Kind::List);
  CHECK(info.find("env")->kind == ParamValue::Kind::Map);
  CHECK(info.find("stop_signal")->default_value == "TERM");
  for (const char* name : {"cwd", "user", "group", "umask"}) {
    CAPTURE(name);
    CHECK(info.find(name));
  }
  for (const auto& p : info.params) CHECK_FALSE(p.description.empty());
}

TEST_CASE("the system catalog knows process and OCF agents") {
  SystemTypeCatalog catalog;
  CHECK(catalog.ocf_root() == "/usr/lib/ocf");
  CHECK(catalog.type_names() == std::vector<std::string>{"process", "ocf", "ip", "service", "disk", "name"});
  CHECK(catalog.lookup("process", "")->find("command"));
  CHECK(catalog.lookup("teleporter", "").error().message ==
        "unknown resource type 'teleporter' (known: process, ocf, ip, service, disk, name)");

  auto dummy = catalog.lookup("ocf", "heartbeat:Dummy");
  REQUIRE(dummy);
  CHECK(dummy->name == "ocf:heartbeat:Dummy");
  CHECK(dummy->find("state"));
  auto again = catalog.lookup("ocf", "ocf:heartbeat:Dummy");  // from the cache, same agent
  REQUIRE(again);
  CHECK(again->params.size() == dummy->params.size());

  CHECK(catalog.lookup("ocf", "heartbeat:Nope").error().to_string() ==
        "OCF agent 'heartbeat:Nope' not found at /usr/lib/ocf/resource.d/heartbeat/Nope: No such "
        "file or directory");
  CHECK_FALSE(catalog.lookup("ocf", ""));
}

TEST_CASE("the catalog reads meta-data once per agent") {
  testing::TempDir dir;
  std::string agent = dir.path() + "/counting";
  std::string count = dir.path() + "/count";
  {
    std::ofstream out(agent);
    out << "#!/bin/sh\necho x >> " << count
        << "\necho '<resource-agent name=\"c\"><parameters/></resource-agent>'\n";
  }
  std::filesystem::permissions(agent, std::filesystem::perms::owner_all);
  SystemTypeCatalog catalog(testing::fixture_ocf_root());
  REQUIRE(catalog.lookup("ocf", agent));
  REQUIRE(catalog.lookup("ocf", agent));
  std::ifstream in(count);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  CHECK(all == "x\n");

  CHECK(catalog.lookup("ocf", "clusterd-test:hang")->find("pidfile")->required);
  CHECK(catalog.lookup("ocf", "clusterd-test:hang")->advised_start_timeout == Duration(1s));
}

}  // namespace clusterd
