// The org.clusterd1.Manager object at /org/clusterd1: a thin adapter that turns D-Bus calls into
// calls on an ApiBackend (the daemon) and answers with the structs of bus_view.h. Mutating calls
// are allowed for root and members of cluster.admin_group only (bus_auth.h).
#pragma once

#include <systemd/sd-bus.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bus_server.h"
#include "bus_view.h"
#include "bus_wire.h"
#include "cluster_state.h"
#include "config.h"
#include "error.h"
#include "event_history.h"
#include "resource_manager.h"

namespace clusterd {

/// What the API needs from the daemon.
class ApiBackend {
 public:
  virtual ~ApiBackend() = default;
  /// The running configuration (never null once the daemon runs).
  virtual ConfigPtr config() const = 0;
  /// This node's name.
  virtual const std::string& node_name() const = 0;
  /// Every group with its resources.
  virtual std::vector<GroupStatus> group_status() const = 0;
  /// The event history.
  virtual const EventHistory& history() const = 0;
  /// True once the daemon is taking its groups offline to exit.
  virtual bool stopping() const = 0;

  virtual Result<void> online_group(const std::string& group, const std::string& reason) = 0;
  virtual Result<void> offline_group(const std::string& group, const std::string& reason) = 0;
  virtual Result<void> online_resource(const std::string& group, const std::string& resource,
                                       const std::string& reason) = 0;
  virtual Result<void> offline_resource(const std::string& group, const std::string& resource,
                                        const std::string& reason) = 0;
  /// Validates `text` (named `file` in diagnostics); if valid, saves and applies it.
  virtual Result<ApplyResult> apply(std::string_view text, const std::string& file,
                                    const std::string& reason) = 0;
  /// Re-reads the configuration file.
  virtual Result<ApplyResult> reload(const std::string& reason) = 0;
  /// Every node with its membership state (one node: this one up, the others unknown).
  virtual std::vector<NodeView> nodes() const { return node_views(*config(), node_name()); }
  /// Membership and consensus as JSON (term, coordinator, quorum, nodes, counters).
  virtual std::string cluster_json() const;
  /// The failover timelines as a JSON array.
  virtual std::string timelines_json() const { return "[]"; }
  /// A cluster command (move, pause, drain, resume, maintenance) for the coordinator; the
  /// answer sentence.
  virtual Result<std::string> cluster_command(const ClusterCommand& command,
                                              const std::string& reason);
};

/// Serves org.clusterd1.Manager for `backend` on every connection of a BusServer.
class BusManager {
 public:
  explicit BusManager(ApiBackend& backend) : backend_(backend) {}

  /// Registers the object on a new peer connection (a BusServer::PeerSetup).
  int add_to(sd_bus* bus);
  /// Emits the Changed signal on `bus` (use with BusServer::broadcast).
  int emit_changed(sd_bus* bus) const;

  /// The vtable (public for the method handlers).
  static const sd_bus_vtable kVtable[];

  ApiBackend& backend() { return backend_; }

 private:
  ApiBackend& backend_;
};

/// The StatusView of `backend`.
StatusView status_view(const ApiBackend& backend);

}  // namespace clusterd
