// Runs every golden scenario in tests/scenarios/placement: decide() must return exactly the
// expected actions, and the closed loop from each scenario must settle without breaking a rule.
#include "placement_scenario.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "placement_check.h"

namespace clusterd {
namespace {

namespace fs = std::filesystem;

// meson compiles with paths relative to the build directory ("../daemon/x.cc"); tests run from
// the build directory (meson test) or the source root (./build/daemon/unit_tests), so try the
// working directory and the build directory found from our own executable.
fs::path scenario_dir() {
  fs::path relative = fs::path(__FILE__).parent_path().parent_path() / "tests/scenarios/placement";
  if (relative.is_absolute()) return relative;
  std::error_code ec;
  fs::path build = fs::read_symlink("/proc/self/exe", ec).parent_path().parent_path();
  for (const fs::path& base : {fs::current_path(), build}) {
    if (fs::is_directory(base / relative)) return base / relative;
  }
  if (fs::is_directory("tests/scenarios/placement")) return "tests/scenarios/placement";
  return relative;
}

std::vector<fs::path> scenario_files() {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(scenario_dir(), ec))
    if (entry.path().extension() == ".yaml") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += "  " + l + "\n";
  return out;
}

}  // namespace

TEST_CASE("placement golden scenarios") {
  auto files = scenario_files();
  INFO("scenario directory: ", scenario_dir().string());
  REQUIRE(files.size() >= 30);
  for (const auto& file : files) {
    auto scenario = load_placement_scenario(file.string());
    CHECK_MESSAGE(scenario.has_value(), (scenario ? "" : scenario.error().to_string()));
    if (!scenario) continue;
    auto actual = run_placement_scenario(*scenario);
    CHECK_MESSAGE(actual == scenario->expected, file.filename().string(), ": ",
                  scenario->description, "\n(- expected only, + actual only)\n",
                  diff_lines(scenario->expected, actual));
    CHECK_MESSAGE(run_placement_scenario(*scenario) == actual, file.filename().string(),
                  ": the same input gave different actions");
  }
}

TEST_CASE("placement golden scenarios settle without breaking a rule") {
  for (const auto& file : scenario_files()) {
    auto scenario = load_placement_scenario(file.string());
    if (!scenario) continue;  // Reported by the golden test.
    SettleResult r = settle(scenario->input, 20);
    CHECK_MESSAGE(r.settled, file.filename().string(), ": no fixed point after ", r.rounds,
                  " rounds");
    CHECK_MESSAGE(r.violations.empty(), file.filename().string(), ":\n", joined(r.violations));
  }
}

TEST_CASE("placement scenario reader reports the line of a mistake") {
  auto bad_key =
      parse_placement_scenario("config:\n  nodes: [a]\n  colour: red\nexpect: []\n", "x.yaml");
  REQUIRE_FALSE(bad_key.has_value());
  CHECK(bad_key.error().message == "x.yaml:3: unknown key 'colour' in config");

  auto bad_state = parse_placement_scenario(
      "config: {nodes: [a]}\nview:\n  nodes: {a: sleepy}\nexpect: []\n", "y.yaml");
  REQUIRE_FALSE(bad_state.has_value());
  CHECK(bad_state.error().message ==
        "y.yaml:3: node state 'sleepy' is not one of: up, down, paused, draining, joining");

  auto no_expect = parse_placement_scenario("config: {nodes: [a]}\n", "z.yaml");
  REQUIRE_FALSE(no_expect.has_value());
  CHECK(no_expect.error().message.find("needs 'expect'") != std::string::npos);

  auto broken = parse_placement_scenario("config: [\n", "w.yaml");
  REQUIRE_FALSE(broken.has_value());
  CHECK(broken.error().message.starts_with("w.yaml:"));
}

TEST_CASE("diff_lines marks missing and extra lines") {
  CHECK(diff_lines({"a", "b", "c"}, {"a", "x", "c"}) == "  a\n- b\n+ x\n  c\n");
  CHECK(diff_lines({}, {"a"}) == "+ a\n");
  CHECK(diff_lines({"a"}, {}) == "- a\n");
}

}  // namespace clusterd
