#include "group_plan.h"

#include <algorithm>
#include <functional>
#include <set>

namespace clusterd {
namespace {

ResourceState state_of(const StateMap& states, const std::string& name) {
  auto it = states.find(name);
  return it == states.end() ? ResourceState::Offline : it->second;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Depth-first walk over an edge function, collecting every node reached from `start`.
std::vector<std::string> closure(
    const GroupConfig& group, const std::string& start,
    const std::function<std::vector<std::string>(const std::string&)>& edges) {
  std::vector<std::string> out;
  std::vector<std::string> stack{start};
  while (!stack.empty()) {
    std::string name = stack.back();
    stack.pop_back();
    if (contains(out, name) || group.find(name) == nullptr) continue;
    out.push_back(name);
    for (auto& next : edges(name)) stack.push_back(next);
  }
  return out;
}

std::vector<std::string> dependents(const GroupConfig& group, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& r : group.resources)
    if (contains(r.depends, name)) out.push_back(r.name);
  return out;
}

}  // namespace

std::optional<std::vector<std::string>> find_dependency_cycle(const GroupConfig& group) {
  enum class Mark { None, InProgress, Done };
  std::map<std::string, Mark> marks;
  std::vector<std::string> path;
  std::optional<std::vector<std::string>> cycle;
  std::function<void(const std::string&)> visit = [&](const std::string& name) {
    const ResourceConfig* r = group.find(name);
    if (r == nullptr || cycle) return;
    Mark& mark = marks[name];
    if (mark == Mark::Done) return;
    if (mark == Mark::InProgress) {
      auto first = std::find(path.begin(), path.end(), name);
      cycle = std::vector<std::string>(first, path.end());
      cycle->push_back(name);
      return;
    }
    mark = Mark::InProgress;
    path.push_back(name);
    for (const auto& dep : r->depends) visit(dep);
    path.pop_back();
    marks[name] = Mark::Done;
  };
  for (const auto& r : group.resources) visit(r.name);
  return cycle;
}

std::vector<std::string> next_to_start(const GroupConfig& group, const StateMap& states,
                                       const std::vector<std::string>& targets) {
  std::vector<std::string> out;
  for (const auto& r : group.resources) {
    if (!contains(targets, r.name) || state_of(states, r.name) != ResourceState::Offline) continue;
    bool ready = std::all_of(r.depends.begin(), r.depends.end(), [&](const std::string& dep) {
      return group.find(dep) == nullptr || state_of(states, dep) == ResourceState::Online;
    });
    if (ready) out.push_back(r.name);
  }
  return out;
}

std::vector<std::string> next_to_stop(const GroupConfig& group, const StateMap& states,
                                      const std::vector<std::string>& targets) {
  std::vector<std::string> out;
  for (const auto& r : group.resources) {
    ResourceState s = state_of(states, r.name);
    if (!contains(targets, r.name) || (s != ResourceState::Online && s != ResourceState::Failed))
      continue;
    auto users = dependents(group, r.name);
    bool free = std::none_of(users.begin(), users.end(), [&](const std::string& user) {
      ResourceState us = state_of(states, user);
      return us == ResourceState::Online || us == ResourceState::OnlinePending ||
             us == ResourceState::OfflinePending;
    });
    if (free) out.push_back(r.name);
  }
  return out;
}

std::vector<std::string> with_dependencies(const GroupConfig& group, const std::string& name) {
  return closure(group, name, [&](const std::string& n) { return group.find(n)->depends; });
}

std::vector<std::string> with_dependents(const GroupConfig& group, const std::string& name) {
  return closure(group, name, [&](const std::string& n) { return dependents(group, n); });
}

std::vector<std::string> all_resources(const GroupConfig& group) {
  std::vector<std::string> out;
  for (const auto& r : group.resources) out.push_back(r.name);
  return out;
}

}  // namespace clusterd
