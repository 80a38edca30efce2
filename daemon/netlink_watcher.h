// The daemon's view of the kernel's links and addresses, kept current by rtnetlink notifications
// (style habit 8: read at start, then follow notifications, never poll). One per daemon, shared
// by every ip resource through DriverContext::netlink.
//
// Two netlink sockets: a non-blocking one subscribed to RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR and
// RTNLGRP_IPV6_IFADDR whose fd is an sd-event io source, and a request socket for dumps and for
// address changes. Requests are synchronous with ACK: the kernel handles RTM_NEWADDR/DELADDR and
// fills a dump inside the send/recv calls without waiting on anything, so these calls return in
// microseconds and the loop never blocks long.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <systemd/sd-event.h>

#include "error.h"
#include "handle.h"
#include "inet_address.h"

namespace clusterd {

using NlSockPtr = std::unique_ptr<nl_sock, Free<nl_socket_free>>;
using NlMsgPtr = std::unique_ptr<nl_msg, Free<nlmsg_free>>;
using NlCbPtr = std::unique_ptr<nl_cb, Free<nl_cb_put>>;

/// One network interface as the kernel last described it.
struct LinkInfo {
  int ifindex = 0;
  std::string name;
  unsigned flags = 0;  ///< IFF_* from ifinfomsg.
  MacAddress mac{};    ///< Hardware address; zero when the link has none of Ethernet size.

  /// Administratively up and operationally running (IFF_UP and IFF_RUNNING: carrier present).
  bool up() const;
};

/// One address on an interface.
struct AddressInfo {
  int ifindex = 0;
  InetAddress address;  ///< IFA_LOCAL for IPv4, IFA_ADDRESS for IPv6.
  int prefixlen = 0;
  std::string label;        ///< IPv4 kernel label ("eth0:web"); empty for IPv6.
  std::uint32_t flags = 0;  ///< IFA_F_* (IFA_FLAGS when present).
  std::uint8_t proto = 0;   ///< IFA_PROTO (who added it; 0 when unset).
  std::uint8_t scope = 0;   ///< RT_SCOPE_*.

  /// Identity as the kernel sees it: interface, address and prefix length.
  auto key() const { return std::tuple(ifindex, address, prefixlen); }
};

/// What changed.
enum class NetEventKind { LinkUp, LinkDown, LinkRemoved, AddressAdded, AddressRemoved };
inline constexpr int kNetEventKindCount = 5;
/// "link-up", "link-down", "link-removed", "address-added", "address-removed".
const char* to_string(NetEventKind kind);

/// One change seen on netlink (or found by a resync).
struct NetEvent {
  NetEventKind kind = NetEventKind::LinkUp;
  LinkInfo link;        ///< The link concerned (for address events: its last known state).
  AddressInfo address;  ///< Address events only.
};

/// An address to add.
struct AddressRequest {
  int ifindex = 0;
  InetAddress address;
  int prefixlen = 0;
  std::string label;        ///< IPv4 only; empty: the kernel uses the interface name.
  std::uint32_t flags = 0;  ///< IFA_F_* (e.g. IFA_F_NODAD).
  std::uint8_t proto = 0;   ///< IFA_PROTO marker; 0: none.
};

/// Watches links and addresses; adds and removes addresses. Call only from the event loop.
class NetlinkWatcher : public std::enable_shared_from_this<NetlinkWatcher> {
 public:
  using Listener = std::function<void(const NetEvent&)>;

  /// Keeps a listener registered; unregisters it when destroyed (even after the watcher died).
  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&&) noexcept = default;
    Subscription& operator=(Subscription&& other) noexcept;
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    ~Subscription();
    /// Unregisters now.
    void reset();

