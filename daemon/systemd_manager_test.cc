#include "systemd_manager.h"

#include <doctest/doctest.h>

namespace clusterd {

TEST_CASE("parse_systemd_bus picks the system bus, a user manager or a socket") {
  auto system = parse_systemd_bus("", "/run/user/0");
  REQUIRE(system);
  CHECK(system->system);
  CHECK(system->description == "the system bus");
  CHECK(*parse_systemd_bus("system", "") == *system);

  auto user = parse_systemd_bus("user", "/run/user/1000");
  REQUIRE(user);
  CHECK_FALSE(user->system);
  CHECK(user->address == "unix:path=/run/user/1000/systemd/private");
  CHECK(user->description == "/run/user/1000/systemd/private");

  auto path = parse_systemd_bus("/tmp/x/systemd/private", "");
  REQUIRE(path);
  CHECK(path->address == "unix:path=/tmp/x/systemd/private");

  auto address = parse_systemd_bus("unix:abstract=foo", "");
  REQUIRE(address);
  CHECK(address->address == "unix:abstract=foo");

  CHECK(parse_systemd_bus("user", "").error().message ==
        "CLUSTERD_SYSTEMD_BUS=user needs XDG_RUNTIME_DIR set to an absolute path");
  CHECK(parse_systemd_bus("user", "relative").error().message ==
        "CLUSTERD_SYSTEMD_BUS=user needs XDG_RUNTIME_DIR set to an absolute path");
  CHECK(parse_systemd_bus("session", "").error().message ==
        "CLUSTERD_SYSTEMD_BUS='session' is not 'system', 'user', an absolute socket path or a "
        "D-Bus address");
}

TEST_CASE("unit_object_path escapes like sd-bus") {
  // The same paths `busctl --user tree org.freedesktop.systemd1` shows.
  CHECK(unit_object_path("web.service") == "/org/freedesktop/systemd1/unit/web_2eservice");
  CHECK(unit_object_path("a-b@c:d.service") ==
        "/org/freedesktop/systemd1/unit/a_2db_40c_3ad_2eservice");
  CHECK(unit_object_path("1x.service") == "/org/freedesktop/systemd1/unit/_31x_2eservice");
  CHECK(unit_object_path("x1.service") == "/org/freedesktop/systemd1/unit/x1_2eservice");
  CHECK(unit_object_path("") == "/org/freedesktop/systemd1/unit/_");
}

TEST_CASE("UnitEventKind and JobKind have names") {
  for (int i = 0; i < kUnitEventKindCount; ++i) {
    CAPTURE(i);
    CHECK(std::string(to_string(static_cast<UnitEventKind>(i))) != "?");
  }
  CHECK(std::string(to_string(UnitEventKind::Resynced)) == "resynced");
  CHECK(std::string(to_string(static_cast<UnitEventKind>(kUnitEventKindCount))) == "?");
  CHECK(std::string(to_string(JobKind::Start)) == "start");
  CHECK(std::string(to_string(JobKind::Stop)) == "stop");
}

}  // namespace clusterd

// --- Against a fake manager ------------------------------------------------------------------
// The connection logic (calls, job tracking, signals, reconnects) runs against a small sd-bus
// peer on a UNIX socket that answers the Manager calls the way systemd does. The real systemd
// is exercised by tests/integration/test_service.py.

#include <sys/socket.h>
#include <sys/un.h>

#include <vector>

#include "loop_test_util.h"

namespace clusterd {
namespace {

using namespace std::chrono_literals;

/// A peer-to-peer D-Bus server that plays systemd for one unit at a time.
class FakeSystemd {
 public:
  FakeSystemd(sd_event* loop, std::string path) : loop_(loop), path_(std::move(path)) {
    listen_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    REQUIRE(bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listen_.get(), 8) == 0);
    sd_event_source* source = nullptr;
    REQUIRE(sd_event_add_io(loop, &source, listen_.get(), EPOLLIN, on_accept, this) >= 0);
    accept_.reset(source);
  }

