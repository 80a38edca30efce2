// ledgerd: the example application clusterd moves between nodes. An append-only ledger served
// over TCP; every acknowledged record is on disk. See docs/ledger.md.
#include <fmt/core.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "ledger_store.h"
#include "net.h"
#include "protocol.h"
#include "server.h"

namespace clusterd::ledger {
namespace {

constexpr const char* kUsage =
    "usage: ledgerd --data-dir DIR [--listen ADDR:PORT] [--pidfile PATH]\n"
    "       ledgerd --ping [--listen ADDR:PORT] [--timeout MS]\n"
    "Serves an append-only ledger (DIR/ledger.log) on ADDR:PORT (default 0.0.0.0:7070;\n"
    "IPv6 as [ADDR]:PORT). --ping asks a running server for PONG (exit 0) and exits 1 otherwise.\n";

struct Options {
  std::string data_dir;
  std::string listen = "0.0.0.0:7070";
  std::string pidfile;
  bool ping = false;
  bool help = false;
  Millis timeout_ms = 1000;
};

/// Applies one "--name value" option.
Result<void> apply_option(Options& options, std::string_view name, const std::string& value) {
  if (name == "--data-dir") {
    options.data_dir = value;
  } else if (name == "--listen") {
    options.listen = value;
  } else if (name == "--pidfile") {
    options.pidfile = value;
  } else if (name == "--timeout") {
    auto ms = parse_u64(value);
    if (!ms || *ms == 0 || *ms > 3600000)
      return fail("--timeout needs milliseconds, got '{}'", value);
    options.timeout_ms = static_cast<Millis>(*ms);
  } else {
    return fail("unknown argument '{}'", name);
  }
  return {};
}

Result<Options> parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      options.help = true;
      return options;
    }
    if (arg == "--ping") {
      options.ping = true;
      continue;
    }
    if (!arg.starts_with("--")) return fail("unexpected argument '{}'", arg);
    if (i + 1 >= argc) return fail("{} needs a value", arg);
    if (auto ok = apply_option(options, arg, argv[++i]); !ok) return std::unexpected(ok.error());
  }
  if (!options.ping && options.data_dir.empty()) return fail("--data-dir is required");
  return options;
}

/// Writes our pid atomically (temporary file, then rename) so a reader never sees half of it.
Result<void> write_pidfile(const std::string& path) {
  std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return fail_errno(errno, "cannot write pidfile {}", tmp);
  bool ok = std::fprintf(f, "%d\n", static_cast<int>(::getpid())) > 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) < 0) {
    return fail_errno(errno, "cannot write pidfile {}", path);
  }
  return {};
}

int fatal(const Error& error, int code = 1) {
  fmt::print(stderr, "ledgerd: {}\n", error.to_string());
  return code;
}

int serve(const Options& options, const Endpoint& endpoint) {
  auto store = LedgerStore::open(options.data_dir);
  if (!store) return fatal(store.error());
  const LoadReport& report = store->load_report();
  if (report.truncated_bytes > 0) {
    fmt::print(stderr,
               "ledgerd: warning: {} ended in a torn record ({} bytes, never acknowledged); "
               "truncated it\n",
               store->path(), report.truncated_bytes);
  }
  auto listener = listen_on(endpoint);
  if (!listener) return fatal(listener.error());
  if (!options.pidfile.empty()) {
    if (auto ok = write_pidfile(options.pidfile); !ok) return fatal(ok.error());
  }
  fmt::print(stderr, "ledgerd: listening on {}; {} records of {} clients in {}\n",
             to_string(endpoint), report.records, report.clients, store->path());
  Server server(std::move(*store), std::move(*listener));
  auto result = server.run();
  if (!options.pidfile.empty()) ::unlink(options.pidfile.c_str());
  if (!result) return fatal(result.error());
  fmt::print(stderr, "ledgerd: stopped\n");
  return 0;
}

int main(int argc, char** argv) {
  auto options = parse_options(argc, argv);
  if (!options) {
    fmt::print(stderr, "ledgerd: {}\n{}", options.error().to_string(), kUsage);
    return 2;
  }
  if (options->help) {
    fmt::print("{}", kUsage);
    return 0;
  }
  auto endpoint = parse_endpoint(options->listen);
  if (!endpoint) return fatal(endpoint.error(), 2);
  if (options->ping) {
    auto ok = ping(*endpoint, options->timeout_ms);
    return ok ? 0 : fatal(ok.error());
  }
  // SIGTERM and SIGINT arrive through the server's signalfd, so they must not be delivered.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return serve(*options, *endpoint);
}

}  // namespace
}  // namespace clusterd::ledger

int main(int argc, char** argv) { return clusterd::ledger::main(argc, argv); }
