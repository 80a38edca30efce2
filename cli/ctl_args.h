// clusterctl's command line as plain data, parsed by a pure function.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "error.h"

namespace clusterd {

/// Exit codes of clusterctl (documented in clusterctl(8)).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  ///< Refused, failed, invalid file, timed out.
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;  ///< No daemon at the socket.
inline constexpr int kExitDenied = 4;       ///< Permission denied.

/// Everything given on the command line.
struct CtlOptions {
  std::string bus = "/run/clusterd/bus";
  std::string ocf_root = "/usr/lib/ocf";
  bool json = false;
  bool help = false;
  bool version = false;
  bool watch = false;
  bool follow = false;
  bool no_wait = false;
  bool wait = false;  ///< move/drain: wait until the groups are online on their new owner.
  bool since_set = false;
  std::uint64_t since = 0;
  std::string timeout = "60s";
  std::string command;
  std::vector<std::string> args;
  std::set<std::string> used;  ///< Command-specific options given (long names), for checks.
};

/// Parses argv[1..]; `env_bus` is $CLUSTERD_BUS (empty when unset). Options may appear before
/// or after the command. Errors are one sentence.
Result<CtlOptions> parse_ctl_args(const std::vector<std::string>& args, const std::string& env_bus);

/// Checks the command's arguments and options (e.g. "online" needs one target, --watch only
/// with status); one sentence on error.
Result<void> check_command(const CtlOptions& options);

/// The help text of the tool (`command` empty) or of one command; empty for unknown commands.
std::string ctl_help(const std::string& command);

/// "web" -> {"web", ""}; "web/app" -> {"web", "app"}.
struct Target {
  std::string group;
  std::string resource;
};
Result<Target> parse_target(const std::string& text);

}  // namespace clusterd
