#include "protocol.h"

#include <fmt/format.h>

#include <charconv>

namespace clusterd::ledger {
namespace {

/// Splits off the first space-separated word of `text`, advancing `text` past the space.
std::string_view next_word(std::string_view& text) {
  auto space = text.find(' ');
  auto word = text.substr(0, space);
  text = space == std::string_view::npos ? std::string_view{} : text.substr(space + 1);
  return word;
}

Result<Request> parse_append(std::string_view args) {
  auto id = next_word(args);
  if (!valid_client_id(id))
    return fail("APPEND needs a client id of 1-64 characters [A-Za-z0-9._:-]");
  auto seq_text = next_word(args);
  auto seq = parse_u64(seq_text);
  if (!seq) return fail("APPEND needs a sequence number, got '{}'", seq_text);
  return AppendRequest{Record{std::string(id), *seq, std::string(args)}};
}

Result<Request> parse_read(std::string_view args) {
  if (!valid_client_id(args))
    return fail("READ needs one client id of 1-64 characters [A-Za-z0-9._:-]");
  return ReadRequest{std::string(args)};
}

}  // namespace

Result<Request> parse_request(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  auto args = line;
  auto verb = next_word(args);
  if (verb == "APPEND") return parse_append(args);
  if (verb == "READ") return parse_read(args);
  if (verb == "PING" && args.empty()) return PingRequest{};
  if (verb == "COUNT" && args.empty()) return CountRequest{};
  if (verb == "PING" || verb == "COUNT") return fail("{} takes no arguments", verb);
  return fail("unknown request '{}' (expected APPEND, READ, PING or COUNT)", verb.substr(0, 32));
}

std::string format_request(const Request& request) {
  struct Formatter {
    std::string operator()(const AppendRequest& r) const {
      return fmt::format("APPEND {} {} {}\n", r.record.client_id, r.record.seq, r.record.payload);
    }
    std::string operator()(const ReadRequest& r) const {
      return fmt::format("READ {}\n", r.client_id);
    }
    std::string operator()(const PingRequest&) const { return "PING\n"; }
    std::string operator()(const CountRequest&) const { return "COUNT\n"; }
  };
  return std::visit(Formatter{}, request);
}

std::string format_append_reply(const AppendReply& reply) {
  return fmt::format("OK {}{}\n", reply.seq, reply.duplicate ? " DUP" : "");
}

Result<AppendReply> parse_append_reply(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  auto args = line;
  auto verb = next_word(args);
  if (verb == "ERR") return fail("server refused the record: {}", args);
  auto seq = parse_u64(next_word(args));
  if (verb != "OK" || !seq || (!args.empty() && args != "DUP")) {
    return fail("unexpected reply '{}'", line.substr(0, 80));
  }
  return AppendReply{*seq, args == "DUP"};
}

std::string format_error(std::string_view message) {
  std::string flat(message);
  for (char& c : flat) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return fmt::format("ERR {}\n", flat);
}

Result<Endpoint> parse_endpoint(std::string_view text) {
  std::string_view host;
  std::string_view port_text;
  if (text.starts_with('[')) {
    auto close = text.find("]:");
    if (close == std::string_view::npos) return fail("'{}' is not [IPV6]:PORT", text);
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("'{}' is not ADDRESS:PORT", text);
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return fail("'{}': write an IPv6 address in brackets, [ADDRESS]:PORT", text);
    }
  }
  auto port = parse_u64(port_text);
  if (host.empty()) return fail("'{}' has no address before the port", text);
  if (!port || *port == 0 || *port > 65535) return fail("'{}' has no valid port (1-65535)", text);
  return Endpoint{std::string(host), static_cast<uint16_t>(*port)};
}

std::string to_string(const Endpoint& endpoint) {
  if (endpoint.host.find(':') != std::string::npos) {
    return fmt::format("[{}]:{}", endpoint.host, endpoint.port);
  }
  return fmt::format("{}:{}", endpoint.host, endpoint.port);
}

std::optional<uint64_t> parse_u64(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace clusterd::ledger
