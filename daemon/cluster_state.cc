#include "cluster_state.h"

#include <fmt/format.h>

#include <array>
#include <nlohmann/json.hpp>

namespace clusterd {
namespace {

using nlohmann::json;

constexpr std::array<const char*, kNodeFlagCount> kNodeFlagNames = {"none", "paused", "draining"};

/// The enum value whose to_string is `name`; nullopt for an unknown name.
template <typename E, int Count>
std::optional<E> parse_enum(const std::string& name) {
  for (int i = 0; i < Count; ++i)
    if (name == to_string(static_cast<E>(i))) return static_cast<E>(i);
  return std::nullopt;
}

template <typename E, int Count>
E enum_field(const json& j, const char* key) {
  auto value = parse_enum<E, Count>(j.at(key).get<std::string>());
  if (!value) throw json::other_error::create(501, fmt::format("bad value for {}", key), &j);
  return *value;
}

Bytes to_bytes(const json& j) {
  std::string text = j.dump();
  return Bytes(text.begin(), text.end());
}

json action_json(const PlacementAction& a) {
  return {{"kind", to_string(a.kind)},
          {"group", a.group},
          {"node", a.node},
          {"target", a.target},
          {"cause", to_string(a.cause)},
          {"intent", to_string(a.intent)},
          {"reason", a.reason}};
}

PlacementAction action_from(const json& j) {
  PlacementAction a;
  a.kind = enum_field<ActionKind, kActionKindCount>(j, "kind");
  a.group = j.at("group").get<std::string>();
  a.node = j.at("node").get<std::string>();
  a.target = j.at("target").get<std::string>();
  a.cause = enum_field<PlacementCause, kPlacementCauseCount>(j, "cause");
  a.intent = enum_field<GroupIntent, kGroupIntentCount>(j, "intent");
  a.reason = j.at("reason").get<std::string>();
  return a;
}

json record_json(const PlacementRecord& r) {
  return {{"phase", to_string(r.phase)},
          {"node", r.node},
          {"target", r.target},
          {"cause", to_string(r.cause)},
          {"intent", to_string(r.intent)},
          {"since", r.since.usec}};
}

PlacementRecord record_from(const json& j) {
  PlacementRecord r;
  r.phase = enum_field<GroupPhase, kGroupPhaseCount>(j, "phase");
  r.node = j.at("node").get<std::string>();
  r.target = j.at("target").get<std::string>();
  r.cause = enum_field<PlacementCause, kPlacementCauseCount>(j, "cause");
  r.intent = enum_field<GroupIntent, kGroupIntentCount>(j, "intent");
  r.since = MonoTime{j.at("since").get<Usec>()};
  return r;
}

json timeline_json(const Timeline& t) {
  json phases = json::array();
  for (const auto& p : t.phases)
    phases.push_back({{"phase", p.phase}, {"node", p.node}, {"at", p.at_wall_usec}});
  return {{"id", t.id}, {"group", t.group}, {"cause", t.cause}, {"phases", phases}};
}

Timeline timeline_from(const json& j) {
  Timeline t;
  t.id = j.at("id").get<std::uint64_t>();
  t.group = j.at("group").get<std::string>();
  t.cause = j.at("cause").get<std::string>();
  for (const auto& p : j.at("phases"))
    t.phases.push_back({p.at("phase").get<std::string>(), p.at("node").get<std::string>(),
                        p.at("at").get<Usec>()});
  return t;
}

/// Whether an action starts the story of a failover or a move (worth a timeline).
bool opens_timeline(const PlacementAction& a) {
  if (a.kind != ActionKind::Start && a.kind != ActionKind::Stop &&
      a.kind != ActionKind::MarkOffline)
    return false;
  switch (a.cause) {
    case PlacementCause::Failover:
    case PlacementCause::NodeLoss:
    case PlacementCause::MoveRequest:
    case PlacementCause::Failback:
    case PlacementCause::Drain:
      return true;
    default:
      return false;
  }
}

Timeline* open_timeline(ClusterState& state, const std::string& group) {
  for (auto it = state.timelines.rbegin(); it != state.timelines.rend(); ++it)
    if (it->group == group) return &*it;
  return nullptr;
}

void add_phase(ClusterState& state, const std::string& group, TimelinePhase phase) {
  if (Timeline* t = open_timeline(state, group)) t->phases.push_back(std::move(phase));
}

void note_actions(ClusterState& state, const std::vector<PlacementAction>& actions, Index index,
                  Usec now) {
  for (const auto& a : actions) {
    if (a.group.empty()) continue;
    if (opens_timeline(a)) {
      Timeline* current = open_timeline(state, a.group);
      // A stop followed by its start (a move) is one story: keep adding to the open one.
      bool continues = current != nullptr && a.kind == ActionKind::Start && current->id != 0 &&
                       !current->phases.empty() && current->phases.back().phase != "online";
      if (!continues) {
        state.timelines.push_back({index, a.group, to_string(a.cause), {}});
        if (state.timelines.size() > kMaxTimelines) state.timelines.erase(state.timelines.begin());
      }
    }
    if (a.kind == ActionKind::Start || a.kind == ActionKind::Stop ||
        a.kind == ActionKind::MarkOffline) {
      add_phase(state, a.group, {fmt::format("decided-{}", to_string(a.kind)), a.node, now});
      state.epochs[a.group] = index;
    }
  }
}

Result<std::string> apply_placement(ClusterState& state, const json& j, Index index) {
  std::vector<PlacementAction> actions;
  for (const auto& a : j.at("actions")) actions.push_back(action_from(a));
  Usec now = j.at("now").get<Usec>();
  note_actions(state, actions, index, now);
  apply_actions(actions, placement_time(now), state.placement);
  std::string text;
  for (const auto& a : actions) {
    if (a.kind == ActionKind::Wait) continue;
    if (!text.empty()) text += "; ";
    text += fmt::format("{} {}{}{} ({})", to_string(a.kind), a.group, a.node.empty() ? "" : " on ",
                        a.node, a.reason);
  }
  return text;
}

Result<std::string> apply_report(ClusterState& state, const json& j, Index index) {
  GroupReport r{j.at("group").get<std::string>(), j.at("node").get<std::string>(),
                enum_field<GroupPhase, kGroupPhaseCount>(j, "phase")};
  Usec now = j.at("now").get<Usec>();
  if (!apply_report(r.group, r.node, r.phase, placement_time(now), state.placement)) return "";
  state.epochs[r.group] = index;
  add_phase(state, r.group, {to_string(r.phase), r.node, now});
  return fmt::format("group {} is {} on {}", r.group, to_string(r.phase), r.node);
}

Result<std::string> apply_config(ClusterState& state, const json& j) {
  auto version = j.at("version").get<std::uint64_t>();
  // Monotonic versions: an older configuration never wins, whatever order entries come in.
  if (version <= state.config_version) return "";
  state.config_version = version;
  state.config_yaml = j.at("yaml").get<std::string>();
  return fmt::format("configuration version {} committed", version);
}

Result<std::string> apply_admin(ClusterState& state, const json& j) {
  std::string node = j.at("node").get<std::string>();
  if (node.empty()) {
    state.maintenance = j.at("maintenance").get<bool>();
    return fmt::format("maintenance mode {}", state.maintenance ? "on" : "off");
  }
  NodeFlag flag = enum_field<NodeFlag, kNodeFlagCount>(j, "flag");
  if (flag == NodeFlag::None)
    state.admin.erase(node);
  else
    state.admin[node] = flag;
  return fmt::format("node {} is now {}", node,
                     flag == NodeFlag::None ? "resumed" : to_string(flag));
}

Result<std::string> apply_timeline(ClusterState& state, const json& j) {
  add_phase(
      state, j.at("group").get<std::string>(),
      {j.at("phase").get<std::string>(), j.at("node").get<std::string>(), j.at("at").get<Usec>()});
  return "";
}

Result<std::string> apply_json(ClusterState& state, const Entry& entry, const json& j) {
  switch (static_cast<EntryType>(entry.type)) {
    case EntryType::Placement:
      return apply_placement(state, j, entry.index);
    case EntryType::Report:
      return apply_report(state, j, entry.index);
    case EntryType::Config:
      return apply_config(state, j);
    case EntryType::Admin:
      return apply_admin(state, j);
    case EntryType::Timeline:
      return apply_timeline(state, j);
  }
  return fail("entry {} has the unknown type {}", entry.index, entry.type);
}

}  // namespace

const char* to_string(NodeFlag flag) { return kNodeFlagNames[static_cast<std::size_t>(flag)]; }

Bytes encode_placement(const std::vector<PlacementAction>& actions, Usec wall_usec) {
  json list = json::array();
  for (const auto& a : actions) list.push_back(action_json(a));
  return to_bytes({{"actions", list}, {"now", wall_usec}});
}

Bytes encode_report(const GroupReport& report, Usec wall_usec) {
  return to_bytes({{"group", report.group},
                   {"node", report.node},
                   {"phase", to_string(report.phase)},
                   {"now", wall_usec}});
}

Bytes encode_config(std::uint64_t version, const std::string& yaml) {
  return to_bytes({{"version", version}, {"yaml", yaml}});
}

Bytes encode_admin(const AdminChange& change) {
  return to_bytes({{"node", change.node},
                   {"flag", to_string(change.flag)},
                   {"maintenance", change.maintenance}});
}

Bytes encode_timeline(const std::string& group, const TimelinePhase& phase) {
  return to_bytes(
      {{"group", group}, {"phase", phase.phase}, {"node", phase.node}, {"at", phase.at_wall_usec}});
}

Result<std::string> apply_entry(ClusterState& state, const Entry& entry) {
  if (entry.index > state.applied) state.applied = entry.index;
  if (entry.type == kEntryNoop) return "";
  try {
    json j = json::parse(entry.data.begin(), entry.data.end());
    return apply_json(state, entry, j);
  } catch (const json::exception& e) {
    return fail("entry {} (type {}) is malformed, ignoring it: {}", entry.index, entry.type,
                e.what());
  }
}

Bytes encode_state(const ClusterState& state) {
  json records = json::object();
  for (const auto& [group, r] : state.placement.records) records[group] = record_json(r);
  json failovers = json::object();
  for (const auto& [group, times] : state.placement.failovers) {
    json list = json::array();
    for (auto t : times) list.push_back(t.usec);
    failovers[group] = list;
  }
  json admin = json::object();
  for (const auto& [node, flag] : state.admin) admin[node] = to_string(flag);
  json timelines = json::array();
  for (const auto& t : state.timelines) timelines.push_back(timeline_json(t));
  return to_bytes({{"config_version", state.config_version},
                   {"config_yaml", state.config_yaml},
                   {"records", records},
                   {"failovers", failovers},
                   {"admin", admin},
                   {"maintenance", state.maintenance},
                   {"timelines", timelines},
                   {"epochs", state.epochs},
                   {"applied", state.applied}});
}

Result<ClusterState> decode_state(std::span<const std::uint8_t> bytes) {
  ClusterState s;
  if (bytes.empty()) return s;
  try {
    json j = json::parse(bytes.begin(), bytes.end());
    s.config_version = j.at("config_version").get<std::uint64_t>();
    s.config_yaml = j.at("config_yaml").get<std::string>();
    for (const auto& [group, r] : j.at("records").items())
      s.placement.records[group] = record_from(r);
    for (const auto& [group, times] : j.at("failovers").items())
      for (const auto& t : times) s.placement.failovers[group].push_back(MonoTime{t.get<Usec>()});
    for (const auto& [node, flag] : j.at("admin").items())
      s.admin[node] = enum_field<NodeFlag, kNodeFlagCount>(json{{"f", flag}}, "f");
    s.maintenance = j.at("maintenance").get<bool>();
    for (const auto& t : j.at("timelines")) s.timelines.push_back(timeline_from(t));
    s.epochs = j.at("epochs").get<std::map<std::string, std::uint64_t>>();
    s.applied = j.at("applied").get<Index>();
  } catch (const json::exception& e) {
    return fail("the cluster state snapshot is malformed: {}", e.what());
  }
  return s;
}

PlacementRecord record_of(const ClusterState& state, const std::string& group) {
  auto it = state.placement.records.find(group);
  return it == state.placement.records.end() ? PlacementRecord{} : it->second;
}

}  // namespace clusterd
