#include "resource_state.h"

#include <set>
#include <string>

#include <doctest/doctest.h>

namespace clusterd {
namespace {

using S = ResourceState;

std::vector<S> all_states() {
  std::vector<S> out;
  for (int i = 0; i < kResourceStateCount; ++i) out.push_back(static_cast<S>(i));
  return out;
}

}  // namespace

TEST_CASE("every resource and group state has a distinct name") {
  std::set<std::string> names;
  for (S s : all_states()) {
    std::string name = to_string(s);
    CHECK(name != "?");
    names.insert(name);
  }
  CHECK(names.size() == kResourceStateCount);
  CHECK(std::string(to_string(static_cast<S>(kResourceStateCount))) == "?");
  names.clear();
  for (int i = 0; i < kGroupStateCount; ++i) {
    std::string name = to_string(static_cast<GroupState>(i));
    CHECK(name != "?");
    names.insert(name);
  }
  CHECK(names.size() == kGroupStateCount);
  CHECK(std::string(to_string(S::OnlinePending)) == "online-pending");
  CHECK(std::string(to_string(GroupState::PartialOnline)) == "partial-online");
}

TEST_CASE("the transition table is exactly the documented state machine") {
  std::set<std::pair<S, S>> expected = {
      {S::Offline, S::OnlinePending},  {S::OnlinePending, S::Online},
      {S::OnlinePending, S::Failed},   {S::OnlinePending, S::OfflinePending},
      {S::Online, S::OfflinePending},  {S::Online, S::Failed},
      {S::OfflinePending, S::Offline}, {S::OfflinePending, S::Failed},
      {S::Failed, S::OfflinePending},
  };
  for (S from : all_states()) {
    for (S to : all_states()) {
      CAPTURE(to_string(from));
      CAPTURE(to_string(to));
      CHECK(transition_allowed(from, to) == (expected.count({from, to}) == 1));
    }
  }
  CHECK(resource_transitions().size() == expected.size());
  for (const auto& t : resource_transitions()) CHECK(std::string(t.when).size() > 0);
}

TEST_CASE("the table refuses shortcuts and out-of-range states") {
  CHECK_FALSE(transition_allowed(S::Offline, S::Online));
  CHECK_FALSE(transition_allowed(S::Online, S::Offline));
  CHECK_FALSE(transition_allowed(S::Failed, S::OnlinePending));
  CHECK_FALSE(transition_allowed(S::Failed, S::Failed));
  CHECK_FALSE(transition_allowed(static_cast<S>(-1), S::Offline));
  CHECK_FALSE(transition_allowed(S::Offline, static_cast<S>(kResourceStateCount)));
}

TEST_CASE("derive_group_state") {
  using G = GroupState;
  CHECK(derive_group_state({}) == G::Offline);
  CHECK(derive_group_state({S::Offline, S::Offline}) == G::Offline);
  CHECK(derive_group_state({S::Online, S::Online}) == G::Online);
  CHECK(derive_group_state({S::Online, S::Offline}) == G::PartialOnline);
  CHECK(derive_group_state({S::Online, S::OnlinePending}) == G::Pending);
  CHECK(derive_group_state({S::Offline, S::OfflinePending}) == G::Pending);
  CHECK(derive_group_state({S::Online, S::Failed}) == G::Failed);
  CHECK(derive_group_state({S::OnlinePending, S::Failed}) == G::Failed);
  CHECK(derive_group_state({S::Failed}) == G::Failed);
}

}  // namespace clusterd
