#include "announce.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <net/if_arp.h>
#include <linux/if_packet.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstring>

#include "log.h"

namespace clusterd {
namespace {

constexpr MacAddress kBroadcastMac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
// RFC 4861 7.1.2: neighbour discovery packets must arrive with hop limit 255.
constexpr int kNdHopLimit = 255;
// Timers fire within a millisecond: sd-event's default accuracy (250 ms) would smear the
// announcement series and the probe wait.
constexpr Usec kTimerAccuracyUsec = 1000;

Usec to_usec(Duration d) { return static_cast<Usec>(d.count()) * 1000; }

void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

std::uint16_t get16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}

InetAddress ipv4_any() {
  InetAddress any;
  any.family = AF_INET;
  return any;
}

// An AF_PACKET socket receiving ARP on one interface; the kernel adds the Ethernet header.
// Opened with protocol 0 and bound with ETH_P_ARP: a socket opened with a protocol is already
// hooked into the receive path, and re-binding it to an interface unhooks it with
// synchronize_net(), an RCU grace period (~10 ms measured here) during which the loop blocks.
Result<Fd> open_arp_socket(int ifindex) {
  Fd fd(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return fail_errno(errno, "cannot open a packet socket for ARP");
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(ETH_P_ARP);
  address.sll_ifindex = ifindex;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0)
    return fail_errno(errno, "cannot bind the ARP socket to interface {}", ifindex);
  return fd;
}

// The daemon's one packet socket for sending ARP (gratuitous ARP for every ip resource): it
// receives nothing (protocol 0, never hooked into the receive path) and stays open for the life
// of the process, because closing any packet socket waits for synchronize_net() (~10 ms), which
// would stall the loop on every start and stop of an address.
// A socket belongs to the network namespace it was opened in: one per namespace (the daemon has
// one; tests switch namespaces).
Result<int> arp_send_socket() {
  static Fd shared;
  static ino_t shared_ns = 0;
  struct stat ns {};
  if (stat("/proc/thread-self/ns/net", &ns) < 0)
    return fail_errno(errno, "cannot tell this thread's network namespace");
  if (!shared || shared_ns != ns.st_ino) {
    shared = Fd(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!shared) return fail_errno(errno, "cannot open a packet socket for ARP");
    shared_ns = ns.st_ino;
  }
  return shared.get();
}

Result<void> send_arp(int fd, int ifindex, const ArpPacket& packet) {
  auto bytes = encode_arp(packet);
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = ifindex;
  to.sll_halen = ETH_ALEN;
  std::memcpy(to.sll_addr, kBroadcastMac.data(), ETH_ALEN);
  if (sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
    return fail_errno(errno, "cannot send ARP for {}", packet.target_ip.to_string());
  return {};
}

// An ICMPv6 raw socket sending to all-nodes on one interface with the ND hop limit.
Result<Fd> open_icmpv6_socket(int ifindex) {
  Fd fd(socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_ICMPV6));
  if (!fd) return fail_errno(errno, "cannot open an ICMPv6 socket");
  int hops = kNdHopLimit;
  int loop = 0;
  if (setsockopt(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) < 0 ||
      setsockopt(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) < 0 ||
      setsockopt(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof loop) < 0)
    return fail_errno(errno, "cannot set up the ICMPv6 socket for interface {}", ifindex);
  return fd;
}

// Sent from the address itself (RFC 4861 7.2.6: an address of the interface), which with
// IFA_F_NODAD is usable at once.
Result<void> send_na(int fd, int ifindex, const MacAddress& mac, const InetAddress& address) {
  auto body = encode_unsolicited_na(mac, address);
  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
  to.sin6_scope_id = static_cast<std::uint32_t>(ifindex);
  iovec iov{body.data(), body.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
  msghdr msg{};
  msg.msg_name = &to;
  msg.msg_namelen = sizeof to;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = IPPROTO_IPV6;
  cmsg->cmsg_type = IPV6_PKTINFO;
  cmsg->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
  in6_pktinfo info{};
  std::memcpy(&info.ipi6_addr, address.bytes.data(), 16);
  info.ipi6_ifindex = static_cast<unsigned>(ifindex);
  std::memcpy(CMSG_DATA(cmsg), &info, sizeof info);
  if (sendmsg(fd, &msg, 0) < 0)
    return fail_errno(errno, "cannot send a neighbour advertisement for {}", address.to_string());
  return {};
}

Result<EventSourcePtr> add_timer(sd_event* loop, Duration delay, sd_event_time_handler_t handler,
                                 void* userdata, const char* description) {
  sd_event_source* source = nullptr;
  int r = sd_event_add_time_relative(loop, &source, CLOCK_BOOTTIME, to_usec(delay),
                                     kTimerAccuracyUsec, handler, userdata);
  if (r < 0) return fail_errno(r, "cannot arm the {} timer", description);
  sd_event_source_set_description(source, description);
  return EventSourcePtr(source);
}

}  // namespace

// --- Packets -------------------------------------------------------------------------------

std::array<std::uint8_t, kArpPacketSize> encode_arp(const ArpPacket& packet) {
  std::array<std::uint8_t, kArpPacketSize> b{};
  put16(&b[0], ARPHRD_ETHER);
  put16(&b[2], ETH_P_IP);
  b[4] = ETH_ALEN;
  b[5] = 4;
  put16(&b[6], packet.op);
  std::memcpy(&b[8], packet.sender_mac.data(), ETH_ALEN);
  std::memcpy(&b[14], packet.sender_ip.bytes.data(), 4);
  std::memcpy(&b[18], packet.target_mac.data(), ETH_ALEN);
  std::memcpy(&b[24], packet.target_ip.bytes.data(), 4);
  return b;
}

std::optional<ArpPacket> decode_arp(const std::uint8_t* b, std::size_t size) {
  if (size < kArpPacketSize || get16(&b[0]) != ARPHRD_ETHER || get16(&b[2]) != ETH_P_IP ||
      b[4] != ETH_ALEN || b[5] != 4)
    return std::nullopt;
  ArpPacket packet;
  packet.op = get16(&b[6]);
  std::memcpy(packet.sender_mac.data(), &b[8], ETH_ALEN);
  packet.sender_ip = *InetAddress::from_bytes(AF_INET, &b[14], 4);
  std::memcpy(packet.target_mac.data(), &b[18], ETH_ALEN);
  packet.target_ip = *InetAddress::from_bytes(AF_INET, &b[24], 4);
  return packet;
}

ArpPacket make_arp_probe(const MacAddress& mac, const InetAddress& address) {
  return {kArpRequest, mac, ipv4_any(), MacAddress{}, address};
}

ArpPacket make_gratuitous_arp(const MacAddress& mac, const InetAddress& address) {
  // RFC 5227 3: the target hardware address is ignored and should be zero.
  return {kArpRequest, mac, address, MacAddress{}, address};
}

bool arp_conflict(const ArpPacket& packet, const InetAddress& address, const MacAddress& ours) {
  if (packet.sender_mac == ours) return false;  // our own frame, looped back
  if (packet.sender_ip == address) return true;  // somebody uses it (reply or announcement)
  // Somebody else probing for it at the same time (RFC 5227 2.1.1, last paragraph).
  return packet.op == kArpRequest && packet.sender_ip.is_unspecified() &&
         packet.target_ip == address;
}

std::vector<std::uint8_t> encode_unsolicited_na(const MacAddress& mac,
                                                const InetAddress& address) {
  std::vector<std::uint8_t> b(32, 0);
  b[0] = ND_NEIGHBOR_ADVERT;
  b[1] = 0;     // code; b[2..3] checksum: filled in by the kernel
  b[4] = 0x20;  // flags: Override (not Router, not Solicited)
  std::memcpy(&b[8], address.bytes.data(), 16);
  b[24] = ND_OPT_TARGET_LINKADDR;
  b[25] = 1;  // option length in units of 8 bytes
  std::memcpy(&b[26], mac.data(), ETH_ALEN);
  return b;
}

// --- Announcer -----------------------------------------------------------------------------

Result<std::unique_ptr<Announcer>> Announcer::start(sd_event* loop, int ifindex,
                                                    const MacAddress& mac,
                                                    const InetAddress& address, unsigned count,
                                                    Duration interval) {
  std::unique_ptr<Announcer> announcer(new Announcer());
  announcer->ifindex_ = ifindex;
  announcer->mac_ = mac;
  announcer->address_ = address;
  announcer->count_ = count;
  announcer->interval_ = interval;
  if (address.family == AF_INET) {
    auto fd = arp_send_socket();
    if (!fd) return std::unexpected(fd.error());
    announcer->send_fd_ = *fd;
  } else {
    auto fd = open_icmpv6_socket(ifindex);
    if (!fd) return std::unexpected(fd.error());
    announcer->send_fd_ = fd->get();
    announcer->socket_ = std::move(*fd);
  }
  if (count == 0) return announcer;
  if (auto sent = announcer->send_one(); !sent) return std::unexpected(sent.error());
  if (announcer->finished()) return announcer;
  auto timer = add_timer(loop, interval, on_timer, announcer.get(), "announce");
  if (!timer) return std::unexpected(timer.error());
  announcer->timer_ = std::move(*timer);
  return announcer;
}

Announcer::~Announcer() = default;

Result<void> Announcer::send_one() {
  ++sent_;  // counted even when the send fails: the series keeps its length and pace
  if (address_.family == AF_INET)
    return send_arp(send_fd_, ifindex_, make_gratuitous_arp(mac_, address_));
  return send_na(send_fd_, ifindex_, mac_, address_);
}

int Announcer::on_timer(sd_event_source* source, Usec, void* userdata) noexcept {
  auto* self = static_cast<Announcer*>(userdata);
  if (auto sent = self->send_one(); !sent)
    log(LogLevel::Warning, {}, "announcement {} of {} failed, ignoring: {}", self->sent_,
        self->count_, sent.error().to_string());
  if (self->finished()) {
    sd_event_source_set_enabled(source, SD_EVENT_OFF);
    return 0;
  }
  sd_event_source_set_time_relative(source, to_usec(self->interval_));
  sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
  return 0;
}

// --- ArpProbe ------------------------------------------------------------------------------

Result<std::unique_ptr<ArpProbe>> ArpProbe::start(sd_event* loop, int ifindex,
                                                  const MacAddress& mac,
                                                  const InetAddress& address, Duration wait,
                                                  Done done) {
  std::unique_ptr<ArpProbe> probe(new ArpProbe());
  probe->ifindex_ = ifindex;
  probe->mac_ = mac;
  probe->address_ = address;
  probe->done_ = std::move(done);
  // Listening before sending: an answer can come back within microseconds.
  auto fd = open_arp_socket(ifindex);
  if (!fd) return std::unexpected(fd.error());
  probe->socket_ = std::move(*fd);
  sd_event_source* source = nullptr;
  int r = sd_event_add_io(loop, &source, probe->socket_.get(), EPOLLIN, on_packet, probe.get());
  if (r < 0) return fail_errno(r, "cannot watch the ARP probe socket");
  probe->io_.reset(source);
  sd_event_source_set_description(source, "arp-probe");
  auto timer = add_timer(loop, wait, on_timeout, probe.get(), "arp-probe-wait");
  if (!timer) return std::unexpected(timer.error());
  probe->timer_ = std::move(*timer);
  auto sent = send_arp(probe->socket_.get(), ifindex, make_arp_probe(mac, address));
  if (!sent) return std::unexpected(sent.error());
  return probe;
}

ArpProbe::~ArpProbe() = default;

void ArpProbe::finish(Outcome outcome) {
  io_.reset();
  timer_.reset();
  // done_ may destroy this probe: nothing touches members after the call.
  Done done = std::move(done_);
  if (done) done(outcome);
}

int ArpProbe::on_packet(sd_event_source*, int fd, std::uint32_t, void* userdata) noexcept {
  auto* self = static_cast<ArpProbe*>(userdata);
  for (;;) {
    std::uint8_t buffer[256];
    sockaddr_ll from{};
    socklen_t from_len = sizeof from;
    ssize_t n = recvfrom(fd, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from),
                         &from_len);
    if (n < 0) return 0;  // EAGAIN: drained
    if (from.sll_pkttype == PACKET_OUTGOING) continue;  // our own probe
    auto packet = decode_arp(buffer, static_cast<std::size_t>(n));
    if (packet && arp_conflict(*packet, self->address_, self->mac_)) {
      self->finish({true, packet->sender_mac});
      return 0;
    }
  }
}

int ArpProbe::on_timeout(sd_event_source*, Usec, void* userdata) noexcept {
  static_cast<ArpProbe*>(userdata)->finish({false, {}});
  return 0;
}

}  // namespace clusterd
