// clusterd: parse the options, set up logging, signals and the event loop, start the daemon,
// run the loop.
#include <build_config.h>

#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <cstdio>
#include <string>
#include <vector>

#include "daemon.h"
#include "daemon_options.h"
#include "handle.h"
#include "log.h"

using namespace clusterd;

namespace {

/// SIGTERM/SIGINT/SIGHUP arrive through sd_event signal sources, SIGCHLD through child sources:
/// both need the signal blocked. (Drivers reset the mask in their children before exec.)
bool block_signals() {
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&mask, s);
  return sigprocmask(SIG_BLOCK, &mask, nullptr) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto options = parse_daemon_options(std::vector<std::string>(argv + 1, argv + argc));
  if (!options) {
    std::fprintf(stderr, "clusterd: %s (see clusterd --help)\n", options.error().message.c_str());
    return 2;
  }
  switch (options->mode) {
    case DaemonMode::Help:
      std::fputs(daemon_help_text().c_str(), stdout);
      return 0;
    case DaemonMode::Version:
      std::printf("clusterd %s\n", CLUSTERD_VERSION);
      return 0;
    case DaemonMode::CheckConfig:
      return check_config(options->check_config_path, options->ocf_root);
    case DaemonMode::Run:
      break;
  }

  log_setup(options->log_level, options->log_target);
  if (!block_signals()) {
    log(LogLevel::Err, {}, "could not block signals: {}", std::strerror(errno));
    return 1;
  }
  // Heartbeats and echoes must go out on time when the machine is busy (docs/heartbeat.md).
  if (setpriority(PRIO_PROCESS, 0, options->nice) < 0)
    log(LogLevel::Warning, {}, "could not set niceness {}: {}; running at {}", options->nice,
        std::strerror(errno), getpriority(PRIO_PROCESS, 0));
  sd_event* raw_loop = nullptr;
  if (int r = sd_event_new(&raw_loop); r < 0) {
    log(LogLevel::Err, {}, "could not create the event loop: {}", std::strerror(-r));
    return 1;
  }
  EventPtr loop(raw_loop);
  auto daemon = Daemon::start(loop.get(), *options);
  if (!daemon) {
    log(LogLevel::Err, {}, "{}", daemon.error().to_string());
    return 1;
  }
  int r = sd_event_loop(loop.get());
  daemon->reset();
  if (r < 0) {
    log(LogLevel::Err, {}, "the event loop failed: {}", std::strerror(-r));
    return 1;
  }
  return r;
}
