#include "bus_manager.h"

#include <build_config.h>

#include "bus_auth.h"
#include "log.h"

namespace clusterd {
namespace {

ApiBackend& backend_of(void* userdata) { return static_cast<BusManager*>(userdata)->backend(); }

/// Sends a reply built by `append` (which adds the body to the reply message).
template <typename F>
int reply_with(sd_bus_message* call, F append) {
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_method_return(call, &raw);
  if (r < 0) return r;
  BusMessagePtr reply(raw);
  if ((r = append(raw)) < 0) return r;
  return sd_bus_send(nullptr, raw, nullptr);
}

/// The caller's EUID from the connection's credentials (peer-to-peer: PID and EUID only).
Result<uid_t> caller_euid(sd_bus_message* m) {
  sd_bus_creds* creds = nullptr;
  int r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID, &creds);
  if (r < 0) return fail_errno(r, "could not read the caller's credentials");
  uid_t euid = 0;
  r = sd_bus_creds_get_euid(creds, &euid);
  sd_bus_creds_unref(creds);
  if (r < 0) return fail_errno(r, "could not read the caller's user id");
  return euid;
}

/// "ACTION requested over D-Bus by uid N".
std::string request_reason(const std::string& action, uid_t euid) {
  return fmt::format("{} requested over D-Bus by uid {}", action, euid);
}

/// Checks that the caller may run mutating `action` now; the reason to record on success.
Result<std::string> admit(sd_bus_message* m, ApiBackend& backend, const std::string& action,
                          sd_bus_error* error) {
  auto euid = caller_euid(m);
  if (!euid) {
    sd_bus_error_set(error, kErrorAccessDenied, euid.error().to_string().c_str());
    return std::unexpected(euid.error());
  }
  auto allowed = authorize_change(*euid, backend.config()->cluster.admin_group, action);
  if (!allowed) {
    sd_bus_error_set(error, kErrorAccessDenied, allowed.error().message.c_str());
    return std::unexpected(allowed.error());
  }
  if (backend.stopping()) {
    sd_bus_error_set(error, kErrorShuttingDown, "clusterd is shutting down");
    return fail("shutting down");
  }
  return request_reason(action, *euid);
}

/// NoSuchGroup/NoSuchResource errors when the names are not in the running configuration.
bool names_exist(const Config& config, const std::string& group, const std::string* resource,
                 sd_bus_error* error) {
  const GroupConfig* g = config.find_group(group);
  if (g == nullptr) {
    sd_bus_error_setf(error, kErrorNoSuchGroup, "there is no group called \"%s\"", group.c_str());
    return false;
  }
  if (resource != nullptr && g->find(*resource) == nullptr) {
    sd_bus_error_setf(error, kErrorNoSuchResource, "group \"%s\" has no resource called \"%s\"",
                      group.c_str(), resource->c_str());
    return false;
  }
  return true;
}

/// Replies empty on success, Failed with the error's sentence otherwise.
int finish(sd_bus_message* m, const Result<void>& result, sd_bus_error* error) {
  if (!result) return sd_bus_error_set(error, kErrorFailed, result.error().to_string().c_str());
  return sd_bus_reply_method_return(m, "");
}

int method_get_status(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
  StatusView status = status_view(backend_of(userdata));
  return reply_with(m, [&](sd_bus_message* reply) { return bus_append(reply, status); });
}

int method_list_nodes(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
  auto nodes = backend_of(userdata).nodes();
  return reply_with(m, [&](sd_bus_message* reply) { return bus_append(reply, nodes); });
}

int method_list_groups(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
  auto groups = group_views(backend_of(userdata).group_status());
  return reply_with(m, [&](sd_bus_message* reply) { return bus_append(reply, groups); });
}

int method_get_group(sd_bus_message* m, void* userdata, sd_bus_error* error) noexcept {
  const char* name = nullptr;
  int r = sd_bus_message_read(m, "s", &name);
  if (r < 0) return r;
  for (const auto& g : backend_of(userdata).group_status()) {
    if (g.name != name) continue;
    GroupView view = group_view(g);
    return reply_with(m, [&](sd_bus_message* reply) { return bus_append(reply, view); });
  }
  return sd_bus_error_setf(error, kErrorNoSuchGroup, "there is no group called \"%s\"", name);
}

int method_get_events(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
  uint64_t after = 0;
  uint32_t limit = 0;
  int r = sd_bus_message_read(m, "tu", &after, &limit);
  if (r < 0) return r;
  auto events = backend_of(userdata).history().since(after, limit);
  return reply_with(m, [&](sd_bus_message* reply) { return bus_append(reply, events); });
}

/// OnlineGroup/OfflineGroup.
int group_action(sd_bus_message* m, void* userdata, sd_bus_error* error, bool online) noexcept {
  const char* group = nullptr;
  int r = sd_bus_message_read(m, "s", &group);
  if (r < 0) return r;
  ApiBackend& backend = backend_of(userdata);
  const char* action = online ? "OnlineGroup" : "OfflineGroup";
  auto reason = admit(m, backend, action, error);
  if (!reason) return -EACCES;
  if (!names_exist(*backend.config(), group, nullptr, error)) return -ENOENT;
  log(LogLevel::Info, {{"GROUP", group}}, "{}", *reason);
  auto result =
      online ? backend.online_group(group, *reason) : backend.offline_group(group, *reason);
  return finish(m, result, error);
}

int method_online_group(sd_bus_message* m, void* userdata, sd_bus_error* error) noexcept {
  return group_action(m, userdata, error, true);
}

int method_offline_group(sd_bus_message* m, void* userdata, sd_bus_error* error) noexcept {
  return group_action(m, userdata, error, false);
}

/// OnlineResource/OfflineResource.
int resource_action(sd_bus_message* m, void* userdata, sd_bus_error* error, bool online) noexcept {
  const char* group = nullptr;
  const char* resource = nullptr;
  int r = sd_bus_message_read(m, "ss", &group, &resource);
  if (r < 0) return r;
  ApiBackend& backend = backend_of(userdata);
  const char* action = online ? "OnlineResource" : "OfflineResource";
  auto reason = admit(m, backend, action, error);
  if (!reason) return -EACCES;
  std::string resource_name = resource;
  if (!names_exist(*backend.config(), group, &resource_name, error)) return -ENOENT;
  log(LogLevel::Info, {{"GROUP", group}, {"RESOURCE", resource}}, "{}", *reason);
  auto result = online ? backend.online_resource(group, resource, *reason)
                       : backend.offline_resource(group, resource, *reason);
  return finish(m, result, error);
}

int method_online_resource(sd_bus_message* m, void* userdata, sd_bus_error* error) noexcept {
  return resource_action(m, userdata, error, true);
}

int method_offline_resource(sd_bus_message* m, void* userdata, sd_bus_error* error) noexcept {
  return resource_action(m, userdata, error, false);
}

/// Replies with an ApplyResult, or Failed.
int reply_apply(sd_bus_message* m, const Result<ApplyResult>& result, sd_bus_error* error) {
  if (!result) return sd_bus_error_set(error, kErrorFailed, result.error().to_string().c_str());
  return reply_with(m, [&](sd_bus_message* reply) { return bus_append(reply, *result); });
}

int method_apply(sd_bus_message* m, void* userdata, sd_bus_error* error) noexcept {
  const char* text = nullptr;
  const char* file = nullptr;
  int r = sd_bus_message_read(m, "ss", &text, &file);
  if (r < 0) return r;
  ApiBackend& backend = backend_of(userdata);
  auto reason = admit(m, backend, "Apply", error);
  if (!reason) return -EACCES;
  return reply_apply(m, backend.apply(text, *file ? file : "<apply>", *reason), error);
}

int method_get_cluster(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
  std::string text = backend_of(userdata).cluster_json();
  return sd_bus_reply_method_return(m, "s", text.c_str());
}

int method_get_timelines(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
  std::string text = backend_of(userdata).timelines_json();
  return sd_bus_reply_method_return(m, "s", text.c_str());
}

int method_cluster_command(sd_bus_message* m, void* userdata, sd_bus_error* error) noexcept {
  const char* kind = nullptr;
  const char* group = nullptr;
  const char* node = nullptr;
  int on = 0;
  int r = sd_bus_message_read(m, "sssb", &kind, &group, &node, &on);
  if (r < 0) return r;
  ApiBackend& backend = backend_of(userdata);
  auto reason = admit(m, backend, fmt::format("ClusterCommand {}", kind), error);
  if (!reason) return -EACCES;
  if (*group && !names_exist(*backend.config(), group, nullptr, error)) return -ENOENT;
  if (*node && backend.config()->find_node(node) == nullptr)
    return sd_bus_error_setf(error, kErrorFailed, "there is no node called \"%s\"", node);
  ClusterCommand command{kind, group, node, on != 0, ""};
  log(LogLevel::Info, {{"GROUP", group}}, "{}", *reason);
  auto result = backend.cluster_command(command, *reason);
  if (!result) return sd_bus_error_set(error, kErrorFailed, result.error().to_string().c_str());
  return sd_bus_reply_method_return(m, "s", result->c_str());
}

int method_reload(sd_bus_message* m, void* userdata, sd_bus_error* error) noexcept {
  ApiBackend& backend = backend_of(userdata);
  auto reason = admit(m, backend, "Reload", error);
  if (!reason) return -EACCES;
  return reply_apply(m, backend.reload(*reason), error);
}

/// Getter of a string property computed from the backend.
template <std::string (*get)(const ApiBackend&)>
int string_property(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply,
                    void* userdata, sd_bus_error*) noexcept {
  return sd_bus_message_append(reply, "s", get(backend_of(userdata)).c_str());
}

std::string cluster_name(const ApiBackend& b) { return b.config()->cluster.name; }
std::string node_name(const ApiBackend& b) { return b.node_name(); }
std::string config_source(const ApiBackend& b) { return b.config()->source; }
std::string admin_group(const ApiBackend& b) { return b.config()->cluster.admin_group; }
std::string version(const ApiBackend&) { return CLUSTERD_VERSION; }

int last_event_seq_property(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply,
                            void* userdata, sd_bus_error*) noexcept {
  return sd_bus_message_append(reply, "t", backend_of(userdata).history().last_seq());
}

int stopping_property(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply,
                      void* userdata, sd_bus_error*) noexcept {
  return sd_bus_message_append(reply, "b", static_cast<int>(backend_of(userdata).stopping()));
}

constexpr uint64_t kUnpriv = SD_BUS_VTABLE_UNPRIVILEGED;

}  // namespace

