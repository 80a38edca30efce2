// clusterctl: parse the command line, then run one command against clusterd.
#include <build_config.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ctl_args.h"
#include "ctl_commands.h"

using namespace clusterd;

namespace {

int usage_error(const std::string& message) {
  std::fprintf(stderr, "clusterctl: %s (see clusterctl --help)\n", message.c_str());
  return kExitUsage;
}

/// Help for "--help", "help", "help CMD" and "CMD --help"; -1 when no help was asked for.
int maybe_help(const CtlOptions& o) {
  std::string topic;
  if (o.command == "help")
    topic = o.args.empty() ? "" : o.args[0];
  else if (o.help)
    topic = o.command;
  else
    return -1;
  std::string text = ctl_help(topic);
  if (text.empty()) return usage_error("unknown command \"" + topic + "\"");
  std::fputs(text.c_str(), stdout);
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  const char* env_bus = std::getenv("CLUSTERD_BUS");
  auto options =
      parse_ctl_args(std::vector<std::string>(argv + 1, argv + argc), env_bus ? env_bus : "");
  if (!options) return usage_error(options.error().message);
  if (options->version) {
    std::printf("clusterctl %s\n", CLUSTERD_VERSION);
    return kExitOk;
  }
  if (int help = maybe_help(*options); help >= 0) return help;
  if (options->command.empty()) return usage_error("no command given");
  if (auto checked = check_command(*options); !checked) return usage_error(checked.error().message);
  return run_command(*options);
}
