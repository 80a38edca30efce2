#include "heartbeat_socket.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>

#include <cstring>

#include "log.h"

namespace clusterd {
namespace {

// Datagrams read per wakeup at most, so one flooded socket cannot starve the loop.
constexpr int kMaxReadsPerWakeup = 64;
// DSCP CS6 ("network control", RFC 4594): switches that honour it queue heartbeats first.
constexpr int kTrafficClass = 0xc0;
// The send timer outranks everything else on the loop; frames are read before the detector
// decides (lower value = dispatched first).
constexpr int64_t kSendPriority = SD_EVENT_PRIORITY_IMPORTANT;
constexpr int64_t kReceivePriority = SD_EVENT_PRIORITY_IMPORTANT;
constexpr int64_t kExpiryPriority = SD_EVENT_PRIORITY_IMPORTANT + 1;
constexpr uint64_t kTimerAccuracyUsec = 1;

bool is_multicast(const InetAddress& a) {
  if (a.family == AF_INET) return (a.bytes[0] & 0xf0) == 0xe0;
  return a.family == AF_INET6 && a.bytes[0] == 0xff;
}

bool same_address(const sockaddr* sa, const InetAddress& address) {
  if (!sa || sa->sa_family != address.family) return false;
  if (sa->sa_family == AF_INET)
    return std::memcmp(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, address.bytes.data(),
                       4) == 0;
  return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, address.bytes.data(),
                     16) == 0;
}

// The interface holding `address` in this network namespace.
Result<std::string> interface_of(const InetAddress& address) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) < 0) return fail_errno(errno, "cannot list the local addresses");
  std::unique_ptr<ifaddrs, Free<freeifaddrs>> owner(list);
  for (ifaddrs* i = list; i; i = i->ifa_next)
    if (same_address(i->ifa_addr, address)) return std::string(i->ifa_name);
  return fail("address {} is not configured on any local interface", address.to_string());
}

Result<InetAddress> group_of(const NetworkConfig& network, const InetAddress& local,
                             std::uint32_t cluster_id) {
  if (network.multicast_group.empty()) return default_multicast_group(local.family, cluster_id);
  auto group = InetAddress::parse(network.multicast_group);
  if (!group) return std::unexpected(group.error());
  if (!is_multicast(*group) || group->family != local.family)
    return fail("multicast group {} of network '{}' is not a {} multicast address",
                network.multicast_group, network.name, local.family == AF_INET ? "IPv4" : "IPv6");
  return group;
}

Result<ClusterNetwork> resolve_network(const Config& config, std::size_t index,
                                       const std::string& address_text) {
  const NetworkConfig& net = config.networks[index];
  auto local = InetPrefix::parse(address_text);
  if (!local) return std::unexpected(local.error());
  ClusterNetwork out{index, net.name, local->address, {}, 0, {}, net.port};
  auto ifname = interface_of(out.local);
  if (!ifname) return std::unexpected(ifname.error());
  out.ifname = *ifname;
  out.ifindex = static_cast<int>(if_nametoindex(ifname->c_str()));
  if (out.ifindex == 0) return fail_errno(errno, "cannot find interface {}", *ifname);
  auto group = group_of(net, out.local, config.cluster.id);
  if (!group) return std::unexpected(group.error());
  out.group = *group;
  return out;
}

int set_int(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof value);
}

}  // namespace

InetAddress default_multicast_group(int family, std::uint32_t cluster_id) {
  InetAddress a;
  a.family = family;
  auto hi = static_cast<std::uint8_t>(cluster_id >> 8);
  auto lo = static_cast<std::uint8_t>(cluster_id);
  if (family == AF_INET) {
    a.bytes = {239, 192, hi, lo};
    return a;
  }
  // ff12::636c:XXXX:XXXX ("cl" and the 24-bit cluster id).
  a.bytes = {0xff, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0x63, 0x6c, 0,
             static_cast<std::uint8_t>(cluster_id >> 16), hi, lo};
  return a;
}

