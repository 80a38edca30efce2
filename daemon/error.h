// Errors are values: every fallible function returns Result<T>.
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

#include <fmt/core.h>

namespace clusterd {

/// A failure: an errno value (0 when none applies) and one sentence for the administrator.
struct Error {
  int errno_value = 0;
  std::string message;

  /// "message: strerror(errno)" when errno is set, else the message alone.
  std::string to_string() const {
    if (errno_value == 0) return message;
    return message + ": " + std::strerror(errno_value);
  }
};

/// The return type of every fallible function.
template <typename T>
using Result = std::expected<T, Error>;

/// Builds an unexpected Error from a format string.
template <typename... Args>
std::unexpected<Error> fail(fmt::format_string<Args...> format, Args&&... args) {
  return std::unexpected(Error{0, fmt::format(format, std::forward<Args>(args)...)});
}

/// Builds an unexpected Error carrying errno `err` (positive).
template <typename... Args>
std::unexpected<Error> fail_errno(int err, fmt::format_string<Args...> format, Args&&... args) {
  return std::unexpected(Error{err < 0 ? -err : err, fmt::format(format, std::forward<Args>(args)...)});
}

}  // namespace clusterd
