// The daemon's wiring: configuration, resource manager, D-Bus API, signals and sd_notify on one
// sd-event loop. main.cc creates it and runs the loop.
#pragma once

#include <systemd/sd-event.h>

#include <memory>
#include <string>
#include <string_view>

#include "bus_manager.h"
#include "bus_server.h"
#include "cluster_service.h"
#include "config.h"
#include "daemon_options.h"
#include "error.h"
#include "event_history.h"
#include "handle.h"
#include "resource_manager.h"
#include "resource_types.h"

namespace clusterd {

/// `clusterd --check-config FILE`: prints every diagnostic to stderr; 0 when valid, 1 when not.
int check_config(const std::string& path, const std::string& ocf_root);

/// This machine's hostname (the default node name).
std::string local_hostname();

/// One running clusterd. Single-threaded: everything happens on the event loop.
class Daemon final : public ApiBackend {
 public:
  /// Loads the configuration, starts the resource manager and the API, installs the signal
  /// handlers, tells systemd it is ready and brings the autostart groups online.
  static Result<std::unique_ptr<Daemon>> start(sd_event* loop, const DaemonOptions& options);
  ~Daemon() override;
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  /// Begins the orderly shutdown (what SIGTERM does); the loop exits with 0 when it is done.
  void stop(const std::string& reason);
  /// Re-reads the configuration file (what SIGHUP does).
  Result<ApplyResult> reload(const std::string& reason) override;

  // ApiBackend
  ConfigPtr config() const override { return config_; }
  const std::string& node_name() const override { return node_; }
  std::vector<GroupStatus> group_status() const override;
  const EventHistory& history() const override { return history_; }
  bool stopping() const override { return stopping_; }
  Result<void> online_group(const std::string& group, const std::string& reason) override;
  Result<void> offline_group(const std::string& group, const std::string& reason) override;
  Result<void> online_resource(const std::string& group, const std::string& resource,
                               const std::string& reason) override;
  Result<void> offline_resource(const std::string& group, const std::string& resource,
                                const std::string& reason) override;
  Result<ApplyResult> apply(std::string_view text, const std::string& file,
                            const std::string& reason) override;
  std::vector<NodeView> nodes() const override;
  std::string cluster_json() const override;
  std::string timelines_json() const override;
  Result<std::string> cluster_command(const ClusterCommand& command,
                                      const std::string& reason) override;

 private:
  Daemon(sd_event* loop, const DaemonOptions& options);
  Result<void> load_initial_config();
  Result<void> prepare_state_dir();
  void start_manager();
  Result<void> start_api();
  Result<void> watch_signals();
  Result<void> add_change_flush();
  void autostart();
  Result<void> start_cluster();
  Result<void> apply_committed_config(const std::string& yaml);
  Result<std::string> run_command(const ClusterCommand& command);
  Result<ApplyResult> take_config(std::expected<ConfigPtr, Diagnostics> loaded,
                                  const std::string& reason, std::string_view save_text);
  Diagnostics check_new_config(const Config& config) const;
  Result<void> save_config_text(std::string_view text) const;
  void record(const std::string& kind, const std::string& reason);
  void on_change();
  void flush_changes();
  static int on_signal(sd_event_source* source, const signalfd_siginfo* info,
                       void* userdata) noexcept;
  static int on_flush(sd_event_source* source, void* userdata) noexcept;
  /// Once the loop is idle, gives the heap the YAML parser left behind back to the kernel.
  void schedule_trim();

  sd_event* loop_;
  DaemonOptions options_;
  std::string node_;
  SystemTypeCatalog catalog_;
  ConfigPtr config_;
  EventHistory history_;
  std::unique_ptr<ResourceManager> manager_;
  BusManager bus_manager_{*this};
  std::unique_ptr<BusServer> server_;
  std::unique_ptr<ClusterService> cluster_;  ///< Only with more than one node.
  EventSourcePtr sigterm_, sigint_, sighup_, flush_, trim_;
  bool stopping_ = false;
};

}  // namespace clusterd
