// Command line of clusterd: what the daemon was asked to do, as plain data, parsed by a pure
// function so the rules can be unit-tested.
#pragma once

#include <string>
#include <vector>

#include "error.h"
#include "log.h"

namespace clusterd {

/// What `clusterd` should do after parsing its arguments.
enum class DaemonMode { Run, CheckConfig, Help, Version };

/// Every option of clusterd, with its default.
struct DaemonOptions {
  DaemonMode mode = DaemonMode::Run;
  std::string config_path = "/etc/clusterd/cluster.yaml";
  std::string node_name;  ///< Empty: the hostname.
  std::string bus_socket = "/run/clusterd/bus";
  std::string state_dir = "/var/lib/clusterd";
  std::string ocf_root = "/usr/lib/ocf";
  LogLevel log_level = LogLevel::Info;
  LogTarget log_target = LogTarget::Auto;
  std::string check_config_path;  ///< CheckConfig mode: the file to validate.
  /// Scheduling niceness of the daemon (-20..19). Its children start at 0 again. Below 0 so a
  /// busy machine delays heartbeats as little as possible (corosync runs SCHED_RR for the same
  /// reason; real-time classes are refused in some containers, niceness works everywhere).
  int nice = -10;
};

/// Parses argv[1..] (without the program name). Errors are one sentence, for a usage message.
Result<DaemonOptions> parse_daemon_options(const std::vector<std::string>& args);

/// The text of `clusterd --help`.
std::string daemon_help_text();

/// Parses "auto", "journal", "stderr".
Result<LogTarget> parse_log_target(const std::string& text);

}  // namespace clusterd
