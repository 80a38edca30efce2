#include "config_util.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace clusterd {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // One row of the classic dynamic-programming table at a time.
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      std::size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  // A third of the word's length (at least 1, at most 3) catches the usual typos (a dropped,
  // doubled or swapped letter) without suggesting unrelated words for short ones.
  std::size_t limit = std::clamp<std::size_t>(word.size() / 3, 1, 3);
  std::string best;
  std::size_t best_distance = limit + 1;
  for (const auto& candidate : candidates) {
    std::size_t d = edit_distance(word, candidate);
    // Replacing every letter is not a typo ('c' is not a misspelt 'a').
    if (d < best_distance && d < word.size()) {
      best = candidate;
      best_distance = d;
    }
  }
  return best;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  std::string match = closest_match(word, candidates);
  return match.empty() ? std::string() : "; did you mean '" + match + "'?";
}

std::optional<std::string> invalid_name_reason(std::string_view name) {
  auto is_alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (name.empty()) return "a name must not be empty";
  if (name.size() > 63) return "a name must be at most 63 characters long";
  if (!is_alnum(name[0])) return "a name must start with a letter or digit";
  for (char c : name)
    if (!is_alnum(c) && c != '_' && c != '.' && c != '-')
      return "a name may contain only letters, digits, '_', '.' and '-'";
  return std::nullopt;
}

int IpAddress::bits() const { return family == AF_INET ? 32 : 128; }

bool IpAddress::is_multicast() const {
  return family == AF_INET ? (bytes[0] & 0xf0) == 0xe0 : bytes[0] == 0xff;
}

bool Subnet::contains(const IpAddress& ip) const {
  if (ip.family != address.family) return false;
  for (int bit = 0; bit < prefix; ++bit) {
    int mask = 0x80 >> (bit % 8);
    if ((ip.bytes[bit / 8] & mask) != (address.bytes[bit / 8] & mask)) return false;
  }
  return true;
}

namespace {

IpAddress clear_host_bits(IpAddress ip, int prefix) {
  for (int bit = prefix; bit < ip.bits(); ++bit) ip.bytes[bit / 8] &= ~(0x80 >> (bit % 8));
  return ip;
}

}  // namespace

std::string Subnet::canonical() const {
  return format_ip_address(clear_host_bits(address, prefix)) + "/" + std::to_string(prefix);
}

Result<IpAddress> parse_ip_address(std::string_view text) {
  std::string copy(text);
  IpAddress ip;
  if (inet_pton(AF_INET, copy.c_str(), ip.bytes.data()) == 1) {
    ip.family = AF_INET;
    return ip;
  }
  if (inet_pton(AF_INET6, copy.c_str(), ip.bytes.data()) == 1) {
    ip.family = AF_INET6;
    return ip;
  }
  return fail("'{}' is not an IPv4 or IPv6 address", text);
}

Result<Subnet> parse_subnet(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos)
    return fail("'{}' is not a subnet in CIDR notation like 192.168.10.0/24", text);
  auto ip = parse_ip_address(text.substr(0, slash));
  if (!ip) return std::unexpected(ip.error());
  std::string_view digits = text.substr(slash + 1);
  int prefix = -1;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() || prefix < 0 ||
      prefix > ip->bits())
    return fail("'{}' has a bad prefix length; expected 0 to {}", text, ip->bits());
  Subnet subnet{*ip, prefix};
  if (!(clear_host_bits(*ip, prefix) == *ip))
    return fail("subnet '{}' has host bits set; did you mean '{}'?", text, subnet.canonical());
  return subnet;
}

std::string format_ip_address(const IpAddress& ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(ip.family, ip.bytes.data(), buf, sizeof buf) == nullptr) return "?";
  return buf;
}

}  // namespace clusterd
