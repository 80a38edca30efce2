#include "net.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78  // linux/in6.h; absent from older glibc headers
#endif

namespace clusterd::ledger {
namespace {

using AddrInfoPtr = std::unique_ptr<addrinfo, Free<freeaddrinfo>>;

Result<AddrInfoPtr> resolve(const Endpoint& endpoint, int flags) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags;
  addrinfo* result = nullptr;
  std::string port = std::to_string(endpoint.port);
  int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &result);
  if (rc == EAI_SYSTEM) return fail_errno(errno, "cannot resolve {}", endpoint.host);
  if (rc != 0) return fail("cannot resolve {}: {}", endpoint.host, ::gai_strerror(rc));
  return AddrInfoPtr(result);
}

Result<void> set_option(int fd, int level, int name, const char* what) {
  int one = 1;
  if (::setsockopt(fd, level, name, &one, sizeof one) < 0) {
    return fail_errno(errno, "cannot set {}", what);
  }
  return {};
}

Result<void> set_listen_options(int fd, int family) {
  if (auto ok = set_option(fd, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR"); !ok) return ok;
  if (family == AF_INET6) return set_option(fd, IPPROTO_IPV6, IPV6_FREEBIND, "IPV6_FREEBIND");
  return set_option(fd, IPPROTO_IP, IP_FREEBIND, "IP_FREEBIND");
}

Millis remaining(Millis deadline) { return std::max<Millis>(0, deadline - now_ms()); }

/// Waits for `events` on `fd` until `deadline`; EINTR is retried.
Result<void> wait_fd(int fd, short events, Millis deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, static_cast<int>(remaining(deadline)));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return fail_errno(errno, "poll failed");
    if (rc == 0) return fail_errno(ETIMEDOUT, "no answer in time");
    return {};
  }
}

Result<Fd> connect_one(const addrinfo& ai, Millis deadline) {
  Fd fd(::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol));
  if (!fd) return fail_errno(errno, "cannot create a socket");
  if (::connect(fd.get(), ai.ai_addr, ai.ai_addrlen) < 0 && errno != EINPROGRESS) {
    return fail_errno(errno, "cannot connect");
  }
  if (auto ok = wait_fd(fd.get(), POLLOUT, deadline); !ok) return std::unexpected(ok.error());
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err != 0) return fail_errno(err, "cannot connect");
  return fd;
}

}  // namespace

Millis now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<Millis>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

Result<Fd> listen_on(const Endpoint& endpoint) {
  auto addresses = resolve(endpoint, AI_NUMERICHOST | AI_PASSIVE);
  if (!addresses) return fail("cannot listen on {}: not a numeric address", to_string(endpoint));
  const addrinfo& ai = **addresses;
  Fd fd(::socket(ai.ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno(errno, "cannot create a socket for {}", to_string(endpoint));
  if (auto ok = set_listen_options(fd.get(), ai.ai_family); !ok) return std::unexpected(ok.error());
  if (::bind(fd.get(), ai.ai_addr, ai.ai_addrlen) < 0 || ::listen(fd.get(), 128) < 0) {
    return fail_errno(errno, "cannot listen on {}", to_string(endpoint));
  }
  return fd;
}

Result<Fd> connect_to(const Endpoint& endpoint, Millis deadline) {
  auto addresses = resolve(endpoint, 0);
  if (!addresses) return std::unexpected(addresses.error());
  Error last{0, "no address"};
  for (const addrinfo* ai = addresses->get(); ai != nullptr; ai = ai->ai_next) {
    auto fd = connect_one(*ai, deadline);
    if (fd) return fd;
    last = fd.error();
  }
  last.message += " to " + to_string(endpoint);
  return std::unexpected(last);
}

Result<void> LineConnection::wait(short events, Millis deadline) {
  return wait_fd(fd_.get(), events, deadline);
}

Result<void> LineConnection::send(std::string_view data, Millis deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (auto ok = wait(POLLOUT, deadline); !ok) return ok;
      continue;
    }
    if (n < 0) return fail_errno(errno, "cannot send");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Result<std::string> LineConnection::read_line(Millis deadline) {
  for (;;) {
    if (auto newline = buffer_.find('\n'); newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    if (buffer_.size() > kMaxLine)
      return fail("the server sent a line longer than {} bytes", kMaxLine);
    char chunk[4096];
    ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (auto ok = wait(POLLIN, deadline); !ok) return std::unexpected(ok.error());
      continue;
    }
    if (n < 0) return fail_errno(errno, "cannot receive");
    if (n == 0) return fail("the server closed the connection");
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

Result<void> ping(Endpoint endpoint, Millis timeout_ms) {
  if (endpoint.host == "0.0.0.0") endpoint.host = "127.0.0.1";
  if (endpoint.host == "::") endpoint.host = "::1";
  Millis deadline = now_ms() + timeout_ms;
  auto fd = connect_to(endpoint, deadline);
  if (!fd) return std::unexpected(fd.error());
  LineConnection connection(std::move(*fd));
  if (auto ok = connection.send("PING\n", deadline); !ok) return ok;
  auto line = connection.read_line(deadline);
  if (!line) return std::unexpected(line.error());
  if (*line != "PONG") return fail("{} answered '{}' instead of PONG", to_string(endpoint), *line);
  return {};
}

}  // namespace clusterd::ledger
