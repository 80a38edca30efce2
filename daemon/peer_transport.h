// The peer transport: authenticated unicast UDP datagrams between cluster nodes over the cluster
// networks, with replay protection per sender incarnation, fire-and-forget messages (for Raft,
// which retransmits itself) and a small request/response layer (ids, retransmission with
// backoff, dedupe at the receiver, a deadline) for commands that need an answer.
// See docs/heartbeat.md ("Peer transport").
#pragma once

#include <bitset>
#include <chrono>
#include <cstdint>
#include <deque>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include <systemd/sd-event.h>

#include "authkey.h"
#include "config.h"
#include "error.h"
#include "handle.h"
#include "heartbeat_socket.h"
#include "inet_address.h"

namespace clusterd {

/// Bytes of a payload.
using PeerBytes = std::vector<std::uint8_t>;

/// Largest datagram sent or accepted (header, payload and MAC): below the 64 KiB UDP limit with
/// room for IP headers. Bigger payloads (snapshots) need a stream; later.
inline constexpr std::size_t kPeerMaxDatagram = 60 * 1024;
/// Header size: magic 4, version 1, kind 1, from 1, to 1, cluster 4, incarnation 8,
/// sequence 8, type 2, reserved 2, request id 8, payload length 4.
inline constexpr std::size_t kPeerHeaderSize = 44;
/// HMAC-SHA256 tag size.
inline constexpr std::size_t kPeerMacSize = 32;
/// Largest payload of one message.
inline constexpr std::size_t kPeerMaxPayload = kPeerMaxDatagram - kPeerHeaderSize - kPeerMacSize;
/// "CLPT".
inline constexpr std::uint32_t kPeerMagic = 0x434c5054;
/// The wire version this code speaks.
inline constexpr std::uint8_t kPeerVersion = 1;
/// How far back (in sequence numbers) a reordered datagram is still accepted.
inline constexpr std::uint64_t kPeerReplayWindow = 256;

/// What a datagram is.
enum class PeerKind : std::uint8_t {
  Oneway,    ///< Fire-and-forget message.
  Request,   ///< Wants a Response with the same request id.
  Response,  ///< The answer to a Request.
  Refused,   ///< The receiver has no handler for the request's type.
};
inline constexpr int kPeerKindCount = 4;
/// "oneway", "request", "response", "refused".
const char* to_string(PeerKind kind);

/// The authenticated header of a datagram.
struct PeerHeader {
  PeerKind kind = PeerKind::Oneway;
  std::uint8_t from = 0;
  std::uint8_t to = 0;
  std::uint32_t cluster_id = 0;
  std::uint64_t incarnation = 0;  ///< Sender's.
  std::uint64_t sequence = 0;     ///< Per datagram of the sender's incarnation, from 1.
  std::uint16_t type = 0;         ///< Application message type.
  std::uint64_t request_id = 0;   ///< Request/Response/Refused; 0 for Oneway.
  friend bool operator==(const PeerHeader&, const PeerHeader&) = default;
};

/// A decoded datagram; `payload` points into the received bytes.
struct PeerDatagram {
  PeerHeader header;
  std::span<const std::uint8_t> payload;
};

/// Why a datagram was dropped (or a request failed to find its match).
enum class PeerDrop {
  Truncated,       ///< Shorter than its header says, or over the size limit.
  BadMagic,
  BadVersion,
  ForeignCluster,
  BadAuth,         ///< The MAC does not verify.
  BadNode,         ///< Unknown sender.
  NotForUs,        ///< Addressed to another node.
  OldIncarnation,  ///< From an incarnation older than one already heard.
  Replay,          ///< Sequence already seen or older than the window (also duplicate copies).
  LateResponse,    ///< A response to no pending request (given up, or answered already).
  NoHandler,       ///< A oneway message of a type nobody handles.
};
inline constexpr int kPeerDropCount = 11;
/// "truncated", "bad-magic", ...
const char* to_string(PeerDrop drop);

/// Encodes header + payload + MAC into `out` (resized; reuse it to avoid allocation).
/// The payload must not exceed kPeerMaxPayload.
void encode_peer_datagram(const PeerHeader& header, std::span<const std::uint8_t> payload,
                          const SubKey& key, PeerBytes& out);

/// Parses and authenticates a datagram of cluster `cluster_id`.
std::expected<PeerDatagram, PeerDrop> decode_peer_datagram(std::span<const std::uint8_t> in,
                                                           const SubKey& key,
                                                           std::uint32_t cluster_id);

/// Anti-replay state for one sender (RFC 4303 3.4.3 style sliding window), reset when the
/// sender's incarnation grows.
class ReplayWindow {
 public:
  /// Accepts (and records) `sequence` of `incarnation`, or says why not.
  std::optional<PeerDrop> check(std::uint64_t incarnation, std::uint64_t sequence);
  /// The sender's incarnation as last accepted (0 before any).
  std::uint64_t incarnation() const { return incarnation_; }