Result<std::vector<ClusterNetwork>> cluster_networks(const Config& config,
                                                     const NodeConfig& self) {
  std::vector<ClusterNetwork> out;
  for (std::size_t i = 0; i < config.networks.size(); ++i) {
    const NetworkConfig& net = config.networks[i];
    if (net.role == NetworkRole::Client) continue;
    auto address = self.addresses.find(net.name);
    if (address == self.addresses.end()) continue;
    auto resolved = resolve_network(config, i, address->second);
    if (!resolved)
      return fail("network '{}' of node {}: {}", net.name, self.name, resolved.error().message);
    out.push_back(std::move(*resolved));
  }
  if (out.empty()) return fail("node {} has no address on any cluster network", self.name);
  return out;
}

sockaddr_storage make_sockaddr(const InetAddress& address, std::uint16_t port, int scope,
                               socklen_t* length) {
  sockaddr_storage storage{};
  if (address.family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, address.bytes.data(), 4);
    *length = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    std::memcpy(&sin6->sin6_addr, address.bytes.data(), 16);
    sin6->sin6_scope_id = static_cast<uint32_t>(scope);
    *length = sizeof(sockaddr_in6);
  }
  return storage;
}

Result<void> enable_realtime_scheduling(int priority) {
  sched_param param{};
  param.sched_priority = priority;
  if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &param) < 0)
    return fail_errno(errno, "cannot switch to SCHED_FIFO priority {}", priority);
  return {};
}

// --- HeartbeatSocket ---------------------------------------------------------------------------

Result<std::unique_ptr<HeartbeatSocket>> HeartbeatSocket::open(sd_event* loop,
                                                               const ClusterNetwork& network,
                                                               int64_t priority,
                                                               Handler handler) {
  std::unique_ptr<HeartbeatSocket> s(new HeartbeatSocket(network));
  s->handler_ = std::move(handler);
  if (auto ok = s->setup(); !ok)
    return fail_errno(ok.error().errno_value, "heartbeat socket on network '{}' ({}): {}",
                      network.name, network.ifname, ok.error().message);
  sd_event_source* io = nullptr;
  int r = sd_event_add_io(loop, &io, s->fd_.get(), EPOLLIN, on_io, s.get());
  if (r < 0) return fail_errno(r, "cannot watch the heartbeat socket of network '{}'", network.name);
  s->io_.reset(io);
  sd_event_source_set_priority(io, priority);
  sd_event_source_set_description(io, "heartbeat-receive");
  return s;
}

Result<void> HeartbeatSocket::setup() {
  int family = network_.local.family;
  fd_.reset(::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd_) return fail_errno(errno, "cannot create a UDP socket");
  // Several networks may share group and port; each socket still sees only its interface's
  // frames (membership per interface, IP_MULTICAST_ALL off).
  if (set_int(fd_.get(), SOL_SOCKET, SO_REUSEADDR, 1) < 0)
    return fail_errno(errno, "cannot set SO_REUSEADDR");
  return family == AF_INET ? setup_v4() : setup_v6();
}

Result<void> HeartbeatSocket::setup_v4() {
  int fd = fd_.get();
  socklen_t length = 0;
  // Bound to the group, not the unicast address: Linux delivers a datagram to a socket bound to
  // a specific address only if that is the destination, so the group is what filters here.
  sockaddr_storage bind_to = make_sockaddr(network_.group, network_.port, 0, &length);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&bind_to), length) < 0)
    return fail_errno(errno, "cannot bind to {}:{}", network_.group.to_string(), network_.port);
  ip_mreqn membership{};
  std::memcpy(&membership.imr_multiaddr, network_.group.bytes.data(), 4);
  std::memcpy(&membership.imr_address, network_.local.bytes.data(), 4);
  membership.imr_ifindex = network_.ifindex;
  if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &membership, sizeof membership) < 0)
    return fail_errno(errno, "cannot join {}", network_.group.to_string());
  // The outgoing interface and source address: without it, and with no default route,
  // sendto fails with ENETUNREACH.
  ip_mreqn out{};
  std::memcpy(&out.imr_address, network_.local.bytes.data(), 4);
  out.imr_ifindex = network_.ifindex;
  if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &out, sizeof out) < 0 ||
      set_int(fd, IPPROTO_IP, IP_MULTICAST_LOOP, 0) < 0 ||
      set_int(fd, IPPROTO_IP, IP_MULTICAST_TTL, 1) < 0 ||
      set_int(fd, IPPROTO_IP, IP_MULTICAST_ALL, 0) < 0 ||
      set_int(fd, IPPROTO_IP, IP_TOS, kTrafficClass) < 0)
    return fail_errno(errno, "cannot set the multicast options");
  destination_ = make_sockaddr(network_.group, network_.port, 0, &destination_length_);
  return {};
}

