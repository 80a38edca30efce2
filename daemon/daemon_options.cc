#include "daemon_options.h"

#include <fmt/core.h>

#include <charconv>
#include <functional>
#include <map>

namespace clusterd {
namespace {

using Setter = std::function<Result<void>(DaemonOptions&, const std::string&)>;

/// Setter for an option that is a plain string.
template <std::string DaemonOptions::*member>
Result<void> set_string(DaemonOptions& o, const std::string& v) {
  o.*member = v;
  return {};
}

Result<void> set_log_level(DaemonOptions& o, const std::string& v) {
  if (!parse_log_level(v, &o.log_level))
    return fail("unknown log level \"{}\" (use err, warning, notice, info or debug)", v);
  return {};
}

Result<void> set_log_target(DaemonOptions& o, const std::string& v) {
  auto target = parse_log_target(v);
  if (!target) return std::unexpected(target.error());
  o.log_target = *target;
  return {};
}

Result<void> set_nice(DaemonOptions& o, const std::string& v) {
  int n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < -20 || n > 19)
    return fail("--nice wants a number from -20 to 19, got \"{}\"", v);
  o.nice = n;
  return {};
}

Result<void> set_check_config(DaemonOptions& o, const std::string& v) {
  o.mode = DaemonMode::CheckConfig;
  o.check_config_path = v;
  return {};
}

/// Options that take a value, by long name.
const std::map<std::string, Setter>& valued_options() {
  static const std::map<std::string, Setter> options = {
      {"--config", set_string<&DaemonOptions::config_path>},
      {"--node", set_string<&DaemonOptions::node_name>},
      {"--bus-socket", set_string<&DaemonOptions::bus_socket>},
      {"--state-dir", set_string<&DaemonOptions::state_dir>},
      {"--ocf-root", set_string<&DaemonOptions::ocf_root>},
      {"--log-level", set_log_level},
      {"--log-target", set_log_target},
      {"--check-config", set_check_config},
      {"--nice", set_nice},
  };
  return options;
}

/// Splits "--name=value" into name and value; `has_value` false without '='.
std::string split_option(const std::string& arg, std::string* value, bool* has_value) {
  auto eq = arg.find('=');
  *has_value = eq != std::string::npos && arg.starts_with("--");
  if (!*has_value) return arg;
  *value = arg.substr(eq + 1);
  return arg.substr(0, eq);
}

}  // namespace

Result<LogTarget> parse_log_target(const std::string& text) {
  if (text == "auto") return LogTarget::Auto;
  if (text == "journal") return LogTarget::Journal;
  if (text == "stderr") return LogTarget::Stderr;
  return fail("unknown log target \"{}\" (use auto, journal or stderr)", text);
}

Result<DaemonOptions> parse_daemon_options(const std::vector<std::string>& args) {
  DaemonOptions options;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string value;
    bool has_value = false;
    std::string name = split_option(args[i], &value, &has_value);
    if (name == "--help" || name == "-h" || name == "--version") {
      options.mode = name == "--version" ? DaemonMode::Version : DaemonMode::Help;
      return options;
    }
    auto it = valued_options().find(name);
    if (it == valued_options().end()) {
      if (name.starts_with("-")) return fail("unknown option \"{}\"", name);
      return fail("unexpected argument \"{}\" (clusterd takes options only)", name);
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return fail("option {} needs a value", name);
      value = args[++i];
    }
    if (value.empty()) return fail("option {} needs a non-empty value", name);
    if (auto set = it->second(options, value); !set) return std::unexpected(set.error());
  }
  return options;
}

std::string daemon_help_text() {
  return R"(clusterd - the failover cluster daemon (one per node)

Usage: clusterd [OPTIONS]

Runs the resource groups of this node as configured in the cluster file and serves the
org.clusterd1 D-Bus API that clusterctl talks to. Normally started by systemd
(clusterd.service); run it by hand for testing.

Options:
  --config FILE        cluster configuration (default /etc/clusterd/cluster.yaml)
  --node NAME          this node's name in the configuration (default: the hostname)
  --bus-socket PATH    UNIX socket of the D-Bus API (default /run/clusterd/bus)
  --state-dir DIR      state and per-resource scratch space (default /var/lib/clusterd)
  --ocf-root DIR       OCF_ROOT for ocf resources (default /usr/lib/ocf)
  --log-level LEVEL    err, warning, notice, info (default) or debug
  --log-target TARGET  auto (default: the journal when there is one), journal or stderr
  --nice N             the daemon's niceness, -20..19 (default -10: heartbeats go out on time on
                       a busy machine); resources' processes start at 0
  --check-config FILE  validate FILE, print every problem as FILE:LINE:COLUMN: message,
                       exit 0 when valid and 1 when not; no daemon is started
  --version            print the version and exit
  -h, --help           print this help and exit

Signals: SIGTERM/SIGINT take every group offline in order, then exit 0; SIGHUP re-reads the
configuration file (a bad file is rejected and the running configuration stays).

Examples:
  clusterd --check-config /etc/clusterd/cluster.yaml
  clusterd --config ./lab.yaml --node node1 --bus-socket /tmp/clusterd.sock --log-target stderr
)";
}

}  // namespace clusterd
