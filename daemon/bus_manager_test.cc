// The API over a real socket and real sd-bus connections on a real sd-event loop; only the
// daemon behind it is a fake.
#include "bus_manager.h"

#include <doctest/doctest.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>

namespace clusterd {
namespace {

class FakeBackend : public ApiBackend {
 public:
  FakeBackend() {
    auto c = std::make_shared<Config>();
    c->source = "/etc/clusterd/test.yaml";
    c->cluster.name = "lab";
    c->nodes = {{"node1", 1, 1, {}, {}}, {"node2", 2, 1, {}, {}}};
    GroupConfig g;
    g.name = "web";
    ResourceConfig r;
    r.name = "app";
    r.type = "process";
    g.resources.push_back(r);
    c->groups.push_back(g);
    config_ = c;
  }
  void set_admin_group(const std::string& group) {
    auto c = std::make_shared<Config>(*config_);
    c->cluster.admin_group = group;
    config_ = c;
  }
  ConfigPtr config() const override { return config_; }
  const std::string& node_name() const override { return node_; }
  std::vector<GroupStatus> group_status() const override {
    GroupStatus g;
    g.name = "web";
    g.state = online_ ? GroupState::Online : GroupState::Offline;
    g.owner = online_ ? "node1" : "";
    ResourceStatus r;
    r.name = "app";
    r.type = "process";
    r.state = online_ ? ResourceState::Online : ResourceState::Offline;
    r.main_pid = online_ ? 1234 : 0;
    g.resources.push_back(r);
    return {g};
  }
  const EventHistory& history() const override { return history_; }
  bool stopping() const override { return false; }
  Result<void> online_group(const std::string& group, const std::string& reason) override {
    calls.push_back("online " + group + ": " + reason);
    online_ = true;
    return {};
  }
  Result<void> offline_group(const std::string&, const std::string&) override {
    return fail("the engine refused");
  }
  Result<void> online_resource(const std::string& group, const std::string& resource,
                               const std::string&) override {
    calls.push_back("online " + group + "/" + resource);
    return {};
  }
  Result<void> offline_resource(const std::string&, const std::string&,
                                const std::string&) override {
    return {};
  }
  Result<ApplyResult> apply(std::string_view text, const std::string& file,
                            const std::string&) override {
    ApplyResult result;
    if (text.find("bad") != std::string_view::npos) {
      result.diagnostics.push_back({file, {3, 7}, "unknown key \"bad\""});
    } else {
      result.applied = true;
      result.changes = {"group db: added (0 resources)"};
    }
    return result;
  }
  Result<ApplyResult> reload(const std::string&) override { return ApplyResult{true, {}, {}}; }

  EventHistory history_;
  std::vector<std::string> calls;

 private:
  ConfigPtr config_;
  std::string node_ = "node1";
  bool online_ = false;
};

/// A loop with the server on a temporary socket and one client connection attached to it.
struct ApiFixture {
  ApiFixture() {
    sd_event* raw = nullptr;
    REQUIRE(sd_event_new(&raw) >= 0);
    loop.reset(raw);
    dir =
        std::filesystem::temp_directory_path() / ("clusterd-api-test-" + std::to_string(getpid()));
    socket_path = (dir / "bus").string();
    auto s = BusServer::listen(loop.get(), socket_path,
                               [this](sd_bus* bus) { return manager.add_to(bus); });
    REQUIRE(s);
    server = std::move(*s);
    client = connect();
  }
  ~ApiFixture() {
    client.reset();
    server.reset();
    std::filesystem::remove_all(dir);
  }

  BusPtr connect() {
    sd_bus* raw = nullptr;
    REQUIRE(sd_bus_new(&raw) >= 0);
    BusPtr bus(raw);
    REQUIRE(sd_bus_set_address(raw, ("unix:path=" + socket_path).c_str()) >= 0);
    REQUIRE(sd_bus_start(raw) >= 0);
    REQUIRE(sd_bus_attach_event(raw, loop.get(), 0) >= 0);
    return bus;
  }

  /// Runs the loop until `done` holds; false after 5 s.
  bool run_until(const std::function<bool()>& done) {
    MonoTime deadline = mono_now() + std::chrono::seconds(5);
    while (!done()) {
      if (mono_now() > deadline) return false;
      sd_event_run(loop.get(), 100000);
    }
    return true;
  }

  /// Calls `method` with arguments added by `append`; the reply (or error reply).
  BusMessagePtr call(const char* method,
                     const std::function<void(sd_bus_message*)>& append = nullptr) {
    sd_bus_message* m = nullptr;
    REQUIRE(sd_bus_message_new_method_call(client.get(), &m, kBusServiceName, kBusObjectPath,
                                           kBusInterface, method) >= 0);
    BusMessagePtr request(m);
    if (append) append(m);
    BusMessagePtr reply;
    auto on_reply = [](sd_bus_message* r, void* userdata, sd_bus_error*) noexcept -> int {
      static_cast<BusMessagePtr*>(userdata)->reset(sd_bus_message_ref(r));
      return 1;
    };
    REQUIRE(sd_bus_call_async(client.get(), nullptr, m, on_reply, &reply, 5000000) >= 0);
    REQUIRE(run_until([&] { return reply != nullptr; }));
    return reply;
  }