Result<void> HeartbeatSocket::setup_v6() {
  int fd = fd_.get();
  if (set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1) < 0)
    return fail_errno(errno, "cannot set IPV6_V6ONLY");
  socklen_t length = 0;
  // The scope binds the socket to the interface, as link-local multicast requires.
  sockaddr_storage bind_to = make_sockaddr(network_.group, network_.port, network_.ifindex, &length);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&bind_to), length) < 0)
    return fail_errno(errno, "cannot bind to [{}]:{}", network_.group.to_string(), network_.port);
  ipv6_mreq membership{};
  std::memcpy(&membership.ipv6mr_multiaddr, network_.group.bytes.data(), 16);
  membership.ipv6mr_interface = static_cast<unsigned>(network_.ifindex);
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &membership, sizeof membership) < 0)
    return fail_errno(errno, "cannot join {}", network_.group.to_string());
  if (set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, network_.ifindex) < 0 ||
      set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0) < 0 ||
      set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 1) < 0 ||
      set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0) < 0 ||
      set_int(fd, IPPROTO_IPV6, IPV6_TCLASS, kTrafficClass) < 0)
    return fail_errno(errno, "cannot set the multicast options");
  destination_ = make_sockaddr(network_.group, network_.port, network_.ifindex,
                               &destination_length_);
  return {};
}

int HeartbeatSocket::send(std::span<const std::uint8_t> bytes) {
  ssize_t n = ::sendto(fd_.get(), bytes.data(), bytes.size(), MSG_DONTWAIT,
                       reinterpret_cast<const sockaddr*>(&destination_), destination_length_);
  return n < 0 ? errno : 0;
}

void HeartbeatSocket::drain() {
  for (int i = 0; i < kMaxReadsPerWakeup; ++i) {
    // MSG_TRUNC: the real length, so an oversized datagram is recognised as such.
    ssize_t n = ::recv(fd_.get(), buffer_.data(), buffer_.size(), MSG_TRUNC | MSG_DONTWAIT);
    if (n < 0) return;  // EAGAIN, or an error the next read reports again
    auto size = static_cast<std::size_t>(n);
    bool oversized = size > buffer_.size();
    handler_(std::span<const std::uint8_t>(buffer_.data(), oversized ? 0 : size), oversized);
  }
}

int HeartbeatSocket::on_io(sd_event_source*, int, uint32_t, void* self) noexcept {
  static_cast<HeartbeatSocket*>(self)->drain();
  return 0;
}

// --- HeartbeatOptions --------------------------------------------------------------------------

