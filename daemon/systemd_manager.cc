#include "systemd_manager.h"

#include <cstdlib>
#include <iterator>
#include <vector>

#include "config_load.h"
#include "log.h"

namespace clusterd {
namespace {

constexpr const char* kService = "org.freedesktop.systemd1";
constexpr const char* kManagerPath = "/org/freedesktop/systemd1";
constexpr const char* kManagerInterface = "org.freedesktop.systemd1.Manager";
constexpr const char* kUnitInterface = "org.freedesktop.systemd1.Unit";
constexpr const char* kPropertiesInterface = "org.freedesktop.DBus.Properties";
constexpr const char* kUnitPathPrefix = "/org/freedesktop/systemd1/unit/";

// Subscribe is the first call on a new connection; a manager that does not answer it within
// this long is treated as unreachable and tried again.
constexpr Duration kSubscribeTimeout = std::chrono::seconds(10);
constexpr Duration kFirstReconnectDelay{10};
constexpr Duration kMaxReconnectDelay = std::chrono::seconds(2);

constexpr const char* kUnitEventKindNames[] = {"changed", "lost", "resynced"};
static_assert(std::size(kUnitEventKindNames) == kUnitEventKindCount);

Usec to_usec(Duration d) { return d.count() <= 0 ? 0 : static_cast<Usec>(d.count()) * 1000; }

// The errno of a systemd D-Bus error: the names a resource must tell apart, then sd-bus's own
// mapping (which knows the generic org.freedesktop.DBus.Error.* names).
int errno_of(const sd_bus_error* error) {
  struct Known {
    const char* name;
    int err;
  };
  static constexpr Known kKnown[] = {
      {"org.freedesktop.systemd1.NoSuchUnit", ENOENT},
      {"org.freedesktop.systemd1.UnitMasked", ERFKILL},
      {"org.freedesktop.systemd1.BadUnitSetting", ENOEXEC},
      {"org.freedesktop.systemd1.LoadFailed", EIO},
      {"org.freedesktop.DBus.Error.AccessDenied", EACCES},
      {"org.freedesktop.DBus.Error.NoReply", ETIMEDOUT},
      {"org.freedesktop.DBus.Error.Timeout", ETIMEDOUT},
  };
  for (const auto& known : kKnown)
    if (sd_bus_error_has_name(error, known.name)) return known.err;
  int err = sd_bus_error_get_errno(error);
  return err > 0 ? err : EIO;
}

// systemd's message, which names the unit ("Unit web.service not found.").
Error bus_error(const sd_bus_error* error) {
  std::string message = error && error->message ? error->message
                        : error && error->name  ? error->name
                                                : "unknown D-Bus error";
  return Error{errno_of(error), std::move(message)};
}

bool is_label_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9');
}

// Reads one variant of type `contents` into `out` when it has the expected type; skips it
// otherwise. Returns a negative errno on a malformed message.
int read_string(sd_bus_message* m, const char* contents, std::string& out) {
  if (std::string_view(contents) != "s" && std::string_view(contents) != "o")
    return sd_bus_message_skip(m, "v");
  const char* s = nullptr;
  int r = sd_bus_message_read(m, "v", contents, &s);
  if (r >= 0 && s) out = s;
  return r;
}

template <typename T>
int read_number(sd_bus_message* m, const char* contents, const char* expected, T& out) {
  if (std::string_view(contents) != expected) return sd_bus_message_skip(m, "v");
  return sd_bus_message_read(m, "v", expected, &out);
}

// LoadError is (ss): the error name and its message; the message is what people read.
int read_load_error(sd_bus_message* m, const char* contents, std::string& out) {
  if (std::string_view(contents) != "(ss)") return sd_bus_message_skip(m, "v");
  const char* name = nullptr;
  const char* message = nullptr;
  int r = sd_bus_message_read(m, "v", "(ss)", &name, &message);
  if (r >= 0) out = message && *message ? message : name ? name : "";
  return r;
}

int read_property(sd_bus_message* m, const char* key, const char* contents, UnitState& state) {
  std::string_view k = key;
  if (k == "Id") return read_string(m, contents, state.id);
  if (k == "LoadState") return read_string(m, contents, state.load_state);
  if (k == "ActiveState") return read_string(m, contents, state.active_state);
  if (k == "SubState") return read_string(m, contents, state.sub_state);
  if (k == "Result") return read_string(m, contents, state.result);
  if (k == "LoadError") return read_load_error(m, contents, state.load_error);
  if (k == "MainPID") return read_number(m, contents, "u", state.main_pid);
  if (k == "ExecMainPID") return read_number(m, contents, "u", state.exec_main_pid);
  if (k == "ExecMainCode") return read_number(m, contents, "i", state.exec_main_code);
  if (k == "ExecMainStatus") return read_number(m, contents, "i", state.exec_main_status);
  std::uint64_t usec = 0;
  if (k == "TimeoutStartUSec" || k == "TimeoutStopUSec") {
    int r = read_number(m, contents, "t", usec);
    if (r > 0) (k == "TimeoutStartUSec" ? state.timeout_start_usec : state.timeout_stop_usec) = usec;
    return r;
  }
  return sd_bus_message_skip(m, "v");
}

// Applies an a{sv} of unit properties (GetAll's answer, PropertiesChanged's changes).
int read_properties(sd_bus_message* m, UnitState& state) {
  int r = sd_bus_message_enter_container(m, 'a', "{sv}");
  if (r < 0) return r;
  while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
    const char* key = nullptr;
    char type = 0;
    const char* contents = nullptr;
    if ((r = sd_bus_message_read(m, "s", &key)) < 0) return r;
    if ((r = sd_bus_message_peek_type(m, &type, &contents)) < 0) return r;
    if ((r = read_property(m, key, contents ? contents : "", state)) < 0) return r;
    if ((r = sd_bus_message_exit_container(m)) < 0) return r;
  }
  if (r < 0) return r;
  state.known = true;
  return sd_bus_message_exit_container(m);
}

}  // namespace

