// The daemon's one connection to a systemd manager, shared by every `service` resource (like
// NetlinkWatcher for ip). Everything is asynchronous on the event loop: method calls use
// sd_bus_call_async with a deadline, unit state arrives by PropertiesChanged signals after one
// Subscribe, jobs end with JobRemoved. When the connection drops (the manager re-executes, or
// is gone), every call and job in flight fails with a reason, watchers hear Lost, and the
// manager reconnects by itself; after a reconnect each watched unit's state is read afresh.
//
// The manager is the system manager over the system bus by default, or a manager's private
// socket (`systemd --user` in the lab: $XDG_RUNTIME_DIR/systemd/private, peer-to-peer, no
// Hello), chosen by $CLUSTERD_SYSTEMD_BUS (see parse_systemd_bus).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "clock.h"
#include "engine_loop.h"
#include "error.h"
#include "handle.h"

namespace clusterd {

/// The environment variable that selects the manager.
inline constexpr const char* kSystemdBusVariable = "CLUSTERD_SYSTEMD_BUS";

/// Where the systemd manager is reached.
struct SystemdBusAddress {
  bool system = true;        ///< The system bus (through dbus-daemon, with Hello).
  std::string address;       ///< Otherwise: a D-Bus address, "unix:path=/run/.../private".
  std::string description;   ///< For messages: "the system bus" or the socket path.
  friend bool operator==(const SystemdBusAddress&, const SystemdBusAddress&) = default;
};

/// Reads a $CLUSTERD_SYSTEMD_BUS value: empty or "system" is the system bus; "user" is
/// XDG_RUNTIME_DIR/systemd/private; an absolute path is a manager's private socket; a value
/// with "=" (e.g. "unix:path=/x") is a D-Bus address taken as is.
Result<SystemdBusAddress> parse_systemd_bus(std::string_view value,
                                            std::string_view xdg_runtime_dir);

/// The D-Bus object path of a unit: /org/freedesktop/systemd1/unit/ plus the name with every
/// byte other than [A-Za-z0-9] as _XX (sd-bus's label escaping; a leading digit too).
std::string unit_object_path(std::string_view unit);

/// What systemd says about a unit; the properties a service resource reads.
struct UnitState {
  std::string id;
  std::string load_state;    ///< loaded, not-found, bad-setting, error, masked.
  std::string load_error;    ///< LoadError's message; empty when loaded.
  std::string active_state;  ///< active, reloading, inactive, failed, activating, deactivating.
  std::string sub_state;     ///< running, dead, failed, auto-restart, exited, ...
  std::string result;        ///< Service Result: success, exit-code, signal, timeout, ...
  pid_t main_pid = 0;        ///< MainPID: 0 when no main process runs.
  pid_t exec_main_pid = 0;   ///< ExecMainPID: the last main process, even once it ended.
  int exec_main_code = 0;    ///< CLD_EXITED (1), CLD_KILLED (2), CLD_DUMPED (3); 0: none.
  int exec_main_status = 0;  ///< Exit status or signal number.
  std::optional<std::uint64_t> timeout_start_usec;  ///< TimeoutStartUSec (UINT64_MAX: infinity).
  std::optional<std::uint64_t> timeout_stop_usec;   ///< TimeoutStopUSec.
  bool known = false;        ///< Filled from systemd at least once.
};

/// What a unit watcher hears.
enum class UnitEventKind {
  Changed,      ///< New state from a PropertiesChanged signal.
  Lost,         ///< The connection to the manager dropped; the cached state may be stale.
  Resynced,     ///< Reconnected: the state was read afresh.
};
inline constexpr int kUnitEventKindCount = 3;
/// "changed", "lost", "resynced".
const char* to_string(UnitEventKind kind);

/// A systemd job a resource waits for.
enum class JobKind { Start, Stop };
/// "start", "stop".
const char* to_string(JobKind kind);

/// One connection to one systemd manager; call only from the event loop.
class SystemdManager : public std::enable_shared_from_this<SystemdManager> {
 public:
  template <typename T>
  using Reply = std::function<void(Result<T>)>;
  using UnitListener = std::function<void(UnitEventKind, const UnitState&)>;

  /// Keeps a call (or a job) outstanding; destroying it drops the reply unheard.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&&) noexcept = default;
    Ticket& operator=(Ticket&& other) noexcept;
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket() { reset(); }
    /// Drops the reply now.
    void reset();

   private:
    friend class SystemdManager;
    Ticket(std::weak_ptr<SystemdManager> manager, std::uint64_t id)
        : manager_(std::move(manager)), id_(id) {}
    std::weak_ptr<SystemdManager> manager_;
    std::uint64_t id_ = 0;
  };

  /// Keeps a unit watched; unregisters when destroyed.
  class Watch {
   public:
    Watch() = default;
    Watch(Watch&&) noexcept = default;
    Watch& operator=(Watch&& other) noexcept;
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;
    ~Watch() { reset(); }
    /// Unregisters now.
    void reset();
    /// True while registered.
    explicit operator bool() const { return id_ != 0; }