Result<HeartbeatOptions> HeartbeatOptions::from_config(const Config& config,
                                                       const std::string& self_name,
                                                       const SubKey& key,
                                                       std::uint64_t incarnation) {
  const NodeConfig* self = config.find_node(self_name);
  if (!self) return fail("node {} is not in the configuration", self_name);
  HeartbeatOptions o;
  o.self = static_cast<std::uint8_t>(self->id);
  o.cluster_id = config.cluster.id;
  for (const auto& node : config.nodes) {
    if (node.id == 0 || node.id > kMaxWireNodeId)
      return fail("node {} has id {}, outside 1..{}", node.name, node.id, kMaxWireNodeId);
    o.nodes.push_back(static_cast<std::uint8_t>(node.id));
  }
  o.network_count = config.networks.size();
  auto networks = cluster_networks(config, *self);
  if (!networks) return std::unexpected(networks.error());
  o.networks = std::move(*networks);
  o.timing = DetectorTiming{config.heartbeat.interval, config.heartbeat.misses};
  if (auto ok = o.timing.validate(); !ok) return std::unexpected(ok.error());
  o.incarnation = incarnation;
  o.key = key;
  return o;
}

// --- HeartbeatService --------------------------------------------------------------------------

namespace {

NodeSet node_set(const std::vector<std::uint8_t>& ids) {
  NodeSet set;
  for (auto id : ids) set.set(id);
  return set;
}

}  // namespace

HeartbeatService::HeartbeatService(HeartbeatOptions options, EventHandler on_event)
    : options_(std::move(options)),
      on_event_(std::move(on_event)),
      verifier_(options_.key, options_.cluster_id, options_.self, node_set(options_.nodes),
                options_.network_count),
      detector_(options_.self, options_.nodes, options_.network_count, options_.timing) {
  events_.reserve(4 * options_.nodes.size() * (options_.network_count + 1));
}

Result<std::unique_ptr<HeartbeatService>> HeartbeatService::create(sd_event* loop,
                                                                   HeartbeatOptions options,
                                                                   EventHandler on_event) {
  if (auto ok = options.timing.validate(); !ok) return std::unexpected(ok.error());
  for (const auto& net : options.networks)
    if (net.index >= options.network_count)
      return fail("network '{}' has index {}, beyond the {} networks", net.name, net.index,
                  options.network_count);
  std::unique_ptr<HeartbeatService> s(new HeartbeatService(std::move(options), std::move(on_event)));
  s->loop_ = loop;
  if (auto ok = s->open_sockets(loop); !ok) return std::unexpected(ok.error());
  if (auto ok = s->start_timers(loop); !ok) return std::unexpected(ok.error());
  return s;
}

Result<void> HeartbeatService::open_sockets(sd_event* loop) {
  for (const auto& net : options_.networks) {
    std::size_t index = net.index;
    auto socket = HeartbeatSocket::open(loop, net, kReceivePriority,
                                        [this, index](std::span<const std::uint8_t> b, bool big) {
                                          on_datagram(index, b, big);
                                        });
    if (!socket) return std::unexpected(socket.error());
    sockets_.push_back(std::move(*socket));
    last_send_error_.push_back(0);
  }
  return {};
}

Result<void> HeartbeatService::start_timers(sd_event* loop) {
  sd_event_source* send = nullptr;
  // The first frame goes out at once: peers learn about a (re)started node without delay.
  int r = sd_event_add_time_relative(loop, &send, CLOCK_BOOTTIME, 0, kTimerAccuracyUsec,
                                     on_send_timer, this);
  if (r < 0) return fail_errno(r, "cannot create the heartbeat send timer");
  send_timer_.reset(send);
  sd_event_source_set_priority(send, kSendPriority);
  sd_event_source_set_description(send, "heartbeat-send");
  sd_event_source* expiry = nullptr;
  r = sd_event_add_time(loop, &expiry, CLOCK_BOOTTIME, UINT64_MAX, kTimerAccuracyUsec,
                        on_expiry_timer, this);
  if (r < 0) return fail_errno(r, "cannot create the heartbeat expiry timer");
  expiry_timer_.reset(expiry);
  sd_event_source_set_priority(expiry, kExpiryPriority);
  sd_event_source_set_description(expiry, "heartbeat-expiry");
  sd_event_source_set_enabled(expiry, SD_EVENT_OFF);
  return {};
}

