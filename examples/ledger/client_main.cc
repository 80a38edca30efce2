// ledger-client: see client.h and docs/ledger.md.
#include <fmt/core.h>
#include <signal.h>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "client.h"

namespace clusterd::ledger {
namespace {

constexpr const char* kUsage =
    "usage: ledger-client SERVER:PORT (--count N | --duration S) [--interval MS]\n"
    "         [--client-id ID] [--timeout MS] [--connect-timeout MS] [--max-backoff MS]\n"
    "         [--warn-after MS] [--give-up S] [--json]\n"
    "Appends numbered records to a ledgerd, reconnecting through failures, then reads them\n"
    "back. Exit 0: nothing acknowledged was lost; 1: something was; 3: gave up; 2: usage.\n";

volatile std::sig_atomic_t stop_requested = 0;

extern "C" void on_stop_signal(int) { stop_requested = 1; }

std::optional<double> parse_seconds(const std::string& text) {
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value) || value <= 0) return std::nullopt;
  return value;
}

Result<Millis> millis_option(std::string_view name, const std::string& text, bool seconds) {
  if (seconds) {
    auto value = parse_seconds(text);
    if (!value) return fail("{} needs a positive number of seconds, got '{}'", name, text);
    return static_cast<Millis>(*value * 1000.0);
  }
  auto value = parse_u64(text);
  if (!value || *value > 86400000) return fail("{} needs milliseconds, got '{}'", name, text);
  return static_cast<Millis>(*value);
}

/// Applies one "--name value" option.
Result<void> apply_option(ClientOptions& o, std::string_view name, const std::string& value) {
  auto set_ms = [&](Millis& field, bool seconds) -> Result<void> {
    auto ms = millis_option(name, value, seconds);
    if (!ms) return std::unexpected(ms.error());
    field = *ms;
    return {};
  };
  if (name == "--count") {
    auto n = parse_u64(value);
    if (!n || *n == 0) return fail("--count needs a positive number, got '{}'", value);
    o.count = *n;
    return {};
  }
  if (name == "--client-id") {
    if (!valid_client_id(value)) return fail("--client-id must be 1-64 characters [A-Za-z0-9._:-]");
    o.client_id = value;
    return {};
  }
  if (name == "--duration") return set_ms(o.duration.emplace(), true);
  if (name == "--interval") return set_ms(o.interval, false);
  if (name == "--timeout") return set_ms(o.timeout, false);
  if (name == "--connect-timeout") return set_ms(o.connect_timeout, false);
  if (name == "--max-backoff") return set_ms(o.backoff_cap, false);
  if (name == "--warn-after") return set_ms(o.warn_after, false);
  if (name == "--give-up") return set_ms(o.give_up, true);
  return fail("unknown option '{}'", name);
}

Result<ClientOptions> parse_options(int argc, char** argv, bool& help) {
  ClientOptions options;
  std::optional<std::string> server;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help = true;
      return options;
    }
    if (arg == "--json") {
      options.json = true;
    } else if (arg.starts_with("--")) {
      if (i + 1 >= argc) return fail("{} needs a value", arg);
      if (auto ok = apply_option(options, arg, argv[++i]); !ok) return std::unexpected(ok.error());
    } else if (!server) {
      server = std::string(arg);
    } else {
      return fail("unexpected argument '{}'", arg);
    }
  }
  if (!server) return fail("the server (SERVER:PORT) is missing");
  auto endpoint = parse_endpoint(*server);
  if (!endpoint) return std::unexpected(endpoint.error());
  options.server = *endpoint;
  if (!options.count && !options.duration) return fail("give --count N or --duration S");
  if (options.timeout == 0) return fail("--timeout must be at least 1 ms");
  if (options.connect_timeout == 0) return fail("--connect-timeout must be at least 1 ms");
  if (options.backoff_cap < options.backoff_initial)
    return fail("--max-backoff must be at least {} ms", options.backoff_initial);
  return options;
}

void install_stop_handler() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  // The first signal ends the write phase (the read-back and report still happen); a second
  // one kills as usual. No SA_RESTART: it should cut a pause short.
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char** argv) {
  bool help = false;
  auto options = parse_options(argc, argv, help);
  if (help) {
    fmt::print("{}", kUsage);
    return 0;
  }
  if (!options) {
    fmt::print(stderr, "ledger-client: {}\n{}", options.error().to_string(), kUsage);
    return 2;
  }
  install_stop_handler();
  LedgerClient client(*options, &stop_requested);
  ClientReport report = client.run();
  fmt::print("{}", to_human(report, options->server));
  if (options->json) fmt::print("{}\n", to_json(report));
  return exit_code(report);
}

}  // namespace
}  // namespace clusterd::ledger

int main(int argc, char** argv) { return clusterd::ledger::main(argc, argv); }
