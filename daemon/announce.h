// Telling the segment where an address lives: RFC 5227 ARP probes before taking an IPv4
// address, gratuitous ARP (RFC 5227 "ARP announcement") after, and RFC 4861 unsolicited
// neighbour advertisements for IPv6. Packet encoding is pure and tested on its own; the senders
// own their sockets and timers, so destroying one stops it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <systemd/sd-event.h>

#include "clock.h"
#include "error.h"
#include "handle.h"
#include "inet_address.h"

namespace clusterd {

/// ARP operation codes (RFC 826).
inline constexpr std::uint16_t kArpRequest = 1;
inline constexpr std::uint16_t kArpReply = 2;
/// Size of an Ethernet/IPv4 ARP payload.
inline constexpr std::size_t kArpPacketSize = 28;

/// An Ethernet/IPv4 ARP packet (the payload after the Ethernet header).
struct ArpPacket {
  std::uint16_t op = kArpRequest;
  MacAddress sender_mac{};
  InetAddress sender_ip;  ///< IPv4.
  MacAddress target_mac{};
  InetAddress target_ip;  ///< IPv4.
};

/// Wire form of `packet` (network byte order).
std::array<std::uint8_t, kArpPacketSize> encode_arp(const ArpPacket& packet);
/// Parses an Ethernet/IPv4 ARP payload; nullopt for anything else.
std::optional<ArpPacket> decode_arp(const std::uint8_t* data, std::size_t size);
/// RFC 5227 2.1.1 probe: sender IP 0.0.0.0 so that no neighbour cache learns from it.
ArpPacket make_arp_probe(const MacAddress& mac, const InetAddress& address);
/// RFC 5227 3 announcement (gratuitous ARP): a request with sender IP = target IP = `address`.
/// The request form updates existing entries in every neighbour cache, also with arp_accept=0.
ArpPacket make_gratuitous_arp(const MacAddress& mac, const InetAddress& address);
/// RFC 5227 2.1.1: while probing, `packet` shows another host using or probing `address`.
bool arp_conflict(const ArpPacket& packet, const InetAddress& address, const MacAddress& ours);
/// ICMPv6 unsolicited neighbour advertisement (RFC 4861 4.4, 7.2.6) for `address` with the
/// Override flag and a target link-layer address option; the checksum is left zero (the kernel
/// fills it in for ICMPv6 raw sockets).
std::vector<std::uint8_t> encode_unsolicited_na(const MacAddress& mac, const InetAddress& address);

/// Sends announcements for an address `count` times, `interval` apart, starting at once:
/// gratuitous ARP for IPv4, unsolicited NA to ff02::1 for IPv6.
class Announcer {
 public:
  /// Opens the socket and sends the first announcement; error when that fails. Later sends
  /// run on `loop`; their failures are logged and do not stop the series.
  static Result<std::unique_ptr<Announcer>> start(sd_event* loop, int ifindex,
                                                  const MacAddress& mac,
                                                  const InetAddress& address, unsigned count,
                                                  Duration interval);
  ~Announcer();
  Announcer(const Announcer&) = delete;
  Announcer& operator=(const Announcer&) = delete;

  /// Announcements sent so far.
  unsigned sent() const { return sent_; }
  /// True when every announcement has been sent.
  bool finished() const { return sent_ >= count_; }

 private:
  Announcer() = default;
  Result<void> send_one();
  static int on_timer(sd_event_source* source, Usec usec, void* userdata) noexcept;

  Fd socket_;        ///< IPv6: our ICMPv6 socket. IPv4: empty (the daemon's shared ARP socket).
  int send_fd_ = -1;  ///< Where announcements go out.
  EventSourcePtr timer_;
  int ifindex_ = 0;
  MacAddress mac_{};
  InetAddress address_;
  unsigned count_ = 0;
  unsigned sent_ = 0;
  Duration interval_{0};
};

/// An RFC 5227 probe: asks whether anybody answers for an IPv4 address, and waits.
class ArpProbe {
 public:
  /// What the probe found.
  struct Outcome {
    bool in_use = false;
    MacAddress owner{};  ///< The answering host's hardware address, when in_use.
  };
  using Done = std::function<void(Outcome)>;

  /// Sends one probe on `ifindex` and calls `done` once: at the first conflicting packet, or
  /// with in_use = false after `wait`. Destroying the probe first cancels it.
  static Result<std::unique_ptr<ArpProbe>> start(sd_event* loop, int ifindex,
                                                 const MacAddress& mac,
                                                 const InetAddress& address, Duration wait,
                                                 Done done);
  ~ArpProbe();
  ArpProbe(const ArpProbe&) = delete;
  ArpProbe& operator=(const ArpProbe&) = delete;

 private:
  ArpProbe() = default;
  void finish(Outcome outcome);
  static int on_packet(sd_event_source* source, int fd, std::uint32_t revents,
                       void* userdata) noexcept;
  static int on_timeout(sd_event_source* source, Usec usec, void* userdata) noexcept;

  Fd socket_;
  EventSourcePtr io_;
  EventSourcePtr timer_;
  int ifindex_ = 0;
  MacAddress mac_{};
  InetAddress address_;
  Done done_;
};

}  // namespace clusterd