   private:
    friend class NetlinkWatcher;
    Subscription(std::weak_ptr<NetlinkWatcher> watcher, std::uint64_t id)
        : watcher_(std::move(watcher)), id_(id) {}
    std::weak_ptr<NetlinkWatcher> watcher_;
    std::uint64_t id_ = 0;
  };

  /// Opens both sockets in the caller's network namespace, subscribes, dumps links and
  /// addresses, and attaches the notification socket to `loop`.
  static Result<std::shared_ptr<NetlinkWatcher>> create(sd_event* loop);
  ~NetlinkWatcher();
  NetlinkWatcher(const NetlinkWatcher&) = delete;
  NetlinkWatcher& operator=(const NetlinkWatcher&) = delete;

  /// The link with `ifindex`, or nullptr.
  const LinkInfo* find_link(int ifindex) const;
  /// The link called `name`, or nullptr.
  const LinkInfo* find_link(std::string_view name) const;
  /// The link owning an address whose subnet contains `address` (longest prefix wins; ties go
  /// to the lowest ifindex), or nullptr. Host addresses (/32, /128) equal to `address` count.
  const LinkInfo* find_link_for_subnet(const InetAddress& address) const;
  /// The entry for `address` on `ifindex` (any prefix length), or nullptr.
  const AddressInfo* find_address(int ifindex, const InetAddress& address) const;
  /// Every entry for `address`, on any link.
  std::vector<AddressInfo> find_address(const InetAddress& address) const;
  /// True when `address` is configured on `ifindex`.
  bool has_address(int ifindex, const InetAddress& address) const;
  /// True when the link exists and is up (LinkInfo::up).
  bool link_up(int ifindex) const;
  /// Every known link, by ifindex.
  const std::map<int, LinkInfo>& links() const { return state_.links; }

  /// Adds an address (RTM_NEWADDR with NLM_F_EXCL; EEXIST when it is there already) and waits
  /// for the kernel's ACK. The state includes it on return; listeners hear of it from the loop.
  Result<void> add_address(const AddressRequest& request);
  /// Removes an address and waits for the ACK; errno ENODEV when the link is gone,
  /// EADDRNOTAVAIL when the address is not there. The state drops it on return; listeners are
  /// not told (only removals by others are news).
  Result<void> remove_address(int ifindex, const InetAddress& address, int prefixlen);

  /// Calls `listener` for every change from now on, until the Subscription is destroyed.
  [[nodiscard]] Subscription subscribe(Listener listener);

  /// Dumps links and addresses again and reports the differences as events (done by itself
  /// when the kernel dropped notifications: ENOBUFS).
  Result<void> resync();
  /// How many resyncs happened since creation (the initial dump not counted).
  unsigned resync_count() const { return resync_count_; }
  /// The notification socket's fd (tests shrink its buffer to provoke ENOBUFS).
  int notification_fd() const;

 private:
  using AddressKey = std::tuple<int, InetAddress, int>;
  struct State {
    std::map<int, LinkInfo> links;
    std::map<AddressKey, AddressInfo> addresses;
  };

  NetlinkWatcher() = default;
  Result<void> open_sockets(sd_event* loop);
  Result<State> dump() const;
  Result<void> dump_into(State& state, int type) const;
  Result<void> request(nl_msg* message);
  void read_notifications();
  void drain();
  void schedule_flush();
  void flush_pending();
  Result<void> resync_into_pending();
  void emit(const std::vector<NetEvent>& events);
  void unsubscribe(std::uint64_t id);

  static int on_io(sd_event_source* source, int fd, std::uint32_t revents, void* userdata) noexcept;

  /// Where parsed messages go: the state to update and, for notifications, the events found.
  struct ParseTarget {
    State* state = nullptr;
    std::vector<NetEvent>* events = nullptr;
  };
  static int on_message(nl_msg* message, void* arg) noexcept;
  static void apply(const nlmsghdr* header, ParseTarget& target);
  static void apply_link(const nlmsghdr* header, ParseTarget& target);
  static void apply_address(const nlmsghdr* header, ParseTarget& target);
  static std::vector<NetEvent> differences(const State& before, const State& after);

  NlSockPtr events_;    ///< Multicast notifications, non-blocking, on the loop.
  NlSockPtr requests_;  ///< Dumps and address requests, blocking with a receive timeout.
  NlCbPtr events_cb_;   ///< The notification socket's callbacks (parse into state_).
  EventSourcePtr io_;
  EventSourcePtr flush_;  ///< Delivers pending_ from the loop after a request.
  State state_;
  std::vector<NetEvent> pending_;  ///< Events parsed from notifications, not yet delivered.
  ParseTarget notify_target_{&state_, &pending_};
  std::map<std::uint64_t, Listener> listeners_;
  std::uint64_t next_listener_id_ = 1;
  unsigned resync_count_ = 0;
};

}  // namespace clusterd