  static std::string error_name(sd_bus_message* reply) {
    const sd_bus_error* e = sd_bus_message_get_error(reply);
    return e ? e->name : "";
  }

  EventPtr loop;
  std::filesystem::path dir;
  std::string socket_path;
  FakeBackend backend;
  BusManager manager{backend};
  std::unique_ptr<BusServer> server;
  BusPtr client;
};

}  // namespace

TEST_CASE("api: GetStatus answers the backend's status") {
  ApiFixture f;
  auto reply = f.call("GetStatus");
  REQUIRE(ApiFixture::error_name(reply.get()) == "");
  StatusView status;
  REQUIRE(bus_read(reply.get(), &status) >= 0);
  CHECK(status == status_view(f.backend));
  CHECK(status.cluster == "lab");
  REQUIRE(status.nodes.size() == 2);
  CHECK(status.nodes[0].state == "up");
  CHECK(status.nodes[1].state == "unknown");
  REQUIRE(status.groups.size() == 1);
  CHECK(status.groups[0].resources[0].name == "app");
}

TEST_CASE("api: OnlineGroup reaches the backend with the caller in the reason") {
  ApiFixture f;
  auto reply =
      f.call("OnlineGroup", [](sd_bus_message* m) { sd_bus_message_append(m, "s", "web"); });
  CHECK(ApiFixture::error_name(reply.get()) == "");
  REQUIRE(f.backend.calls.size() == 1);
  CHECK(f.backend.calls[0] == "online web: OnlineGroup requested over D-Bus by uid 0");
  auto group = f.call("GetGroup", [](sd_bus_message* m) { sd_bus_message_append(m, "s", "web"); });
  GroupView view;
  REQUIRE(bus_read(group.get(), &view) >= 0);
  CHECK(view.state == to_string(GroupState::Online));
  CHECK(view.resources[0].pid == 1234);
}

TEST_CASE("api: named errors for unknown names and refused actions") {
  ApiFixture f;
  auto group = [](const char* g) {
    return [g](sd_bus_message* m) { sd_bus_message_append(m, "s", g); };
  };
  CHECK(ApiFixture::error_name(f.call("OnlineGroup", group("nope")).get()) == kErrorNoSuchGroup);
  CHECK(ApiFixture::error_name(f.call("GetGroup", group("nope")).get()) == kErrorNoSuchGroup);
  auto bad_resource = f.call(
      "OnlineResource", [](sd_bus_message* m) { sd_bus_message_append(m, "ss", "web", "nope"); });
  CHECK(ApiFixture::error_name(bad_resource.get()) == kErrorNoSuchResource);
  CHECK(std::string(sd_bus_message_get_error(bad_resource.get())->message) ==
        "group \"web\" has no resource called \"nope\"");
  auto refused = f.call("OfflineGroup", group("web"));
  CHECK(ApiFixture::error_name(refused.get()) == kErrorFailed);
  CHECK(std::string(sd_bus_message_get_error(refused.get())->message) == "the engine refused");
  CHECK(f.backend.calls.empty());
}

TEST_CASE("api: Apply answers diagnostics or changes") {
  ApiFixture f;
  auto bad = f.call("Apply",
                    [](sd_bus_message* m) { sd_bus_message_append(m, "ss", "bad: 1", "x.yaml"); });
  ApplyResult result;
  REQUIRE(bus_read(bad.get(), &result) >= 0);
  CHECK_FALSE(result.applied);
  REQUIRE(result.diagnostics.size() == 1);
  CHECK(result.diagnostics[0].to_string() == "x.yaml:3:7: unknown key \"bad\"");
  auto good =
      f.call("Apply", [](sd_bus_message* m) { sd_bus_message_append(m, "ss", "ok", "y.yaml"); });
  REQUIRE(bus_read(good.get(), &result) >= 0);
  CHECK(result.applied);
  CHECK(result.changes == std::vector<std::string>{"group db: added (0 resources)"});
}

TEST_CASE("api: GetEvents returns events after a sequence number") {
  ApiFixture f;
  for (const char* reason : {"one", "two", "three"}) {
    Event e;
    e.kind = "daemon";
    e.reason = reason;
    f.backend.history_.add(e);
  }
  auto reply =
      f.call("GetEvents", [](sd_bus_message* m) { sd_bus_message_append(m, "tu", 1ull, 0u); });
  std::vector<Event> events;
  REQUIRE(bus_read(reply.get(), &events) >= 0);
  REQUIRE(events.size() == 2);
  CHECK(events[0].seq == 2);
  CHECK(events[1].reason == "three");
}

TEST_CASE("api: busctl-style Hello is answered") {
  ApiFixture f;
  sd_bus_message* m = nullptr;
  REQUIRE(sd_bus_message_new_method_call(f.client.get(), &m, "org.freedesktop.DBus",
                                         "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                         "Hello") >= 0);
  BusMessagePtr request(m);
  BusMessagePtr reply;
  auto on_reply = [](sd_bus_message* r, void* userdata, sd_bus_error*) noexcept -> int {
    static_cast<BusMessagePtr*>(userdata)->reset(sd_bus_message_ref(r));
    return 1;
  };
  REQUIRE(sd_bus_call_async(f.client.get(), nullptr, m, on_reply, &reply, 5000000) >= 0);
  REQUIRE(f.run_until([&] { return reply != nullptr; }));
  const char* name = nullptr;
  REQUIRE(sd_bus_message_read(reply.get(), "s", &name) >= 0);
  CHECK(std::string(name).starts_with(":1."));
}

TEST_CASE("api: Changed reaches every peer; closed peers are dropped") {
  ApiFixture f;
  BusPtr second = f.connect();
  int signals = 0;
  auto on_changed = [](sd_bus_message*, void* userdata, sd_bus_error*) noexcept -> int {
    ++*static_cast<int*>(userdata);
    return 0;
  };
  for (sd_bus* bus : {f.client.get(), second.get()})
    REQUIRE(sd_bus_match_signal(bus, nullptr, nullptr, kBusObjectPath, kBusInterface, "Changed",
                                on_changed, &signals) >= 0);
  REQUIRE(f.run_until([&] { return f.server->peer_count() == 2; }));
  // A peer gets signals once its connection is up: one round trip makes sure (clusterctl
  // always calls a method before it waits for Changed).
  f.call("GetStatus");
  f.server->broadcast([&](sd_bus* bus) { return f.manager.emit_changed(bus); });
  CHECK(f.run_until([&] { return signals == 2; }));
  second.reset();
  CHECK(f.run_until([&] { return f.server->peer_count() == 1; }));
}

TEST_CASE("api: a live socket is not taken over; a stale one is replaced") {
  ApiFixture f;
  auto again = BusServer::listen(f.loop.get(), f.socket_path, [](sd_bus*) { return 0; });
  REQUIRE_FALSE(again);
  CHECK(again.error().message == "another server already listens on " + f.socket_path);
  // A socket file nobody listens on any more (a crashed daemon's).
  std::string stale = (f.dir / "stale").string();
  {
    Fd fd(socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    stale.copy(addr.sun_path, stale.size());
    REQUIRE(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  }
  auto replaced = BusServer::listen(f.loop.get(), stale, [](sd_bus*) { return 0; });
  CHECK(replaced);
  CHECK((std::filesystem::status(stale).permissions() & std::filesystem::perms::others_write) !=
        std::filesystem::perms::none);
}

namespace {

/// In a child process as nobody/nogroup: calls OnlineGroup; exits 0 when refused with
/// AccessDenied, 1 when allowed, 2 on any other outcome.
[[noreturn]] void call_as_nobody(const std::string& socket_path) {
  if (setgroups(0, nullptr) < 0 || setresgid(65534, 65534, 65534) < 0 ||
      setresuid(65534, 65534, 65534) < 0)
    _exit(3);
  sd_bus* bus = nullptr;
  if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, ("unix:path=" + socket_path).c_str()) < 0 ||
      sd_bus_start(bus) < 0)
    _exit(4);
  sd_bus_error error = SD_BUS_ERROR_NULL;
  int r = sd_bus_call_method(bus, kBusServiceName, kBusObjectPath, kBusInterface, "OnlineGroup",
                             &error, nullptr, "s", "web");
  if (r >= 0) _exit(1);
  _exit(sd_bus_error_has_name(&error, kErrorAccessDenied) ? 0 : 2);
}

/// Runs the child while the loop serves it; its exit status.
int run_nobody_client(ApiFixture& f) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) call_as_nobody(f.socket_path);
  int status = -1;
  bool exited = f.run_until([&] { return waitpid(pid, &status, WNOHANG) == pid; });
  if (!exited) kill(pid, SIGKILL);
  REQUIRE(exited);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("api: mutating calls need root or the admin group") {
  ApiFixture f;
  std::filesystem::permissions(f.dir, std::filesystem::perms::all);  // let nobody reach it
  CHECK(run_nobody_client(f) == 0);
  CHECK(f.backend.calls.empty());
  f.backend.set_admin_group("nogroup");
  CHECK(run_nobody_client(f) == 1);
  CHECK(f.backend.calls.size() == 1);
}

}  // namespace clusterd
