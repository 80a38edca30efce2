#include "driver.h"

#include "disk_driver.h"
#include "log.h"
#include "ip_driver.h"
#include "name_driver.h"
#include "ocf_agent.h"
#include "process_driver.h"
#include "resource_types.h"
#include "service_driver.h"

namespace clusterd {

const char* to_string(MonitorLevel level) {
  switch (level) {
    case MonitorLevel::LooksAlive: return "looks-alive";
    case MonitorLevel::IsAlive: return "is-alive";
  }
  return "?";
}

const char* to_string(ActionStatus status) {
  switch (status) {
    case ActionStatus::Ok: return "ok";
    case ActionStatus::NotRunning: return "not-running";
    case ActionStatus::Failed: return "failed";
    case ActionStatus::Timeout: return "timeout";
    case ActionStatus::InvalidConfig: return "invalid-config";
    case ActionStatus::NotInstalled: return "not-installed";
    case ActionStatus::Unimplemented: return "unimplemented";
    case ActionStatus::Permission: return "permission";
  }
  return "?";
}

void DeferredCall::post(sd_event* loop, std::function<void()> fn) {
  cancel();
  sd_event_source* source = nullptr;
  int r = sd_event_add_defer(loop, &source, on_defer, this);
  if (r < 0) {
    log(LogLevel::Warning, {}, "cannot defer a driver callback, running it now: {}",
        std::strerror(-r));
    fn();
    return;
  }
  source_.reset(source);
  fn_ = std::move(fn);
}

void DeferredCall::cancel() {
  source_.reset();
  fn_ = nullptr;
}

int DeferredCall::on_defer(sd_event_source*, void* userdata) noexcept {
  auto* self = static_cast<DeferredCall*>(userdata);
  // Detach first: the callback may post again or destroy the owner of this object.
  auto fn = std::move(self->fn_);
  self->source_.reset();
  if (fn) fn();
  return 0;
}

namespace {

template <typename Driver>
Result<std::unique_ptr<ResourceDriver>> make(const ResourceConfig& config,
                                             const DriverContext& context) {
  auto driver = Driver::create(config, context);
  if (!driver) return std::unexpected(driver.error());
  return std::unique_ptr<ResourceDriver>(std::move(*driver));
}

constexpr BuiltinType kBuiltinTypes[] = {
    {"process", process_type_info, make<ProcessDriver>},
    {"ocf", nullptr, make<OcfAgentDriver>},
    {"ip", ip_type_info, make_ip_driver},
    {"service", service_type_info, make_service_driver},
    {"disk", disk_type_info, make_disk_driver},
    {"name", name_type_info, make_name_driver},
};

}  // namespace

std::span<const BuiltinType> builtin_types() { return kBuiltinTypes; }

std::string builtin_type_names() {
  std::string names;
  for (const auto& type : kBuiltinTypes) names += (names.empty() ? "" : ", ") + std::string(type.name);
  return names;
}

Result<std::unique_ptr<ResourceDriver>> make_driver(const ResourceConfig& config,
                                                    const DriverContext& context) {
  if (!context.loop) return fail("resource {}: no event loop for its driver", config.name);
  for (const auto& type : kBuiltinTypes)
    if (config.type == type.name) return type.make(config, context);
  return fail("resource {}: unknown resource type '{}' (known: {})", config.name, config.type,
              builtin_type_names());
}

}  // namespace clusterd
