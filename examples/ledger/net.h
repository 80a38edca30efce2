// Small blocking-with-deadline socket helpers for the ledger's client side (ledger-client,
// ledgerd --ping) and the listening socket of the server. Plain POSIX.
#pragma once

#include <string>
#include <string_view>

#include "daemon/error.h"
#include "daemon/handle.h"
#include "outage.h"
#include "protocol.h"

namespace clusterd::ledger {

/// Now on CLOCK_MONOTONIC, in milliseconds.
Millis now_ms();

/// A non-blocking listening TCP socket on `endpoint` (a numeric address). SO_REUSEADDR so a
/// restart does not wait for TIME_WAIT; IP_FREEBIND so the server can start before its
/// virtual IP is configured (the cluster may add the address after starting the service).
Result<Fd> listen_on(const Endpoint& endpoint);

/// Connects to `endpoint` (host name or address; every resolved address is tried) by
/// `deadline` (now_ms() clock). The socket is non-blocking.
Result<Fd> connect_to(const Endpoint& endpoint, Millis deadline);

/// A connected socket with a receive buffer; every call fails once `deadline` passes.
class LineConnection {
 public:
  explicit LineConnection(Fd fd) : fd_(std::move(fd)) {}

  /// Sends all of `data`.
  Result<void> send(std::string_view data, Millis deadline);
  /// Receives one line (newline removed). Lines longer than kMaxLine are an error.
  Result<std::string> read_line(Millis deadline);

 private:
  Result<void> wait(short events, Millis deadline);

  Fd fd_;
  std::string buffer_;
};

/// Sends PING to `endpoint` and expects PONG within `timeout_ms`. A wildcard address
/// (0.0.0.0, ::) is probed on the loopback address of its family.
Result<void> ping(Endpoint endpoint, Millis timeout_ms);

}  // namespace clusterd::ledger
