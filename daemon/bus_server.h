// A peer-to-peer D-Bus server on a UNIX socket (no bus daemon): every accepted connection gets
// its own sd_bus in server mode, attached to the daemon's event loop. Peers that hang up are
// dropped; a peer that stops reading never blocks the daemon (sd-bus queues, and a peer whose
// queue overflows is dropped).
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <systemd/sd-id128.h>

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>

#include "error.h"
#include "handle.h"

namespace clusterd {

/// Listens on a UNIX socket and serves D-Bus peer-to-peer.
class BusServer {
 public:
  /// Registers the objects of the API on a new peer connection; returns a negative errno on
  /// failure.
  using PeerSetup = std::function<int(sd_bus* bus)>;

  /// Creates the socket at `path` (directory 0755, socket 0666, a stale socket replaced; an
  /// error when another server answers there) and starts accepting on `loop`.
  static Result<std::unique_ptr<BusServer>> listen(sd_event* loop, const std::string& path,
                                                   PeerSetup setup);
  ~BusServer();
  BusServer(const BusServer&) = delete;
  BusServer& operator=(const BusServer&) = delete;

  /// Calls `emit` for every connected peer; a peer for which it fails is dropped.
  void broadcast(const std::function<int(sd_bus* bus)>& emit);
  /// Number of live peer connections.
  std::size_t peer_count() const;
  /// The socket path.
  const std::string& path() const { return path_; }

 private:
  /// Closing a peer never flushes: flushing waits for a client that may never read.
  using PeerBusPtr = std::unique_ptr<sd_bus, Free<sd_bus_close_unref>>;
  struct Peer {
    PeerBusPtr bus;
    std::uint64_t number = 0;
    bool dead = false;
  };

  BusServer(sd_event* loop, std::string path, Fd listen_fd, PeerSetup setup);
  Result<void> start_accepting();
  static int on_accept(sd_event_source* source, int fd, uint32_t revents, void* userdata) noexcept;
  static int on_disconnect(sd_bus_message* m, void* userdata, sd_bus_error* error) noexcept;
  static int on_prune(sd_event_source* source, void* userdata) noexcept;
  Result<void> add_peer(Fd fd);
  void mark_dead(sd_bus* bus);
  void prune();

  sd_event* loop_;
  std::string path_;
  Fd listen_fd_;
  PeerSetup setup_;
  sd_id128_t server_id_{};
  EventSourcePtr accept_source_;
  EventSourcePtr prune_source_;
  std::list<Peer> peers_;
  std::uint64_t next_peer_number_ = 1;
};

}  // namespace clusterd
