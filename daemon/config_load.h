// YAML -> validated Config. Reports every error found, each with file:line:column; a bad file
// never produces a Config (so it can never replace a good one).
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "resource_types.h"

namespace clusterd {

/// One problem in a configuration file.
struct Diagnostic {
  std::string file;
  SourcePos pos;
  std::string message;
  /// "FILE:LINE:COLUMN: message" (position parts left out when unknown).
  std::string to_string() const;
};

using Diagnostics = std::vector<Diagnostic>;

/// Parses and validates `text` (named `file` in messages).
std::expected<ConfigPtr, Diagnostics> parse_config(std::string_view text, const std::string& file,
                                                   const TypeCatalog& catalog);

/// Reads `path` and parses it.
std::expected<ConfigPtr, Diagnostics> load_config(const std::string& path,
                                                  const TypeCatalog& catalog);

/// Parses "100ms", "5s", "15m", "6h", "1d" or a bare number of seconds.
Result<Duration> parse_duration(std::string_view text);

/// Formats a duration the way parse_duration reads it ("100ms", "5s", "15m", "6h").
std::string format_duration(Duration d);

}  // namespace clusterd
