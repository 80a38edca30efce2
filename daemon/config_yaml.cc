#include "config_yaml.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <set>

namespace clusterd {
namespace {

// How a value reads in "expected X, got Y".
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    default:
      return "nothing";
  }
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string join(const std::vector<std::string>& names) {
  return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

void DiagnosticSink::error(SourcePos pos, std::string message) {
  diagnostics_.push_back({file_, pos, std::move(message)});
}

Diagnostics DiagnosticSink::sorted() const {
  Diagnostics out = diagnostics_;
  std::stable_sort(out.begin(), out.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::pair(a.pos.line, a.pos.column) < std::pair(b.pos.line, b.pos.column);
  });
  return out;
}

SourcePos position_of(const YAML::Node& node) {
  if (!node.IsDefined()) return {};
  YAML::Mark mark = node.Mark();
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

SourcePos Field::pos() const {
  // yaml-cpp places an empty value at the next token, which may be lines away: use the key.
  if (!value.IsDefined() || value.IsNull()) return key_pos;
  SourcePos p = position_of(value);
  return p.line == 0 ? key_pos : p;
}

void Field::error(std::string_view message) const {
  error_at(pos(), fmt::format("{}: {}", label, message));
}

void Field::error_at(SourcePos at, std::string_view message) const {
  sink->error(at, where.empty() ? std::string(message) : fmt::format("{}: {}", where, message));
}

MapReader::MapReader(DiagnosticSink& sink, std::string where, std::string path,
                     const YAML::Node& node, SourcePos at,
                     std::initializer_list<std::string_view> allowed)
    : sink_(&sink), where_(std::move(where)), path_(std::move(path)) {
  SourcePos own = node.IsNull() ? SourcePos{} : position_of(node);
  pos_ = own.line == 0 ? at : own;
  if (!node.IsDefined() || node.IsNull()) return;
  if (!node.IsMap()) {
    valid_ = false;
    std::string what = path_.empty() ? std::string() : path_ + ": ";
    error(pos_,
          fmt::format("{}expected a mapping of keys to values, got {}", what, describe(node)));
    return;
  }
  check_keys(node, allowed);
}

MapReader::MapReader(const Field& field, std::initializer_list<std::string_view> allowed)
    : MapReader(*field.sink, field.where, field.label, field.value, field.key_pos, allowed) {}

void MapReader::check_keys(const YAML::Node& node,
                           std::initializer_list<std::string_view> allowed) {
  std::vector<std::string> names(allowed.begin(), allowed.end());
  // yaml-cpp keeps every entry of a mapping when iterating, so repeated keys are visible here.
  for (auto it = node.begin(); it != node.end(); ++it) {
    SourcePos key_pos = position_of(it->first);
    if (!it->first.IsScalar()) {
      error(key_pos, fmt::format("keys must be plain words, got {}", describe(it->first)));
      continue;
    }
    const std::string& key = it->first.Scalar();
    if (std::find(names.begin(), names.end(), key) == names.end()) {
      std::string match = closest_match(key, names);
      error(
          key_pos,
          fmt::format("unknown key '{}'{}", qualified(key),
                      match.empty() ? "" : fmt::format("; did you mean '{}'?", qualified(match))));
      continue;
    }
    auto first = get(key);
    if (first) {
      error(key_pos, fmt::format("duplicate key '{}' (first given at line {})", qualified(key),
                                 first->key_pos.line));
      continue;
    }
    fields_.push_back({sink_, where_, qualified(key), it->second, key_pos});
  }
}

std::string MapReader::qualified(std::string_view key) const {
  return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
}

std::optional<Field> MapReader::get(std::string_view key) const {
  std::string label = qualified(key);
  for (const auto& f : fields_)
    if (f.label == label) return f;
  return std::nullopt;
}

std::optional<Field> MapReader::require(std::string_view key) const {
  auto f = get(key);
  if (!f && valid_) error(pos_, fmt::format("missing required key '{}'", qualified(key)));
  return f;
}

void MapReader::error(SourcePos at, std::string_view message) const {
  sink_->error(at, where_.empty() ? std::string(message) : fmt::format("{}: {}", where_, message));
}

std::optional<std::string> scalar_of(const YAML::Node& node) {
  if (!node.IsDefined() || !node.IsScalar()) return std::nullopt;
  return node.Scalar();
}

std::optional<std::string> read_string(const Field& field) {
  if (!field.value.IsScalar()) {
    field.error(fmt::format("expected a string, got {}", describe(field.value)));
    return std::nullopt;
  }
  return field.value.Scalar();
}

std::optional<std::string> read_name(const Field& field) {
  auto text = read_string(field);
  if (!text) return std::nullopt;
  if (auto reason = invalid_name_reason(*text)) {
    field.error(fmt::format("'{}' is not a valid name: {}", *text, *reason));
    return std::nullopt;
  }
  return text;
}

std::optional<std::string> read_path(const Field& field) {
  auto text = read_string(field);
  if (!text) return std::nullopt;
  if (!text->starts_with('/')) {
    field.error(fmt::format("expected an absolute path, got '{}'", *text));
    return std::nullopt;
  }
  return text;
}

std::optional<std::uint64_t> read_integer(const Field& field, std::uint64_t min,
                                          std::uint64_t max) {
  if (!field.value.IsScalar()) {
    field.error(fmt::format("expected a whole number, got {}", describe(field.value)));
    return std::nullopt;
  }
  const std::string& text = field.value.Scalar();
  std::string_view digits = text;
  bool negative = digits.starts_with('-');
  if (negative) digits.remove_prefix(1);
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  bool parsed = !digits.empty() && end == digits.data() + digits.size();
  if (!parsed || (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    field.error(fmt::format("expected a whole number, got '{}'", text));
    return std::nullopt;
  }
  if (negative || ec == std::errc::result_out_of_range || value < min || value > max) {
    field.error(fmt::format("must be between {} and {}, got {}", min, max, text));
    return std::nullopt;
  }
  return value;
}

std::optional<bool> read_bool(const Field& field) {
  std::string text = field.value.IsScalar() ? lowercase(field.value.Scalar()) : "";
  if (text == "true" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "no" || text == "off") return false;
  field.error(fmt::format("expected true or false, got {}", describe(field.value)));
  return std::nullopt;
}

std::optional<Duration> read_duration(const Field& field, Duration min, Duration max) {
  if (!field.value.IsScalar()) {
    field.error(fmt::format("expected a duration like 5s or 100ms, got {}", describe(field.value)));
    return std::nullopt;
  }
  auto d = parse_duration(field.value.Scalar());
  if (!d) {
    field.error(d.error().message);
    return std::nullopt;
  }
  if (*d < min || *d > max) {
    field.error(fmt::format("must be between {} and {}, got {}", format_duration(min),
                            format_duration(max), field.value.Scalar()));
    return std::nullopt;
  }
  return *d;
}

std::optional<std::size_t> read_choice(const Field& field, const std::vector<std::string>& names) {
  if (field.value.IsScalar()) {
    auto it = std::find(names.begin(), names.end(), field.value.Scalar());
    if (it != names.end()) return it - names.begin();
  }
  std::string hint = field.value.IsScalar() ? did_you_mean(field.value.Scalar(), names) : "";
  field.error(
      fmt::format("expected one of {}, got {}{}", join(names), describe(field.value), hint));
  return std::nullopt;
}

std::vector<Located> read_string_list(const Field& field) {
  std::vector<Located> out;
  for (const auto& item : read_sequence(field)) {
    SourcePos pos = position_of(item);
    if (!item.IsScalar()) {
      field.error_at(pos, fmt::format("{}: expected a list of names, got {} in it", field.label,
                                      describe(item)));
      continue;
    }
    bool repeated = std::any_of(out.begin(), out.end(),
                                [&](const Located& l) { return l.text == item.Scalar(); });
    if (repeated)
      field.error_at(pos, fmt::format("{}: '{}' is listed twice", field.label, item.Scalar()));
    else
      out.push_back({item.Scalar(), pos});
  }
  return out;
}

std::vector<std::pair<Located, Located>> read_string_map(const Field& field) {
  std::vector<std::pair<Located, Located>> out;
  if (field.value.IsNull()) return out;
  if (!field.value.IsMap()) {
    field.error(fmt::format("expected a mapping, got {}", describe(field.value)));
    return out;
  }
  std::set<std::string> seen;
  for (auto it = field.value.begin(); it != field.value.end(); ++it) {
    Located key{it->first.IsScalar() ? it->first.Scalar() : "", position_of(it->first)};
    if (!it->first.IsScalar() || !it->second.IsScalar()) {
      field.error_at(key.pos, fmt::format("{}: expected plain 'key: value' entries", field.label));
      continue;
    }
    if (!seen.insert(key.text).second) {
      field.error_at(key.pos, fmt::format("{}: duplicate key '{}'", field.label, key.text));
      continue;
    }
    out.emplace_back(key, Located{it->second.Scalar(), position_of(it->second)});
  }
  return out;
}

std::vector<YAML::Node> read_sequence(const Field& field) {
  std::vector<YAML::Node> out;
  if (field.value.IsNull()) return out;
  if (!field.value.IsSequence()) {
    field.error(fmt::format("expected a list, got {}", describe(field.value)));
    return out;
  }
  for (const auto& item : field.value) out.push_back(item);
  return out;
}

}  // namespace clusterd
