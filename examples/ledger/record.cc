#include "record.h"

#include <fmt/format.h>

#include <array>
#include <charconv>

namespace clusterd::ledger {
namespace {

constexpr uint32_t kCastagnoli = 0x82F63B78;  // reversed polynomial 0x1EDC6F41
constexpr size_t kMaxClientId = 64;

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kCastagnoli : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr auto kCrcTable = make_crc_table();

/// Parses all of `text` as a number in `base`; nullopt on anything else (including empty).
template <typename T>
std::optional<T> parse_number(std::string_view text, int base = 10) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

/// Splits "<client-id> <seq> <payload>"; the payload is everything after the second space.
std::optional<Record> parse_body(std::string_view body) {
  auto first = body.find(' ');
  if (first == std::string_view::npos) return std::nullopt;
  auto second = body.find(' ', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  auto id = body.substr(0, first);
  auto seq = parse_number<uint64_t>(body.substr(first + 1, second - first - 1));
  if (!valid_client_id(id) || !seq) return std::nullopt;
  return Record{std::string(id), *seq, std::string(body.substr(second + 1))};
}

}  // namespace

uint32_t crc32c(std::string_view data, uint32_t crc) {
  crc = ~crc;
  for (unsigned char byte : data) crc = kCrcTable[(crc ^ byte) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

std::string encode_record(const Record& record) {
  std::string body = fmt::format("{} {} {}", record.client_id, record.seq, record.payload);
  return fmt::format("{:08x} {}\n", crc32c(body), body);
}

std::optional<Record> decode_record(std::string_view line) {
  if (line.size() < 9 || line[8] != ' ') return std::nullopt;
  auto stored = parse_number<uint32_t>(line.substr(0, 8), 16);
  auto body = line.substr(9);
  if (!stored || *stored != crc32c(body)) return std::nullopt;
  return parse_body(body);
}

LogScan scan_log(std::string_view data) {
  LogScan scan;
  while (scan.valid_bytes < data.size()) {
    auto rest = data.substr(scan.valid_bytes);
    auto newline = rest.find('\n');
    std::optional<Record> record;
    if (newline != std::string_view::npos) record = decode_record(rest.substr(0, newline));
    if (!record) {
      // A crash can only tear the last record: damage followed by more lines is corruption.
      bool last = newline == std::string_view::npos || newline + 1 == rest.size();
      scan.torn_tail = last;
      scan.corrupt = !last;
      scan.corrupt_offset = scan.corrupt ? scan.valid_bytes : 0;
      return scan;
    }
    scan.records.push_back(std::move(*record));
    scan.valid_bytes += newline + 1;
  }
  return scan;
}

bool valid_client_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxClientId) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace clusterd::ledger
