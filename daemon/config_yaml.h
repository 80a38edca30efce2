// Reading YAML for the configuration loader: positions, key checks and typed values. Every reader
// reports what is wrong to a DiagnosticSink and returns nothing, so the walk goes on and one run
// finds every error in the file. Only the loader includes this header.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config_load.h"
#include "config_util.h"

namespace clusterd {

/// Collects the diagnostics of one file.
class DiagnosticSink {
 public:
  explicit DiagnosticSink(std::string file) : file_(std::move(file)) {}
  /// Records an error at `pos`.
  void error(SourcePos pos, std::string message);
  /// True when nothing was reported.
  bool empty() const { return diagnostics_.empty(); }
  /// Everything reported, in file order (stable for errors at the same place).
  Diagnostics sorted() const;

 private:
  std::string file_;
  Diagnostics diagnostics_;
};

/// 1-based position of `node`; {0, 0} when yaml-cpp has none.
SourcePos position_of(const YAML::Node& node);

/// A value found under a key, with everything needed to report a problem with it.
struct Field {
  DiagnosticSink* sink = nullptr;
  std::string where;  ///< The item: "group 'web', resource 'app'"; empty at top level.
  std::string label;  ///< The key path inside the item: "monitor.timeout".
  YAML::Node value;
  SourcePos key_pos;

  /// Where the value is written; the key's position when the value has none (empty value).
  SourcePos pos() const;
  /// Reports "WHERE: LABEL: message" at the value.
  void error(std::string_view message) const;
  /// Reports "WHERE: message" at `at`.
  void error_at(SourcePos at, std::string_view message) const;
};

/// A YAML mapping checked against the keys it may have. The constructor reports a value that is
/// not a mapping, unknown keys (with the closest allowed key) and keys given twice; lookups
/// return the first occurrence.
class MapReader {
 public:
  /// `where` names the item for messages, `path` prefixes its keys ("failover" gives
  /// "failover.period"); `at` is used when `node` has no position of its own.
  MapReader(DiagnosticSink& sink, std::string where, std::string path, const YAML::Node& node,
            SourcePos at, std::initializer_list<std::string_view> allowed);
  /// The mapping under `field`, with the same item name and the key path extended.
  MapReader(const Field& field, std::initializer_list<std::string_view> allowed);

  /// The field `key`, if present.
  std::optional<Field> get(std::string_view key) const;
  /// The field `key`; reports "missing required key" when it is absent.
  std::optional<Field> require(std::string_view key) const;
  /// True when the node is a mapping (or empty, which counts as an empty mapping).
  bool valid() const { return valid_; }
  /// Where the mapping starts.
  SourcePos pos() const { return pos_; }
  /// Reports "WHERE: message" at `at`.
  void error(SourcePos at, std::string_view message) const;

 private:
  void check_keys(const YAML::Node& node, std::initializer_list<std::string_view> allowed);
  std::string qualified(std::string_view key) const;

  DiagnosticSink* sink_;
  std::string where_;
  std::string path_;
  SourcePos pos_;
  bool valid_ = true;
  std::vector<Field> fields_;
};

/// The scalar text of `node`, if it is a scalar (for peeking at names before full checks).
std::optional<std::string> scalar_of(const YAML::Node& node);

/// A string value.
std::optional<std::string> read_string(const Field& field);
/// A name (see invalid_name_reason).
std::optional<std::string> read_name(const Field& field);
/// An absolute path.
std::optional<std::string> read_path(const Field& field);
/// A whole number in [min, max].
std::optional<std::uint64_t> read_integer(const Field& field, std::uint64_t min, std::uint64_t max);
/// true/false (also yes/no, on/off).
std::optional<bool> read_bool(const Field& field);
/// A duration (parse_duration) in [min, max].
std::optional<Duration> read_duration(const Field& field, Duration min, Duration max);
/// One of `names` (index into it).
std::optional<std::size_t> read_choice(const Field& field, const std::vector<std::string>& names);

/// A string with where it is written.
struct Located {
  std::string text;
  SourcePos pos;
};

/// A list of strings; an empty value is an empty list. Reports repeated entries.
std::vector<Located> read_string_list(const Field& field);
/// A mapping of string to string in file order, keys located; an empty value is an empty map.
std::vector<std::pair<Located, Located>> read_string_map(const Field& field);
/// A list whose elements are read by the caller; an empty value is an empty list.
std::vector<YAML::Node> read_sequence(const Field& field);

/// Reads an enum whose values are listed in `values` and named by `to_string`.
template <typename E>
std::optional<E> read_enum(const Field& field, std::span<const E> values) {
  std::vector<std::string> names;
  for (E v : values) names.emplace_back(to_string(v));
  auto index = read_choice(field, names);
  if (!index) return std::nullopt;
  return values[*index];
}

}  // namespace clusterd
