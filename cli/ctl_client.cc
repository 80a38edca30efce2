#include "ctl_client.h"

#include <cstdarg>
#include <cstring>

#include "ctl_args.h"

namespace clusterd {
namespace {

/// Calls and replies may wait for OCF meta-data on Apply; nothing else takes long.
constexpr std::uint64_t kCallTimeoutUsec = 120ull * 1000000;

bool is_disconnect(int r) {
  return r == -ECONNRESET || r == -ENOTCONN || r == -EPIPE || r == -ECONNREFUSED || r == -ESHUTDOWN;
}

/// The exit code for a failed call: denied, unreachable or failed.
CtlError call_error(const sd_bus_error& error, int r) {
  if (sd_bus_error_has_name(&error, kErrorAccessDenied))
    return {kExitDenied, error.message ? error.message : "permission denied"};
  // Checked before the error name: sd-bus reports a lost connection as System.Error.ECONNRESET.
  if (is_disconnect(r)) return {kExitUnreachable, "the connection to clusterd was lost"};
  if (sd_bus_error_is_set(&error)) return {kExitFailed, error.message ? error.message : error.name};
  if (r == -ETIMEDOUT) return {kExitFailed, "clusterd did not answer in time"};
  return {kExitFailed, fmt::format("the call failed: {}", std::strerror(-r))};
}

int on_changed(sd_bus_message*, void* userdata, sd_bus_error*) noexcept {
  ++*static_cast<std::uint64_t*>(userdata);
  return 0;
}

/// Reads `T` from `reply` with bus_read.
template <typename T>
CtlResult<T> read_reply(const BusMessagePtr& reply) {
  T value{};
  int r = bus_read(reply.get(), &value);
  if (r < 0) return std::unexpected(bad_reply(r));
  return value;
}

}  // namespace

CtlError bad_reply(int r) {
  return {kExitFailed, fmt::format("clusterd sent a reply this clusterctl does not understand: {}",
                                   std::strerror(-r))};
}

CtlResult<CtlClient> CtlClient::connect(const std::string& path) {
  sd_bus* raw = nullptr;
  int r = sd_bus_new(&raw);
  if (r < 0) return std::unexpected(CtlError{kExitFailed, "could not create a bus connection"});
  BusPtr bus(raw);
  r = sd_bus_set_address(raw, ("unix:path=" + path).c_str());
  if (r >= 0) r = sd_bus_start(raw);
  if (r < 0)
    return std::unexpected(CtlError{
        kExitUnreachable, fmt::format("cannot reach clusterd at {}: {}", path, std::strerror(-r))});
  return CtlClient(std::move(bus));
}

CtlResult<BusMessagePtr> CtlClient::call(const char* method, const char* types, ...) {
  sd_bus_message* m = nullptr;
  int r = sd_bus_message_new_method_call(bus_.get(), &m, kBusServiceName, kBusObjectPath,
                                         kBusInterface, method);
  if (r < 0) return std::unexpected(call_error(SD_BUS_ERROR_NULL, r));
  BusMessagePtr request(m);
  if (types != nullptr && *types != '\0') {
    va_list ap;
    va_start(ap, types);
    r = sd_bus_message_appendv(m, types, ap);
    va_end(ap);
    if (r < 0) return std::unexpected(call_error(SD_BUS_ERROR_NULL, r));
  }
  sd_bus_error error = SD_BUS_ERROR_NULL;
  sd_bus_message* reply = nullptr;
  r = sd_bus_call(bus_.get(), m, kCallTimeoutUsec, &error, &reply);
  if (r < 0) {
    CtlError e = call_error(error, r);
    sd_bus_error_free(&error);
    return std::unexpected(e);
  }
  return BusMessagePtr(reply);
}

CtlResult<StatusView> CtlClient::status() {
  auto reply = call("GetStatus", "");
  if (!reply) return std::unexpected(reply.error());
  return read_reply<StatusView>(*reply);
}

CtlResult<std::vector<NodeView>> CtlClient::nodes() {
  auto reply = call("ListNodes", "");
  if (!reply) return std::unexpected(reply.error());
  return read_reply<std::vector<NodeView>>(*reply);
}

CtlResult<std::vector<GroupView>> CtlClient::groups() {
  auto reply = call("ListGroups", "");
  if (!reply) return std::unexpected(reply.error());
  return read_reply<std::vector<GroupView>>(*reply);
}

CtlResult<GroupView> CtlClient::group(const std::string& name) {
  auto reply = call("GetGroup", "s", name.c_str());
  if (!reply) return std::unexpected(reply.error());
  return read_reply<GroupView>(*reply);
}

CtlResult<std::vector<Event>> CtlClient::events(std::uint64_t after) {
  auto reply = call("GetEvents", "tu", static_cast<uint64_t>(after), 0u);
  if (!reply) return std::unexpected(reply.error());
  return read_reply<std::vector<Event>>(*reply);
}

CtlResult<std::uint64_t> CtlClient::last_event_seq() {
  sd_bus_error error = SD_BUS_ERROR_NULL;
  std::uint64_t seq = 0;
  int r = sd_bus_get_property_trivial(bus_.get(), kBusServiceName, kBusObjectPath, kBusInterface,
                                      "LastEventSeq", &error, 't', &seq);
  if (r < 0) {
    CtlError e = call_error(error, r);
    sd_bus_error_free(&error);
    return std::unexpected(e);
  }
  return seq;
}

CtlResult<void> CtlClient::set_target(bool online, const std::string& group,
                                      const std::string& resource) {
  CtlResult<BusMessagePtr> reply =
      resource.empty() ? call(online ? "OnlineGroup" : "OfflineGroup", "s", group.c_str())
                       : call(online ? "OnlineResource" : "OfflineResource", "ss", group.c_str(),
                              resource.c_str());
  if (!reply) return std::unexpected(reply.error());
  return {};
}

CtlResult<ApplyResult> CtlClient::apply(const std::string& text, const std::string& file) {
  auto reply = call("Apply", "ss", text.c_str(), file.c_str());
  if (!reply) return std::unexpected(reply.error());
  return read_reply<ApplyResult>(*reply);
}

CtlResult<ApplyResult> CtlClient::reload() {
  auto reply = call("Reload", "");
  if (!reply) return std::unexpected(reply.error());
  return read_reply<ApplyResult>(*reply);
}

/// Reads a reply made of one string.
CtlResult<std::string> read_string(const BusMessagePtr& reply) {
  const char* text = nullptr;
  int r = sd_bus_message_read(reply.get(), "s", &text);
  if (r < 0) return std::unexpected(bad_reply(r));
  return std::string(text);
}

CtlResult<std::string> CtlClient::cluster() {
  auto reply = call("GetCluster", "");
  if (!reply) return std::unexpected(reply.error());
  return read_string(*reply);
}

CtlResult<std::string> CtlClient::timelines() {
  auto reply = call("GetTimelines", "");
  if (!reply) return std::unexpected(reply.error());
  return read_string(*reply);
}

CtlResult<std::string> CtlClient::command(const std::string& kind, const std::string& group,
                                          const std::string& node, bool on) {
  auto reply = call("ClusterCommand", "sssb", kind.c_str(), group.c_str(), node.c_str(),
                    static_cast<int>(on));
  if (!reply) return std::unexpected(reply.error());
  return read_string(*reply);
}

CtlResult<void> CtlClient::subscribe() {
  int r = sd_bus_match_signal(bus_.get(), nullptr, nullptr, kBusObjectPath, kBusInterface,
                              "Changed", on_changed, changes_.get());
  if (r < 0) return std::unexpected(call_error(SD_BUS_ERROR_NULL, r));
  return {};
}

CtlResult<bool> CtlClient::wait_until(std::uint64_t timeout_usec, std::uint64_t seen) {
  MonoTime start = mono_now();
  while (*changes_ == seen) {
    int r = sd_bus_process(bus_.get(), nullptr);
    if (r < 0) return std::unexpected(call_error(SD_BUS_ERROR_NULL, r));
    if (r > 0) continue;
    std::uint64_t waited = mono_now().usec - start.usec;
    if (timeout_usec != UINT64_MAX && waited >= timeout_usec) return false;
    r = sd_bus_wait(bus_.get(), timeout_usec == UINT64_MAX ? UINT64_MAX : timeout_usec - waited);
    if (r < 0) return std::unexpected(call_error(SD_BUS_ERROR_NULL, r));
  }
  return true;
}

CtlResult<bool> CtlClient::wait_change(MonoTime deadline) {
  MonoTime now = mono_now();
  if (now >= deadline) return false;
  return wait_until(deadline.usec - now.usec, *changes_);
}

CtlResult<void> CtlClient::wait_change_forever() {
  auto r = wait_until(UINT64_MAX, *changes_);
  if (!r) return std::unexpected(r.error());
  return {};
}

}  // namespace clusterd
