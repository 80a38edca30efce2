#include "log.h"

#include <sys/uio.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include <systemd/sd-journal.h>

namespace clusterd {
namespace {

LogLevel g_max_level = LogLevel::Info;
bool g_journal = false;

constexpr const char* kLevelNames[] = {"emerg", "alert", "crit", "err",
                                       "warning", "notice", "info", "debug"};

void write_journal(LogLevel level, LogFields fields, std::string_view message) {
  std::vector<std::string> lines;
  lines.reserve(fields.size() + 3);
  lines.push_back(fmt::format("MESSAGE={}", message));
  lines.push_back(fmt::format("PRIORITY={}", static_cast<int>(level)));
  lines.push_back("SYSLOG_IDENTIFIER=clusterd");
  for (const auto& [key, value] : fields) lines.push_back(fmt::format("{}={}", key, value));
  std::vector<iovec> iov;
  iov.reserve(lines.size());
  for (auto& line : lines) iov.push_back({line.data(), line.size()});
  sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
}

void write_stderr(LogLevel level, LogFields fields, std::string_view message) {
  std::string line = fmt::format("clusterd[{}] {}", getpid(), kLevelNames[static_cast<int>(level)]);
  for (const auto& [key, value] : fields) line += fmt::format(" {}={}", key, value);
  line += fmt::format(": {}\n", message);
  ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace

void log_setup(LogLevel max_level, LogTarget target) {
  g_max_level = max_level;
  switch (target) {
    case LogTarget::Journal: g_journal = true; break;
    case LogTarget::Stderr: g_journal = false; break;
    case LogTarget::Auto:
      // Under systemd, stderr is usually the journal already; JOURNAL_STREAM says so.
      g_journal = access("/run/systemd/journal/socket", W_OK) == 0;
      break;
  }
}

bool log_enabled(LogLevel level) { return level <= g_max_level; }

void log_write(LogLevel level, LogFields fields, std::string_view message) {
  if (g_journal) {
    write_journal(level, fields, message);
  } else {
    write_stderr(level, fields, message);
  }
}

bool parse_log_level(std::string_view text, LogLevel* out) {
  for (int i = 3; i <= 7; ++i) {
    if (text == kLevelNames[i]) {
      *out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

}  // namespace clusterd