/// One call in flight, or a job awaited after its StartUnit/StopUnit was answered.
struct SystemdManager::Pending {
  BusSlotPtr slot;
  ReplyHandler handler;    ///< The call's answer (message or error).
  bool keep = false;       ///< A job: stays registered after the answer, for JobRemoved.
  std::string job;         ///< Job object path, once known.
  Reply<std::string> job_reply;  ///< Set for run_job: the job's result goes here.
  SystemdManager* self = nullptr;
  std::uint64_t id = 0;
};

const char* to_string(UnitEventKind kind) {
  int i = static_cast<int>(kind);
  return i >= 0 && i < kUnitEventKindCount ? kUnitEventKindNames[i] : "?";
}

const char* to_string(JobKind kind) {
  switch (kind) {
    case JobKind::Start: return "start";
    case JobKind::Stop: return "stop";
  }
  return "?";
}

Result<SystemdBusAddress> parse_systemd_bus(std::string_view value,
                                            std::string_view xdg_runtime_dir) {
  if (value.empty() || value == "system") return SystemdBusAddress{true, "", "the system bus"};
  std::string path;
  if (value == "user") {
    if (xdg_runtime_dir.empty() || xdg_runtime_dir.front() != '/')
      return fail("{}=user needs XDG_RUNTIME_DIR set to an absolute path", kSystemdBusVariable);
    path = std::string(xdg_runtime_dir) + "/systemd/private";
  } else if (value.find('=') != std::string_view::npos) {
    return SystemdBusAddress{false, std::string(value), std::string(value)};
  } else if (value.front() == '/') {
    path = std::string(value);
  } else {
    return fail("{}='{}' is not 'system', 'user', an absolute socket path or a D-Bus address",
                kSystemdBusVariable, value);
  }
  return SystemdBusAddress{false, "unix:path=" + path, path};
}

