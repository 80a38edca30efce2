#include "group.h"

#include <algorithm>

#include <fmt/format.h>

#include "log.h"

namespace clusterd {
namespace {

using S = ResourceState;

std::string describe(const ActionResult& result) {
  return result.reason.empty() ? to_string(result.status) : result.reason;
}

bool running(S s) { return s == S::Online || s == S::OnlinePending; }

}  // namespace

namespace {

// A resource's definition shares ownership of the Config it is part of: no copy per resource.
std::shared_ptr<const ResourceConfig> share(const std::shared_ptr<const GroupConfig>& group,
                                            const ResourceConfig& resource) {
  return std::shared_ptr<const ResourceConfig>(group, &resource);
}

std::shared_ptr<const DriverContext> group_context(
    const Engine& engine, const std::string& group,
    std::function<std::shared_ptr<const GroupConfig>()> definition) {
  auto context = std::make_shared<DriverContext>(engine.base);
  context->group = group;
  context->loop = engine.loop;
  context->group_definition = std::move(definition);
  return context;
}

}  // namespace

Group::Group(std::shared_ptr<const GroupConfig> config, Engine& engine)
    : engine_(engine),
      definition_(config),
      config_(std::move(config)),
      context_(group_context(engine, config_->name, [this] { return definition_; })) {
  for (const auto& rc : config_->resources)
    resources_.push_back(make_resource(share(config_, rc)));
}

Group::~Group() = default;

std::unique_ptr<Resource> Group::make_resource(std::shared_ptr<const ResourceConfig> config) {
  ResourceObserver& observer = *this;
  return std::make_unique<Resource>(std::move(config), context_, engine_.factory, observer);
}

Resource* Group::find(const std::string& name) const {
  for (const auto& r : resources_)
    if (r->name() == name) return r.get();
  return nullptr;
}

std::vector<std::string> Group::others(const std::vector<std::string>& names,
                                       const std::string& except) const {
  std::vector<std::string> out;
  for (const auto& n : names)
    if (n != except) out.push_back(n);
  return out;
}

// ---- Requests ----------------------------------------------------------------------------

void Group::set_targets(const std::vector<std::string>& names, Target target,
                        const std::string& reason) {
  for (const auto& name : names) {
    Resource* r = find(name);
    if (r == nullptr || r->intent().removing) continue;
    Intent& in = r->intent();
    in.target = target;
    in.reason = reason;
    // MSCS: bringing a resource online by hand starts its restart count afresh.
    if (target == Target::Online) r->failures().reset();
    // An administrator acting on a failed resource ends the hold; clean it up again first.
    if (in.hold_failed) {
      in.hold_failed = false;
      in.cleanup_due = true;
    }
  }
}

void Group::online(const std::string& reason) {
  failing_ = false;
  set_targets(all_resources(*config_), Target::Online, reason);
  reconcile();
}

void Group::offline(const std::string& reason) {
  set_targets(all_resources(*config_), Target::Offline, reason);
  reconcile();
}

Result<void> Group::online_resource(const std::string& resource, const std::string& reason) {
  Resource* r = find(resource);
  if (r == nullptr || r->intent().removing)
    return fail("group '{}' has no resource '{}'", name(), resource);
  set_targets(with_dependencies(*config_, resource), Target::Online, reason);
  reconcile();
  return {};
}

Result<void> Group::offline_resource(const std::string& resource, const std::string& reason) {
  Resource* r = find(resource);
  if (r == nullptr || r->intent().removing)
    return fail("group '{}' has no resource '{}'", name(), resource);
  set_targets(with_dependents(*config_, resource), Target::Offline, reason);
  reconcile();
  return {};
}

// ---- Reconcile ---------------------------------------------------------------------------

// Runs until nothing more can be started or stopped now. Drivers may complete synchronously,
// inside a start() or stop() call: such a nested reconcile only asks for another pass.
void Group::reconcile() {
  if (reconciling_) {
    again_ = true;
    return;
  }
  reconciling_ = true;
  do {
    again_ = false;
    stop_step();
    start_step();
  } while (again_);
  reconciling_ = false;
  finish_round();
}

bool Group::wants_stop(const Resource& r) const {
  const Intent& in = r.intent();
  if (r.state() == S::Failed) return in.cleanup_due || !in.hold_failed;
  return in.target == Target::Offline || in.recycle;
}

bool Group::wants_start(const Resource& r) const {
  const Intent& in = r.intent();
  return in.target == Target::Online && !in.recycle && !in.hold_failed && !in.removing &&
         !r.delaying();
}

// The states next_to_stop() plans with: a resource that still owes a stop counts as online
// (it blocks what it depends on and is stopped once its dependents are down), one being
// stopped as offline-pending, and a failed one with nothing left to do as offline.
ResourceState Group::stop_view(const Resource& r) const {
  if (r.action() == Action::Stop) return S::OfflinePending;
  switch (r.state()) {
    case S::OnlinePending:
      return wants_stop(r) ? S::Online : S::OnlinePending;
    case S::Failed:
      return wants_stop(r) ? S::Online : S::Offline;
    default:
      return r.state();
  }
}

// The states next_to_start() plans with: an online resource about to be stopped is no ground
// to start its dependents on.
ResourceState Group::start_view(const Resource& r) const {
  if (r.state() == S::Online && wants_stop(r)) return S::OfflinePending;
  return r.state();
}

void Group::stop_step() {
  StateMap view;
  std::vector<std::string> wanted;
  for (const auto& r : resources_) {
    view[r->name()] = stop_view(*r);
    if (wants_stop(*r)) wanted.push_back(r->name());
  }
  for (const auto& name : next_to_stop(*config_, view, wanted)) {
    Resource* r = find(name);
    if (r != nullptr && r->action() != Action::Stop && wants_stop(*r)) begin_stop(*r);
  }
}

void Group::start_step() {
  StateMap view;
  std::vector<std::string> wanted;
  for (const auto& r : resources_) {
    view[r->name()] = start_view(*r);
    if (wants_start(*r)) wanted.push_back(r->name());
  }
  for (const auto& name : next_to_start(*config_, view, wanted)) {
    Resource* r = find(name);
    if (r != nullptr && r->state() == S::Offline && !r->busy() && wants_start(*r)) begin_start(*r);
  }
}

void Group::finish_round() {
  drop_removed_resources();
  if (failing_ && quiescent()) {
    failing_ = false;
    log(LogLevel::Err, {{"GROUP", name()}}, "group {} failed and is offline on this node", name());
    if (engine_.group_failed) engine_.group_failed(name());
  }
  if (engine_.settled) engine_.settled(*this);
}

bool Group::quiescent() const {
  return std::all_of(resources_.begin(), resources_.end(), [&](const auto& r) {
    bool settled = r->state() == S::Offline || (r->state() == S::Failed && !wants_stop(*r));
    return settled && !r->busy();
  });
}

// ---- Actions -----------------------------------------------------------------------------

void Group::begin_stop(Resource& r) {
  if (r.state() == S::Failed && r.intent().hold_failed) {
    // MSCS terminates a resource it gives up on: clean up, but it stays failed.
    log(LogLevel::Info, {{"GROUP", name()}, {"RESOURCE", r.name()}},
        "cleaning up failed resource {}", r.name());
    r.stop();
    return;
  }
  r.cancel();  // A start or health check in flight gives way to the stop.
  if (!set_state(r, S::OfflinePending, r.intent().reason)) return;
  r.stop();
}

void Group::begin_start(Resource& r) {
  if (!set_state(r, S::OnlinePending, r.intent().reason)) return;
  r.intent().cleanup_due = true;
  if (auto started = r.start(); !started) fail_permanently(r, started.error().to_string());
}

void Group::on_action_done(Resource& r, Action action, ActionResult result) {
  if (action == Action::Start) on_started(r, result);
  if (action == Action::Stop) on_stopped(r, result);
  reconcile();
}

void Group::on_started(Resource& r, const ActionResult& result) {
  if (r.state() != S::OnlinePending) return;
  if (result.status == ActionStatus::Ok) {
    set_state(r, S::Online, "started");
  } else {
    // A start timeout is a failure like any other (architecture rule 4).
    handle_failure(r, fmt::format("start failed: {}", describe(result)));
  }
}

void Group::on_stopped(Resource& r, const ActionResult& result) {
  Intent& in = r.intent();
  bool ok = result.status == ActionStatus::Ok;
  if (r.state() == S::Failed) {  // The cleanup of a resource that stays failed.
    in.cleanup_due = false;
    if (!ok)
      log(LogLevel::Err, {{"GROUP", name()}, {"RESOURCE", r.name()}},
          "cleanup of failed resource {} failed: {}", r.name(), describe(result));
    return;
  }
  if (r.state() != S::OfflinePending) return;
  in.cleanup_due = false;
  if (ok) {
    // A driver's note on a clean stop (a name's DNS records left behind) goes into the event.
    set_state(r, S::Offline, result.reason.empty() ? "stopped" : "stopped; " + result.reason);
    after_offline(r);
    return;
  }
  // Something may still run that we cannot stop: hold it failed, no automatic retries.
  in.hold_failed = true;
  set_state(r, S::Failed, fmt::format("stop failed: {}", describe(result)));
}

void Group::after_offline(Resource& r) {
  Intent& in = r.intent();
  in.recycle = false;
  if (r.has_pending_config()) {
    r.take_pending_config([this](std::unique_ptr<ResourceDriver> old) {
      engine_.deferred.post([old = std::shared_ptr<ResourceDriver>(std::move(old))] {});
    });
  }
  if (!in.restarting) return;
  in.restarting = false;
  Duration delay = r.config().restart.delay;
  if (delay.count() > 0 && in.target == Target::Online)
    r.arm_restart_delay(delay, [this] { reconcile(); });
}

// ---- Failures and the restart policy -----------------------------------------------------

void Group::on_resource_failure(Resource& r, std::string reason) {
  if (r.state() != S::Online) {
    log(LogLevel::Debug, {{"GROUP", name()}, {"RESOURCE", r.name()}},
        "ignoring failure report in state {}: {}", to_string(r.state()), reason);
    return;
  }
  handle_failure(r, reason);
  reconcile();
}

void Group::handle_failure(Resource& r, const std::string& reason) {
  r.cancel();
  r.intent().cleanup_due = true;
  if (!set_state(r, S::Failed, reason)) return;
  RestartDecision decision = r.failures().on_failure(r.config().restart, mono_now());
  log(LogLevel::Notice, {{"GROUP", name()}, {"RESOURCE", r.name()}}, "{} failed ({}): {}", r.name(),
      reason, to_string(decision));
  switch (decision) {
    case RestartDecision::Restart:
      restart(r, reason);
      break;
    case RestartDecision::FailResource:
      fail_resource(r);
      break;
    case RestartDecision::FailGroup:
      fail_group(r);
      break;
  }
}

// Dependents go down first, the failed resource is cleaned up, then it starts again and its
// dependents follow: the ordinary reconcile does each step.
void Group::restart(Resource& r, const std::string& reason) {
  r.intent().restarting = true;
  r.intent().reason = fmt::format("restarting after failure: {}", reason);
  recycle_from(r.name(), fmt::format("{} is restarting", r.name()));
}

void Group::fail_resource(Resource& r) {
  r.intent().hold_failed = true;
  for (const auto& name : others(with_dependents(*config_, r.name()), r.name())) {
    Intent& in = find(name)->intent();
    in.target = Target::Offline;
    in.reason = fmt::format("{} failed", r.name());
  }
}

void Group::fail_group(Resource& r) {
  r.intent().hold_failed = true;
  failing_ = true;
  for (const auto& res : resources_) {
    res->intent().target = Target::Offline;
    res->intent().reason = fmt::format("group failed: {} failed", r.name());
  }
}

// No driver could be made: a configuration problem that neither a restart nor a failover
// would cure, so it stays failed without consuming restarts.
void Group::fail_permanently(Resource& r, const std::string& reason) {
  r.intent().cleanup_due = false;
  r.intent().hold_failed = true;
  set_state(r, S::Failed, reason);
}

// `name` (when running) and everything running that depends on it must go offline before they
// may start again.
void Group::recycle_from(const std::string& name, const std::string& reason) {
  for (const auto& n : with_dependents(*config_, name)) {
    Resource* d = find(n);
    if (d == nullptr || !running(d->state())) continue;
    d->intent().recycle = true;
    d->intent().reason = reason;
  }
}

// ---- State -------------------------------------------------------------------------------

bool Group::set_state(Resource& r, ResourceState to, const std::string& reason) {
  const char* from = to_string(r.state());
  if (!transition_allowed(r.state(), to)) {
    log(LogLevel::Err,
        {{"GROUP", name()}, {"RESOURCE", r.name()}, {"FROM", from}, {"TO", to_string(to)}},
        "bug: refusing transition {} -> {} of {} ({})", from, to_string(to), r.name(), reason);
    return false;
  }
  Usec wall = wall_now_usec();
  r.enter_state(to, reason, wall);
  log(LogLevel::Notice,
      {{"GROUP", name()}, {"RESOURCE", r.name()}, {"FROM", from}, {"TO", to_string(to)}},
      "{}: {} -> {}: {}", r.name(), from, to_string(to), reason);
  record("resource", r.name(), from, to_string(to), reason, wall);
  update_group_state(reason);
  if (engine_.changed) engine_.changed();
  return true;
}

void Group::update_group_state(const std::string& reason) {
  std::vector<ResourceState> states;
  for (const auto& r : resources_) states.push_back(r->state());
  GroupState next = derive_group_state(states);
  if (next == state_) return;
  const char* from = to_string(state_);
  state_ = next;
  reason_ = reason;
  log(LogLevel::Notice, {{"GROUP", name()}, {"FROM", from}, {"TO", to_string(next)}},
      "group {}: {} -> {}: {}", name(), from, to_string(next), reason);
  record("group", "", from, to_string(next), reason, wall_now_usec());
}

void Group::record(const std::string& kind, const std::string& resource, const char* from,
                   const char* to, const std::string& reason, Usec wall_usec) {
  Event e;
  e.wall_usec = wall_usec;
  e.kind = kind;
  e.node = context_->node_name;
  e.group = name();
  e.resource = resource;
  e.from = from;
  e.to = to;
  e.reason = reason;
  engine_.history.add(std::move(e));
}

// ---- Configuration -----------------------------------------------------------------------

void Group::apply(std::shared_ptr<const GroupConfig> next) {
  removing_ = false;
  std::vector<std::unique_ptr<Resource>> kept;
  std::vector<std::string> changed;
  for (const auto& rc : next->resources) {
    auto it = std::find_if(resources_.begin(), resources_.end(),
                           [&](const auto& r) { return r && r->name() == rc.name; });
    if (it == resources_.end()) {
      kept.push_back(make_resource(share(next, rc)));  // Added: offline until asked.
      continue;
    }
    Resource& r = **it;
    r.intent().removing = false;
    if (!(r.config() == rc)) {
      change_definition(r, share(next, rc));
      changed.push_back(rc.name);
    } else {
      r.share_config(share(next, rc));
    }
    kept.push_back(std::move(*it));
  }
  for (auto& r : resources_) {
    if (!r) continue;  // Moved to `kept`.
    mark_removed(*r);
    kept.push_back(std::move(r));
  }
  resources_ = std::move(kept);
  definition_ = std::move(next);
  config_ = planning_config();
  for (const auto& name : changed) recycle_from(name, "definition changed");
  reconcile();
}

// Removed resources are planned with (their dependents go offline first) until they are
// dropped; the copy this takes exists only while there are any.
std::shared_ptr<const GroupConfig> Group::planning_config() const {
  std::shared_ptr<GroupConfig> plan;
  for (const auto& r : resources_) {
    if (!r->intent().removing || definition_->find(r->name()) != nullptr) continue;
    if (!plan) plan = std::make_shared<GroupConfig>(*definition_);
    plan->resources.push_back(r->config());
  }
  if (!plan) return definition_;
  return plan;
}

void Group::change_definition(Resource& r, std::shared_ptr<const ResourceConfig> next) {
  log(LogLevel::Info, {{"GROUP", name()}, {"RESOURCE", r.name()}}, "definition of {} changed",
      r.name());
  r.set_pending_config(std::move(next));
  if (r.state() == S::Offline && !r.busy()) after_offline(r);
}

void Group::mark_removed(Resource& r) {
  Intent& in = r.intent();
  in.removing = true;
  in.target = Target::Offline;
  in.reason = "removed from the configuration";
  if (in.hold_failed) {
    in.hold_failed = false;
    in.cleanup_due = true;
  }
}

void Group::remove() {
  removing_ = true;
  for (const auto& r : resources_) mark_removed(*r);
  reconcile();
}

void Group::drop_removed_resources() {
  bool dropped = false;
  for (auto it = resources_.begin(); it != resources_.end();) {
    Resource& r = **it;
    if (!r.intent().removing || r.state() != S::Offline || r.busy() || removing_) {
      ++it;
      continue;
    }
    log(LogLevel::Info, {{"GROUP", name()}, {"RESOURCE", r.name()}}, "dropped resource {}",
        r.name());
    r.detach();
    // Not destroyed here: we may be inside its driver's callback.
    engine_.deferred.post([gone = std::shared_ptr<Resource>(std::move(*it))] {});
    it = resources_.erase(it);
    dropped = true;
  }
  if (dropped) config_ = planning_config();
}

// ---- Status ------------------------------------------------------------------------------

GroupStatus Group::status() const {
  GroupStatus s;
  s.name = name();
  s.state = state_;
  s.reason = reason_;
  MonoTime now = mono_now();
  bool any_up = false;
  for (const auto& r : resources_) {
    ResourceStatus rs;
    rs.name = r->name();
    rs.type = r->config().type;
    rs.agent = r->config().agent;
    rs.state = r->state();
    rs.reason = r->reason();
    rs.restarts = static_cast<std::uint32_t>(r->failures().recent(r->config().restart.period, now));
    rs.main_pid = r->main_pid();
    rs.since_wall_usec = r->since_wall_usec();
    rs.last_looks_alive = r->last_check(MonitorLevel::LooksAlive);
    rs.last_is_alive = r->last_check(MonitorLevel::IsAlive);
    rs.last_failure = r->last_failure();
    any_up = any_up || r->state() != S::Offline;
    s.resources.push_back(std::move(rs));
  }
  s.owner = any_up ? context_->node_name : "";
  return s;
}

}  // namespace clusterd
