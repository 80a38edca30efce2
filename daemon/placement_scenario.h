// Golden scenarios for the placement engine (in the spirit of pacemaker's cts/scheduler): one
// YAML file holds a small cluster configuration, the view, the placement records, the failover
// history, the requests, the time, and the actions decide() must return. The format is
// described in tests/scenarios/placement/README.md.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "error.h"
#include "placement.h"

namespace clusterd {

/// One scenario file, read.
struct PlacementScenario {
  std::string file;
  std::string description;
  PlacementInput input;
  std::vector<std::string> expected;  ///< format_action() lines, in order.
};

/// Parses a scenario document named `file` in messages ("file:line: what is wrong").
Result<PlacementScenario> parse_placement_scenario(std::string_view text, const std::string& file);

/// Reads and parses the scenario at `path`.
Result<PlacementScenario> load_placement_scenario(const std::string& path);

/// The actions decide() returns for `scenario`, as format_action() lines.
std::vector<std::string> run_placement_scenario(const PlacementScenario& scenario);

/// A readable comparison of expected and actual lines: each line prefixed with "  " when in
/// both, "- " when only expected, "+ " when only actual (a longest-common-subsequence diff).
std::string diff_lines(const std::vector<std::string>& expected,
                       const std::vector<std::string>& actual);

}  // namespace clusterd
