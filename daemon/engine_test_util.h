// Test helpers for the resource engine: a fake driver that records every call and completes
// actions immediately (from the loop), synchronously, or when the test says so; and a helper
// that runs a real sd-event loop until a condition holds, with a deadline.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <systemd/sd-event.h>

#include "clock.h"
#include "driver.h"
#include "engine_loop.h"
#include "loop_test_util.h"

namespace clusterd::testing {

/// How a fake driver answers.
enum class FakeMode {
  Immediate,  ///< Completes on a later loop iteration (after `delay`).
  Sync,       ///< Completes inside the call.
  Manual,     ///< Waits for FakeWorld::complete().
};

/// Scripted behaviour of the fake driver of one resource.
struct FakeBehaviour {
  FakeMode mode = FakeMode::Immediate;
  Duration delay{0};
  ActionResult start;
  ActionResult stop;
  ActionResult monitor;
  int failing_monitors = 0;  ///< The next N monitors answer NotRunning.
  int failing_starts = 0;    ///< The next N starts answer Failed.
};

class FakeDriver;

/// Every fake driver of a test, their call log and their scripts.
class FakeWorld {
 public:
  explicit FakeWorld(sd_event* loop) : loop_(loop) {}

  /// A factory making fake drivers; names in `broken` get a factory error instead.
  DriverFactory factory();
  /// The script of resource `name` (created with defaults on first use).
  FakeBehaviour& behaviour(const std::string& name) { return behaviour_[name]; }
  /// Names whose factory call fails.
  std::vector<std::string> broken;

  /// Every call, in order: "start disk", "stop disk", "monitor disk looks-alive", "cancel disk".
  const std::vector<std::string>& calls() const { return calls_; }
  /// How many times `call` appears in the log.
  int count(const std::string& call) const;
  /// Position of the first `call` at or after `from`, or -1.
  int index_of(const std::string& call, int from = 0) const;
  /// Forgets the call log.
  void clear_calls() { calls_.clear(); }
  /// Times a driver was asked for an action while another one ran (must stay empty).
  const std::vector<std::string>& overlaps() const { return overlaps_; }

  /// True while resource `name` has a Manual action waiting.
  bool waiting(const std::string& name) const;
  /// Completes the waiting Manual action of `name` with `result`.
  void complete(const std::string& name, ActionResult result = {});
  /// The driver of `name` reports an unsolicited failure (a supervised process died).
  void report_failure(const std::string& name, const std::string& reason);
  /// How many drivers were made for `name`.
  int made(const std::string& name) const;

 private:
  friend class FakeDriver;
  void log_call(const std::string& call) { calls_.push_back(call); }

  sd_event* loop_;
  std::map<std::string, FakeBehaviour> behaviour_;
  std::map<std::string, FakeDriver*> drivers_;
  std::map<std::string, int> made_;
  std::vector<std::string> calls_;
  std::vector<std::string> overlaps_;
};

}  // namespace clusterd::testing
