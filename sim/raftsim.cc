// raftsim: runs seeded random scenarios of the consensus core and reports the first failures
// with their seed and trace. `raftsim --seed N --nodes 5 --trace` replays one exactly.
#include <fmt/core.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "raft_sim.h"

namespace {

using clusterd::Duration;
using clusterd::sim::ScenarioOptions;
using clusterd::sim::ScenarioResult;

struct Options {
  std::uint64_t first_seed = 1;
  std::uint64_t seeds = 100;
  std::vector<int> nodes{5};
  bool weighted = false;
  bool trace = false;
  long chaos_ms = 2000;
  long settle_ms = 3000;
};

void usage() {
  std::fputs(
      "usage: raftsim [--seeds N] [--first-seed S | --seed S] [--nodes 5|3,5,7] [--weighted]\n"
      "               [--chaos MS] [--settle MS] [--trace]\n"
      "Runs N seeded scenarios (seeds S..S+N-1); --seed S runs that one alone. Node counts in a\n"
      "list alternate between seeds. --trace prints the whole trace of every scenario run.\n",
      stderr);
}

bool parse_number(std::string_view text, long* out) {
  char* end = nullptr;
  std::string s(text);
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < 0) return false;
  *out = v;
  return true;
}

bool parse_nodes(std::string_view text, std::vector<int>* out) {
  out->clear();
  std::string s(text);
  std::size_t pos = 0;
  while (pos <= s.size()) {
    std::size_t comma = s.find(',', pos);
    long n = 0;
    if (!parse_number(s.substr(pos, comma - pos), &n) || n < 1 || n > 15) return false;
    out->push_back(static_cast<int>(n));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return !out->empty();
}

bool parse_args(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](long* out) { return i + 1 < argc && parse_number(argv[++i], out); };
    long v = 0;
    if (a == "--seeds" && value(&v)) {
      o->seeds = static_cast<std::uint64_t>(v);
    } else if ((a == "--first-seed" || a == "--seed") && value(&v)) {
      o->first_seed = static_cast<std::uint64_t>(v);
      if (a == "--seed") o->seeds = 1;
    } else if (a == "--nodes" && i + 1 < argc && parse_nodes(argv[++i], &o->nodes)) {
    } else if (a == "--chaos" && value(&o->chaos_ms)) {
    } else if (a == "--settle" && value(&o->settle_ms)) {
    } else if (a == "--weighted") {
      o->weighted = true;
    } else if (a == "--trace") {
      o->trace = true;
    } else {
      fmt::print(stderr, "raftsim: bad argument '{}'\n", a);
      return false;
    }
  }
  return true;
}

void report_failure(const ScenarioOptions& s, const ScenarioResult& r, bool trace_printed) {
  fmt::print("seed {} ({} nodes{}) FAILED: {}\n", s.seed, s.nodes, s.weighted ? ", weighted" : "",
             r.failure);
  if (!trace_printed) {
    for (const auto& line : r.trace) fmt::print("  {}\n", line);
  }
  fmt::print("replay: raftsim --seed {} --nodes {}{} --chaos {} --settle {} --trace\n", s.seed,
             s.nodes, s.weighted ? " --weighted" : "", s.chaos.count(), s.settle.count());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse_args(argc, argv, &o)) {
    usage();
    return 2;
  }
  std::uint64_t failures = 0;
  std::uint64_t applied = 0;
  std::uint64_t messages = 0;
  std::uint64_t snapshots = 0;
  for (std::uint64_t k = 0; k < o.seeds; ++k) {
    ScenarioOptions s{.seed = o.first_seed + k,
                      .nodes = o.nodes[k % o.nodes.size()],
                      .weighted = o.weighted,
                      .chaos = Duration(o.chaos_ms),
                      .settle = Duration(o.settle_ms),
                      .full_trace = o.trace};
    ScenarioResult r = clusterd::sim::run_scenario(s);
    if (o.trace) {
      for (const auto& line : r.trace) fmt::print("{}\n", line);
    }
    applied += r.stats["applied"];
    messages += r.stats["messages"];
    snapshots += r.stats["snapshots"];
    if (!r.ok) {
      ++failures;
      if (failures <= 3) report_failure(s, r, o.trace);
    }
  }
  fmt::print("{} scenarios, {} failed; {} messages, {} entries applied, {} snapshots installed\n",
             o.seeds, failures, messages, applied, snapshots);
  return failures == 0 ? 0 : 1;
}
