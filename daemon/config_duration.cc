// Durations in the configuration file: "100ms", "5s", "1.5s", "15m", "6h", "1d", compounds such as
// "1h30m", or bare seconds.
#include <cctype>
#include <charconv>
#include <cstdint>
#include <limits>

#include "config_load.h"

namespace clusterd {
namespace {

struct Unit {
  std::string_view suffix;
  std::int64_t ms;
};

// Longest suffix first so "ms" is not read as "m" followed by garbage.
constexpr Unit kUnits[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};

std::unexpected<Error> not_a_duration(std::string_view text) {
  return fail("expected a duration like 5s or 100ms, got '{}'", text);
}

// Splits "12.5s" into number "12.5" and unit "s" (bare numbers are seconds).
std::optional<std::pair<std::string_view, Unit>> split_unit(std::string_view text) {
  for (const auto& unit : kUnits)
    if (text.size() > unit.suffix.size() && text.ends_with(unit.suffix))
      return std::pair{text.substr(0, text.size() - unit.suffix.size()), unit};
  return std::pair{text, Unit{"", 1000}};
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

}  // namespace

namespace {

// One segment: a number with an optional unit ("1.5s", "30m", or bare seconds).
Result<Duration> parse_segment(std::string_view text) {
  auto split = split_unit(text);
  auto [number, unit] = *split;
  std::string_view whole = number.substr(0, number.find('.'));
  std::string_view fraction =
      number.find('.') == std::string_view::npos ? "" : number.substr(number.find('.') + 1);
  if (!all_digits(whole) || (number.find('.') != std::string_view::npos && !all_digits(fraction)))
    return not_a_duration(text);
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), value);
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max() / 1000;
  if (ec != std::errc() || value > kMax / unit.ms) return fail("duration '{}' is too long", text);
  std::int64_t ms = value * unit.ms;
  // The fraction in milliseconds: "1.5s" adds 500; anything finer than 1 ms is refused.
  std::int64_t scale = unit.ms;
  for (char c : fraction) {
    if (scale % 10 != 0) return fail("duration '{}' is finer than a millisecond", text);
    scale /= 10;
    ms += (c - '0') * scale;
  }
  return Duration(ms);
}

}  // namespace

Result<Duration> parse_duration(std::string_view text) {
  // A compound ("1h30m") is a sum of segments, each ending where a letter meets the next digit.
  Duration total(0);
  std::size_t start = 0;
  for (std::size_t i = 1; i <= text.size(); ++i) {
    bool boundary = i == text.size() || (std::isalpha(static_cast<unsigned char>(text[i - 1])) &&
                                         std::isdigit(static_cast<unsigned char>(text[i])));
    if (!boundary) continue;
    std::string_view segment = text.substr(start, i - start);
    bool bare = segment.find_first_not_of("0123456789.") == std::string_view::npos;
    if (bare && (start != 0 || i != text.size())) return not_a_duration(text);
    auto part = parse_segment(segment);
    if (!part) return segment == text ? std::unexpected(part.error()) : not_a_duration(text);
    total += *part;
    start = i;
  }
  if (text.empty()) return not_a_duration(text);
  return total;
}

std::string format_duration(Duration d) {
  std::int64_t ms = d.count();
  if (ms < 0) return "-" + format_duration(Duration(-ms));
  if (ms == 0) return "0s";
  for (auto it = std::rbegin(kUnits); it != std::rend(kUnits); ++it)
    if (ms % it->ms == 0) return std::to_string(ms / it->ms) + std::string(it->suffix);
  return std::to_string(ms) + "ms";
}

}  // namespace clusterd
