// Heartbeats on the wire: one multicast UDP socket per heartbeat network on the sd-event loop, a
// CLOCK_BOOTTIME timer that sends a frame on every network each interval, and the receiving side
// that authenticates frames and feeds the failure detector. See docs/heartbeat.md.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <systemd/sd-event.h>

#include "config.h"
#include "error.h"
#include "failure_detector.h"
#include "handle.h"
#include "heartbeat.h"
#include "inet_address.h"

namespace clusterd {

/// A network this node uses for cluster traffic (role cluster or all), resolved on this host.
struct ClusterNetwork {
  std::size_t index = 0;  ///< Position in Config.networks: the network's number on the wire.
  std::string name;
  InetAddress local;      ///< This node's address on it (NodeConfig.addresses).
  std::string ifname;     ///< The interface holding that address.
  int ifindex = 0;
  InetAddress group;      ///< Heartbeat multicast group (configured, or the default).
  std::uint16_t port = 0; ///< Heartbeat port; the peer transport uses port + 1.
};

/// The default heartbeat group of a cluster: IPv4 239.192.H.L (RFC 2365 organization-local
/// scope), IPv6 ff12::636c:H:L (transient, link-local scope), from the cluster id's bits.
InetAddress default_multicast_group(int family, std::uint32_t cluster_id);

/// The cluster networks of `self`, in config order, with their interfaces looked up in the
/// current network namespace. Client-only networks and networks where the node has no address
/// are left out; an address on no local interface or a bad multicast group is an error.
Result<std::vector<ClusterNetwork>> cluster_networks(const Config& config,
                                                     const NodeConfig& self);

/// A socket address for `address`, `port` and (IPv6 link-local) `scope`; `length` gets its size.
sockaddr_storage make_sockaddr(const InetAddress& address, std::uint16_t port, int scope,
                               socklen_t* length);

/// Opt-in real-time scheduling for the daemon (SCHED_FIFO at `priority` 1..99, reset on fork so
/// agents do not inherit it): heartbeats keep their period when every core is busy. Not a
/// default: a busy loop at real-time priority can starve the rest of the machine.
Result<void> enable_realtime_scheduling(int priority);

/// One heartbeat network's socket: bound to the group and port, member of the group on the
/// network's interface only, multicast loopback off, TTL/hop limit 1.
class HeartbeatSocket {
 public:
  /// Called for every datagram read; `oversized` when it did not fit the receive buffer.
  using Handler = std::function<void(std::span<const std::uint8_t> bytes, bool oversized)>;

  /// Opens the socket and watches it on `loop` at `priority`.
  static Result<std::unique_ptr<HeartbeatSocket>> open(sd_event* loop,
                                                       const ClusterNetwork& network,
                                                       int64_t priority, Handler handler);
  HeartbeatSocket(const HeartbeatSocket&) = delete;
  HeartbeatSocket& operator=(const HeartbeatSocket&) = delete;

  /// Sends one datagram to the group; 0 or the errno of the failure. No allocation.
  int send(std::span<const std::uint8_t> bytes);
  /// Reads every queued datagram now (bounded), calling the handler for each.
  void drain();
  /// The network served.
  const ClusterNetwork& network() const { return network_; }

 private:
  explicit HeartbeatSocket(const ClusterNetwork& network) : network_(network) {}
  Result<void> setup();
  Result<void> setup_v4();
  Result<void> setup_v6();
  static int on_io(sd_event_source* s, int fd, uint32_t revents, void* self) noexcept;

  ClusterNetwork network_;
  Fd fd_;
  EventSourcePtr io_;
  Handler handler_;
  sockaddr_storage destination_{};
  socklen_t destination_length_ = 0;
  std::array<std::uint8_t, 2048> buffer_{};
};

/// What this node says about itself in its heartbeats besides liveness.
struct HeartbeatStatus {
  std::uint64_t term = 0;
  std::uint8_t coordinator = 0;
  std::uint64_t config_version = 0;
  std::uint8_t flags = 0;
};

/// Everything a HeartbeatService needs; from_config() builds it from the configuration.
struct HeartbeatOptions {
  std::uint8_t self = 0;
  std::uint32_t cluster_id = 0;
  std::vector<std::uint8_t> nodes;  ///< Every node id of the configuration, self included.
  std::size_t network_count = 0;    ///< Config.networks.size() (wire indices are below it).
  std::vector<ClusterNetwork> networks;
  DetectorTiming timing;
  std::uint64_t incarnation = 0;
  SubKey key{};

