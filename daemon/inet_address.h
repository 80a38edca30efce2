// IP and MAC address values for the net module: parsing, printing, subnet arithmetic. Plain data,
// no I/O, so the ip driver's decisions can be tested without a network.
#pragma once

#include <sys/socket.h>

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "error.h"

namespace clusterd {

/// An IPv4 or IPv6 address; bytes in network order (IPv4 uses the first four).
struct InetAddress {
  int family = AF_UNSPEC;  ///< AF_INET, AF_INET6, or AF_UNSPEC when unset.
  std::array<std::uint8_t, 16> bytes{};

  /// Parses "10.0.0.50" or "fd00::50" (no prefix length).
  static Result<InetAddress> parse(std::string_view text);
  /// Builds an address of `family` from `size` raw bytes (4 for IPv4, 16 for IPv6).
  static Result<InetAddress> from_bytes(int family, const void* data, std::size_t size);

  /// 4, 16, or 0 when unset.
  std::size_t size() const;
  /// 32 or 128 (0 when unset).
  int max_prefixlen() const;
  /// True when both are of the same family and agree in their first `prefixlen` bits.
  bool same_subnet(const InetAddress& other, int prefixlen) const;
  /// True for 0.0.0.0 and ::.
  bool is_unspecified() const;
  /// "10.0.0.50", "fd00::50"; "" when unset.
  std::string to_string() const;

  friend bool operator==(const InetAddress&, const InetAddress&) = default;
  friend auto operator<=>(const InetAddress&, const InetAddress&) = default;
};

/// An address with a prefix length, as written in configuration: "10.0.0.50/24".
struct InetPrefix {
  InetAddress address;
  int prefixlen = 0;          ///< The given length, or the family's maximum when none was given.
  bool explicit_len = false;  ///< True when the text had "/N".

  /// Parses "ADDRESS" or "ADDRESS/LEN".
  static Result<InetPrefix> parse(std::string_view text);
  /// "10.0.0.50/24".
  std::string to_string() const;
};

/// An Ethernet hardware address.
using MacAddress = std::array<std::uint8_t, 6>;

/// "02:00:5e:00:01:02".
std::string to_string(const MacAddress& mac);

}  // namespace clusterd