 private:
  std::uint64_t incarnation_ = 0;
  std::uint64_t highest_ = 0;
  std::bitset<kPeerReplayWindow> seen_;  ///< Bit i: highest_ - i was accepted.
};

/// Counters for clusterctl (later).
struct PeerCounters {
  std::uint64_t sent = 0;
  std::uint64_t send_errors = 0;
  std::uint64_t received = 0;
  std::uint64_t accepted = 0;
  std::uint64_t retransmits = 0;          ///< Request datagrams sent again.
  std::uint64_t requests_failed = 0;      ///< Requests given up at their deadline.
  std::uint64_t duplicate_requests = 0;   ///< Retransmitted requests answered from the cache.
  std::array<std::uint64_t, kPeerDropCount> dropped{};
  /// Count for one reason.
  std::uint64_t drops(PeerDrop reason) const { return dropped[static_cast<std::size_t>(reason)]; }
};

/// Retransmission of requests: first after `initial`, doubling up to `max`, until the deadline.
struct RetryPolicy {
  Duration initial = Duration(50);
  Duration max = Duration(1000);
};

/// A peer's address on one network.
struct PeerAddress {
  std::size_t network = 0;  ///< Wire index (Config.networks position).
  InetAddress address;
};

/// Everything a PeerTransport needs; from_config() builds it from the configuration.
struct PeerTransportOptions {
  std::uint8_t self = 0;
  std::uint32_t cluster_id = 0;
  std::uint64_t incarnation = 0;
  SubKey key{};
  std::vector<ClusterNetwork> networks;  ///< Ours; the transport binds local:port+1 on each.
  std::map<std::uint8_t, std::vector<PeerAddress>> peers;  ///< In network order.
  RetryPolicy retry;

  /// Options for `self_name`, with the transport subkey and this start's incarnation.
  static Result<PeerTransportOptions> from_config(const Config& config,
                                                  const std::string& self_name,
                                                  const SubKey& key, std::uint64_t incarnation);
};

/// A received message, valid during the handler call.
struct PeerMessage {
  std::uint8_t from = 0;
  std::uint64_t incarnation = 0;  ///< Sender's.
  std::uint16_t type = 0;
  std::size_t network = 0;        ///< Where it arrived.
  std::span<const std::uint8_t> payload;
};

class PeerTransport;

/// The way to answer one request, now or later. Copyable; harmless after the transport is gone.
class PeerReply {
 public:
  /// Sends the response (the first call only; later calls are ignored).
  void operator()(std::span<const std::uint8_t> payload) const;

 private:
  friend class PeerTransport;
  std::weak_ptr<PeerTransport*> transport_;
  std::uint8_t to_ = 0;
  std::uint64_t incarnation_ = 0;
  std::uint64_t request_id_ = 0;
  std::uint16_t type_ = 0;
  std::size_t network_ = 0;
};

/// Authenticated node-to-node datagrams on the sd-event loop.
class PeerTransport {
 public:
  using MessageHandler = std::function<void(const PeerMessage&)>;
  using RequestHandler = std::function<void(const PeerMessage&, PeerReply reply)>;
  using ResponseCallback = std::function<void(Result<PeerBytes>)>;
  /// True when the link to `node` on network `index` is up (from the failure detector).
  using LinkState = std::function<bool(std::uint8_t node, std::size_t index)>;

  /// Binds one socket per network and watches them on `loop`.
  static Result<std::unique_ptr<PeerTransport>> create(sd_event* loop,
                                                       PeerTransportOptions options);
  ~PeerTransport();
  PeerTransport(const PeerTransport&) = delete;
  PeerTransport& operator=(const PeerTransport&) = delete;

