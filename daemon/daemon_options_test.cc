#include "daemon_options.h"

#include <doctest/doctest.h>

namespace clusterd {

TEST_CASE("clusterd options: defaults when none are given") {
  auto o = parse_daemon_options({});
  REQUIRE(o);
  CHECK(o->mode == DaemonMode::Run);
  CHECK(o->config_path == "/etc/clusterd/cluster.yaml");
  CHECK(o->node_name.empty());
  CHECK(o->bus_socket == "/run/clusterd/bus");
  CHECK(o->state_dir == "/var/lib/clusterd");
  CHECK(o->ocf_root == "/usr/lib/ocf");
  CHECK(o->log_level == LogLevel::Info);
  CHECK(o->log_target == LogTarget::Auto);
  CHECK(o->nice == -10);
}

TEST_CASE("clusterd options: values as separate words and with '='") {
  auto o = parse_daemon_options({"--config", "/tmp/c.yaml", "--node=n1", "--bus-socket", "/tmp/b",
                                 "--state-dir=/tmp/s", "--ocf-root", "/opt/ocf",
                                 "--log-level=debug", "--log-target", "stderr"});
  REQUIRE(o);
  CHECK(o->config_path == "/tmp/c.yaml");
  CHECK(o->node_name == "n1");
  CHECK(o->bus_socket == "/tmp/b");
  CHECK(o->state_dir == "/tmp/s");
  CHECK(o->ocf_root == "/opt/ocf");
  CHECK(o->log_level == LogLevel::Debug);
  CHECK(o->log_target == LogTarget::Stderr);
}

TEST_CASE("clusterd options: modes") {
  CHECK(parse_daemon_options({"--help"})->mode == DaemonMode::Help);
  CHECK(parse_daemon_options({"-h"})->mode == DaemonMode::Help);
  CHECK(parse_daemon_options({"--version"})->mode == DaemonMode::Version);
  auto check = parse_daemon_options({"--check-config", "x.yaml"});
  REQUIRE(check);
  CHECK(check->mode == DaemonMode::CheckConfig);
  CHECK(check->check_config_path == "x.yaml");
}

TEST_CASE("clusterd options: mistakes are explained") {
  auto unknown = parse_daemon_options({"--colour"});
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message == "unknown option \"--colour\"");
  auto missing = parse_daemon_options({"--config"});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message == "option --config needs a value");
  CHECK_FALSE(parse_daemon_options({"--node="}));
  CHECK_FALSE(parse_daemon_options({"stray"}));
  auto level = parse_daemon_options({"--log-level", "loud"});
  REQUIRE_FALSE(level);
  CHECK(level.error().message.find("err, warning, notice, info or debug") != std::string::npos);
  CHECK_FALSE(parse_daemon_options({"--log-target", "syslog"}));
  CHECK(parse_daemon_options({"--nice", "5"})->nice == 5);
  CHECK(parse_daemon_options({"--nice=-20"})->nice == -20);
  for (const char* bad : {"20", "-21", "x", "1x", ""})
    CHECK_FALSE(parse_daemon_options({"--nice", bad}));
  CHECK(parse_daemon_options({"--nice", "x"}).error().message.find("-20 to 19") !=
        std::string::npos);
}

TEST_CASE("clusterd --help names every option") {
  std::string help = daemon_help_text();
  for (const char* option :
       {"--config", "--node", "--bus-socket", "--state-dir", "--ocf-root", "--log-level",
        "--log-target", "--check-config", "--nice", "--version", "--help"})
    CHECK(help.find(option) != std::string::npos);
}

}  // namespace clusterd
