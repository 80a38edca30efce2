#include "inet_address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace clusterd {

Result<InetAddress> InetAddress::parse(std::string_view text) {
  // inet_pton wants a NUL-terminated string; longer inputs cannot be addresses anyway.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN)
    return fail("'{}' is not an IPv4 or IPv6 address", text);
  char buffer[INET6_ADDRSTRLEN] = {};
  std::memcpy(buffer, text.data(), text.size());
  InetAddress address;
  int family = text.find(':') == std::string_view::npos ? AF_INET : AF_INET6;
  if (inet_pton(family, buffer, address.bytes.data()) != 1)
    return fail("'{}' is not an IPv4 or IPv6 address", text);
  address.family = family;
  return address;
}

Result<InetAddress> InetAddress::from_bytes(int family, const void* data, std::size_t size) {
  InetAddress address;
  address.family = family;
  if (address.size() == 0 || size != address.size())
    return fail("{} bytes do not make an address of family {}", size, family);
  std::memcpy(address.bytes.data(), data, size);
  return address;
}

std::size_t InetAddress::size() const {
  if (family == AF_INET) return 4;
  if (family == AF_INET6) return 16;
  return 0;
}

int InetAddress::max_prefixlen() const { return static_cast<int>(size() * 8); }

bool InetAddress::same_subnet(const InetAddress& other, int prefixlen) const {
  if (family != other.family || family == AF_UNSPEC) return false;
  if (prefixlen < 0 || prefixlen > max_prefixlen()) return false;
  int full = prefixlen / 8;
  if (std::memcmp(bytes.data(), other.bytes.data(), full) != 0) return false;
  int rest = prefixlen % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (bytes[full] & mask) == (other.bytes[full] & mask);
}

bool InetAddress::is_unspecified() const {
  for (std::size_t i = 0; i < size(); ++i)
    if (bytes[i] != 0) return false;
  return true;
}

std::string InetAddress::to_string() const {
  if (family == AF_UNSPEC) return "";
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, bytes.data(), buffer, sizeof buffer);
  return buffer;
}

Result<InetPrefix> InetPrefix::parse(std::string_view text) {
  auto slash = text.find('/');
  auto address = InetAddress::parse(text.substr(0, slash));
  if (!address) return std::unexpected(address.error());
  InetPrefix prefix{*address, address->max_prefixlen(), false};
  if (slash == std::string_view::npos) return prefix;
  std::string_view len = text.substr(slash + 1);
  auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix.prefixlen);
  if (len.empty() || ec != std::errc() || end != len.data() + len.size() || prefix.prefixlen < 0 ||
      prefix.prefixlen > address->max_prefixlen())
    return fail("'{}' has an invalid prefix length (0-{} allowed)", text,
                address->max_prefixlen());
  prefix.explicit_len = true;
  return prefix;
}

std::string InetPrefix::to_string() const {
  return fmt::format("{}/{}", address.to_string(), prefixlen);
}

std::string to_string(const MacAddress& mac) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3],
                     mac[4], mac[5]);
}

}  // namespace clusterd