  std::map<std::string, std::string> strings{
      {"LoadState", "loaded"}, {"ActiveState", "inactive"}, {"SubState", "dead"},
      {"Result", "success"}};
  std::uint32_t main_pid = 0;
  std::vector<std::string> calls;  ///< "Member arg" of every Manager call.
  std::string missing_unit;        ///< LoadUnit/StartUnit of this name fail with NoSuchUnit.
  bool refuse_subscribe = false;   ///< Subscribe fails with AccessDenied.
  unsigned jobs = 0;

  /// Ends job `n` (1-based) with `result`.
  void job_removed(unsigned n, const std::string& unit, const std::string& result) {
    std::string job = fmt::format("/org/freedesktop/systemd1/job/{}", n);
    for (auto& bus : servers_)
      sd_bus_emit_signal(bus.get(), "/org/freedesktop/systemd1",
                         "org.freedesktop.systemd1.Manager", "JobRemoved", "uoss", n, job.c_str(),
                         unit.c_str(), result.c_str());
  }

  /// Sends what systemd sends for a change: the Service interface, then the Unit interface.
  void properties_changed(const std::string& unit) {
    std::string path = unit_object_path(unit);
    for (auto& bus : servers_) {
      send_changed(bus.get(), path, "org.freedesktop.systemd1.Service", {"Result"});
      send_changed(bus.get(), path, "org.freedesktop.systemd1.Unit", {"ActiveState", "SubState"});
    }
  }

  /// Closes every connection, as a manager that re-executes does.
  void disconnect() { servers_.clear(); }
  std::size_t connections() const { return servers_.size(); }

 private:
  void send_changed(sd_bus* bus, const std::string& path, const char* interface,
                    std::vector<std::string> keys) {
    sd_bus_message* raw = nullptr;
    REQUIRE(sd_bus_message_new_signal(bus, &raw, path.c_str(), "org.freedesktop.DBus.Properties",
                                      "PropertiesChanged") >= 0);
    BusMessagePtr m(raw);
    sd_bus_message_append(raw, "s", interface);
    sd_bus_message_open_container(raw, 'a', "{sv}");
    for (const auto& key : keys)
      sd_bus_message_append(raw, "{sv}", key.c_str(), "s", strings[key].c_str());
    if (std::string_view(interface) == "org.freedesktop.systemd1.Service")
      sd_bus_message_append(raw, "{sv}", "MainPID", "u", main_pid);
    sd_bus_message_close_container(raw);
    sd_bus_message_append(raw, "as", 0);
    REQUIRE(sd_bus_send(bus, raw, nullptr) >= 0);
  }

  static int on_accept(sd_event_source*, int fd, uint32_t, void* userdata) noexcept {
    auto* self = static_cast<FakeSystemd*>(userdata);
    int conn = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) return 0;
    sd_bus* raw = nullptr;
    sd_id128_t id;
    sd_id128_randomize(&id);
    sd_bus_new(&raw);
    BusPtr bus(raw);
    sd_bus_set_fd(raw, conn, conn);
    sd_bus_set_server(raw, 1, id);
    sd_bus_start(raw);
    sd_bus_attach_event(raw, self->loop_, 0);
    sd_bus_add_object(raw, nullptr, "/org/freedesktop/systemd1", on_manager, self);
    sd_bus_add_fallback(raw, nullptr, "/org/freedesktop/systemd1/unit", on_unit, self);
    self->servers_.push_back(std::move(bus));
    return 0;
  }

  static int on_manager(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
    auto* self = static_cast<FakeSystemd*>(userdata);
    std::string member = sd_bus_message_get_member(m);
    const char* unit = "";
    if (member != "Subscribe") sd_bus_message_read(m, "s", &unit);
    self->calls.push_back(member + (member == "Subscribe" ? "" : " " + std::string(unit)));
    if (member == "Subscribe" && self->refuse_subscribe)
      return sd_bus_reply_method_errorf(m, "org.freedesktop.DBus.Error.AccessDenied", "go away");
    if (!self->missing_unit.empty() && unit == self->missing_unit)
      return sd_bus_reply_method_errorf(m, "org.freedesktop.systemd1.NoSuchUnit",
                                        "Unit %s not found.", unit);
    if (member == "LoadUnit")
      return sd_bus_reply_method_return(m, "o", unit_object_path(unit).c_str());
    if (member == "StartUnit" || member == "StopUnit") {
      std::string job = fmt::format("/org/freedesktop/systemd1/job/{}", ++self->jobs);
      return sd_bus_reply_method_return(m, "o", job.c_str());
    }
    return sd_bus_reply_method_return(m, "");
  }