std::string unit_object_path(std::string_view unit) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string path = kUnitPathPrefix;
  if (unit.empty()) return path + "_";
  for (std::size_t i = 0; i < unit.size(); ++i) {
    auto c = static_cast<unsigned char>(unit[i]);
    if (is_label_char(static_cast<char>(c), i == 0)) {
      path += static_cast<char>(c);
    } else {
      path += '_';
      path += kHex[c >> 4];
      path += kHex[c & 15];
    }
  }
  return path;
}

// --- Tickets and watches -------------------------------------------------------------------

SystemdManager::Ticket& SystemdManager::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    reset();
    manager_ = std::move(other.manager_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void SystemdManager::Ticket::reset() {
  if (auto manager = manager_.lock(); manager && id_ != 0) manager->forget(id_);
  manager_.reset();
  id_ = 0;
}

SystemdManager::Watch& SystemdManager::Watch::operator=(Watch&& other) noexcept {
  if (this != &other) {
    reset();
    manager_ = std::move(other.manager_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void SystemdManager::Watch::reset() {
  if (auto manager = manager_.lock(); manager && id_ != 0) {
    auto it = manager->watchers_.find(id_);
    if (it != manager->watchers_.end()) {
      std::string unit = it->second.unit;
      manager->watchers_.erase(it);
      bool still_watched = false;
      for (const auto& [id, w] : manager->watchers_) still_watched |= w.unit == unit;
      if (!still_watched) {
        manager->cache_.erase(unit);
        manager->units_by_path_.erase(unit_object_path(unit));
      }
    }
  }
  manager_.reset();
  id_ = 0;
}

// --- Connection ----------------------------------------------------------------------------

SystemdManager::SystemdManager(sd_event* loop, SystemdBusAddress address)
    : loop_(loop), address_(std::move(address)), deferred_(loop) {}

SystemdManager::~SystemdManager() {
  pending_.clear();
  job_removed_.reset();
  properties_changed_.reset();
  disconnected_.reset();
}

std::shared_ptr<SystemdManager> SystemdManager::create(sd_event* loop, SystemdBusAddress address) {
  return std::shared_ptr<SystemdManager>(new SystemdManager(loop, std::move(address)));
}

Result<std::shared_ptr<SystemdManager>> SystemdManager::from_environment(sd_event* loop) {
  const char* value = std::getenv(kSystemdBusVariable);
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  auto address = parse_systemd_bus(value ? value : "", runtime ? runtime : "");
  if (!address) return std::unexpected(address.error());
  return create(loop, std::move(*address));
}

Result<sd_bus*> SystemdManager::open_bus() {
  sd_bus* raw = nullptr;
  int r = 0;
  if (address_.system) {
    r = sd_bus_open_system_with_description(&raw, "clusterd-systemd");
  } else {
    // A manager's private socket: peer-to-peer, no bus daemon, so no Hello.
    if ((r = sd_bus_new(&raw)) >= 0) {
      BusPtr owner(raw);
      if ((r = sd_bus_set_address(raw, address_.address.c_str())) >= 0 &&
          (r = sd_bus_set_description(raw, "clusterd-systemd")) >= 0 && (r = sd_bus_start(raw)) >= 0)
        owner.release();
      else
        raw = nullptr;
    }
  }
  if (r < 0) return fail_errno(r, "cannot connect to systemd at {}", address_.description);
  BusPtr bus(raw);
  if ((r = sd_bus_attach_event(raw, loop_, SD_EVENT_PRIORITY_NORMAL)) < 0)
    return fail_errno(r, "cannot attach the systemd connection to the event loop");
  return bus.release();
}

Result<void> SystemdManager::add_matches() {
  // On the system bus only systemd may send these; a private socket has no other senders.
  const char* sender = address_.system ? kService : nullptr;
  sd_bus_slot* slot = nullptr;
  int r = sd_bus_match_signal_async(bus_.get(), &slot, sender, kManagerPath, kManagerInterface,
                                    "JobRemoved", on_job_removed, nullptr, this);
  if (r < 0) return fail_errno(r, "cannot watch systemd's JobRemoved signal");
  job_removed_.reset(slot);
  std::string match =
      "type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
      "path_namespace='/org/freedesktop/systemd1/unit'";
  if (sender) match += fmt::format(",sender='{}'", sender);
  r = sd_bus_add_match_async(bus_.get(), &slot, match.c_str(), on_properties_changed, nullptr,
                             this);
  if (r < 0) return fail_errno(r, "cannot watch systemd's PropertiesChanged signals");
  properties_changed_.reset(slot);
  r = sd_bus_match_signal_async(bus_.get(), &slot, nullptr, "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected",
                                on_disconnected_signal, nullptr, this);
  if (r < 0) return fail_errno(r, "cannot watch for the loss of the systemd connection");
  disconnected_.reset(slot);
  return {};
}

// Opens the connection when there is none. Calls made before Subscribe is answered are queued
// by sd-bus behind the authentication and Subscribe, in order.
Result<void> SystemdManager::ensure_connected() {
  if (bus_) return {};
  auto bus = open_bus();
  if (!bus) return std::unexpected(bus.error());
  bus_.reset(*bus);
  ++connection_count_;
  if (auto matched = add_matches(); !matched) {
    // Nothing was sent on this connection yet: close it quietly.
    job_removed_.reset();
    properties_changed_.reset();
    disconnected_.reset();
    bus_.reset();
    return matched;
  }
  subscribe_id_ = call(
      "Subscribe", kManagerPath, kManagerInterface, kSubscribeTimeout, nullptr,
      [this](sd_bus_message*, const Error* error) {
        subscribe_id_ = 0;
        if (error) return schedule_drop(fmt::format("Subscribe failed: {}", error->message));
        on_subscribed();
      });
  return {};
}

void SystemdManager::on_subscribed() {
  bool reconnect = connection_count_ > 1;
  connected_ = true;
  reconnect_backoff_ = Duration(0);
  log(reconnect ? LogLevel::Notice : LogLevel::Info, {}, "{} systemd at {}",
      reconnect ? "reconnected to" : "connected to", address_.description);
  if (reconnect) resync_watched();
}

// Every watched unit is read again: its state may have changed while nobody listened.
void SystemdManager::resync_watched() {
  for (auto& [unit, state] : cache_) {
    std::string name = unit;
    auto id = call("GetAll", unit_object_path(name), kPropertiesInterface, kSubscribeTimeout,
                   [](sd_bus_message* m) { return sd_bus_message_append(m, "s", ""); },
                   [this, name](sd_bus_message* reply, const Error* error) {
                     if (error) {
                       log(LogLevel::Warning, {{"UNIT", name}},
                           "cannot read the state of {} after reconnecting, ignoring: {}", name,
                           error->message);
                       return;
                     }
                     update_cache(unit_object_path(name), reply);
                     notify(name, UnitEventKind::Resynced);
                   });
    (void)id;  // owned by the manager: it ends with the answer or the connection
  }
}

void SystemdManager::on_disconnected() {
  std::string why = fmt::format("the connection to systemd at {} was lost", address_.description);
  log(LogLevel::Warning, {}, "{}; reconnecting", why);
  schedule_drop(why);
}

// The bus must not be freed inside its own dispatch, and callers must not hear of failures
// inside their own calls: the connection is dropped from the loop. The generation check keeps
// a second report of the same loss from dropping a newer connection.
void SystemdManager::schedule_drop(std::string why) {
  deferred_.post([this, why = std::move(why), generation = connection_count_] {
    if (generation == connection_count_) drop_connection(why);
  });
}

// Closes the connection: every call and job in flight fails with `why`, watchers hear Lost,
// and a reconnect follows when units are watched.
void SystemdManager::drop_connection(const std::string& why) {
  bool was_connected = connected_ || bus_;
  connected_ = false;
  subscribe_id_ = 0;
  auto pending = std::exchange(pending_, {});
  job_removed_.reset();
  properties_changed_.reset();
  disconnected_.reset();
  bus_.reset();
  Error error{ECONNRESET, why};
  for (auto& [id, p] : pending) {
    p->slot.reset();
    if (p->job_reply) p->job_reply(std::unexpected(error));
    else if (p->handler) p->handler(nullptr, &error);
  }
  if (!was_connected) return;
  std::vector<std::string> units;
  for (const auto& [unit, state] : cache_) units.push_back(unit);
  for (const auto& unit : units) notify(unit, UnitEventKind::Lost);
  schedule_reconnect();
}

void SystemdManager::schedule_reconnect() {
  if (watchers_.empty() || reconnect_timer_.armed()) return;
  reconnect_backoff_ = reconnect_backoff_.count() == 0
                           ? kFirstReconnectDelay
                           : std::min(reconnect_backoff_ * 2, kMaxReconnectDelay);
  auto armed = reconnect_timer_.arm(loop_, reconnect_backoff_, "systemd-reconnect",
                                    [this] { reconnect(); });
  if (!armed) log(LogLevel::Err, {}, "{}", armed.error().to_string());
}

void SystemdManager::reconnect() {
  if (bus_ || watchers_.empty()) return;
  if (auto connected = ensure_connected(); !connected) {
    log(LogLevel::Warning, {}, "{}, retrying in {}", connected.error().to_string(),
        format_duration(std::min(reconnect_backoff_ * 2, kMaxReconnectDelay)));
    schedule_reconnect();
  }
}

// --- Calls ---------------------------------------------------------------------------------

std::uint64_t SystemdManager::call(const char* member, const std::string& path,
                                   const char* interface, Duration timeout,
                                   const std::function<int(sd_bus_message*)>& append,
                                   ReplyHandler handler) {
  if (auto connected = ensure_connected(); !connected)
    return fail_later(connected.error(), std::move(handler));
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_method_call(bus_.get(), &raw, kService, path.c_str(), interface,
                                         member);
  BusMessagePtr message(raw);
  if (r >= 0 && append) r = append(raw);
  if (r < 0) return fail_later(Error{-r, fmt::format("cannot build the {} call", member)},
                               std::move(handler));
  auto pending = std::make_unique<Pending>();
  std::uint64_t id = next_id_++;
  pending->self = this;
  pending->id = id;
  pending->handler = std::move(handler);
  sd_bus_slot* slot = nullptr;
  r = sd_bus_call_async(bus_.get(), &slot, raw, on_reply, pending.get(), to_usec(timeout));
  if (r < 0) return fail_later(Error{-r, fmt::format("cannot send {} to systemd", member)},
                               std::move(pending->handler));
  pending->slot.reset(slot);
  pending_.emplace(id, std::move(pending));
  return id;
}

// Failures known at once are delivered from the loop, like answers.
std::uint64_t SystemdManager::fail_later(Error error, ReplyHandler handler) {
  auto pending = std::make_unique<Pending>();
  std::uint64_t id = next_id_++;
  pending->self = this;
  pending->id = id;
  pending->handler = std::move(handler);
  pending_.emplace(id, std::move(pending));
  deferred_.post([this, id, error = std::move(error)] {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    auto handler = std::move(it->second->handler);
    pending_.erase(it);
    if (handler) handler(nullptr, &error);
  });
  return id;
}

int SystemdManager::on_reply(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
  auto* pending = static_cast<Pending*>(userdata);
  SystemdManager* self = pending->self;
  std::uint64_t id = pending->id;
  ReplyHandler handler = std::move(pending->handler);
  // A job stays registered for its JobRemoved; a plain call is done.
  if (!pending->keep) self->pending_.erase(id);
  const sd_bus_error* bus_err = sd_bus_message_get_error(m);
  if (!handler) return 0;
  if (bus_err) {
    Error error = bus_error(bus_err);
    handler(nullptr, &error);
  } else {
    handler(m, nullptr);
  }
  return 0;
}

void SystemdManager::forget(std::uint64_t id) { pending_.erase(id); }

SystemdManager::Ticket SystemdManager::load_unit(const std::string& unit, Duration timeout,
                                                 Reply<void> reply) {
  return ticket(call("LoadUnit", kManagerPath, kManagerInterface, timeout,
                     [&unit](sd_bus_message* m) { return sd_bus_message_append(m, "s", unit.c_str()); },
                     [reply = std::move(reply)](sd_bus_message*, const Error* error) {
                       if (error) return reply(std::unexpected(*error));
                       reply({});
                     }));
}

SystemdManager::Ticket SystemdManager::get_state(const std::string& unit, Duration timeout,
                                                 Reply<UnitState> reply) {
  // The empty interface asks for every interface at once (Unit, Service, ...), as systemctl
  // show does.
  return ticket(call(
      "GetAll", unit_object_path(unit), kPropertiesInterface, timeout,
      [](sd_bus_message* m) { return sd_bus_message_append(m, "s", ""); },
      [this, unit, reply = std::move(reply)](sd_bus_message* m, const Error* error) {
        if (error) return reply(std::unexpected(*error));
        UnitState state;
        if (int r = read_properties(m, state); r < 0)
          return reply(fail_errno(r, "cannot read the properties of {}", unit));
        if (auto it = cache_.find(unit); it != cache_.end()) it->second = state;
        reply(std::move(state));
      }));
}

SystemdManager::Ticket SystemdManager::reset_failed(const std::string& unit, Duration timeout,
                                                    Reply<void> reply) {
  return ticket(call("ResetFailedUnit", kManagerPath, kManagerInterface, timeout,
                     [&unit](sd_bus_message* m) { return sd_bus_message_append(m, "s", unit.c_str()); },
                     [reply = std::move(reply)](sd_bus_message*, const Error* error) {
                       if (error) return reply(std::unexpected(*error));
                       reply({});
                     }));
}

SystemdManager::Ticket SystemdManager::run_job(JobKind kind, const std::string& unit,
                                               Duration timeout, Reply<std::string> reply) {
  auto id_box = std::make_shared<std::uint64_t>(0);
  std::uint64_t id = call(
      kind == JobKind::Start ? "StartUnit" : "StopUnit", kManagerPath, kManagerInterface, timeout,
      [&unit](sd_bus_message* m) { return sd_bus_message_append(m, "ss", unit.c_str(), "replace"); },
      [this, id_box, reply = std::move(reply)](sd_bus_message* m, const Error* error) mutable {
        auto it = pending_.find(*id_box);
        const char* job = nullptr;
        int r = error ? 0 : sd_bus_message_read(m, "o", &job);
        if (error || r < 0 || !job || it == pending_.end()) {
          if (it != pending_.end()) pending_.erase(it);
          if (error) return reply(std::unexpected(*error));
          return reply(fail_errno(r < 0 ? r : EBADMSG, "systemd answered without a job"));
        }
        // Now wait for the JobRemoved of this job (it comes after this answer: one connection
        // delivers in order).
        it->second->job = job;
        it->second->job_reply = std::move(reply);
      });
  *id_box = id;
  if (auto it = pending_.find(id); it != pending_.end()) it->second->keep = true;
  return ticket(id);
}

void SystemdManager::kill_unit(const std::string& unit, int signal) {
  std::uint64_t id = call(
      "KillUnit", kManagerPath, kManagerInterface, kSubscribeTimeout,
      [&unit, signal](sd_bus_message* m) {
        return sd_bus_message_append(m, "ssi", unit.c_str(), "all", signal);
      },
      [unit](sd_bus_message*, const Error* error) {
        if (error)
          log(LogLevel::Warning, {{"UNIT", unit}}, "KillUnit {} failed, ignoring: {}", unit,
              error->message);
      });
  (void)id;  // owned by the manager until answered
}

void SystemdManager::finish_job(const std::string& job, const std::string& result) {
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->second->job != job) continue;
    auto reply = std::move(it->second->job_reply);
    pending_.erase(it);
    if (reply) reply(result);
    return;
  }
}

int SystemdManager::on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
  auto* self = static_cast<SystemdManager*>(userdata);
  std::uint32_t job_id = 0;
  const char* job = nullptr;
  const char* unit = nullptr;
  const char* result = nullptr;
  if (sd_bus_message_read(m, "uoss", &job_id, &job, &unit, &result) < 0) {
    log(LogLevel::Warning, {}, "malformed JobRemoved signal from systemd, ignoring");
    return 0;
  }
  self->finish_job(job, result);
  return 0;
}

// --- Unit state ----------------------------------------------------------------------------

SystemdManager::Watch SystemdManager::watch(const std::string& unit, UnitListener listener) {
  std::uint64_t id = next_id_++;
  watchers_.emplace(id, Watcher{unit, std::move(listener)});
  cache_.try_emplace(unit);
  units_by_path_.emplace(unit_object_path(unit), unit);
  return Watch(weak_from_this(), id);
}

const UnitState* SystemdManager::cached(const std::string& unit) const {
  auto it = cache_.find(unit);
  return it != cache_.end() && it->second.known ? &it->second : nullptr;
}

void SystemdManager::update_cache(const std::string& path, sd_bus_message* properties) {
  auto known = units_by_path_.find(path);
  if (known == units_by_path_.end()) return;
  const std::string& unit = known->second;
  UnitState& state = cache_[unit];
  if (int r = read_properties(properties, state); r < 0)
    log(LogLevel::Warning, {{"UNIT", unit}}, "malformed properties of {} from systemd, ignoring",
        unit);
}

// Listeners may drop their watch (or others') while being told: walk a snapshot of ids.
void SystemdManager::notify(const std::string& unit, UnitEventKind kind) {
  std::vector<std::uint64_t> ids;
  for (const auto& [id, w] : watchers_)
    if (w.unit == unit) ids.push_back(id);
  for (auto id : ids) {
    auto it = watchers_.find(id);
    auto state = cache_.find(unit);
    if (it == watchers_.end() || state == cache_.end()) continue;
    UnitState copy = state->second;
    auto listener = it->second.listener;
    listener(kind, copy);
  }
}

int SystemdManager::on_properties_changed(sd_bus_message* m, void* userdata,
                                          sd_bus_error*) noexcept {
  auto* self = static_cast<SystemdManager*>(userdata);
  const char* path = sd_bus_message_get_path(m);
  const char* interface = nullptr;
  if (!path || sd_bus_message_read(m, "s", &interface) < 0) return 0;
  auto known = self->units_by_path_.find(path);
  if (known == self->units_by_path_.end()) return 0;  // a unit nobody here watches
  std::string unit = known->second;
  self->update_cache(path, m);
  // systemd sends the type's interface (Service: Result, MainPID) first, then Unit with
  // ActiveState; "clients may rely on this order" (src/core/dbus-unit.c). So by the time the
  // Unit change is heard, the Result that explains it is in the cache.
  if (std::string_view(interface) == kUnitInterface) self->notify(unit, UnitEventKind::Changed);
  return 0;
}

int SystemdManager::on_disconnected_signal(sd_bus_message*, void* userdata,
                                           sd_bus_error*) noexcept {
  static_cast<SystemdManager*>(userdata)->on_disconnected();
  return 0;
}

}  // namespace clusterd
