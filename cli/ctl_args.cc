#include "ctl_args.h"

#include <charconv>
#include <map>
#include <set>

namespace clusterd {
namespace {

struct CommandSpec {
  std::size_t min_args;
  std::size_t max_args;
  std::set<std::string> options;  ///< Command-specific options it accepts.
  const char* usage;
};

const std::map<std::string, CommandSpec>& commands() {
  static const std::map<std::string, CommandSpec> specs = {
      {"status", {0, 0, {"--json", "--watch"}, "status [--watch] [--json]"}},
      {"nodes", {0, 0, {"--json"}, "nodes [--json]"}},
      {"groups", {0, 0, {"--json"}, "groups [--json]"}},
      {"resources", {0, 1, {"--json"}, "resources [GROUP] [--json]"}},
      {"events",
       {0, 0, {"--json", "--since", "--follow"}, "events [--since N] [--follow] [--json]"}},
      {"online",
       {1, 1, {"--timeout", "--no-wait"}, "online GROUP|GROUP/RESOURCE [--timeout D] [--no-wait]"}},
      {"offline",
       {1,
        1,
        {"--timeout", "--no-wait"},
        "offline GROUP|GROUP/RESOURCE [--timeout D] [--no-wait]"}},
      {"cluster", {0, 0, {"--json"}, "cluster [--json]"}},
      {"timeline", {0, 1, {"--json"}, "timeline [GROUP] [--json]"}},
      {"move", {1, 2, {"--wait", "--timeout"}, "move GROUP [NODE] [--wait [--timeout D]]"}},
      {"pause", {1, 1, {}, "pause NODE"}},
      {"drain", {1, 1, {"--wait", "--timeout"}, "drain NODE [--wait [--timeout D]]"}},
      {"resume", {1, 1, {}, "resume NODE"}},
      {"maintenance", {1, 1, {}, "maintenance on|off"}},
      {"validate", {1, 1, {"--ocf-root"}, "validate FILE [--ocf-root DIR]"}},
      {"apply", {1, 1, {}, "apply FILE"}},
      {"reload", {0, 0, {}, "reload"}},
      {"help", {0, 1, {}, "help [COMMAND]"}},
  };
  return specs;
}

/// Splits "--name=value".
std::string option_name(const std::string& arg, std::string* value, bool* has_value) {
  auto eq = arg.find('=');
  *has_value = arg.starts_with("--") && eq != std::string::npos;
  if (!*has_value) return arg;
  *value = arg.substr(eq + 1);
  return arg.substr(0, eq);
}

Result<std::uint64_t> parse_seq(const std::string& text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size())
    return fail("--since needs an event number, not \"{}\"", text);
  return value;
}

/// Applies one option that takes a value.
Result<void> set_valued(CtlOptions& o, const std::string& name, const std::string& value) {
  if (name == "--bus")
    o.bus = value;
  else if (name == "--ocf-root")
    o.ocf_root = value;
  else if (name == "--timeout")
    o.timeout = value;
  else if (name == "--since") {
    auto seq = parse_seq(value);
    if (!seq) return std::unexpected(seq.error());
    o.since = *seq;
    o.since_set = true;
  }
  return {};
}

/// Applies one flag; false when `name` is no flag.
bool set_flag(CtlOptions& o, const std::string& name) {
  if (name == "--help" || name == "-h")
    o.help = true;
  else if (name == "--version")
    o.version = true;
  else if (name == "--json")
    o.json = true;
  else if (name == "--watch" || name == "-w")
    o.watch = true;
  else if (name == "--follow" || name == "-f")
    o.follow = true;
  else if (name == "--no-wait")
    o.no_wait = true;
  else if (name == "--wait")
    o.wait = true;
  else
    return false;
  if (name == "-w")
    o.used.insert("--watch");
  else if (name == "-f")
    o.used.insert("--follow");
  else if (name != "--help" && name != "-h" && name != "--version")
    o.used.insert(name);
  return true;
}

const std::set<std::string> kValued = {"--bus", "--ocf-root", "--timeout", "--since"};

}  // namespace

Result<CtlOptions> parse_ctl_args(const std::vector<std::string>& args,
                                  const std::string& env_bus) {
  CtlOptions o;
  if (!env_bus.empty()) o.bus = env_bus;
  std::vector<std::string> positional;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string value;
    bool has_value = false;
    std::string name = option_name(args[i], &value, &has_value);
    if (name == "--") {
      positional.insert(positional.end(), args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    }
    if (kValued.contains(name)) {
      if (!has_value && i + 1 >= args.size()) return fail("option {} needs a value", name);
      if (!has_value) value = args[++i];
      if (auto set = set_valued(o, name, value); !set) return std::unexpected(set.error());
      if (name != "--bus") o.used.insert(name);
    } else if (!set_flag(o, name)) {
      if (name.starts_with("-") && name.size() > 1) return fail("unknown option \"{}\"", name);
      positional.push_back(args[i]);
    }
  }
  if (!positional.empty()) {
    o.command = positional.front();
    o.args.assign(positional.begin() + 1, positional.end());
  }
  return o;
}

Result<void> check_command(const CtlOptions& o) {
  auto it = commands().find(o.command);
  if (it == commands().end()) return fail("unknown command \"{}\"", o.command);
  const CommandSpec& spec = it->second;
  if (o.args.size() < spec.min_args || o.args.size() > spec.max_args)
    return fail("usage: clusterctl {}", spec.usage);
  for (const auto& used : o.used) {
    if (!spec.options.contains(used))
      return fail("option {} does not apply to \"{}\" (usage: clusterctl {})", used, o.command,
                  spec.usage);
  }
  // move and drain answer once the coordinator accepted, unless asked to wait.
  if (spec.options.contains("--wait") && o.used.contains("--timeout") && !o.wait)
    return fail("option --timeout needs --wait with \"{}\" (usage: clusterctl {})", o.command,
                spec.usage);
  return {};
}

Result<Target> parse_target(const std::string& text) {
  auto slash = text.find('/');
  Target t{text.substr(0, slash), slash == std::string::npos ? "" : text.substr(slash + 1)};
  if (t.group.empty() || (slash != std::string::npos && t.resource.empty()) ||
      t.resource.find('/') != std::string::npos)
    return fail("\"{}\" is not GROUP or GROUP/RESOURCE", text);
  return t;
}

}  // namespace clusterd
