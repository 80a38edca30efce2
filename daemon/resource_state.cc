#include "resource_state.h"

#include <algorithm>
#include <array>
#include <iterator>

namespace clusterd {
namespace {

using S = ResourceState;

// The resource state machine. There is no failed -> online-pending edge: a failed resource is
// always cleaned up (driver stop, failed -> offline-pending -> offline) before it starts again,
// so nothing of the failed instance can survive into the new one.
constexpr ResourceTransition kTransitions[] = {
    {S::Offline, S::OnlinePending, "start requested"},
    {S::OnlinePending, S::Online, "start succeeded"},
    {S::OnlinePending, S::Failed, "start failed or timed out"},
    {S::OnlinePending, S::OfflinePending, "offline requested while starting: start cancelled"},
    {S::Online, S::OfflinePending, "stop requested"},
    {S::Online, S::Failed, "health check failed or the driver reported a failure"},
    {S::OfflinePending, S::Offline, "stop succeeded"},
    {S::OfflinePending, S::Failed, "stop failed or timed out"},
    {S::Failed, S::OfflinePending, "cleanup before a restart, or offline requested"},
};

constexpr auto kAllowed = [] {
  std::array<std::array<bool, kResourceStateCount>, kResourceStateCount> allowed{};
  for (const auto& t : kTransitions)
    allowed[static_cast<int>(t.from)][static_cast<int>(t.to)] = true;
  return allowed;
}();

constexpr const char* kResourceStateNames[] = {"offline", "online-pending", "online",
                                               "offline-pending", "failed"};
static_assert(std::size(kResourceStateNames) == kResourceStateCount);

constexpr const char* kGroupStateNames[] = {"offline", "online", "partial-online", "pending",
                                            "failed"};
static_assert(std::size(kGroupStateNames) == kGroupStateCount);

template <std::size_t N>
const char* name_of(const char* const (&names)[N], int index) {
  return index >= 0 && index < static_cast<int>(N) ? names[index] : "?";
}

bool is_pending(ResourceState s) { return s == S::OnlinePending || s == S::OfflinePending; }

}  // namespace

const char* to_string(ResourceState state) {
  return name_of(kResourceStateNames, static_cast<int>(state));
}

bool transition_allowed(ResourceState from, ResourceState to) {
  int f = static_cast<int>(from);
  int t = static_cast<int>(to);
  if (f < 0 || f >= kResourceStateCount || t < 0 || t >= kResourceStateCount) return false;
  return kAllowed[f][t];
}

std::span<const ResourceTransition> resource_transitions() { return kTransitions; }

const char* to_string(GroupState state) {
  return name_of(kGroupStateNames, static_cast<int>(state));
}

GroupState derive_group_state(const std::vector<ResourceState>& states) {
  auto any = [&](auto pred) { return std::any_of(states.begin(), states.end(), pred); };
  auto all = [&](ResourceState s) {
    return std::all_of(states.begin(), states.end(), [s](ResourceState x) { return x == s; });
  };
  if (any([](ResourceState s) { return s == S::Failed; })) return GroupState::Failed;
  if (any(is_pending)) return GroupState::Pending;
  if (all(S::Offline)) return GroupState::Offline;
  if (all(S::Online)) return GroupState::Online;
  return GroupState::PartialOnline;
}

}  // namespace clusterd
