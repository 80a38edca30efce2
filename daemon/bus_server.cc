#include "bus_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "log.h"

namespace clusterd {
namespace {

/// The address of `path`, or an error when it does not fit into sun_path.
Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return fail("the bus socket path \"{}\" is empty or longer than {} bytes", path,
                sizeof(addr.sun_path) - 1);
  path.copy(addr.sun_path, path.size());
  return addr;
}

/// True when a server accepts connections at `addr` (a live daemon, not a stale socket).
bool someone_listens(const sockaddr_un& addr) {
  Fd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return false;
  return connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
}

/// Creates the socket's directory (0755, so that anyone may reach the socket).
Result<void> make_socket_dir(const std::string& path) {
  auto dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) return {};
  std::error_code ec;
  bool created = std::filesystem::create_directories(dir, ec);
  if (ec) return fail_errno(ec.value(), "could not create the directory {}", dir.string());
  if (created && chmod(dir.c_str(), 0755) < 0)
    return fail_errno(errno, "could not make {} mode 0755", dir.string());
  return {};
}

/// Binds and listens at `path`, replacing a stale socket file.
Result<Fd> bind_socket(const std::string& path) {
  auto addr = unix_address(path);
  if (!addr) return std::unexpected(addr.error());
  if (auto dir = make_socket_dir(path); !dir) return std::unexpected(dir.error());
  if (someone_listens(*addr)) return fail("another server already listens on {}", path);
  if (unlink(path.c_str()) < 0 && errno != ENOENT)
    return fail_errno(errno, "could not remove the stale socket {}", path);
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return fail_errno(errno, "could not create a UNIX socket");
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) < 0)
    return fail_errno(errno, "could not bind the bus socket {}", path);
  // Anyone may connect and read; mutating calls are checked per call from peer credentials.
  if (chmod(path.c_str(), 0666) < 0) return fail_errno(errno, "could not make {} mode 0666", path);
  if (::listen(fd.get(), SOMAXCONN) < 0) return fail_errno(errno, "could not listen on {}", path);
  return fd;
}

/// busctl (and any client in bus mode) sends Hello first and fails unless it gets a name.
int on_hello(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
  auto number = reinterpret_cast<std::uintptr_t>(userdata);
  return sd_bus_reply_method_return(m, "s", fmt::format(":1.{}", number).c_str());
}

const sd_bus_vtable kHelloVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_NAMES("Hello", "", , "s", SD_BUS_PARAM(unique_name), on_hello,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END};

}  // namespace

Result<std::unique_ptr<BusServer>> BusServer::listen(sd_event* loop, const std::string& path,
                                                     PeerSetup setup) {
  auto fd = bind_socket(path);
  if (!fd) return std::unexpected(fd.error());
  std::unique_ptr<BusServer> server(new BusServer(loop, path, std::move(*fd), std::move(setup)));
  if (auto started = server->start_accepting(); !started) return std::unexpected(started.error());
  return server;
}

BusServer::BusServer(sd_event* loop, std::string path, Fd listen_fd, PeerSetup setup)
    : loop_(loop),
      path_(std::move(path)),
      listen_fd_(std::move(listen_fd)),
      setup_(std::move(setup)) {}

BusServer::~BusServer() {
  peers_.clear();
  unlink(path_.c_str());
}

Result<void> BusServer::start_accepting() {
  int r = sd_id128_randomize(&server_id_);
  if (r < 0) return fail_errno(r, "could not make a D-Bus server id");
  sd_event_source* source = nullptr;
  r = sd_event_add_io(loop_, &source, listen_fd_.get(), EPOLLIN, on_accept, this);
  if (r < 0) return fail_errno(r, "could not watch the bus socket");
  accept_source_.reset(source);
  sd_event_source_set_description(source, "bus-accept");
  r = sd_event_add_defer(loop_, &source, on_prune, this);
  if (r < 0) return fail_errno(r, "could not add the peer cleanup source");
  prune_source_.reset(source);
  sd_event_source_set_description(source, "bus-prune");
  sd_event_source_set_enabled(source, SD_EVENT_OFF);
  return {};
}

