// The ledger's line protocol (docs/ledger.md): one request per line, one reply per request
// (READ answers several lines ending in END). Pure parsing and formatting, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "daemon/error.h"
#include "record.h"

namespace clusterd::ledger {

/// Longest request line accepted, newline excluded; longer lines are refused and the
/// connection is closed (a peer speaking another protocol, or a runaway client).
constexpr size_t kMaxLine = 64 * 1024;

/// APPEND <client-id> <seq> <payload>: store the record unless (client-id, seq) is stored.
struct AppendRequest {
  Record record;
};
/// READ <client-id>: every stored seq of that client, then END.
struct ReadRequest {
  std::string client_id;
};
/// PING: answered with PONG.
struct PingRequest {};
/// COUNT: the number of stored records.
struct CountRequest {};

/// One parsed request line.
using Request = std::variant<AppendRequest, ReadRequest, PingRequest, CountRequest>;

/// Parses one request line (newline removed; a trailing "\r" is ignored so telnet works).
Result<Request> parse_request(std::string_view line);

/// The request as a protocol line, newline included.
std::string format_request(const Request& request);

/// The server's answer to an APPEND.
struct AppendReply {
  uint64_t seq = 0;
  bool duplicate = false;  ///< "OK <seq> DUP": already stored, nothing new written.
};

/// "OK <seq>\n" or "OK <seq> DUP\n".
std::string format_append_reply(const AppendReply& reply);

/// Parses an APPEND reply line; an error (with the server's text for "ERR ...") otherwise.
Result<AppendReply> parse_append_reply(std::string_view line);

/// "ERR <message>\n", with newlines in `message` flattened.
std::string format_error(std::string_view message);

/// A listening or connecting address: "HOST:PORT", "[IPV6]:PORT".
struct Endpoint {
  std::string host;  ///< Without brackets.
  uint16_t port = 0;

  bool operator==(const Endpoint&) const = default;
};

/// Parses "ADDR:PORT" or "[ADDR]:PORT" (port 1-65535).
Result<Endpoint> parse_endpoint(std::string_view text);

/// "HOST:PORT", or "[HOST]:PORT" when the host contains a colon.
std::string to_string(const Endpoint& endpoint);

/// Parses a base-10 unsigned number covering all of `text`.
std::optional<uint64_t> parse_u64(std::string_view text);

}  // namespace clusterd::ledger
