// Structured logging: journal fields when the journal is there, "LEVEL key=value: message" on
// stderr otherwise. Log or return, not both (style habit 5).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/core.h>

namespace clusterd {

/// syslog priorities.
enum class LogLevel { Err = 3, Warning = 4, Notice = 5, Info = 6, Debug = 7 };

/// Journal fields for one message, e.g. {{"GROUP", "web"}, {"RESOURCE", "ip"}}.
using LogFields = std::initializer_list<std::pair<std::string_view, std::string_view>>;

/// Where messages go. Auto = the journal if its socket exists, else stderr.
enum class LogTarget { Auto, Journal, Stderr };

/// Sets the most verbose level written (default Info) and the target.
void log_setup(LogLevel max_level, LogTarget target);
/// True when a message at `level` would be written.
bool log_enabled(LogLevel level);
/// Writes one message with its fields.
void log_write(LogLevel level, LogFields fields, std::string_view message);
/// Parses "err", "warning", "notice", "info", "debug".
bool parse_log_level(std::string_view text, LogLevel* out);

/// Formats and writes one message if its level is enabled.
template <typename... Args>
void log(LogLevel level, LogFields fields, fmt::format_string<Args...> format, Args&&... args) {
  if (!log_enabled(level)) return;
  log_write(level, fields, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace clusterd
