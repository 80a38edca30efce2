#include "ctl_commands.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "config_load.h"
#include "ctl_client.h"
#include "ctl_output.h"
#include "resource_types.h"

namespace clusterd {
namespace {

int report(const CtlError& error) {
  std::fprintf(stderr, "clusterctl: %s\n", error.message.c_str());
  return error.exit_code;
}

void print(const std::string& text) { std::fputs(text.c_str(), stdout); }

void print_json(const nlohmann::json& j, bool one_line = false) {
  print((one_line ? j.dump() : j.dump(2)) + "\n");
  std::fflush(stdout);
}

/// Connects, runs `body` with the client, reports a failure.
template <typename F>
int with_client(const CtlOptions& o, F body) {
  auto client = CtlClient::connect(o.bus);
  if (!client) return report(client.error());
  CtlResult<void> result = body(*client);
  return result ? kExitOk : report(result.error());
}

CtlResult<void> show_status(CtlClient& c, const CtlOptions& o) {
  auto status = c.status();
  if (!status) return std::unexpected(status.error());
  if (o.json) {
    print_json(to_json(*status), o.watch);
  } else {
    if (o.watch && isatty(STDOUT_FILENO)) print("\033[H\033[2J");
    print(format_status(*status));
    if (o.watch) print("\n");
    std::fflush(stdout);
  }
  return {};
}

int cmd_status(const CtlOptions& o) {
  return with_client(o, [&](CtlClient& c) -> CtlResult<void> {
    if (o.watch) {
      if (auto s = c.subscribe(); !s) return s;
    }
    if (auto shown = show_status(c, o); !shown) return shown;
    while (o.watch) {
      if (auto w = c.wait_change_forever(); !w) return w;
      if (auto shown = show_status(c, o); !shown) return shown;
    }
    return {};
  });
}

int cmd_nodes(const CtlOptions& o) {
  return with_client(o, [&](CtlClient& c) -> CtlResult<void> {
    auto nodes = c.nodes();
    if (!nodes) return std::unexpected(nodes.error());
    if (o.json) {
      print_json(to_json(*nodes));
      return {};
    }
    auto cluster = c.cluster();
    if (!cluster) return std::unexpected(cluster.error());
    print(format_cluster_line(nlohmann::json::parse(*cluster, nullptr, false)));
    print(format_nodes(*nodes));
    return {};
  });
}

int cmd_cluster(const CtlOptions& o) {
  return with_client(o, [&](CtlClient& c) -> CtlResult<void> {
    auto cluster = c.cluster();
    if (!cluster) return std::unexpected(cluster.error());
    auto j = nlohmann::json::parse(*cluster, nullptr, false);
    o.json ? print_json(j) : print(format_cluster(j));
    return {};
  });
}

int cmd_timeline(const CtlOptions& o) {
  return with_client(o, [&](CtlClient& c) -> CtlResult<void> {
    auto text = c.timelines();
    if (!text) return std::unexpected(text.error());
    auto all = nlohmann::json::parse(*text, nullptr, false);
    nlohmann::json chosen = nlohmann::json::array();
    for (const auto& t : all)
      if (o.args.empty() || t.value("group", "") == o.args[0]) chosen.push_back(t);
    o.json ? print_json(chosen) : print(format_timelines(chosen));
    return {};
  });
}

/// The groups `command` (move or drain) moves, with where each goes, from `groups` as they are
/// before the request.
CtlResult<std::vector<MoveGoal>> move_goals(const CtlOptions& o,
                                            const std::vector<GroupView>& groups) {
  std::vector<MoveGoal> goals;
  if (o.command == "drain") {
    for (const auto& g : groups)
      if (g.owner == o.args[0] && g.state != "offline") goals.push_back({g.name, g.owner, ""});
    return goals;
  }
  for (const auto& g : groups)
    if (g.name == o.args[0]) goals.push_back({g.name, g.owner, o.args.size() > 1 ? o.args[1] : ""});
  if (goals.empty())
    return std::unexpected(
        CtlError{kExitFailed, fmt::format("there is no group called \"{}\"", o.args[0])});
  return goals;
}

std::string describe_goal(const MoveGoal& goal) {
  return goal.to.empty() ? fmt::format("{} online on a node other than {}", goal.group, goal.from)
                         : fmt::format("{} online on {}", goal.group, goal.to);
}

/// One pass over the goals: done (true), still moving (false, `waiting` says where each stands),
/// or an error when one failed or was refused.
CtlResult<bool> check_moves(CtlClient& c, const std::vector<MoveGoal>& goals, std::uint64_t seq,
                            std::string* waiting) {
  auto groups = c.groups();
  if (!groups) return std::unexpected(groups.error());
  auto events = c.events(seq);
  if (!events) return std::unexpected(events.error());
  waiting->clear();
  for (const auto& goal : goals) {
    auto it = std::find_if(groups->begin(), groups->end(),
                           [&](const GroupView& g) { return g.name == goal.group; });
    if (it == groups->end())
      return std::unexpected(
          CtlError{kExitFailed, fmt::format("group {} is no longer configured", goal.group)});
    std::string why;
    switch (judge_move(goal, *it, *events, &why)) {
      case WaitVerdict::Reached:
        break;
      case WaitVerdict::Failed:
        return std::unexpected(CtlError{kExitFailed, why});
      case WaitVerdict::Pending:
        *waiting += fmt::format("{}{} is {}{}", waiting->empty() ? "" : ", ", goal.group,
                                it->state, it->owner.empty() ? "" : " on " + it->owner);
        break;
    }
  }
  return waiting->empty();
}

/// Follows Changed signals until every goal is reached, one fails, or the deadline passes.
CtlResult<void> wait_moves(CtlClient& c, const std::vector<MoveGoal>& goals, std::uint64_t seq,
                           Duration timeout) {
  MonoTime deadline = mono_now() + timeout;
  while (true) {
    std::string waiting;
    auto done = check_moves(c, goals, seq, &waiting);
    if (!done) return std::unexpected(done.error());
    if (*done) break;
    auto changed = c.wait_change(deadline);
    if (!changed) return std::unexpected(changed.error());
    if (!*changed) {
      std::string wanted;
      for (const auto& g : goals) wanted += (wanted.empty() ? "" : "; ") + describe_goal(g);
      return std::unexpected(CtlError{
          kExitFailed, fmt::format("not done within {}: wanted {}; now {}",
                                   format_duration(timeout), wanted, waiting)});
    }
  }
  auto groups = c.groups();
  if (!groups) return std::unexpected(groups.error());
  for (const auto& goal : goals)
    for (const auto& g : *groups)
      if (g.name == goal.group) print(fmt::format("{}: online on {}\n", g.name, g.owner));
  return {};
}

/// move/drain --wait: what moves is read before the request, then followed until done.
CtlResult<void> command_and_wait(CtlClient& c, const CtlOptions& o, const std::string& group,
                                 const std::string& node, Duration timeout) {
  if (auto s = c.subscribe(); !s) return s;
  auto seq = c.last_event_seq();
  if (!seq) return std::unexpected(seq.error());
  auto groups = c.groups();
  if (!groups) return std::unexpected(groups.error());
  auto goals = move_goals(o, *groups);
  if (!goals) return std::unexpected(goals.error());
  auto answer = c.command(o.command, group, node, false);
  if (!answer) return std::unexpected(answer.error());
  print(*answer + "\n");
  std::fflush(stdout);
  return wait_moves(c, *goals, *seq, timeout);
}

int cmd_cluster_command(const CtlOptions& o) {
  std::string group, node;
  bool on = false;
  if (o.command == "move") {
    group = o.args[0];
    if (o.args.size() > 1) node = o.args[1];
  } else if (o.command == "maintenance") {
    if (o.args[0] != "on" && o.args[0] != "off")
      return report({kExitUsage, "maintenance takes \"on\" or \"off\""});
    on = o.args[0] == "on";
  } else {
    node = o.args[0];
  }
  auto timeout = parse_duration(o.timeout);
  if (!timeout)
    return report({kExitUsage, fmt::format("invalid --timeout \"{}\": {}", o.timeout,
                                           timeout.error().message)});
  return with_client(o, [&](CtlClient& c) -> CtlResult<void> {
    if (o.wait) return command_and_wait(c, o, group, node, *timeout);
    auto answer = c.command(o.command, group, node, on);
    if (!answer) return std::unexpected(answer.error());
    print(*answer + "\n");
    return {};
  });
}

int cmd_groups(const CtlOptions& o) {
  return with_client(o, [&](CtlClient& c) -> CtlResult<void> {
    auto groups = c.groups();
    if (!groups) return std::unexpected(groups.error());
    o.json ? print_json(to_json(*groups)) : print(format_groups(*groups));
    return {};
  });
}

int cmd_resources(const CtlOptions& o) {
  return with_client(o, [&](CtlClient& c) -> CtlResult<void> {
    std::vector<GroupView> groups;
    if (o.args.empty()) {
      auto all = c.groups();
      if (!all) return std::unexpected(all.error());
      groups = std::move(*all);
    } else {
      auto one = c.group(o.args[0]);
      if (!one) return std::unexpected(one.error());
      groups.push_back(std::move(*one));
    }
    o.json ? print_json(resources_json(groups)) : print(format_resources(groups));
    return {};
  });
}

/// Prints events after `*last` and advances it.
CtlResult<void> show_events(CtlClient& c, const CtlOptions& o, std::uint64_t* last) {
  auto events = c.events(*last);
  if (!events) return std::unexpected(events.error());
  if (o.json && !o.follow) print_json(to_json(*events));
  for (const auto& e : *events) {
    if (o.json && o.follow)
      print_json(to_json(e), true);
    else if (!o.json)
      print(format_event(e) + "\n");
    *last = std::max(*last, e.seq);
  }
  std::fflush(stdout);
  return {};
}

int cmd_events(const CtlOptions& o) {
  return with_client(o, [&](CtlClient& c) -> CtlResult<void> {
    std::uint64_t last = o.since;
    if (o.follow) {
      if (auto s = c.subscribe(); !s) return s;
    }
    if (auto shown = show_events(c, o, &last); !shown) return shown;
    while (o.follow) {
      if (auto w = c.wait_change_forever(); !w) return w;
      if (auto shown = show_events(c, o, &last); !shown) return shown;
    }
    return {};
  });
}

/// State and reason of the group or resource of `target`.
CtlResult<std::pair<std::string, std::string>> observe(CtlClient& c, const Target& target) {
  auto group = c.group(target.group);
  if (!group) return std::unexpected(group.error());
  if (target.resource.empty()) return std::make_pair(group->state, group->reason);
  for (const auto& r : group->resources) {
    if (r.name == target.resource) return std::make_pair(r.state, r.reason);
  }
  return std::unexpected(CtlError{kExitFailed, fmt::format("group {} has no resource called {}",
                                                           target.group, target.resource)});
}

std::string target_name(const Target& t) {
  return t.resource.empty() ? t.group : t.group + "/" + t.resource;
}

/// Follows Changed signals until the target reaches its state, fails, or the deadline passes.
CtlResult<void> wait_for(CtlClient& c, const Target& target, bool online, Duration timeout) {
  MonoTime deadline = mono_now() + timeout;
  std::uint64_t changes_at_request = c.changes();
  const char* goal = online ? "online" : "offline";
  while (true) {
    auto seen = observe(c, target);
    if (!seen) return std::unexpected(seen.error());
    auto [state, reason] = *seen;
    switch (judge_wait(online, state, c.changes() > changes_at_request)) {
      case WaitVerdict::Reached:
        print(fmt::format("{}: {}\n", target_name(target), state));
        return {};
      case WaitVerdict::Failed:
        return std::unexpected(
            CtlError{kExitFailed, fmt::format("{} failed: {}", target_name(target),
                                              reason.empty() ? "no reason given" : reason)});
      case WaitVerdict::Pending:
        break;
    }
    auto changed = c.wait_change(deadline);
    if (!changed) return std::unexpected(changed.error());
    if (!*changed)
      return std::unexpected(CtlError{
          kExitFailed, fmt::format("{} did not become {} within {} (now {})", target_name(target),
                                   goal, format_duration(timeout), state)});
  }
}

int cmd_set_target(const CtlOptions& o, bool online) {
  auto target = parse_target(o.args[0]);
  if (!target) return report({kExitUsage, target.error().message});
  auto timeout = parse_duration(o.timeout);
  if (!timeout)
    return report({kExitUsage, fmt::format("invalid --timeout \"{}\": {}", o.timeout,
                                           timeout.error().message)});
  return with_client(o, [&](CtlClient& c) -> CtlResult<void> {
    if (auto s = c.subscribe(); !s) return s;
    if (auto r = c.set_target(online, target->group, target->resource); !r) return r;
    if (o.no_wait) return {};
    return wait_for(c, *target, online, *timeout);
  });
}

void print_diagnostics(const Diagnostics& diagnostics) {
  for (const auto& d : diagnostics) std::fprintf(stderr, "%s\n", d.to_string().c_str());
}

int cmd_validate(const CtlOptions& o) {
  SystemTypeCatalog catalog(o.ocf_root);
  auto loaded = load_config(o.args[0], catalog);
  if (!loaded) {
    print_diagnostics(loaded.error());
    return kExitFailed;
  }
  print(fmt::format("{}: valid (cluster {}, {} nodes, {} groups)\n", o.args[0],
                    (*loaded)->cluster.name, (*loaded)->nodes.size(), (*loaded)->groups.size()));
  return kExitOk;
}

CtlResult<void> print_apply_result(const ApplyResult& result) {
  if (!result.applied) {
    print_diagnostics(result.diagnostics);
    std::size_t n = result.diagnostics.size();
    return std::unexpected(
        CtlError{kExitFailed,
                 fmt::format("the configuration was rejected ({} problem{}); the running one stays",
                             n, n == 1 ? "" : "s")});
  }
  if (result.changes.empty()) print("applied: no changes\n");
  for (const auto& change : result.changes) print(change + "\n");
  return {};
}

int cmd_apply(const CtlOptions& o) {
  std::ifstream in(o.args[0]);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return report({kExitFailed, fmt::format("could not read {}", o.args[0])});
  return with_client(o, [&](CtlClient& c) -> CtlResult<void> {
    auto result = c.apply(text.str(), o.args[0]);
    if (!result) return std::unexpected(result.error());
    return print_apply_result(*result);
  });
}

int cmd_reload(const CtlOptions& o) {
  return with_client(o, [&](CtlClient& c) -> CtlResult<void> {
    auto result = c.reload();
    if (!result) return std::unexpected(result.error());
    return print_apply_result(*result);
  });
}

}  // namespace

WaitVerdict judge_wait(bool online, const std::string& state, bool failed_is_final) {
  if (state == (online ? "online" : "offline")) return WaitVerdict::Reached;
  if (state == "failed" && failed_is_final) return WaitVerdict::Failed;
  return WaitVerdict::Pending;
}

WaitVerdict judge_move(const MoveGoal& goal, const GroupView& now,
                       const std::vector<Event>& since, std::string* why) {
  for (const auto& e : since) {
    if (e.kind == "placement" && e.group == goal.group && e.reason.starts_with("refused: ")) {
      *why = fmt::format("the coordinator refused to move {}: {}", goal.group,
                         e.reason.substr(std::string_view("refused: ").size()));
      return WaitVerdict::Failed;
    }
  }
  if (now.state == "failed") {
    *why = fmt::format("{} failed{}: {}", goal.group, now.owner.empty() ? "" : " on " + now.owner,
                       now.reason.empty() ? "no reason given" : now.reason);
    return WaitVerdict::Failed;
  }
  // Moved means away from the old owner: a move to where the group already is never ends by
  // its state (the coordinator refuses it, and the refusal ends the wait).
  bool there = !now.owner.empty() && now.owner != goal.from &&
               (goal.to.empty() || now.owner == goal.to);
  return now.state == "online" && there ? WaitVerdict::Reached : WaitVerdict::Pending;
}

int run_command(const CtlOptions& o) {
  const std::string& cmd = o.command;
  if (cmd == "status") return cmd_status(o);
  if (cmd == "nodes") return cmd_nodes(o);
  if (cmd == "cluster") return cmd_cluster(o);
  if (cmd == "timeline") return cmd_timeline(o);
  if (cmd == "move" || cmd == "pause" || cmd == "drain" || cmd == "resume" ||
      cmd == "maintenance")
    return cmd_cluster_command(o);
  if (cmd == "groups") return cmd_groups(o);
  if (cmd == "resources") return cmd_resources(o);
  if (cmd == "events") return cmd_events(o);
  if (cmd == "online") return cmd_set_target(o, true);
  if (cmd == "offline") return cmd_set_target(o, false);
  if (cmd == "validate") return cmd_validate(o);
  if (cmd == "apply") return cmd_apply(o);
  if (cmd == "reload") return cmd_reload(o);
  return report({kExitUsage, fmt::format("unknown command \"{}\"", cmd)});
}

}  // namespace clusterd