int BusServer::on_accept(sd_event_source*, int fd, uint32_t, void* userdata) noexcept {
  auto* self = static_cast<BusServer*>(userdata);
  Fd conn(accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!conn) {
    if (errno != EAGAIN && errno != EINTR)
      log(LogLevel::Warning, {}, "accepting a bus connection failed, ignoring: {}",
          std::strerror(errno));
    return 0;
  }
  if (auto added = self->add_peer(std::move(conn)); !added)
    log(LogLevel::Warning, {}, "{}, dropping the connection", added.error().to_string());
  return 0;
}

Result<void> BusServer::add_peer(Fd fd) {
  sd_bus* raw = nullptr;
  int r = sd_bus_new(&raw);
  if (r < 0) return fail_errno(r, "could not create a bus connection");
  PeerBusPtr bus(raw);
  if ((r = sd_bus_set_fd(raw, fd.get(), fd.get())) < 0)
    return fail_errno(r, "could not hand the connection to sd-bus");
  fd.release();  // the bus owns it now
  std::uint64_t number = next_peer_number_++;
  if ((r = sd_bus_set_server(raw, 1, server_id_)) < 0 ||
      (r = sd_bus_negotiate_creds(raw, 1, SD_BUS_CREDS_PID | SD_BUS_CREDS_EUID)) < 0 ||
      (r = sd_bus_add_object_vtable(raw, nullptr, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                    kHelloVtable, reinterpret_cast<void*>(number))) < 0 ||
      (r = sd_bus_match_signal(raw, nullptr, nullptr, "/org/freedesktop/DBus/Local",
                               "org.freedesktop.DBus.Local", "Disconnected", on_disconnect, this)) <
          0 ||
      (r = setup_(raw)) < 0 || (r = sd_bus_start(raw)) < 0 ||
      (r = sd_bus_attach_event(raw, loop_, SD_EVENT_PRIORITY_NORMAL)) < 0)
    return fail_errno(r, "could not set up bus connection {}", number);
  peers_.push_back({std::move(bus), number, false});
  log(LogLevel::Debug, {}, "bus connection {} accepted", number);
  return {};
}

int BusServer::on_disconnect(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
  static_cast<BusServer*>(userdata)->mark_dead(sd_bus_message_get_bus(m));
  return 0;
}

void BusServer::mark_dead(sd_bus* bus) {
  // The bus is inside its own dispatch here; it is freed later, from the defer source.
  for (auto& peer : peers_) {
    if (peer.bus.get() == bus) peer.dead = true;
  }
  sd_event_source_set_enabled(prune_source_.get(), SD_EVENT_ONESHOT);
}

int BusServer::on_prune(sd_event_source*, void* userdata) noexcept {
  static_cast<BusServer*>(userdata)->prune();
  return 0;
}

void BusServer::prune() {
  std::erase_if(peers_, [](const Peer& peer) {
    if (peer.dead) log(LogLevel::Debug, {}, "bus connection {} closed", peer.number);
    return peer.dead;
  });
}

void BusServer::broadcast(const std::function<int(sd_bus* bus)>& emit) {
  for (auto& peer : peers_) {
    if (peer.dead) continue;
    int r = emit(peer.bus.get());
    if (r < 0) {
      // ENOBUFS: the peer stopped reading and its queue is full; it would only grow.
      log(LogLevel::Warning, {}, "bus connection {} dropped: {}", peer.number, std::strerror(-r));
      peer.dead = true;
      sd_event_source_set_enabled(prune_source_.get(), SD_EVENT_ONESHOT);
    }
  }
}

std::size_t BusServer::peer_count() const {
  std::size_t n = 0;
  for (const auto& peer : peers_) n += peer.dead ? 0 : 1;
  return n;
}

}  // namespace clusterd