   private:
    friend class SystemdManager;
    Watch(std::weak_ptr<SystemdManager> manager, std::uint64_t id)
        : manager_(std::move(manager)), id_(id) {}
    std::weak_ptr<SystemdManager> manager_;
    std::uint64_t id_ = 0;
  };

  /// A manager at `address`; it connects on first use.
  static std::shared_ptr<SystemdManager> create(sd_event* loop, SystemdBusAddress address);
  /// The manager named by $CLUSTERD_SYSTEMD_BUS (and $XDG_RUNTIME_DIR for "user").
  static Result<std::shared_ptr<SystemdManager>> from_environment(sd_event* loop);
  ~SystemdManager();
  SystemdManager(const SystemdManager&) = delete;
  SystemdManager& operator=(const SystemdManager&) = delete;

  /// Where the manager is reached.
  const SystemdBusAddress& address() const { return address_; }
  /// True once Subscribe was answered on the current connection.
  bool connected() const { return connected_; }
  /// How many connections were opened so far (reconnects are the ones after the first).
  unsigned connection_count() const { return connection_count_; }

  /// LoadUnit: loads `unit` (a unit file that does not exist still loads, as not-found).
  [[nodiscard]] Ticket load_unit(const std::string& unit, Duration timeout, Reply<void> reply);
  /// Reads the unit's state (Properties.GetAll of the Unit and, for services, Service
  /// interfaces) and refreshes the watchers' cache with it.
  [[nodiscard]] Ticket get_state(const std::string& unit, Duration timeout,
                                 Reply<UnitState> reply);
  /// ResetFailedUnit: clears the failed state and the start rate limit.
  [[nodiscard]] Ticket reset_failed(const std::string& unit, Duration timeout, Reply<void> reply);
  /// StartUnit / StopUnit with mode "replace", then waits for JobRemoved: the reply is the
  /// job's result ("done", "failed", "timeout", "canceled", ...). The call's own answer must come
  /// within `timeout`; the job's end is bounded by the caller's action deadline.
  [[nodiscard]] Ticket run_job(JobKind kind, const std::string& unit, Duration timeout,
                               Reply<std::string> reply);
  /// KillUnit(unit, "all", signal) without waiting for the answer (an action's last resort).
  void kill_unit(const std::string& unit, int signal);

  /// Calls `listener` whenever the unit's state changes, the connection is lost or restored.
  [[nodiscard]] Watch watch(const std::string& unit, UnitListener listener);
  /// The last state seen of a watched unit, or nullptr when nothing was seen yet.
  const UnitState* cached(const std::string& unit) const;

 private:
  struct Pending;
  struct Watcher {
    std::string unit;
    UnitListener listener;
  };
  /// A call's answer: the reply message, or the error (exactly one is non-null).
  using ReplyHandler = std::function<void(sd_bus_message*, const Error*)>;

  SystemdManager(sd_event* loop, SystemdBusAddress address);
  Result<void> ensure_connected();
  Result<sd_bus*> open_bus();
  Result<void> add_matches();
  void on_subscribed();
  void on_disconnected();
  void schedule_drop(std::string why);
  void drop_connection(const std::string& why);
  void schedule_reconnect();
  void reconnect();
  void resync_watched();

  std::uint64_t call(const char* member, const std::string& path, const char* interface,
                     Duration timeout,
                     const std::function<int(sd_bus_message*)>& append, ReplyHandler handler);
  std::uint64_t fail_later(Error error, ReplyHandler handler);
  void forget(std::uint64_t id);
  void finish_job(const std::string& job, const std::string& result);
  void notify(const std::string& unit, UnitEventKind kind);
  void update_cache(const std::string& path, sd_bus_message* properties);
  Ticket ticket(std::uint64_t id) { return Ticket(weak_from_this(), id); }

  static int on_reply(sd_bus_message* m, void* userdata, sd_bus_error* error) noexcept;
  static int on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error* error) noexcept;
  static int on_properties_changed(sd_bus_message* m, void* userdata, sd_bus_error* e) noexcept;
  static int on_disconnected_signal(sd_bus_message* m, void* userdata, sd_bus_error* e) noexcept;

  sd_event* loop_;
  SystemdBusAddress address_;
  BusPtr bus_;
  BusSlotPtr job_removed_;
  BusSlotPtr properties_changed_;
  BusSlotPtr disconnected_;
  bool connected_ = false;
  unsigned connection_count_ = 0;
  std::uint64_t subscribe_id_ = 0;
  std::map<std::uint64_t, std::unique_ptr<Pending>> pending_;
  std::map<std::uint64_t, Watcher> watchers_;
  std::map<std::string, UnitState> cache_;  ///< By unit name, for watched units.
  std::map<std::string, std::string> units_by_path_;  ///< Object path -> unit, watched units.
  std::uint64_t next_id_ = 1;
  Timer reconnect_timer_;
  Duration reconnect_backoff_{0};
  Deferred deferred_;
};

}  // namespace clusterd
