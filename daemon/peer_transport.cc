#include "peer_transport.h"

#include <netinet/in.h>

#include <array>
#include <cstring>

#include <sodium.h>

#include "byte_order.h"

namespace clusterd {
namespace {

constexpr std::array<const char*, kPeerKindCount> kKindNames = {"oneway", "request", "response",
                                                                "refused"};
constexpr std::array<const char*, kPeerDropCount> kDropNames = {
    "truncated", "bad-magic",       "bad-version", "foreign-cluster", "bad-auth",    "bad-node",
    "not-for-us", "old-incarnation", "replay",     "late-response",   "no-handler"};

// Answers are kept this long for retransmitted requests: longer than any request's deadline.
constexpr std::uint64_t kServedTtlUsec = 60'000'000;
// And at most this many, so a flood of distinct requests cannot grow memory without bound.
constexpr std::size_t kServedMax = 4096;
constexpr int kMaxReadsPerWakeup = 64;
constexpr uint64_t kTimerAccuracyUsec = 1000;

// Byte offsets (big-endian integers).
constexpr std::size_t kOffMagic = 0, kOffVersion = 4, kOffKind = 5, kOffFrom = 6, kOffTo = 7,
                      kOffCluster = 8, kOffIncarnation = 12, kOffSequence = 20, kOffType = 28,
                      kOffRequest = 32, kOffLength = 40;
static_assert(kOffLength + 4 == kPeerHeaderSize);
static_assert(crypto_auth_hmacsha256_BYTES == kPeerMacSize);

std::uint64_t to_usec(Duration d) { return static_cast<std::uint64_t>(d.count()) * 1000; }

bool link_local(const InetAddress& a) {
  return a.family == AF_INET6 && a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0x80;
}

PeerHeader parse_header(const std::uint8_t* in) {
  PeerHeader h;
  h.kind = static_cast<PeerKind>(in[kOffKind]);
  h.from = in[kOffFrom];
  h.to = in[kOffTo];
  h.cluster_id = static_cast<std::uint32_t>(get_be(in + kOffCluster, 4));
  h.incarnation = get_be(in + kOffIncarnation, 8);
  h.sequence = get_be(in + kOffSequence, 8);
  h.type = static_cast<std::uint16_t>(get_be(in + kOffType, 2));
  h.request_id = get_be(in + kOffRequest, 8);
  return h;
}

}  // namespace

const char* to_string(PeerKind kind) { return kKindNames[static_cast<std::size_t>(kind)]; }
const char* to_string(PeerDrop drop) { return kDropNames[static_cast<std::size_t>(drop)]; }

// --- wire format -------------------------------------------------------------------------------

void encode_peer_datagram(const PeerHeader& h, std::span<const std::uint8_t> payload,
                          const SubKey& key, PeerBytes& out) {
  out.resize(kPeerHeaderSize + payload.size() + kPeerMacSize);
  std::uint8_t* p = out.data();
  put_be(p + kOffMagic, kPeerMagic, 4);
  p[kOffVersion] = kPeerVersion;
  p[kOffKind] = static_cast<std::uint8_t>(h.kind);
  p[kOffFrom] = h.from;
  p[kOffTo] = h.to;
  put_be(p + kOffCluster, h.cluster_id, 4);
  put_be(p + kOffIncarnation, h.incarnation, 8);
  put_be(p + kOffSequence, h.sequence, 8);
  put_be(p + kOffType, h.type, 2);
  put_be(p + kOffType + 2, 0, 2);
  put_be(p + kOffRequest, h.request_id, 8);
  put_be(p + kOffLength, payload.size(), 4);
  if (!payload.empty()) std::memcpy(p + kPeerHeaderSize, payload.data(), payload.size());
  std::size_t body = kPeerHeaderSize + payload.size();
  crypto_auth_hmacsha256(p + body, p, body, key.data());
}

std::expected<PeerDatagram, PeerDrop> decode_peer_datagram(std::span<const std::uint8_t> in,
                                                           const SubKey& key,
                                                           std::uint32_t cluster_id) {
  if (in.size() <= kOffVersion) return std::unexpected(PeerDrop::Truncated);
  if (get_be(in.data(), 4) != kPeerMagic) return std::unexpected(PeerDrop::BadMagic);
  if (in[kOffVersion] != kPeerVersion) return std::unexpected(PeerDrop::BadVersion);
  if (in.size() < kPeerHeaderSize + kPeerMacSize || in.size() > kPeerMaxDatagram)
    return std::unexpected(PeerDrop::Truncated);
  std::uint64_t length = get_be(in.data() + kOffLength, 4);
  if (kPeerHeaderSize + length + kPeerMacSize != in.size())
    return std::unexpected(PeerDrop::Truncated);
  if (get_be(in.data() + kOffCluster, 4) != cluster_id) return std::unexpected(PeerDrop::ForeignCluster);
  std::size_t body = kPeerHeaderSize + length;
  if (crypto_auth_hmacsha256_verify(in.data() + body, in.data(), body, key.data()) != 0)
    return std::unexpected(PeerDrop::BadAuth);
  PeerDatagram d{parse_header(in.data()), in.subspan(kPeerHeaderSize, length)};
  // An authenticated but unknown kind can only come from a newer peer: treat as a bad version.
  if (in[kOffKind] >= kPeerKindCount) return std::unexpected(PeerDrop::BadVersion);
  return d;
}

std::optional<PeerDrop> ReplayWindow::check(std::uint64_t incarnation, std::uint64_t sequence) {
  if (incarnation < incarnation_) return PeerDrop::OldIncarnation;
  if (incarnation > incarnation_) {
    incarnation_ = incarnation;
    highest_ = 0;
    seen_.reset();
  }
  if (sequence == 0) return PeerDrop::Replay;  // never sent
  if (sequence > highest_) {
    std::uint64_t shift = sequence - highest_;
    seen_ = shift >= kPeerReplayWindow ? decltype(seen_)() : seen_ << shift;
    seen_.set(0);
    highest_ = sequence;
    return std::nullopt;
  }
  std::uint64_t age = highest_ - sequence;
  if (age >= kPeerReplayWindow || seen_.test(age)) return PeerDrop::Replay;
  seen_.set(age);
  return std::nullopt;
}

// --- options -----------------------------------------------------------------------------------

Result<PeerTransportOptions> PeerTransportOptions::from_config(const Config& config,
                                                               const std::string& self_name,
                                                               const SubKey& key,
                                                               std::uint64_t incarnation) {
  const NodeConfig* self = config.find_node(self_name);
  if (!self) return fail("node {} is not in the configuration", self_name);
  PeerTransportOptions o;
  o.self = static_cast<std::uint8_t>(self->id);
  o.cluster_id = config.cluster.id;
  o.incarnation = incarnation;
  o.key = key;
  auto networks = cluster_networks(config, *self);
  if (!networks) return std::unexpected(networks.error());
  o.networks = std::move(*networks);
  for (const auto& node : config.nodes) {
    if (node.id == self->id) continue;
    auto& addresses = o.peers[static_cast<std::uint8_t>(node.id)];
    for (const auto& net : o.networks) {
      auto text = node.addresses.find(net.name);
      if (text == node.addresses.end()) continue;
      auto address = InetPrefix::parse(text->second);
      if (!address)
        return fail("address of node {} on network '{}': {}", node.name, net.name,
                    address.error().message);
      addresses.push_back({net.index, address->address});
    }
  }
  return o;
}

// --- PeerReply ---------------------------------------------------------------------------------

void PeerReply::operator()(std::span<const std::uint8_t> payload) const {
  auto transport = transport_.lock();
  if (transport && *transport) (*transport)->answer(*this, PeerKind::Response, payload);
}

// --- PeerTransport: setup ----------------------------------------------------------------------

PeerTransport::PeerTransport(PeerTransportOptions options)
    : options_(std::move(options)),
      alive_(std::make_shared<PeerTransport*>(this)),
      receive_buffer_(kPeerMaxDatagram + 1) {
  send_buffer_.reserve(kPeerMaxDatagram);
}

PeerTransport::~PeerTransport() { *alive_ = nullptr; }

Result<std::unique_ptr<PeerTransport>> PeerTransport::create(sd_event* loop,
                                                             PeerTransportOptions options) {
  if (auto ok = sodium_ready(); !ok) return std::unexpected(ok.error());
  std::unique_ptr<PeerTransport> t(new PeerTransport(std::move(options)));
  t->loop_ = loop;
  for (const auto& net : t->options_.networks)
    if (auto ok = t->open_socket(loop, net); !ok) return std::unexpected(ok.error());
  return t;
}

Result<void> PeerTransport::open_socket(sd_event* loop, const ClusterNetwork& network) {
  auto s = std::make_unique<Socket>();
  s->network = network;
  s->owner = this;
  s->fd.reset(::socket(network.local.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s->fd) return fail_errno(errno, "cannot create the peer socket of network '{}'", network.name);
  int one = 1;
  if (network.local.family == AF_INET6)
    setsockopt(s->fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  socklen_t length = 0;
  auto port = static_cast<std::uint16_t>(network.port + 1);
  sockaddr_storage at = make_sockaddr(network.local, port,
                                      link_local(network.local) ? network.ifindex : 0, &length);
  if (::bind(s->fd.get(), reinterpret_cast<sockaddr*>(&at), length) < 0)
    return fail_errno(errno, "cannot bind the peer socket to {} port {}",
                      network.local.to_string(), port);
  sd_event_source* io = nullptr;
  int r = sd_event_add_io(loop, &io, s->fd.get(), EPOLLIN, on_io, s.get());
  if (r < 0) return fail_errno(r, "cannot watch the peer socket of network '{}'", network.name);
  s->io.reset(io);
  sd_event_source_set_description(io, "peer-receive");
  sockets_.push_back(std::move(s));
  return {};
}

void PeerTransport::on_message(std::uint16_t type, MessageHandler handler) {
  message_handlers_[type] = std::move(handler);
}

void PeerTransport::on_request(std::uint16_t type, RequestHandler handler) {
  request_handlers_[type] = std::move(handler);
}

std::uint64_t PeerTransport::now() const {
  uint64_t usec = 0;
  sd_event_now(loop_, CLOCK_BOOTTIME, &usec);
  return usec;
}

// --- sending -----------------------------------------------------------------------------------

const PeerAddress* PeerTransport::address_of(std::uint8_t node, std::size_t network) const {
  auto peer = options_.peers.find(node);
  if (peer == options_.peers.end()) return nullptr;
  for (const auto& a : peer->second)
    if (a.network == network) return &a;
  return nullptr;
}

int PeerTransport::transmit(const PeerHeader& header, std::span<const std::uint8_t> payload,
                            std::size_t network) {
  const Socket* socket = nullptr;
  for (const auto& s : sockets_)
    if (s->network.index == network) socket = s.get();
  const PeerAddress* peer = address_of(header.to, network);
  if (!socket || !peer) return ENETUNREACH;
  encode_peer_datagram(header, payload, options_.key, send_buffer_);
  socklen_t length = 0;
  sockaddr_storage to = make_sockaddr(peer->address, static_cast<std::uint16_t>(socket->network.port + 1),
                                      link_local(peer->address) ? socket->network.ifindex : 0,
                                      &length);
  ssize_t n = ::sendto(socket->fd.get(), send_buffer_.data(), send_buffer_.size(), MSG_DONTWAIT,
                       reinterpret_cast<sockaddr*>(&to), length);
  int err = n < 0 ? errno : 0;
  ++(err ? counters_.send_errors : counters_.sent);
  return err;
}

bool PeerTransport::transmit_routed(PeerKind kind, std::uint8_t to, std::uint16_t type,
                                    std::uint64_t request_id,
                                    std::span<const std::uint8_t> payload, bool all_networks) {
  auto peer = options_.peers.find(to);
  if (peer == options_.peers.end()) return false;
  bool any = false;
  // First network the detector says is up; all of them when none is (or when asked to).
  std::optional<std::size_t> up;
  if (!all_networks && link_state_)
    for (const auto& a : peer->second)
      if (link_state_(to, a.network)) {
        up = a.network;
        break;
      }
  // The copies on several networks share one sequence number: the receiver's replay window
  // delivers the first to arrive and drops the others, so a message is handled once.
  PeerHeader h{kind, options_.self, to, options_.cluster_id, options_.incarnation, ++sequence_,
               type, request_id};
  for (const auto& a : peer->second) {
    if (up && a.network != *up) continue;
    any |= transmit(h, payload, a.network) == 0;
  }
  return any;
}

Result<void> PeerTransport::send(std::uint8_t to, std::uint16_t type,
                                 std::span<const std::uint8_t> payload) {
  if (payload.size() > kPeerMaxPayload)
    return fail("message of {} bytes exceeds the peer transport limit of {}", payload.size(),
                kPeerMaxPayload);
  if (!options_.peers.count(to)) return fail("node {} is not a peer", to);
  if (!transmit_routed(PeerKind::Oneway, to, type, 0, payload, false))
    return fail("cannot send to node {} on any network", to);
  return {};
}

void PeerTransport::request(std::uint8_t to, std::uint16_t type,
                            std::span<const std::uint8_t> payload, Duration timeout,
                            ResponseCallback callback) {
  if (payload.size() > kPeerMaxPayload || !options_.peers.count(to)) {
    callback(fail("cannot send a request of {} bytes to node {}: {}", payload.size(), to,
                  options_.peers.count(to) ? "too large" : "not a peer"));
    return;
  }
  std::uint64_t id = ++next_request_id_;
  Pending& p = pending_[id];
  p = Pending{this, id, to, type, PeerBytes(payload.begin(), payload.end()),
              now() + to_usec(timeout), timeout, options_.retry.initial, std::move(callback), {}};
  sd_event_source* timer = nullptr;
  sd_event_add_time(loop_, &timer, CLOCK_BOOTTIME,
                    std::min(now() + to_usec(p.rto), p.deadline), kTimerAccuracyUsec, on_retry, &p);
  p.timer.reset(timer);
  transmit_routed(PeerKind::Request, to, type, id, p.payload, false);
}

int PeerTransport::on_retry(sd_event_source* s, uint64_t usec, void* userdata) noexcept {
  auto* p = static_cast<Pending*>(userdata);
  PeerTransport* t = p->owner;
  if (usec >= p->deadline) {
    ++t->counters_.requests_failed;
    auto callback = std::move(p->callback);
    auto error = fail("no answer from node {} to a request of type {} within {} ms", p->to,
                      p->type, p->timeout.count());
    t->pending_.erase(p->id);  // destroys this timer; sd-event allows that from its callback
    callback(error);
    return 0;
  }
  ++t->counters_.retransmits;
  t->transmit_routed(PeerKind::Request, p->to, p->type, p->id, p->payload, true);
  p->rto = std::min(p->rto * 2, t->options_.retry.max);
  sd_event_source_set_time(s, std::min(usec + to_usec(p->rto), p->deadline));
  sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
  return 0;
}

// --- receiving ---------------------------------------------------------------------------------

int PeerTransport::on_io(sd_event_source*, int, uint32_t, void* socket) noexcept {
  auto* s = static_cast<Socket*>(socket);
  s->owner->drain(*s);
  return 0;
}

void PeerTransport::drain_all() {
  for (auto& socket : sockets_) drain(*socket);
}

void PeerTransport::drain(Socket& socket) {
  std::size_t network = socket.network.index;
  for (int i = 0; i < kMaxReadsPerWakeup; ++i) {
    ssize_t n = ::recv(socket.fd.get(), receive_buffer_.data(), receive_buffer_.size(),
                       MSG_TRUNC | MSG_DONTWAIT);
    if (n < 0) return;
    ++counters_.received;
    auto size = static_cast<std::size_t>(n);
    if (size > kPeerMaxDatagram) {
      drop(PeerDrop::Truncated);
      continue;
    }
    receive(std::span<const std::uint8_t>(receive_buffer_.data(), size), network);
  }
}

void PeerTransport::receive(std::span<const std::uint8_t> bytes, std::size_t network) {
  auto d = decode_peer_datagram(bytes, options_.key, options_.cluster_id);
  if (!d) return drop(d.error());
  const PeerHeader& h = d->header;
  if (!options_.peers.count(h.from)) return drop(PeerDrop::BadNode);
  if (h.to != options_.self) return drop(PeerDrop::NotForUs);
  if (auto why = windows_[h.from].check(h.incarnation, h.sequence)) return drop(*why);
  ++counters_.accepted;
  dispatch(*d, network);
}

void PeerTransport::dispatch(const PeerDatagram& d, std::size_t network) {
  switch (d.header.kind) {
    case PeerKind::Oneway: {
      auto handler = message_handlers_.find(d.header.type);
      if (handler == message_handlers_.end()) return drop(PeerDrop::NoHandler);
      handler->second({d.header.from, d.header.incarnation, d.header.type, network, d.payload});
      return;
    }
    case PeerKind::Request:
      return handle_request(d, network);
    case PeerKind::Response:
    case PeerKind::Refused:
      return handle_response(d);
  }
}

void PeerTransport::handle_request(const PeerDatagram& d, std::size_t network) {
  const PeerHeader& h = d.header;
  expire_served(now());
  ServedKey key{h.from, h.incarnation, h.request_id};
  PeerReply reply;
  reply.transport_ = alive_;
  reply.to_ = h.from;
  reply.incarnation_ = h.incarnation;
  reply.request_id_ = h.request_id;
  reply.type_ = h.type;
  reply.network_ = network;
  if (auto seen = served_.find(key); seen != served_.end()) {
    // A retransmission: answer again from the cache, or wait for the handler to answer.
    ++counters_.duplicate_requests;
    if (seen->second.answered) {
      PeerHeader r{seen->second.kind, options_.self, h.from, options_.cluster_id,
                   options_.incarnation, ++sequence_, h.type, h.request_id};
      transmit(r, seen->second.response, network);
    }
    return;
  }
  std::uint64_t expires = now() + kServedTtlUsec;
  served_[key] = Served{false, PeerKind::Response, h.type, {}, expires};
  served_order_.push_back({expires, key});
  auto handler = request_handlers_.find(h.type);
  if (handler == request_handlers_.end()) return answer(reply, PeerKind::Refused, {});
  handler->second({h.from, h.incarnation, h.type, network, d.payload}, reply);
}

void PeerTransport::answer(const PeerReply& reply, PeerKind kind,
                           std::span<const std::uint8_t> payload) {
  auto served = served_.find({reply.to_, reply.incarnation_, reply.request_id_});
  if (served != served_.end()) {
    if (served->second.answered) return;
    served->second = Served{true, kind, reply.type_, PeerBytes(payload.begin(), payload.end()),
                            served->second.expires};
  }
  // The network the request came in on is the one known to work right now; the requester's
  // retransmissions over every network cover the rest.
  PeerHeader h{kind, options_.self, reply.to_, options_.cluster_id, options_.incarnation,
               ++sequence_, reply.type_, reply.request_id_};
  if (transmit(h, payload, reply.network_) != 0)
    transmit_routed(kind, reply.to_, reply.type_, reply.request_id_, payload, true);
}

void PeerTransport::expire_served(std::uint64_t now) {
  while (!served_order_.empty() &&
         (served_order_.front().first <= now || served_order_.size() > kServedMax)) {
    served_.erase(served_order_.front().second);
    served_order_.pop_front();
  }
}

void PeerTransport::handle_response(const PeerDatagram& d) {
  auto p = pending_.find(d.header.request_id);
  if (p == pending_.end() || p->second.to != d.header.from || p->second.type != d.header.type)
    return drop(PeerDrop::LateResponse);
  auto callback = std::move(p->second.callback);
  pending_.erase(p);
  if (d.header.kind == PeerKind::Refused)
    callback(fail("node {} has no handler for requests of type {}", d.header.from, d.header.type));
  else
    callback(PeerBytes(d.payload.begin(), d.payload.end()));
}

}  // namespace clusterd
