// STUB: replaced by the engine module.
#include "resource_manager.h"

namespace clusterd {

struct ResourceManager::Impl {};

ResourceManager::ResourceManager(sd_event*, EventHistory&, DriverContext, DriverFactory)
    : impl_(std::make_unique<Impl>()) {}
ResourceManager::~ResourceManager() = default;
void ResourceManager::apply(ConfigPtr) {}
Result<void> ResourceManager::online_group(const std::string&, const std::string&) {
  return fail("not implemented");
}
Result<void> ResourceManager::offline_group(const std::string&, const std::string&) {
  return fail("not implemented");
}
Result<void> ResourceManager::online_resource(const std::string&, const std::string&,
                                              const std::string&) {
  return fail("not implemented");
}
Result<void> ResourceManager::offline_resource(const std::string&, const std::string&,
                                               const std::string&) {
  return fail("not implemented");
}
void ResourceManager::shutdown(std::function<void()> done) { done(); }
std::vector<GroupStatus> ResourceManager::status() const { return {}; }
Result<GroupStatus> ResourceManager::group_status(const std::string&) const {
  return fail("not implemented");
}
void ResourceManager::set_change_listener(std::function<void()>) {}
void ResourceManager::set_group_failed_listener(std::function<void(const std::string&)>) {}

}  // namespace clusterd
