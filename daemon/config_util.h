// Small checks the configuration loader needs: names, "did you mean", IP addresses and subnets.
// Pure functions, no YAML.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"

namespace clusterd {

/// Levenshtein distance between `a` and `b` (insertions, deletions, substitutions).
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate closest to `word` when it is close enough to be a likely typo, else empty.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

/// "; did you mean 'x'?" for the closest candidate, or "" when none is close.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

/// Why `name` is not a valid name for a node, group, resource, network or cluster, if it is not.
/// Names are 1..63 characters of [A-Za-z0-9_.-] starting with a letter or digit, so they fit
/// in host names, D-Bus object paths (escaped) and journal fields.
std::optional<std::string> invalid_name_reason(std::string_view name);

/// An IPv4 or IPv6 address.
struct IpAddress {
  int family = 0;                        ///< AF_INET or AF_INET6.
  std::array<std::uint8_t, 16> bytes{};  ///< Network order; IPv4 uses the first 4.

  /// Number of address bits: 32 or 128.
  int bits() const;
  /// True for 224.0.0.0/4 and ff00::/8.
  bool is_multicast() const;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

/// A subnet in CIDR notation.
struct Subnet {
  IpAddress address;
  int prefix = 0;

  /// True when `ip` is of the same family and inside the subnet.
  bool contains(const IpAddress& ip) const;
  /// The subnet with host bits cleared, as text ("192.168.10.0/24").
  std::string canonical() const;
};

/// Parses a bare IPv4 or IPv6 address.
Result<IpAddress> parse_ip_address(std::string_view text);

/// Parses "192.168.10.0/24" or "fd00::/64"; host bits must be zero.
Result<Subnet> parse_subnet(std::string_view text);

/// Formats an address the way inet_ntop does.
std::string format_ip_address(const IpAddress& ip);

}  // namespace clusterd
