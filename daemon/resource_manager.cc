#include "resource_manager.h"

#include <algorithm>

#include "group.h"
#include "log.h"

namespace clusterd {

struct ResourceManager::Impl {
  Impl(sd_event* loop, EventHistory& history, DriverContext base, DriverFactory factory);

  Group* find(const std::string& name) const;
  Result<Group*> find_for_request(const std::string& name) const;
  void on_settled(Group& group);
  void check_shutdown();

  Engine engine;
  std::vector<std::unique_ptr<Group>> groups;  ///< Configuration order; removed ones last.
  std::function<void()> change_listener;
  std::function<void(const std::string&)> group_failed_listener;
  bool shutting_down = false;
  std::function<void()> shutdown_done;
};

ResourceManager::Impl::Impl(sd_event* loop, EventHistory& history, DriverContext base,
                            DriverFactory factory)
    : engine(loop, history, std::move(base), std::move(factory)) {
  engine.base.loop = loop;
  engine.changed = [this] {
    if (change_listener) change_listener();
  };
  engine.group_failed = [this](const std::string& group) {
    if (group_failed_listener) group_failed_listener(group);
  };
  engine.settled = [this](Group& group) { on_settled(group); };
}

Group* ResourceManager::Impl::find(const std::string& name) const {
  for (const auto& g : groups)
    if (g->name() == name) return g.get();
  return nullptr;
}

Result<Group*> ResourceManager::Impl::find_for_request(const std::string& name) const {
  if (shutting_down) return fail("the resource manager is shutting down");
  Group* g = find(name);
  if (g == nullptr || g->removing()) return fail("there is no group '{}'", name);
  return g;
}

void ResourceManager::Impl::on_settled(Group& group) {
  if (group.removing() && group.quiescent()) {
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.get() == &group; });
    if (it == groups.end()) return;  // Already dropped; a late timer of it ran.
    log(LogLevel::Info, {{"GROUP", group.name()}}, "dropped group {}", group.name());
    // Not destroyed here: we are inside one of its callbacks.
    engine.deferred.post([gone = std::shared_ptr<Group>(std::move(*it))] {});
    groups.erase(it);
  }
  check_shutdown();
}

void ResourceManager::Impl::check_shutdown() {
  if (!shutdown_done) return;
  bool down =
      std::all_of(groups.begin(), groups.end(), [](const auto& g) { return g->quiescent(); });
  if (!down) return;
  log(LogLevel::Notice, {}, "every resource is offline");
  engine.deferred.post(std::exchange(shutdown_done, nullptr));
}

ResourceManager::ResourceManager(sd_event* loop, EventHistory& history, DriverContext base_context,
                                 DriverFactory factory)
    : impl_(std::make_unique<Impl>(loop, history, std::move(base_context), std::move(factory))) {}

ResourceManager::~ResourceManager() = default;

void ResourceManager::apply(ConfigPtr config) {
  for (const auto& gc : config->groups) {
    // The groups share the configuration rather than copy it.
    std::shared_ptr<const GroupConfig> shared(config, &gc);
    if (Group* g = impl_->find(gc.name)) {
      g->apply(std::move(shared));
    } else {
      impl_->groups.push_back(std::make_unique<Group>(std::move(shared), impl_->engine));
    }
  }
  // Snapshot: remove() may drop a group at once when it has nothing to take offline.
  std::vector<Group*> gone;
  for (const auto& g : impl_->groups)
    if (config->find_group(g->name()) == nullptr && !g->removing()) gone.push_back(g.get());
  for (Group* g : gone) g->remove();
}

Result<void> ResourceManager::online_group(const std::string& group, const std::string& reason) {
  auto g = impl_->find_for_request(group);
  if (!g) return std::unexpected(g.error());
  (*g)->online(reason);
  return {};
}

Result<void> ResourceManager::offline_group(const std::string& group, const std::string& reason) {
  auto g = impl_->find_for_request(group);
  if (!g) return std::unexpected(g.error());
  (*g)->offline(reason);
  return {};
}

Result<void> ResourceManager::online_resource(const std::string& group, const std::string& resource,
                                              const std::string& reason) {
  auto g = impl_->find_for_request(group);
  if (!g) return std::unexpected(g.error());
  return (*g)->online_resource(resource, reason);
}

Result<void> ResourceManager::offline_resource(const std::string& group,
                                               const std::string& resource,
                                               const std::string& reason) {
  auto g = impl_->find_for_request(group);
  if (!g) return std::unexpected(g.error());
  return (*g)->offline_resource(resource, reason);
}

void ResourceManager::shutdown(std::function<void()> done) {
  impl_->shutting_down = true;
  impl_->shutdown_done = std::move(done);
  std::vector<Group*> groups;
  for (const auto& g : impl_->groups) groups.push_back(g.get());
  for (Group* g : groups) g->offline("shutting down");
  impl_->check_shutdown();
}

std::vector<GroupStatus> ResourceManager::status() const {
  std::vector<GroupStatus> out;
  for (const auto& g : impl_->groups) out.push_back(g->status());
  return out;
}

Result<GroupStatus> ResourceManager::group_status(const std::string& group) const {
  Group* g = impl_->find(group);
  if (g == nullptr) return fail("there is no group '{}'", group);
  return g->status();
}

void ResourceManager::set_change_listener(std::function<void()> listener) {
  impl_->change_listener = std::move(listener);
}

void ResourceManager::set_group_failed_listener(
    std::function<void(const std::string& group)> listener) {
  impl_->group_failed_listener = std::move(listener);
}

}  // namespace clusterd
