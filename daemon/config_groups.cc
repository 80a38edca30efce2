// Groups and their resources: the MSCS group and resource properties, checked against the type
// catalog (parameters, advised timeouts).
#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "config_builder.h"

namespace clusterd {
namespace {

constexpr std::uint64_t kMaxCount = std::numeric_limits<std::uint32_t>::max();
constexpr Duration kYear = std::chrono::hours(24 * 365);
constexpr Duration kMinPeriod = std::chrono::seconds(1);
constexpr Duration kMinTimeout = std::chrono::milliseconds(100);
// Polling more often than this would keep agents busy for nothing.
constexpr Duration kMinPollInterval = std::chrono::milliseconds(100);

const char* kind_name(ParamValue::Kind kind) {
  switch (kind) {
    case ParamValue::Kind::Scalar:
      return "a single value";
    case ParamValue::Kind::List:
      return "a list";
    case ParamValue::Kind::Map:
      return "a mapping";
  }
  return "?";
}

// What the validator says a parameter takes, for "expected ..." errors.
std::string expected_kind(const ParamSpec& spec) {
  if (spec.or_list && spec.kind == ParamValue::Kind::Scalar) return "a single value or a list";
  return kind_name(spec.kind);
}

// A list where the spec allows one as well as a single value (ParamSpec::or_list).
bool kind_fits(const ParamSpec& spec, const ParamValue& value) {
  return spec.kind == value.kind || (spec.or_list && spec.kind == ParamValue::Kind::Scalar &&
                                     value.kind == ParamValue::Kind::List);
}

// "22-6": failback allowed from 22:00 until 06:00.
std::optional<std::pair<int, int>> parse_window(std::string_view text) {
  auto dash = text.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto hour = [](std::string_view s) -> std::optional<int> {
    if (s.empty() || s.size() > 2 || s.find_first_not_of("0123456789") != std::string_view::npos)
      return std::nullopt;
    int h = std::stoi(std::string(s));
    return h <= 23 ? std::optional(h) : std::nullopt;
  };
  auto start = hour(text.substr(0, dash));
  auto end = hour(text.substr(dash + 1));
  if (!start || !end) return std::nullopt;
  return std::pair(*start, *end);
}

// A scalar parameter value, a list of scalars or a mapping of scalars; nothing deeper.
std::optional<ParamValue> read_param_value(const Field& field) {
  ParamValue value;
  value.pos = field.key_pos;
  if (field.value.IsScalar()) {
    value.scalar = field.value.Scalar();
    return value;
  }
  if (field.value.IsSequence()) {
    value.kind = ParamValue::Kind::List;
    for (const auto& item : field.value) {
      if (!item.IsScalar()) {
        field.error_at(position_of(item),
                       fmt::format("{}: list entries must be single values", field.label));
        return std::nullopt;
      }
      value.list.push_back(item.Scalar());
    }
    return value;
  }
  if (field.value.IsMap()) {
    value.kind = ParamValue::Kind::Map;
    for (auto& [key, text] : read_string_map(field)) value.map.emplace_back(key.text, text.text);
    return value;
  }
  field.error("expected a value");
  return std::nullopt;
}

}  // namespace

void ConfigBuilder::read_groups(const Field& field) {
  auto items = read_sequence(field);
  for (std::size_t i = 0; i < items.size(); ++i) read_group(items[i], i);
}

void ConfigBuilder::read_group(const YAML::Node& node, std::size_t index) {
  std::string where = item_label("group", node, index);
  if (!check_item_present(sink_, where, node)) return;
  MapReader map(sink_, where, "", node, position_of(node),
                {"name", "preferred_owners", "possible_owners", "autostart", "failover", "failback",
                 "resources"});
  if (!map.valid()) return;
  GroupConfig group;
  group.pos = map.pos();
  current_group_ = {};
  auto name_field = map.require("name");
  auto name = name_field ? read_name(*name_field) : std::nullopt;
  read_owners(map, group);
  if (auto f = map.get("autostart"))
    if (auto v = read_bool(*f)) group.autostart = *v;
  if (auto f = map.get("failover")) read_failover(*f, group.failover);
  if (auto f = map.get("failback")) read_failback(*f, group.failback);
  if (auto f = map.get("resources")) {
    auto items = read_sequence(*f);
    for (std::size_t i = 0; i < items.size(); ++i)
      if (auto r = read_resource(items[i], i, where)) group.resources.push_back(std::move(*r));
  }
  GroupRefs refs = std::move(current_group_);
  if (!name) return;
  if (const GroupConfig* first = config_.find_group(*name)) {
    name_field->error(fmt::format("duplicate group name '{}' (first defined at line {})", *name,
                                  first->pos.line));
    return;
  }
  group.name = *name;
  refs.where = where;
  config_.groups.push_back(std::move(group));
  group_refs_[*name] = std::move(refs);
}

void ConfigBuilder::read_owners(const MapReader& map, GroupConfig& group) {
  GroupRefs& refs = current_group_;
  if (auto f = map.get("preferred_owners")) refs.preferred = read_string_list(*f);
  if (auto f = map.get("possible_owners")) refs.possible = read_string_list(*f);
  for (const auto& owner : refs.preferred) group.preferred_owners.push_back(owner.text);
  for (const auto& owner : refs.possible) group.possible_owners.push_back(owner.text);
}

void ConfigBuilder::read_failover(const Field& field, FailoverPolicy& policy) {
  MapReader map(field, {"threshold", "period"});
  if (auto f = map.get("threshold"))
    if (auto v = read_integer(*f, 0, kMaxCount)) policy.threshold = static_cast<std::uint32_t>(*v);
  if (auto f = map.get("period"))
    if (auto v = read_duration(*f, kMinPeriod, kYear)) policy.period = *v;
}

void ConfigBuilder::read_failback(const Field& field, FailbackPolicy& policy) {
  MapReader map(field, {"mode", "window", "start", "end"});
  if (!map.valid()) return;
  if (auto f = map.get("mode"))
    if (auto v = read_enum<FailbackMode>(*f, kFailbackModes)) policy.mode = *v;
  bool has_window = map.get("window") || map.get("start") || map.get("end");
  auto hours = read_failback_window(map, field.label);
  if (policy.mode == FailbackMode::Window && !has_window)
    map.error(map.pos(),
              fmt::format("{}: mode 'window' needs a window, like 'window: 22-6'", field.label));
  if (policy.mode != FailbackMode::Window && has_window)
    map.error(map.pos(), fmt::format("{}: a window is only used with 'mode: window'", field.label));
  if (hours && hours->first == hours->second)
    map.error(map.pos(), fmt::format("{}: the window is empty (it starts and ends at {})",
                                     field.label, hours->first));
  if (hours) std::tie(policy.window_start_hour, policy.window_end_hour) = *hours;
}

std::optional<std::pair<int, int>> ConfigBuilder::read_failback_window(const MapReader& map,
                                                                       const std::string& label) {
  auto window = map.get("window");
  auto start = map.get("start");
  auto end = map.get("end");
  if (window && (start || end)) {
    window->error("give either 'window' or 'start' and 'end', not both");
    return std::nullopt;
  }
  if (window) {
    auto text = read_string(*window);
    auto hours = text ? parse_window(*text) : std::nullopt;
    if (text && !hours)
      window->error(fmt::format("expected hours like 22-6 (from 22:00 to 06:00), got '{}'", *text));
    return hours;
  }
  if (!start && !end) return std::nullopt;
  auto hour = [&](const std::optional<Field>& f, std::string_view key) {
    if (!f) map.error(map.pos(), fmt::format("missing required key '{}.{}'", label, key));
    return f ? read_integer(*f, 0, 23) : std::nullopt;
  };
  auto s = hour(start, "start");
  auto e = hour(end, "end");
  if (!s || !e) return std::nullopt;
  return std::pair(static_cast<int>(*s), static_cast<int>(*e));
}

std::optional<ResourceConfig> ConfigBuilder::read_resource(const YAML::Node& node,
                                                           std::size_t index,
                                                           const std::string& group_where) {
  std::string where = group_where + ", " + item_label("resource", node, index);
  if (!check_item_present(sink_, where, node)) return std::nullopt;
  MapReader map(sink_, where, "", node, position_of(node),
                {"name", "type", "agent", "params", "depends", "monitor", "timeouts", "restart",
                 "affects_group"});
  if (!map.valid()) return std::nullopt;
  ResourceConfig r;
  r.pos = map.pos();
  set_by_file_ = {};
  auto name_field = map.require("name");
  auto name = name_field ? read_name(*name_field) : std::nullopt;
  if (auto f = map.require("type"))
    if (auto v = read_string(*f)) r.type = *v;
  if (auto f = map.get("agent"))
    if (auto v = read_string(*f)) r.agent = *v;
  if (auto f = map.get("params")) r.params = read_params(*f);
  ResourceRefs refs{where, {}};
  if (auto f = map.get("depends")) refs.depends = read_string_list(*f);
  for (const auto& dep : refs.depends) r.depends.push_back(dep.text);
  if (auto f = map.get("monitor")) read_monitor(*f, r);
  if (auto f = map.get("timeouts")) read_timeouts(*f, r);
  if (auto f = map.get("restart")) read_restart(*f, r.restart);
  if (auto f = map.get("affects_group"))
    if (auto v = read_bool(*f)) r.restart.affects_group = *v;
  if (!r.type.empty())
    if (auto info = resolve_type(map, r)) {
      check_params(map, r, *info);
      apply_advised(*info, r);
    }
  if (!name) return std::nullopt;
  if (current_group_.resources.contains(*name)) {
    name_field->error(fmt::format("duplicate resource name '{}' in this group", *name));
    return std::nullopt;
  }
  r.name = *name;
  current_group_.resources[*name] = std::move(refs);
  return r;
}

void ConfigBuilder::read_monitor(const Field& field, ResourceConfig& resource) {
  MapReader map(field, {"looks_alive", "is_alive", "timeout"});
  MonitorPolicy& m = resource.monitor;
  // An interval of 0 turns that check off; anything else must leave the agent time to breathe.
  auto interval = [&](const Field& f) -> std::optional<Duration> {
    auto v = read_duration(f, Duration(0), kYear);
    if (v && *v != Duration(0) && *v < kMinPollInterval) {
      f.error(fmt::format("must be 0 (off) or at least {}, got {}",
                          format_duration(kMinPollInterval), f.value.Scalar()));
      return std::nullopt;
    }
    return v;
  };
  if (auto f = map.get("looks_alive")) {
    set_by_file_.looks_alive = true;
    if (auto v = interval(*f)) m.looks_alive = *v;
  }
  if (auto f = map.get("is_alive"))
    if (auto v = interval(*f)) m.is_alive = *v;
  if (auto f = map.get("timeout")) {
    set_by_file_.monitor_timeout = true;
    if (auto v = read_duration(*f, kMinTimeout, kYear)) m.timeout = *v;
  }
}

void ConfigBuilder::read_timeouts(const Field& field, ResourceConfig& resource) {
  MapReader map(field, {"start", "stop"});
  if (auto f = map.get("start")) {
    set_by_file_.start = true;
    if (auto v = read_duration(*f, kMinTimeout, kYear)) resource.timeouts.start = *v;
  }
  if (auto f = map.get("stop")) {
    set_by_file_.stop = true;
    if (auto v = read_duration(*f, kMinTimeout, kYear)) resource.timeouts.stop = *v;
  }
}

void ConfigBuilder::read_restart(const Field& field, RestartPolicy& policy) {
  MapReader map(field, {"policy", "threshold", "period", "delay"});
  if (auto f = map.get("policy"))
    if (auto v = read_choice(*f, {"restart", "never"})) policy.restart = *v == 0;
  if (auto f = map.get("threshold"))
    if (auto v = read_integer(*f, 0, kMaxCount)) policy.threshold = static_cast<std::uint32_t>(*v);
  if (auto f = map.get("period"))
    if (auto v = read_duration(*f, kMinPeriod, kYear)) policy.period = *v;
  if (auto f = map.get("delay"))
    if (auto v = read_duration(*f, Duration(0), std::chrono::hours(1))) policy.delay = *v;
}

Params ConfigBuilder::read_params(const Field& field) {
  Params params;
  if (field.value.IsNull()) return params;
  if (!field.value.IsMap()) {
    field.error("expected a mapping of parameter names to values");
    return params;
  }
  for (auto it = field.value.begin(); it != field.value.end(); ++it) {
    SourcePos key_pos = position_of(it->first);
    if (!it->first.IsScalar()) {
      field.error_at(key_pos, fmt::format("{}: parameter names must be plain words", field.label));
      continue;
    }
    std::string key = it->first.Scalar();
    Field entry{field.sink, field.where, field.label + "." + key, it->second, key_pos};
    if (params.contains(key)) {
      field.error_at(key_pos, fmt::format("{}: duplicate parameter '{}'", field.label, key));
      continue;
    }
    if (auto value = read_param_value(entry)) params[key] = std::move(*value);
  }
  return params;
}

std::optional<TypeInfo> ConfigBuilder::resolve_type(const MapReader& map,
                                                    const ResourceConfig& resource) {
  auto type_field = map.get("type");
  auto agent_field = map.get("agent");
  auto names = catalog_.type_names();
  if (std::find(names.begin(), names.end(), resource.type) == names.end()) {
    type_field->error(fmt::format("unknown resource type '{}'{}", resource.type,
                                  did_you_mean(resource.type, names)));
    return std::nullopt;
  }
  bool ocf = resource.type == "ocf";
  if (ocf && !agent_field) {
    map.error(map.pos(),
              "missing required key 'agent' (type 'ocf' needs an agent like "
              "heartbeat:Dummy)");
    return std::nullopt;
  }
  if (!ocf && agent_field) {
    agent_field->error(fmt::format("only type 'ocf' takes an agent, this resource is of type '{}'",
                                   resource.type));
    return std::nullopt;
  }
  if (ocf && resource.agent.empty()) return std::nullopt;  // already reported
  if (ocf && !resource.agent.starts_with('/') &&
      std::count(resource.agent.begin(), resource.agent.end(), ':') != 1) {
    agent_field->error(fmt::format(
        "expected an OCF agent as provider:type (like heartbeat:Dummy) or an absolute path, got "
        "'{}'",
        resource.agent));
    return std::nullopt;
  }
  auto info = catalog_.lookup(resource.type, resource.agent);
  if (!info) {
    const Field& at = ocf ? *agent_field : *type_field;
    at.error_at(at.pos(), info.error().to_string());
    return std::nullopt;
  }
  return *info;
}

void ConfigBuilder::check_params(const MapReader& map, const ResourceConfig& resource,
                                 const TypeInfo& info) {
  std::string owner = resource.type == "ocf" ? fmt::format("agent '{}'", resource.agent)
                                             : fmt::format("type '{}'", resource.type);
  std::vector<std::string> known;
  for (const auto& spec : info.params) known.push_back(spec.name);
  for (const auto& [key, value] : resource.params) {
    const ParamSpec* spec = info.find(key);
    if (spec == nullptr)
      map.error(value.pos, fmt::format("unknown parameter '{}' for {}{}", key, owner,
                                       did_you_mean(key, known)));
    else if (!kind_fits(*spec, value))
      map.error(value.pos, fmt::format("params.{}: expected {}, got {}", key, expected_kind(*spec),
                                       kind_name(value.kind)));
  }
  auto params_field = map.get("params");
  SourcePos missing_at = params_field ? params_field->key_pos : map.pos();
  for (const auto& spec : info.params)
    if (spec.required && !resource.params.contains(spec.name))
      map.error(missing_at,
                fmt::format("missing required parameter '{}' for {}", spec.name, owner));
}

void ConfigBuilder::apply_advised(const TypeInfo& info, ResourceConfig& resource) {
  // The agent's author knows how long its actions take (OCF meta-data <actions>); the file wins
  // where it says something, MSCS defaults stay where neither does.
  if (!set_by_file_.start && info.advised_start_timeout)
    resource.timeouts.start = *info.advised_start_timeout;
  if (!set_by_file_.stop && info.advised_stop_timeout)
    resource.timeouts.stop = *info.advised_stop_timeout;
  if (!set_by_file_.monitor_timeout && info.advised_monitor_timeout)
    resource.monitor.timeout = *info.advised_monitor_timeout;
  if (!set_by_file_.looks_alive && info.advised_monitor_interval)
    resource.monitor.looks_alive = *info.advised_monitor_interval;
}

}  // namespace clusterd