  /// Fire-and-forget: over the first network whose link to `to` is up, or over all of them
  /// when none is known up. An error only when nothing could be handed to the kernel.
  Result<void> send(std::uint8_t to, std::uint16_t type, std::span<const std::uint8_t> payload);
  /// Sends a request and calls `callback` once: with the response, or with an error when `to`
  /// refuses the type or no answer came within `timeout`. Retransmissions go over every network.
  void request(std::uint8_t to, std::uint16_t type, std::span<const std::uint8_t> payload,
               Duration timeout, ResponseCallback callback);
  /// Handles oneway messages of `type` (replaces a previous handler).
  void on_message(std::uint16_t type, MessageHandler handler);
  /// Handles requests of `type`; the handler answers through its PeerReply, now or later.
  void on_request(std::uint16_t type, RequestHandler handler);
  /// Where the failure detector says each peer is reachable (optional).
  void set_link_state(LinkState link_state) { link_state_ = std::move(link_state); }
  /// Reads every datagram already queued on every network now, handling each as it arrives.
  /// A timer that judges peers by what they sent calls this first: after a stall its
  /// callback may run before the loop has read what is waiting.
  void drain_all();
  /// Counters.
  const PeerCounters& counters() const { return counters_; }
  /// Requests waiting for an answer.
  std::size_t pending_requests() const { return pending_.size(); }

 private:
  friend class PeerReply;
  struct Socket {
    ClusterNetwork network;
    Fd fd;
    EventSourcePtr io;
    PeerTransport* owner = nullptr;
  };
  struct Pending {
    PeerTransport* owner = nullptr;
    std::uint64_t id = 0;
    std::uint8_t to = 0;
    std::uint16_t type = 0;
    PeerBytes payload;
    std::uint64_t deadline = 0;  ///< CLOCK_BOOTTIME usec.
    Duration timeout{};
    Duration rto{};
    ResponseCallback callback;
    EventSourcePtr timer;
  };
  struct Served {
    bool answered = false;
    PeerKind kind = PeerKind::Response;
    std::uint16_t type = 0;
    PeerBytes response;
    std::uint64_t expires = 0;  ///< CLOCK_BOOTTIME usec.
  };
  using ServedKey = std::tuple<std::uint8_t, std::uint64_t, std::uint64_t>;  // from, inc, id

  explicit PeerTransport(PeerTransportOptions options);
  Result<void> open_socket(sd_event* loop, const ClusterNetwork& network);
  int transmit(const PeerHeader& header, std::span<const std::uint8_t> payload,
               std::size_t network);
  bool transmit_routed(PeerKind kind, std::uint8_t to, std::uint16_t type,
                       std::uint64_t request_id, std::span<const std::uint8_t> payload,
                       bool all_networks);
  const PeerAddress* address_of(std::uint8_t node, std::size_t network) const;
  void drain(Socket& socket);
  void receive(std::span<const std::uint8_t> bytes, std::size_t network);
  void dispatch(const PeerDatagram& d, std::size_t network);
  void handle_request(const PeerDatagram& d, std::size_t network);
  void handle_response(const PeerDatagram& d);
  void answer(const PeerReply& reply, PeerKind kind, std::span<const std::uint8_t> payload);
  void expire_served(std::uint64_t now);
  void drop(PeerDrop reason) { ++counters_.dropped[static_cast<std::size_t>(reason)]; }
  std::uint64_t now() const;
  static int on_io(sd_event_source* s, int fd, uint32_t revents, void* socket) noexcept;
  static int on_retry(sd_event_source* s, uint64_t usec, void* pending) noexcept;

  sd_event* loop_ = nullptr;
  PeerTransportOptions options_;
  std::shared_ptr<PeerTransport*> alive_;
  std::vector<std::unique_ptr<Socket>> sockets_;
  std::map<std::uint8_t, ReplayWindow> windows_;
  std::map<std::uint16_t, MessageHandler> message_handlers_;
  std::map<std::uint16_t, RequestHandler> request_handlers_;
  std::map<std::uint64_t, Pending> pending_;
  std::map<ServedKey, Served> served_;
  std::deque<std::pair<std::uint64_t, ServedKey>> served_order_;  ///< (expires, key), FIFO.
  LinkState link_state_;
  PeerCounters counters_;
  std::uint64_t sequence_ = 0;
  std::uint64_t next_request_id_ = 0;
  PeerBytes send_buffer_;
  std::vector<std::uint8_t> receive_buffer_;
};

}  // namespace clusterd