  static int on_unit(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
    auto* self = static_cast<FakeSystemd*>(userdata);
    if (std::string_view(sd_bus_message_get_member(m)) != "GetAll") return 0;
    sd_bus_message* raw = nullptr;
    sd_bus_message_new_method_return(m, &raw);
    BusMessagePtr reply(raw);
    sd_bus_message_open_container(raw, 'a', "{sv}");
    for (const auto& [key, value] : self->strings)
      sd_bus_message_append(raw, "{sv}", key.c_str(), "s", value.c_str());
    sd_bus_message_append(raw, "{sv}", "MainPID", "u", self->main_pid);
    sd_bus_message_append(raw, "{sv}", "Unrelated", "as", 2, "x", "y");  // skipped
    sd_bus_message_append(raw, "{sv}", "TimeoutStartUSec", "t", std::uint64_t{90'000'000});
    sd_bus_message_close_container(raw);
    return sd_bus_send(nullptr, raw, nullptr);
  }

  sd_event* loop_;
  std::string path_;
  Fd listen_;
  EventSourcePtr accept_;
  std::vector<BusPtr> servers_;
};

struct Fixture {
  testing::TestLoop loop;
  testing::TempDir dir;
  FakeSystemd fake{loop.get(), dir.path() + "/private"};
  std::shared_ptr<SystemdManager> manager = SystemdManager::create(
      loop.get(), *parse_systemd_bus(dir.path() + "/private", ""));
};

}  // namespace

TEST_CASE("a job is followed to its JobRemoved") {
  Fixture f;
  std::optional<Result<std::string>> result;
  auto ticket = f.manager->run_job(JobKind::Start, "web.service", 5s,
                                   [&](Result<std::string> r) { result = std::move(r); });
  REQUIRE(f.loop.run_until([&] { return f.fake.jobs == 1; }));
  f.fake.job_removed(7, "other.service", "failed");  // another job: not ours
  f.loop.run_for(20ms);
  CHECK_FALSE(result);
  f.fake.job_removed(1, "web.service", "done");
  REQUIRE(f.loop.run_until([&] { return result.has_value(); }));
  CHECK(**result == "done");
  CHECK(f.fake.calls == std::vector<std::string>{"Subscribe", "StartUnit web.service"});
  CHECK(f.manager->connected());
}

TEST_CASE("systemd's errors come back with their errno and message") {
  Fixture f;
  f.fake.missing_unit = "nope.service";
  std::optional<Result<void>> result;
  auto ticket = f.manager->load_unit("nope.service", 5s, [&](Result<void> r) { result = r; });
  REQUIRE(f.loop.run_until([&] { return result.has_value(); }));
  REQUIRE_FALSE(*result);
  CHECK(result->error().errno_value == ENOENT);
  CHECK(result->error().message == "Unit nope.service not found.");
}

TEST_CASE("get_state reads the properties and skips the rest") {
  Fixture f;
  f.fake.strings["ActiveState"] = "active";
  f.fake.main_pid = 4242;
  std::optional<Result<UnitState>> state;
  auto ticket = f.manager->get_state("web.service", 5s, [&](Result<UnitState> s) { state = s; });
  REQUIRE(f.loop.run_until([&] { return state.has_value(); }));
  REQUIRE(*state);
  CHECK((*state)->active_state == "active");
  CHECK((*state)->main_pid == 4242);
  CHECK((*state)->timeout_start_usec == std::uint64_t{90'000'000});
  CHECK((*state)->known);
}

TEST_CASE("a dropped ticket's answer is never delivered") {
  Fixture f;
  bool answered = false;
  {
    auto ticket = f.manager->load_unit("web.service", 5s, [&](Result<void>) { answered = true; });
  }
  REQUIRE(f.loop.run_until([&] { return f.fake.calls.size() == 2; }));
  f.loop.run_for(20ms);
  CHECK_FALSE(answered);
}

