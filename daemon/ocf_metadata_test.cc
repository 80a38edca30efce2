#include "ocf_metadata.h"

#include <doctest/doctest.h>

#include "loop_test_util.h"

namespace clusterd {

using namespace std::chrono_literals;

TEST_CASE("OCF durations") {
  CHECK(parse_ocf_duration("20s") == Duration(20s));
  CHECK(parse_ocf_duration("20") == Duration(20s));
  CHECK(parse_ocf_duration(" 2min ") == Duration(2min));
  CHECK(parse_ocf_duration("2m") == Duration(2min));
  CHECK(parse_ocf_duration("100ms") == Duration(100ms));
  CHECK(parse_ocf_duration("1h") == Duration(1h));
  CHECK(parse_ocf_duration("0") == Duration(0));
  CHECK_FALSE(parse_ocf_duration(""));
  CHECK_FALSE(parse_ocf_duration("soon"));
  CHECK_FALSE(parse_ocf_duration("10 parsecs"));
  CHECK_FALSE(parse_ocf_duration("-5s"));
}

TEST_CASE("meta-data XML becomes TypeInfo") {
  const char* xml = R"(<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="web" version="1.0">
  <version>1.0</version>
  <longdesc lang="en">A web server.</longdesc>
  <shortdesc lang="en">Web server</shortdesc>
  <parameters>
    <parameter name="config" required="1" unique="1">
      <longdesc lang="en">Path of the
      configuration file.</longdesc>
      <shortdesc lang="de">Konfigurationsdatei</shortdesc>
      <shortdesc lang="en">
        Configuration file
      </shortdesc>
      <content type="string" default="/etc/web.conf"/>
    </parameter>
    <parameter name="port">
      <longdesc lang="en">Port to listen on.
More text.</longdesc>
      <content type="integer" default="80"/>
    </parameter>
    <parameter name="debug" required="0">
      <shortdesc lang="en">Debug</shortdesc>
      <content type="boolean"/>
    </parameter>
  </parameters>
  <actions>
    <action name="start" timeout="40s"/>
    <action name="stop" timeout="2min"/>
    <action name="monitor" depth="10" timeout="60s" interval="30s"/>
    <action name="monitor" depth="0" timeout="20" interval="10s"/>
    <action name="meta-data" timeout="5s"/>
  </actions>
</resource-agent>)";
  auto info = parse_ocf_metadata(xml, "ocf:test:web");
  REQUIRE(info);
  CHECK(info->name == "ocf:test:web");
  REQUIRE(info->params.size() == 3);
  const ParamSpec* config = info->find("config");
  REQUIRE(config);
  CHECK(config->required);
  CHECK(config->unique);
  CHECK(config->type == "string");
  CHECK(config->default_value == "/etc/web.conf");
  CHECK(config->description == "Configuration file");
  CHECK(config->kind == ParamValue::Kind::Scalar);
  const ParamSpec* port = info->find("port");
  REQUIRE(port);
  CHECK_FALSE(port->required);
  CHECK_FALSE(port->unique);
  CHECK(port->type == "integer");
  CHECK(port->default_value == "80");
  CHECK(port->description == "Port to listen on.");
  CHECK(info->find("debug")->default_value == "");
  CHECK(info->advised_start_timeout == Duration(40s));
  CHECK(info->advised_stop_timeout == Duration(2min));
  CHECK(info->advised_monitor_timeout == Duration(20s));
  CHECK(info->advised_monitor_interval == Duration(10s));
}

TEST_CASE("bad meta-data is a clear error") {
  CHECK(parse_ocf_metadata("<resource-agent><parameters>", "ocf:x:y").error().message.starts_with(
      "ocf:x:y: meta-data is not valid XML ("));
  CHECK(parse_ocf_metadata("<other/>", "ocf:x:y").error().message ==
        "ocf:x:y: meta-data has no <resource-agent> element");
  CHECK(parse_ocf_metadata("<resource-agent><parameters><parameter/></parameters>"
                           "</resource-agent>",
                           "ocf:x:y")
            .error()
            .message == "ocf:x:y: meta-data has a parameter without a name");
  auto empty = parse_ocf_metadata("<resource-agent name='e'/>", "ocf:x:e");
  REQUIRE(empty);
  CHECK(empty->params.empty());
  CHECK_FALSE(empty->advised_start_timeout);
}

TEST_CASE("meta-data of the real ocf:heartbeat:Dummy") {
  auto agent = resolve_ocf_agent("/usr/lib/ocf", "heartbeat:Dummy");
  REQUIRE(agent);
  auto info = read_ocf_metadata(*agent, "/usr/lib/ocf");
  REQUIRE(info);
  CHECK(info->name == "ocf:heartbeat:Dummy");
  const ParamSpec* state = info->find("state");
  REQUIRE(state);
  CHECK_FALSE(state->required);
  CHECK(state->unique);
  CHECK(state->type == "string");
  CHECK(state->default_value.ends_with(".state"));
  CHECK_FALSE(state->description.empty());
  CHECK(info->find("fake"));
  CHECK(info->advised_start_timeout == Duration(20s));
  CHECK(info->advised_stop_timeout == Duration(20s));
  CHECK(info->advised_monitor_timeout == Duration(20s));
  CHECK(info->advised_monitor_interval == Duration(10s));
}

TEST_CASE("meta-data ignores the agent's stderr and reports broken agents") {
  std::string root = testing::fixture_ocf_root();
  auto probe = resolve_ocf_agent(root, "clusterd-test:probe");
  REQUIRE(probe);
  auto info = read_ocf_metadata(*probe, root);
  REQUIRE(info);
  CHECK(info->find("envfile"));
  CHECK(info->find("rc")->default_value == "0");

  auto broken = resolve_ocf_agent(root, "clusterd-test:broken-metadata");
  REQUIRE(broken);
  auto bad = read_ocf_metadata(*broken, root);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.starts_with("ocf:clusterd-test:broken-metadata: meta-data is not valid XML"));
}

}  // namespace clusterd
