// One DNS request and its answer over UDP on the event loop: the request is resent with a
// growing interval until an answer with its id arrives or the deadline passes. Never blocks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <systemd/sd-event.h>

#include "clock.h"
#include "dns_update.h"
#include "engine_loop.h"
#include "error.h"
#include "handle.h"
#include "inet_address.h"

namespace clusterd {

/// Where a DNS server listens: an address literal and a port. No host names: resolving one
/// would block the loop, and a name that needs the DNS to find the DNS is a trap anyway.
struct DnsServer {
  InetAddress address;
  std::uint16_t port = 53;
  /// "10.0.0.53:53", "[fd00::53]:53".
  std::string to_string() const;
};

/// Parses "10.0.0.53", "10.0.0.53:5353", "fd00::53" or "[fd00::53]:5353".
Result<DnsServer> parse_dns_server(std::string_view text);

/// The answer's outcome in words: "NOERROR", "REFUSED", "NOTAUTH (TSIG BADSIG)".
std::string describe_rcode(const DnsMessage& answer);

/// One request in flight. Destroying it drops the answer unheard.
class DnsExchange {
 public:
  using Done = std::function<void(Result<DnsMessage>)>;
  /// First resend after this long; each next one waits twice as long, up to kMaxRetry.
  static constexpr Duration kFirstRetry = std::chrono::milliseconds(250);
  static constexpr Duration kMaxRetry = std::chrono::seconds(2);

  /// Sends `request` (already signed when `key` is set; `request_mac` is its MAC) to `server`
  /// and calls `done` from the loop, once: with the answer, or with an error once `deadline`
  /// has passed without one. With a key, a NOERROR answer must carry a valid TSIG signature or
  /// it is ignored as forged; an error answer is taken as it is (a server that does not know
  /// our key cannot sign its refusal, RFC 8945 5.3.2). `done` may destroy the exchange.
  static Result<std::unique_ptr<DnsExchange>> start(sd_event* loop, const DnsServer& server,
                                                    std::vector<std::uint8_t> request,
                                                    std::optional<TsigKey> key,
                                                    std::vector<std::uint8_t> request_mac,
                                                    Duration deadline, Done done);
  ~DnsExchange();
  DnsExchange(const DnsExchange&) = delete;
  DnsExchange& operator=(const DnsExchange&) = delete;

  /// How many times the request was sent so far.
  unsigned sends() const { return sends_; }

 private:
  DnsExchange(sd_event* loop, DnsServer server, std::vector<std::uint8_t> request,
              std::optional<TsigKey> key, std::vector<std::uint8_t> request_mac, Done done);
  Result<void> open();
  void send();
  void arm_retry();
  void on_readable();
  bool accept(std::span<const std::uint8_t> wire, DnsMessage& answer);
  void finish(Result<DnsMessage> result);
  static int on_io(sd_event_source* source, int fd, uint32_t events, void* userdata) noexcept;

  sd_event* loop_;
  DnsServer server_;
  std::vector<std::uint8_t> request_;
  std::uint16_t id_;
  std::optional<TsigKey> key_;
  std::vector<std::uint8_t> request_mac_;
  Done done_;
  Fd socket_;
  EventSourcePtr io_;
  Timer retry_;
  Timer deadline_;
  Duration retry_interval_ = kFirstRetry;
  Duration deadline_after_{0};
  unsigned sends_ = 0;
  std::string last_problem_;  ///< The last reason an answer was not taken, for the timeout.
};

}  // namespace clusterd
