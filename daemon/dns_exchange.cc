#include "dns_exchange.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <ctime>

#include <fmt/format.h>

#include "config_load.h"
#include "log.h"

namespace clusterd {
namespace {

constexpr std::size_t kMaxAnswer = 65535;

Result<std::uint16_t> parse_port(std::string_view text, std::string_view whole) {
  unsigned port = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || port == 0 ||
      port > 65535)
    return fail("DNS server '{}': '{}' is not a port number (1-65535)", whole, text);
  return static_cast<std::uint16_t>(port);
}

socklen_t to_sockaddr(const DnsServer& server, sockaddr_storage& out) {
  out = {};
  if (server.address.family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&out);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(server.port);
    std::memcpy(&sin->sin_addr, server.address.bytes.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(server.port);
  std::memcpy(&sin6->sin6_addr, server.address.bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

}  // namespace

std::string DnsServer::to_string() const {
  if (address.family == AF_INET6) return fmt::format("[{}]:{}", address.to_string(), port);
  return fmt::format("{}:{}", address.to_string(), port);
}

Result<DnsServer> parse_dns_server(std::string_view text) {
  DnsServer server;
  std::string_view host = text;
  if (text.starts_with('[')) {
    auto close = text.find(']');
    if (close == std::string_view::npos)
      return fail("DNS server '{}': '[' without ']'", text);
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (!rest.starts_with(':')) return fail("DNS server '{}': expected ':PORT' after ']'", text);
      auto port = parse_port(rest.substr(1), text);
      if (!port) return std::unexpected(port.error());
      server.port = *port;
    }
  } else if (auto colon = text.find(':'); colon != std::string_view::npos &&
                                          text.find(':', colon + 1) == std::string_view::npos) {
    host = text.substr(0, colon);  // One colon: IPv4 with a port. More: a bare IPv6 address.
    auto port = parse_port(text.substr(colon + 1), text);
    if (!port) return std::unexpected(port.error());
    server.port = *port;
  }
  auto address = InetAddress::parse(host);
  if (!address)
    return fail("DNS server '{}' is not an IP address (host[:port], [IPv6]:port; names are not "
                "resolved)",
                text);
  server.address = *address;
  return server;
}

std::string describe_rcode(const DnsMessage& answer) {
  std::string text = to_string(answer.rcode());
  if (answer.tsig && answer.tsig->error != 0)
    text += fmt::format(" (TSIG {})", to_string(static_cast<DnsRcode>(answer.tsig->error)));
  return text;
}

Result<std::unique_ptr<DnsExchange>> DnsExchange::start(sd_event* loop, const DnsServer& server,
                                                        std::vector<std::uint8_t> request,
                                                        std::optional<TsigKey> key,
                                                        std::vector<std::uint8_t> request_mac,
                                                        Duration deadline, Done done) {
  if (request.size() < 12) return fail("cannot send a DNS request without a header");
  std::unique_ptr<DnsExchange> self(new DnsExchange(loop, server, std::move(request),
                                                    std::move(key), std::move(request_mac),
                                                    std::move(done)));
  if (auto r = self->open(); !r) return std::unexpected(r.error());
  auto armed = self->deadline_.arm(loop, deadline, "dns-deadline", [s = self.get(), deadline] {
    s->finish(fail("no answer from DNS server {} within {} ({} tries{}{})",
                   s->server_.to_string(), format_duration(deadline), s->sends_,
                   s->last_problem_.empty() ? "" : "; last: ", s->last_problem_));
  });
  if (!armed) return std::unexpected(armed.error());
  self->send();
  return self;
}

DnsExchange::DnsExchange(sd_event* loop, DnsServer server, std::vector<std::uint8_t> request,
                         std::optional<TsigKey> key, std::vector<std::uint8_t> request_mac,
                         Done done)
    : loop_(loop),
      server_(std::move(server)),
      request_(std::move(request)),
      id_(static_cast<std::uint16_t>(request_[0] << 8 | request_[1])),
      key_(std::move(key)),
      request_mac_(std::move(request_mac)),
      done_(std::move(done)) {}

DnsExchange::~DnsExchange() = default;

// A connected UDP socket: the kernel drops datagrams from any other address and port, and an
// ICMP port unreachable comes back as ECONNREFUSED.
Result<void> DnsExchange::open() {
  int family = server_.address.family;
  socket_.reset(::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket_) return fail_errno(errno, "cannot open a UDP socket for DNS");
  sockaddr_storage addr;
  socklen_t len = to_sockaddr(server_, addr);
  if (::connect(socket_.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0)
    return fail_errno(errno, "cannot reach DNS server {}", server_.to_string());
  sd_event_source* source = nullptr;
  int r = sd_event_add_io(loop_, &source, socket_.get(), EPOLLIN, on_io, this);
  if (r < 0) return fail_errno(r, "cannot watch the DNS socket");
  sd_event_source_set_description(source, "dns-exchange");
  io_.reset(source);
  return {};
}

void DnsExchange::send() {
  ++sends_;
  if (::send(socket_.get(), request_.data(), request_.size(), 0) < 0)
    last_problem_ = fmt::format("send: {}", std::strerror(errno));
  arm_retry();
}

void DnsExchange::arm_retry() {
  auto armed = retry_.arm(loop_, retry_interval_, "dns-retry", [this] { send(); });
  if (!armed) last_problem_ = armed.error().to_string();
  retry_interval_ = std::min(retry_interval_ * 2, kMaxRetry);
}

int DnsExchange::on_io(sd_event_source*, int, uint32_t, void* userdata) noexcept {
  static_cast<DnsExchange*>(userdata)->on_readable();
  return 0;
}

void DnsExchange::on_readable() {
  std::vector<std::uint8_t> buffer(kMaxAnswer);
  for (;;) {
    ssize_t n = ::recv(socket_.get(), buffer.data(), buffer.size(), 0);
    if (n < 0) {
      if (errno == ECONNREFUSED) last_problem_ = "the server's port is closed (ICMP unreachable)";
      if (errno == EINTR || errno == ECONNREFUSED) continue;
      return;  // EAGAIN: read everything there was.
    }
    DnsMessage answer;
    if (accept(std::span(buffer.data(), static_cast<std::size_t>(n)), answer)) {
      finish(std::move(answer));
      return;
    }
  }
}

// True for the answer to our request; anything else is noted and ignored.
bool DnsExchange::accept(std::span<const std::uint8_t> wire, DnsMessage& answer) {
  auto decoded = decode_dns_message(wire);
  if (!decoded) {
    last_problem_ = decoded.error().message;
    return false;
  }
  if (decoded->id != id_ || !decoded->is_response()) return false;
  if (key_ && decoded->rcode() == DnsRcode::NoError) {
    auto ok = tsig_verify(wire, *decoded, *key_, request_mac_,
                          static_cast<std::uint64_t>(std::time(nullptr)));
    if (!ok) {
      last_problem_ = "answer ignored: " + ok.error().message;
      log(LogLevel::Warning, {}, "DNS answer from {} ignored: {}", server_.to_string(),
          ok.error().message);
      return false;
    }
  }
  answer = std::move(*decoded);
  return true;
}

void DnsExchange::finish(Result<DnsMessage> result) {
  retry_.disarm();
  deadline_.disarm();
  io_.reset();
  Done done = std::exchange(done_, nullptr);
  if (done) done(std::move(result));  // Last: it may destroy this object.
}

}  // namespace clusterd