void HeartbeatService::send_all(std::uint8_t extra_flags) {
  ++sequence_;
  HeartbeatFrame f;
  f.cluster_id = options_.cluster_id;
  f.node_id = options_.self;
  f.flags = status_.flags | extra_flags;
  f.incarnation = options_.incarnation;
  f.sequence = sequence_;
  f.term = status_.term;
  f.coordinator = status_.coordinator;
  f.config_version = status_.config_version;
  f.hears = detector_.reachable();
  for (std::size_t i = 0; i < sockets_.size(); ++i) {
    const ClusterNetwork& net = sockets_[i]->network();
    f.network = static_cast<std::uint8_t>(net.index);
    encode_heartbeat(f, options_.key, frame_);
    int err = sockets_[i]->send(frame_);
    HeartbeatCounters& c = verifier_.counters(net.index);
    ++(err ? c.send_errors : c.sent);
    // Logged on change only: a cut link would otherwise log at every interval.
    if (err && err != last_send_error_[i])
      log(LogLevel::Warning, {{"NETWORK", net.name}, {"INTERFACE", net.ifname}},
          "Cannot send heartbeats on network {}, counting: {}", net.name, std::strerror(err));
    else if (!err && last_send_error_[i])
      log(LogLevel::Notice, {{"NETWORK", net.name}, {"INTERFACE", net.ifname}},
          "Heartbeats on network {} are sent again", net.name);
    last_send_error_[i] = err;
  }
  if (sent_listener_) sent_listener_(sequence_, mono_now());
}

void HeartbeatService::leave() {
  send_all(kHeartbeatLeaving);
  sd_event_source_set_enabled(send_timer_.get(), SD_EVENT_OFF);
}

void HeartbeatService::on_datagram(std::size_t network, std::span<const std::uint8_t> bytes,
                                   bool oversized) {
  if (oversized) {
    verifier_.count_oversized(network);
    return;
  }
  auto frame = verifier_.accept(bytes, network);
  if (!frame) return;
  uint64_t now = 0;
  sd_event_now(loop_, CLOCK_BOOTTIME, &now);
  detector_.heard(*frame, network, MonoTime{now}, events_);
  emit();
  rearm_expiry();
  if (frame_listener_) frame_listener_(*frame);
}

void HeartbeatService::rearm_expiry() {
  auto deadline = detector_.next_deadline();
  if (!deadline) {
    sd_event_source_set_enabled(expiry_timer_.get(), SD_EVENT_OFF);
    return;
  }
  sd_event_source_set_time(expiry_timer_.get(), deadline->usec);
  sd_event_source_set_enabled(expiry_timer_.get(), SD_EVENT_ONESHOT);
}

void HeartbeatService::emit() {
  for (const auto& e : events_) on_event_(e);
  events_.clear();
}

int HeartbeatService::on_send_timer(sd_event_source* s, uint64_t usec, void* self) noexcept {
  auto* service = static_cast<HeartbeatService*>(self);
  service->send_all(0);
  uint64_t now = 0;
  sd_event_now(sd_event_source_get_event(s), CLOCK_BOOTTIME, &now);
  auto interval = static_cast<uint64_t>(service->options_.timing.interval.count()) * 1000;
  // On time: keep the period exact. Late (busy loop, CPU load): the frame just went out, so
  // the next is one interval from now rather than a burst of catch-up frames.
  uint64_t next = usec + interval;
  if (next <= now) next = now + interval;
  sd_event_source_set_time(s, next);
  sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
  return 0;
}

int HeartbeatService::on_expiry_timer(sd_event_source*, uint64_t, void* self) noexcept {
  auto* service = static_cast<HeartbeatService*>(self);
  // Frames may be queued behind a busy loop; they count before anyone is declared silent.
  for (auto& socket : service->sockets_) socket->drain();
  uint64_t now = 0;
  sd_event_now(service->loop_, CLOCK_BOOTTIME, &now);
  service->detector_.expire(MonoTime{now}, service->events_);
  service->emit();
  service->rearm_expiry();
  return 0;
}

}  // namespace clusterd