std::string ApiBackend::cluster_json() const {
  // A cluster of one: always quorate, this node coordinates itself.
  nlohmann::json nodes = to_json(this->nodes());
  return nlohmann::json{{"node", node_name()},     {"term", 0},
                        {"role", "single"},        {"coordinator", node_name()},
                        {"quorate", true},         {"fenced", false},
                        {"nodes", nodes},          {"heartbeat", nlohmann::json::array()}}
      .dump();
}

Result<std::string> ApiBackend::cluster_command(const ClusterCommand& command,
                                                const std::string&) {
  return fail("\"{}\" needs a cluster of more than one node", command.kind);
}

const sd_bus_vtable BusManager::kVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("ClusterName", "s", string_property<cluster_name>, 0, 0),
    SD_BUS_PROPERTY("NodeName", "s", string_property<node_name>, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("ConfigSource", "s", string_property<config_source>, 0, 0),
    SD_BUS_PROPERTY("AdminGroup", "s", string_property<admin_group>, 0, 0),
    SD_BUS_PROPERTY("Version", "s", string_property<version>, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("LastEventSeq", "t", last_event_seq_property, 0, 0),
    SD_BUS_PROPERTY("Stopping", "b", stopping_property, 0, 0),
    SD_BUS_METHOD_WITH_NAMES("GetStatus", "", , CLUSTERD_SIG_STATUS,
                             SD_BUS_PARAM(cluster) SD_BUS_PARAM(node) SD_BUS_PARAM(config)
                                 SD_BUS_PARAM(nodes) SD_BUS_PARAM(groups),
                             method_get_status, kUnpriv),
    SD_BUS_METHOD_WITH_NAMES("ListNodes", "", , "a" CLUSTERD_SIG_NODE, SD_BUS_PARAM(nodes),
                             method_list_nodes, kUnpriv),
    SD_BUS_METHOD_WITH_NAMES("ListGroups", "", , "a" CLUSTERD_SIG_GROUP, SD_BUS_PARAM(groups),
                             method_list_groups, kUnpriv),
    SD_BUS_METHOD_WITH_NAMES("GetGroup", "s", SD_BUS_PARAM(name), CLUSTERD_SIG_GROUP,
                             SD_BUS_PARAM(group), method_get_group, kUnpriv),
    SD_BUS_METHOD_WITH_NAMES("GetEvents", "tu", SD_BUS_PARAM(after_seq) SD_BUS_PARAM(limit),
                             "a" CLUSTERD_SIG_EVENT, SD_BUS_PARAM(events), method_get_events,
                             kUnpriv),
    SD_BUS_METHOD_WITH_NAMES("GetCluster", "", , "s", SD_BUS_PARAM(json), method_get_cluster,
                             kUnpriv),
    SD_BUS_METHOD_WITH_NAMES("GetTimelines", "", , "s", SD_BUS_PARAM(json), method_get_timelines,
                             kUnpriv),
    SD_BUS_METHOD_WITH_NAMES("ClusterCommand", "sssb",
                             SD_BUS_PARAM(kind) SD_BUS_PARAM(group) SD_BUS_PARAM(node)
                                 SD_BUS_PARAM(on),
                             "s", SD_BUS_PARAM(result), method_cluster_command, kUnpriv),
    SD_BUS_METHOD_WITH_NAMES("OnlineGroup", "s", SD_BUS_PARAM(group), "", , method_online_group,
                             kUnpriv),
    SD_BUS_METHOD_WITH_NAMES("OfflineGroup", "s", SD_BUS_PARAM(group), "", , method_offline_group,
                             kUnpriv),
    SD_BUS_METHOD_WITH_NAMES("OnlineResource", "ss", SD_BUS_PARAM(group) SD_BUS_PARAM(resource), "",
                             , method_online_resource, kUnpriv),
    SD_BUS_METHOD_WITH_NAMES("OfflineResource", "ss", SD_BUS_PARAM(group) SD_BUS_PARAM(resource),
                             "", , method_offline_resource, kUnpriv),
    SD_BUS_METHOD_WITH_NAMES("Apply", "ss", SD_BUS_PARAM(yaml) SD_BUS_PARAM(file_name),
                             CLUSTERD_SIG_APPLY_RESULT,
                             SD_BUS_PARAM(applied) SD_BUS_PARAM(diagnostics) SD_BUS_PARAM(changes),
                             method_apply, kUnpriv),
    SD_BUS_METHOD_WITH_NAMES("Reload", "", , CLUSTERD_SIG_APPLY_RESULT,
                             SD_BUS_PARAM(applied) SD_BUS_PARAM(diagnostics) SD_BUS_PARAM(changes),
                             method_reload, kUnpriv),
    SD_BUS_SIGNAL_WITH_NAMES("Changed", "t", SD_BUS_PARAM(last_event_seq), 0),
    SD_BUS_VTABLE_END};

int BusManager::add_to(sd_bus* bus) {
  return sd_bus_add_object_vtable(bus, nullptr, kBusObjectPath, kBusInterface, kVtable, this);
}

int BusManager::emit_changed(sd_bus* bus) const {
  return sd_bus_emit_signal(bus, kBusObjectPath, kBusInterface, "Changed", "t",
                            static_cast<uint64_t>(backend_.history().last_seq()));
}

StatusView status_view(const ApiBackend& backend) {
  ConfigPtr config = backend.config();
  return {config->cluster.name, backend.node_name(), config->source,
          node_views(*config, backend.node_name()), group_views(backend.group_status())};
}

}  // namespace clusterd