  /// Options for `self_name` from `config`, with the heartbeat subkey and this start's
  /// incarnation. Interfaces are resolved in the current network namespace.
  static Result<HeartbeatOptions> from_config(const Config& config, const std::string& self_name,
                                              const SubKey& key, std::uint64_t incarnation);
};

/// Sends heartbeats on every cluster network and runs the failure detector on what arrives.
///
/// Timing: the send timer is a CLOCK_BOOTTIME sd-event timer with 1 us accuracy at high
/// priority; a timer that fires late sends at once and re-arms from now (no burst to catch up).
/// Before the detector declares a link down, every socket is drained, so a frame queued while
/// the loop was busy counts.
class HeartbeatService {
 public:
  /// Called for every detector event, in order.
  using EventHandler = std::function<void(const DetectorEvent&)>;

  /// Opens the sockets and starts sending on `loop`.
  static Result<std::unique_ptr<HeartbeatService>> create(sd_event* loop,
                                                          HeartbeatOptions options,
                                                          EventHandler on_event);
  HeartbeatService(const HeartbeatService&) = delete;
  HeartbeatService& operator=(const HeartbeatService&) = delete;

  /// Sets what the next frames say about term, coordinator, config version and flags.
  void set_status(const HeartbeatStatus& status) { status_ = status; }
  /// Sends a frame with the leaving flag on every network now and stops the send timer: peers
  /// drop this node at once instead of after the timeout (clean shutdown).
  void leave();
  /// Sends a frame on every network now, besides the timer's (e.g. when what this node hears
  /// changed, so peers learn it without waiting for the next interval).
  void send_now() { send_all(0); }
  /// Called after each frame goes out with its sequence and the time (the quorum guard's input).
  void set_sent_listener(std::function<void(std::uint64_t sequence, MonoTime at)> listener) {
    sent_listener_ = std::move(listener);
  }

  /// Called after every accepted frame, once the detector has taken it in (the cluster service
  /// echoes a new sequence at once: the quorum guard's confirmations stay one interval fresh).
  void set_frame_listener(std::function<void(const HeartbeatFrame&)> listener) {
    frame_listener_ = std::move(listener);
  }

  /// The failure detector's current view.
  const FailureDetector& detector() const { return detector_; }
  /// Counters of network `index` (wire index; zero for networks without a socket).
  const HeartbeatCounters& counters(std::size_t index) const { return verifier_.counters(index); }
  /// The networks heartbeats run on.
  const std::vector<ClusterNetwork>& networks() const { return options_.networks; }
  /// Frames sent per network so far (the sequence of the last one).
  std::uint64_t sequence() const { return sequence_; }

 private:
  HeartbeatService(HeartbeatOptions options, EventHandler on_event);
  Result<void> open_sockets(sd_event* loop);
  Result<void> start_timers(sd_event* loop);
  void send_all(std::uint8_t extra_flags);
  void on_datagram(std::size_t network, std::span<const std::uint8_t> bytes, bool oversized);
  void rearm_expiry();
  void emit();
  static int on_send_timer(sd_event_source* s, uint64_t usec, void* self) noexcept;
  static int on_expiry_timer(sd_event_source* s, uint64_t usec, void* self) noexcept;

  sd_event* loop_ = nullptr;
  HeartbeatOptions options_;
  EventHandler on_event_;
  std::function<void(std::uint64_t, MonoTime)> sent_listener_;
  std::function<void(const HeartbeatFrame&)> frame_listener_;
  HeartbeatVerifier verifier_;
  FailureDetector detector_;
  HeartbeatStatus status_;
  std::uint64_t sequence_ = 0;
  std::vector<std::unique_ptr<HeartbeatSocket>> sockets_;
  std::vector<int> last_send_error_;  ///< Per socket: to log a failure once, not every tick.
  EventSourcePtr send_timer_;
  EventSourcePtr expiry_timer_;
  std::vector<DetectorEvent> events_;  ///< Reused: no allocation per frame.
  HeartbeatBytes frame_{};
};

}  // namespace clusterd
