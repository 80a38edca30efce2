#include "server.h"

#include <fmt/core.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace clusterd::ledger {
namespace {

/// Stop reading from a connection whose unsent replies exceed this (a client that pipelines
/// READs without reading the answers must not make the server grow without bound).
constexpr size_t kMaxPendingOutput = 1 << 20;
constexpr size_t kReadChunk = 64 * 1024;

Result<void> add_fd(int epoll, int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &ev) < 0) return fail_errno(errno, "epoll_ctl failed");
  return {};
}

std::string read_reply(const LedgerStore& store, const std::string& client_id) {
  std::string reply;
  for (uint64_t seq : store.seqs(client_id)) reply += fmt::format("{}\n", seq);
  return reply + "END\n";
}

}  // namespace

Result<void> Server::setup() {
  epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return fail_errno(errno, "cannot create an epoll instance");
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  signals_ = Fd(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signals_) return fail_errno(errno, "cannot create a signalfd");
  if (auto ok = add_fd(epoll_.get(), listener_.get(), EPOLLIN); !ok) return ok;
  return add_fd(epoll_.get(), signals_.get(), EPOLLIN);
}

Result<void> Server::run() {
  if (auto ok = setup(); !ok) return ok;
  epoll_event events[64];
  while (!stopping_) {
    int n = ::epoll_wait(epoll_.get(), events, 64, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(errno, "epoll_wait failed");
    for (int i = 0; i < n; ++i) {
      handle_event(events[i].data.fd, events[i].events);
    }
    if (auto ok = finish_iteration(); !ok) return ok;
  }
  return {};
}

void Server::handle_event(int fd, uint32_t events) {
  if (fd == listener_.get()) {
    accept_all();
  } else if (fd == signals_.get()) {
    signalfd_siginfo info{};
    if (::read(fd, &info, sizeof info) == sizeof info) {
      fmt::print(stderr, "ledgerd: signal {} received, stopping\n", info.ssi_signo);
      stopping_ = true;
    }
  } else if (auto it = connections_.find(fd); it != connections_.end()) {
    Connection& connection = *it->second;
    if (events & EPOLLIN) read_from(connection);
    if (events & (EPOLLERR | EPOLLHUP)) connection.read_closed = true;
    touched_.push_back(fd);
  }
}

void Server::accept_all() {
  for (;;) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // EAGAIN: drained. EMFILE and friends: leave the rest in the backlog for later.
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        fmt::print(stderr, "ledgerd: cannot accept a connection, ignoring: {}\n",
                   std::strerror(errno));
      }
      if (errno == ECONNABORTED || errno == EINTR) continue;
      return;
    }
    auto connection = std::make_unique<Connection>();
    connection->fd = Fd(fd);
    connection->events = EPOLLIN;
    if (!add_fd(epoll_.get(), fd, EPOLLIN)) continue;  // the Fd closes it
    connections_[fd] = std::move(connection);
  }
}

void Server::read_from(Connection& connection) {
  if (connection.read_closed) return;
  char chunk[kReadChunk];
  ssize_t n = ::recv(connection.fd.get(), chunk, sizeof chunk, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n < 0) {
    connection.failed = true;
    return;
  }
  if (n == 0) connection.read_closed = true;
  connection.in.append(chunk, static_cast<size_t>(n));
  process_lines(connection);
}

void Server::process_lines(Connection& connection) {
  size_t start = 0;
  for (size_t newline; (newline = connection.in.find('\n', start)) != std::string::npos;
       start = newline + 1) {
    connection.out += handle_line(std::string_view(connection.in).substr(start, newline - start));
  }
  connection.in.erase(0, start);
  if (connection.in.size() > kMaxLine) {
    connection.out += format_error(fmt::format("line longer than {} bytes; closing", kMaxLine));
    connection.in.clear();
    connection.read_closed = true;
  }
}

std::string Server::handle_line(std::string_view line) {
  auto request = parse_request(line);
  if (!request) return format_error(request.error().to_string());
  if (auto* append = std::get_if<AppendRequest>(&*request)) {
    auto outcome = store_.append(append->record);
    if (!outcome) return format_error(outcome.error().to_string());
    return format_append_reply({append->record.seq, *outcome == LedgerStore::Outcome::Duplicate});
  }
  if (auto* read = std::get_if<ReadRequest>(&*request)) return read_reply(store_, read->client_id);
  if (std::holds_alternative<PingRequest>(*request)) return "PONG\n";
  return fmt::format("{}\n", store_.count());
}

Result<void> Server::finish_iteration() {
  // Group commit: everything appended in this iteration becomes durable before any reply.
  if (auto ok = store_.sync(); !ok) return ok;
  if (store_.broken()) return fail("the log {} can no longer be trusted", store_.path());
  std::sort(touched_.begin(), touched_.end());
  touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
  for (int fd : touched_) settle(fd);
  touched_.clear();
  return {};
}

void Server::settle(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  Connection& connection = *it->second;
  if (!connection.failed) write_to(connection);
  bool done = connection.failed || (connection.read_closed && connection.out.empty());
  if (done) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    connections_.erase(it);
    return;
  }
  uint32_t wanted = 0;
  if (connection.out.size() < kMaxPendingOutput && !connection.read_closed) wanted |= EPOLLIN;
  if (!connection.out.empty()) wanted |= EPOLLOUT;
  if (wanted == connection.events) return;
  epoll_event ev{};
  ev.events = wanted;
  ev.data.fd = fd;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev);
  connection.events = wanted;
}

void Server::write_to(Connection& connection) {
  while (!connection.out.empty()) {
    ssize_t n =
        ::send(connection.fd.get(), connection.out.data(), connection.out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) {
      connection.failed = true;
      return;
    }
    connection.out.erase(0, static_cast<size_t>(n));
  }
}

}  // namespace clusterd::ledger
