// A scripted DNS server for unit tests: a UDP socket on 127.0.0.1 (a free port) served from the
// test's own event loop. It records every request and answers through a test-supplied function,
// so tests can drop requests, answer wrongly or sign with another key.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <functional>
#include <optional>
#include <vector>

#include <systemd/sd-event.h>

#include "dns_exchange.h"
#include "dns_update.h"
#include "handle.h"

namespace clusterd::testing {

class DnsTestServer {
 public:
  /// Gets a request (its bytes and decoding), returns the answer to send, or nullopt to drop it.
  using Responder = std::function<std::optional<std::vector<std::uint8_t>>(
      const std::vector<std::uint8_t>& wire, const DnsMessage& request)>;

  DnsTestServer(sd_event* loop, Responder responder) : responder_(std::move(responder)) {
    socket_.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(socket_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(socket_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    server_.address = *InetAddress::parse("127.0.0.1");
    server_.port = ntohs(addr.sin_port);
    sd_event_source* source = nullptr;
    sd_event_add_io(loop, &source, socket_.get(), EPOLLIN, on_io, this);
    io_.reset(source);
  }

  /// Where it listens.
  const DnsServer& server() const { return server_; }
  /// Every request received, decoded, in order.
  const std::vector<DnsMessage>& requests() const { return requests_; }
  /// The raw bytes of every request.
  const std::vector<std::vector<std::uint8_t>>& wires() const { return wires_; }

  /// A header-only answer to `request` with `rcode` (the rest of a real answer is not needed).
  static std::vector<std::uint8_t> answer(const DnsMessage& request, DnsRcode rcode) {
    std::uint16_t flags = 0x8000 | (request.flags & 0x7800) | static_cast<std::uint16_t>(rcode);
    return {static_cast<std::uint8_t>(request.id >> 8), static_cast<std::uint8_t>(request.id),
            static_cast<std::uint8_t>(flags >> 8), static_cast<std::uint8_t>(flags),
            0, 0, 0, 0, 0, 0, 0, 0};
  }

  /// An answer with A records for `name` (uncompressed), after a header-only answer.
  static std::vector<std::uint8_t> answer_a(const DnsMessage& request, const std::string& name,
                                            const std::vector<InetAddress>& addresses,
                                            std::uint32_t ttl) {
    auto out = answer(request, DnsRcode::NoError);
    out[7] = static_cast<std::uint8_t>(addresses.size());
    for (const auto& a : addresses) {
      auto wire = encode_dns_query(0, name, DnsType::A);  // Borrow its name encoding.
      out.insert(out.end(), wire->begin() + 12, wire->end() - 4);
      std::uint8_t rr[] = {0, 1, 0, 1, static_cast<std::uint8_t>(ttl >> 24),
                           static_cast<std::uint8_t>(ttl >> 16), static_cast<std::uint8_t>(ttl >> 8),
                           static_cast<std::uint8_t>(ttl), 0, 4};
      out.insert(out.end(), std::begin(rr), std::end(rr));
      out.insert(out.end(), a.bytes.begin(), a.bytes.begin() + 4);
    }
    return out;
  }

 private:
  static int on_io(sd_event_source*, int fd, uint32_t, void* userdata) noexcept {
    auto* self = static_cast<DnsTestServer*>(userdata);
    std::vector<std::uint8_t> buffer(65535);
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    ssize_t n = ::recvfrom(fd, buffer.data(), buffer.size(), 0,
                           reinterpret_cast<sockaddr*>(&peer), &len);
    if (n < 0) return 0;
    buffer.resize(static_cast<std::size_t>(n));
    auto request = decode_dns_message(buffer);
    if (!request) return 0;
    self->requests_.push_back(*request);
    self->wires_.push_back(buffer);
    if (auto reply = self->responder_(buffer, *request))
      ::sendto(fd, reply->data(), reply->size(), 0, reinterpret_cast<sockaddr*>(&peer), len);
    return 0;
  }

  Responder responder_;
  Fd socket_;
  EventSourcePtr io_;
  DnsServer server_;
  std::vector<DnsMessage> requests_;
  std::vector<std::vector<std::uint8_t>> wires_;
};

}  // namespace clusterd::testing