TEST_CASE("watchers hear a change once, with the Result sent before it") {
  Fixture f;
  std::vector<std::pair<UnitEventKind, UnitState>> heard;
  auto watch = f.manager->watch("web.service", [&](UnitEventKind kind, const UnitState& s) {
    heard.emplace_back(kind, s);
  });
  std::optional<Result<void>> loaded;  // connects and subscribes
  auto ticket = f.manager->load_unit("web.service", 5s, [&](Result<void> r) { loaded = r; });
  REQUIRE(f.loop.run_until([&] { return loaded.has_value(); }));
  f.fake.strings["ActiveState"] = "failed";
  f.fake.strings["SubState"] = "failed";
  f.fake.strings["Result"] = "signal";
  f.fake.properties_changed("web.service");
  f.fake.properties_changed("other.service");  // not watched
  REQUIRE(f.loop.run_until([&] { return !heard.empty(); }));
  f.loop.run_for(20ms);
  REQUIRE(heard.size() == 1);
  CHECK(heard[0].first == UnitEventKind::Changed);
  CHECK(heard[0].second.active_state == "failed");
  CHECK(heard[0].second.result == "signal");
  REQUIRE(f.manager->cached("web.service"));
  CHECK(f.manager->cached("web.service")->sub_state == "failed");
  CHECK_FALSE(f.manager->cached("other.service"));
}

TEST_CASE("a lost connection fails jobs in flight, and the manager reconnects and resyncs") {
  Fixture f;
  std::vector<UnitEventKind> heard;
  auto watch = f.manager->watch("web.service",
                                [&](UnitEventKind kind, const UnitState&) { heard.push_back(kind); });
  std::optional<Result<std::string>> job;
  auto ticket = f.manager->run_job(JobKind::Stop, "web.service", 5s,
                                   [&](Result<std::string> r) { job = std::move(r); });
  REQUIRE(f.loop.run_until([&] { return f.fake.jobs == 1; }));
  // The fake answered StopUnit before closing: the answer arrives first, then the end of the
  // stream, so the job is what is awaited when the connection drops.
  f.fake.strings["ActiveState"] = "active";
  f.fake.disconnect();
  REQUIRE(f.loop.run_until([&] { return job.has_value(); }));
  REQUIRE_FALSE(*job);
  CHECK(job->error().message == fmt::format("the connection to systemd at {}/private was lost",
                                            f.dir.path()));
  REQUIRE(f.loop.run_until([&] { return heard.size() >= 2; }));
  CHECK(heard == std::vector<UnitEventKind>{UnitEventKind::Lost, UnitEventKind::Resynced});
  CHECK(f.manager->connection_count() == 2);
  CHECK(f.manager->connected());
  CHECK(f.manager->cached("web.service")->active_state == "active");
}

TEST_CASE("a refused Subscribe fails the calls queued behind it") {
  Fixture f;
  f.fake.refuse_subscribe = true;
  std::optional<Result<std::string>> job;
  auto ticket = f.manager->run_job(JobKind::Start, "web.service", 5s,
                                   [&](Result<std::string> r) { job = std::move(r); });
  REQUIRE(f.loop.run_until([&] { return job.has_value(); }));
  REQUIRE_FALSE(*job);
  // The connection is closed on the refusal; the job awaited on it fails with the reason.
  CHECK(job->error().message == "Subscribe failed: go away");
  CHECK_FALSE(f.manager->connected());
}

TEST_CASE("a manager that cannot be reached fails the call from the loop") {
  testing::TestLoop loop;
  testing::TempDir dir;
  auto manager = SystemdManager::create(loop.get(), *parse_systemd_bus(dir.path() + "/none", ""));
  std::optional<Result<void>> result;
  auto ticket = manager->reset_failed("web.service", 5s, [&](Result<void> r) { result = r; });
  CHECK_FALSE(result);  // never inside the call
  REQUIRE(loop.run_until([&] { return result.has_value(); }));
  REQUIRE_FALSE(*result);
  CHECK(result->error().to_string() ==
        fmt::format("cannot connect to systemd at {}/none: No such file or directory", dir.path()));
}

}  // namespace clusterd
