#include "netlink_watcher.h"

#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cstring>

#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/route/rtnl.h>

#include "log.h"

namespace clusterd {
namespace {

// A kernel answer to a request or a dump never takes this long; the timeout only guards
// against a bug leaving the loop stuck in recv().
constexpr int kRequestTimeoutSeconds = 2;
// Large enough for the notification bursts of a link with many addresses going away; when even
// this overflows, the kernel says ENOBUFS and we resync.
constexpr int kNotificationBufferBytes = 1 << 20;
// A dump interrupted by a concurrent change (NLM_F_DUMP_INTR) is simply taken again.
constexpr int kDumpAttempts = 5;

constexpr const char* kNetEventKindNames[kNetEventKindCount] = {
    "link-up", "link-down", "link-removed", "address-added", "address-removed"};

std::string nl_error_text(int err) { return nl_geterror(err); }

Result<NlSockPtr> open_route_socket() {
  NlSockPtr sock(nl_socket_alloc());
  if (!sock) return fail("cannot allocate a netlink socket");
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0)
    return fail("cannot open an rtnetlink socket: {}", nl_error_text(err));
  return sock;
}

Result<void> set_receive_timeout(nl_sock* sock, int seconds) {
  timeval tv{seconds, 0};
  if (setsockopt(nl_socket_get_fd(sock), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
    return fail_errno(errno, "cannot set a receive timeout on the netlink request socket");
  return {};
}

LinkInfo parse_link(const nlmsghdr* header, const LinkInfo* previous) {
  auto* ifi = static_cast<const ifinfomsg*>(nlmsg_data(header));
  nlattr* tb[IFLA_MAX + 1] = {};
  nlmsg_parse(const_cast<nlmsghdr*>(header), sizeof(ifinfomsg), tb, IFLA_MAX, nullptr);
  LinkInfo link;
  if (previous) link = *previous;
  link.ifindex = ifi->ifi_index;
  link.flags = ifi->ifi_flags;
  if (tb[IFLA_IFNAME]) link.name = nla_get_string(tb[IFLA_IFNAME]);
  if (tb[IFLA_ADDRESS] && nla_len(tb[IFLA_ADDRESS]) == static_cast<int>(link.mac.size()))
    std::memcpy(link.mac.data(), nla_data(tb[IFLA_ADDRESS]), link.mac.size());
  return link;
}

Result<AddressInfo> parse_address(const nlmsghdr* header) {
  auto* ifa = static_cast<const ifaddrmsg*>(nlmsg_data(header));
  nlattr* tb[IFA_MAX + 1] = {};
  nlmsg_parse(const_cast<nlmsghdr*>(header), sizeof(ifaddrmsg), tb, IFA_MAX, nullptr);
  // IPv4 puts the interface's own address in IFA_LOCAL (IFA_ADDRESS is the peer on
  // point-to-point links); IPv6 sends IFA_ADDRESS only.
  nlattr* local = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
  if (!local) return fail("address message without an address");
  auto address = InetAddress::from_bytes(ifa->ifa_family, nla_data(local), nla_len(local));
  if (!address) return std::unexpected(address.error());
  AddressInfo info;
  info.ifindex = static_cast<int>(ifa->ifa_index);
  info.address = *address;
  info.prefixlen = ifa->ifa_prefixlen;
  info.scope = ifa->ifa_scope;
  info.flags = tb[IFA_FLAGS] ? nla_get_u32(tb[IFA_FLAGS]) : ifa->ifa_flags;
  if (tb[IFA_LABEL]) info.label = nla_get_string(tb[IFA_LABEL]);
  if (tb[IFA_PROTO]) info.proto = nla_get_u8(tb[IFA_PROTO]);
  return info;
}

// RTM_NEWADDR/RTM_DELADDR body: both address attributes carry the same local address, which
// both families accept (the kernel reads IFA_LOCAL first).
Result<NlMsgPtr> address_message(int type, int flags, int ifindex, const InetAddress& address,
                                 int prefixlen) {
  NlMsgPtr message(nlmsg_alloc_simple(type, flags));
  if (!message) return fail("cannot allocate a netlink message");
  ifaddrmsg ifa{};
  ifa.ifa_family = static_cast<std::uint8_t>(address.family);
  ifa.ifa_prefixlen = static_cast<std::uint8_t>(prefixlen);
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<std::uint32_t>(ifindex);
  int size = static_cast<int>(address.size());
  if (nlmsg_append(message.get(), &ifa, sizeof ifa, NLMSG_ALIGNTO) < 0 ||
      nla_put(message.get(), IFA_LOCAL, size, address.bytes.data()) < 0 ||
      nla_put(message.get(), IFA_ADDRESS, size, address.bytes.data()) < 0)
    return fail("cannot build a netlink address message");
  return message;
}

}  // namespace

bool LinkInfo::up() const { return (flags & IFF_UP) && (flags & IFF_RUNNING); }

const char* to_string(NetEventKind kind) {
  return kNetEventKindNames[static_cast<int>(kind)];
}

// --- Subscription -------------------------------------------------------------------------

NetlinkWatcher::Subscription& NetlinkWatcher::Subscription::operator=(
    Subscription&& other) noexcept {
  if (this != &other) {
    reset();
    watcher_ = std::move(other.watcher_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

NetlinkWatcher::Subscription::~Subscription() { reset(); }

void NetlinkWatcher::Subscription::reset() {
  if (auto watcher = watcher_.lock(); watcher && id_ != 0) watcher->unsubscribe(id_);
  watcher_.reset();
  id_ = 0;
}

// --- Setup ---------------------------------------------------------------------------------

Result<std::shared_ptr<NetlinkWatcher>> NetlinkWatcher::create(sd_event* loop) {
  std::shared_ptr<NetlinkWatcher> watcher(new NetlinkWatcher());
  if (auto opened = watcher->open_sockets(loop); !opened) return std::unexpected(opened.error());
  // Subscribed before dumping: a change racing with the dump is then also seen as a
  // notification afterwards, and applying it again is harmless.
  auto state = watcher->dump();
  if (!state) return std::unexpected(state.error());
  watcher->state_ = std::move(*state);
  return watcher;
}

NetlinkWatcher::~NetlinkWatcher() = default;

Result<void> NetlinkWatcher::open_sockets(sd_event* loop) {
  auto events = open_route_socket();
  if (!events) return std::unexpected(events.error());
  events_ = std::move(*events);
  nl_socket_disable_seq_check(events_.get());
  nl_socket_modify_cb(events_.get(), NL_CB_VALID, NL_CB_CUSTOM, on_message, &notify_target_);
  events_cb_.reset(nl_socket_get_cb(events_.get()));
  if (int err = nl_socket_add_memberships(events_.get(), RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR,
                                          RTNLGRP_IPV6_IFADDR, 0);
      err < 0)
    return fail("cannot subscribe to link and address notifications: {}", nl_error_text(err));
  nl_socket_set_nonblocking(events_.get());
  nl_socket_set_buffer_size(events_.get(), kNotificationBufferBytes, 0);

  auto requests = open_route_socket();
  if (!requests) return std::unexpected(requests.error());
  requests_ = std::move(*requests);
  if (auto timeout = set_receive_timeout(requests_.get(), kRequestTimeoutSeconds); !timeout)
    return timeout;

  sd_event_source* source = nullptr;
  int r = sd_event_add_io(loop, &source, nl_socket_get_fd(events_.get()), EPOLLIN, on_io, this);
  if (r < 0) return fail_errno(r, "cannot watch the rtnetlink socket");
  io_.reset(source);
  sd_event_source_set_description(source, "netlink-watcher");
  return {};
}

int NetlinkWatcher::notification_fd() const { return nl_socket_get_fd(events_.get()); }

// --- Dumps ---------------------------------------------------------------------------------

Result<NetlinkWatcher::State> NetlinkWatcher::dump() const {
  for (int attempt = 1;; ++attempt) {
    State state;
    auto links = dump_into(state, RTM_GETLINK);
    auto addresses = links ? dump_into(state, RTM_GETADDR) : links;
    if (addresses) return state;
    if (addresses.error().errno_value != EINTR || attempt == kDumpAttempts)
      return std::unexpected(addresses.error());
  }
}

Result<void> NetlinkWatcher::dump_into(State& state, int type) const {
  const char* what = type == RTM_GETLINK ? "links" : "addresses";
  if (int err = nl_rtgen_request(requests_.get(), type, AF_UNSPEC, NLM_F_DUMP); err < 0)
    return fail("cannot ask the kernel for its {}: {}", what, nl_error_text(err));
  NlCbPtr cb(nl_cb_alloc(NL_CB_DEFAULT));
  if (!cb) return fail("cannot allocate netlink callbacks");
  ParseTarget target{&state, nullptr};
  nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, on_message, &target);
  if (int err = nl_recvmsgs(requests_.get(), cb.get()); err < 0) {
    // The kernel flags a dump that raced with a change; the caller takes it again.
    int errno_value = err == -NLE_DUMP_INTR ? EINTR : 0;
    return std::unexpected(Error{errno_value, fmt::format("cannot read the kernel's {}: {}",
                                                          what, nl_error_text(err))});
  }
  return {};
}

Result<void> NetlinkWatcher::resync() {
  auto synced = resync_into_pending();
  flush_pending();
  return synced;
}

Result<void> NetlinkWatcher::resync_into_pending() {
  auto fresh = dump();
  if (!fresh) return std::unexpected(fresh.error());
  ++resync_count_;
  auto events = differences(state_, *fresh);
  state_ = std::move(*fresh);
  pending_.insert(pending_.end(), events.begin(), events.end());
  return {};
}

std::vector<NetEvent> NetlinkWatcher::differences(const State& before, const State& after) {
  std::vector<NetEvent> events;
  auto link_of = [](const State& s, int ifindex) {
    auto it = s.links.find(ifindex);
    return it != s.links.end() ? it->second : LinkInfo{ifindex, {}, 0, {}};
  };
  for (const auto& [key, info] : before.addresses)
    if (!after.addresses.contains(key))
      events.push_back({NetEventKind::AddressRemoved, link_of(before, info.ifindex), info});
  for (const auto& [key, info] : after.addresses)
    if (!before.addresses.contains(key))
      events.push_back({NetEventKind::AddressAdded, link_of(after, info.ifindex), info});
  for (const auto& [ifindex, link] : before.links) {
    auto it = after.links.find(ifindex);
    if (it == after.links.end())
      events.push_back({NetEventKind::LinkRemoved, link, {}});
    else if (link.up() != it->second.up())
      events.push_back({it->second.up() ? NetEventKind::LinkUp : NetEventKind::LinkDown,
                        it->second, {}});
  }
  return events;
}

// --- Notifications -------------------------------------------------------------------------

int NetlinkWatcher::on_io(sd_event_source*, int, std::uint32_t, void* userdata) noexcept {
  auto* watcher = static_cast<NetlinkWatcher*>(userdata);
  // A listener may drop the last other reference (an engine destroying a failed driver).
  auto keep_alive = watcher->shared_from_this();
  watcher->read_notifications();
  return 0;
}

void NetlinkWatcher::read_notifications() {
  drain();
  flush_pending();
}

void NetlinkWatcher::drain() {
  for (;;) {
    int n = nl_recvmsgs_report(events_.get(), events_cb_.get());
    if (n > 0) continue;
    if (n == 0 || n == -NLE_AGAIN) return;  // drained
    if (n == -NLE_NOMEM) {
      // ENOBUFS: the kernel dropped notifications; only a fresh dump tells what we missed.
      log(LogLevel::Warning, {}, "netlink notifications were lost (ENOBUFS), resyncing");
      if (auto synced = resync_into_pending(); !synced)
        log(LogLevel::Err, {}, "netlink resync failed: {}", synced.error().to_string());
      continue;  // notifications queued after the overflow are still to be read
    }
    log(LogLevel::Warning, {}, "reading netlink notifications failed, ignoring: {}",
        nl_error_text(n));
    return;
  }
}

void NetlinkWatcher::schedule_flush() {
  if (pending_.empty() || flush_) return;
  sd_event_source* source = nullptr;
  int r = sd_event_add_defer(
      sd_event_source_get_event(io_.get()), &source,
      [](sd_event_source*, void* userdata) noexcept -> int {
        auto* self = static_cast<NetlinkWatcher*>(userdata);
        auto keep_alive = self->shared_from_this();
        auto source = std::move(self->flush_);  // released after the callbacks ran
        self->flush_pending();
        return 0;
      },
      this);
  if (r < 0) {
    // Cannot happen short of memory exhaustion; deliver now rather than never.
    flush_pending();
    return;
  }
  sd_event_source_set_description(source, "netlink-watcher-flush");
  flush_.reset(source);
}

void NetlinkWatcher::flush_pending() {
  std::vector<NetEvent> events;
  events.swap(pending_);
  emit(events);
}

int NetlinkWatcher::on_message(nl_msg* message, void* arg) noexcept {
  apply(nlmsg_hdr(message), *static_cast<ParseTarget*>(arg));
  return NL_OK;
}

void NetlinkWatcher::apply(const nlmsghdr* header, ParseTarget& target) {
  switch (header->nlmsg_type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
      apply_link(header, target);
      break;
    case RTM_NEWADDR:
    case RTM_DELADDR:
      apply_address(header, target);
      break;
    default:
      break;
  }
}

void NetlinkWatcher::apply_link(const nlmsghdr* header, ParseTarget& target) {
  if (!nlmsg_valid_hdr(header, sizeof(ifinfomsg))) return;
  // AF_BRIDGE messages describe bridge ports, not the links themselves: a port leaving its
  // bridge sends an AF_BRIDGE RTM_DELLINK for a link that still exists.
  if (static_cast<const ifinfomsg*>(nlmsg_data(header))->ifi_family != AF_UNSPEC) return;
  auto& links = target.state->links;
  int ifindex = static_cast<const ifinfomsg*>(nlmsg_data(header))->ifi_index;
  auto it = links.find(ifindex);
  const LinkInfo* previous = it != links.end() ? &it->second : nullptr;
  LinkInfo link = parse_link(header, previous);
  auto* events = target.events;
  if (header->nlmsg_type == RTM_DELLINK) {
    if (!previous) return;
    // The kernel announces the link's addresses going too, but not always before the link.
    auto& addresses = target.state->addresses;
    for (auto a = addresses.begin(); a != addresses.end();) {
      if (a->second.ifindex != ifindex) { ++a; continue; }
      if (events) events->push_back({NetEventKind::AddressRemoved, link, a->second});
      a = addresses.erase(a);
    }
    if (events) events->push_back({NetEventKind::LinkRemoved, link, {}});
    links.erase(it);
    return;
  }
  bool was_up = previous && previous->up();
  if (events && link.up() != was_up)
    events->push_back({link.up() ? NetEventKind::LinkUp : NetEventKind::LinkDown, link, {}});
  links[ifindex] = std::move(link);
}

void NetlinkWatcher::apply_address(const nlmsghdr* header, ParseTarget& target) {
  if (!nlmsg_valid_hdr(header, sizeof(ifaddrmsg))) return;
  auto info = parse_address(header);
  if (!info) return;  // a family we do not handle
  auto& addresses = target.state->addresses;
  auto key = info->key();
  bool known = addresses.contains(key);
  LinkInfo link;
  if (auto l = target.state->links.find(info->ifindex); l != target.state->links.end())
    link = l->second;
  if (header->nlmsg_type == RTM_DELADDR) {
    if (!known) return;
    addresses.erase(key);
    if (target.events) target.events->push_back({NetEventKind::AddressRemoved, link, *info});
    return;
  }
  addresses[key] = *info;
  if (!known && target.events)
    target.events->push_back({NetEventKind::AddressAdded, link, *info});
}

// --- Listeners -----------------------------------------------------------------------------

NetlinkWatcher::Subscription NetlinkWatcher::subscribe(Listener listener) {
  std::uint64_t id = next_listener_id_++;
  listeners_.emplace(id, std::move(listener));
  return Subscription(weak_from_this(), id);
}

void NetlinkWatcher::unsubscribe(std::uint64_t id) { listeners_.erase(id); }

void NetlinkWatcher::emit(const std::vector<NetEvent>& events) {
  for (const auto& event : events) {
    // Listeners may unsubscribe (or subscribe) while being called: walk a snapshot of ids.
    std::vector<std::uint64_t> ids;
    for (const auto& [id, listener] : listeners_) ids.push_back(id);
    for (auto id : ids) {
      auto it = listeners_.find(id);
      if (it == listeners_.end()) continue;
      Listener listener = it->second;  // a copy: the listener may unsubscribe itself
      listener(event);
    }
  }
}

// --- Queries -------------------------------------------------------------------------------

const LinkInfo* NetlinkWatcher::find_link(int ifindex) const {
  auto it = state_.links.find(ifindex);
  return it != state_.links.end() ? &it->second : nullptr;
}

const LinkInfo* NetlinkWatcher::find_link(std::string_view name) const {
  for (const auto& [ifindex, link] : state_.links)
    if (link.name == name) return &link;
  return nullptr;
}

const LinkInfo* NetlinkWatcher::find_link_for_subnet(const InetAddress& address) const {
  const AddressInfo* best = nullptr;
  for (const auto& [key, info] : state_.addresses) {
    if (!info.address.same_subnet(address, info.prefixlen)) continue;
    if (!best || info.prefixlen > best->prefixlen) best = &info;
  }
  return best ? find_link(best->ifindex) : nullptr;
}

const AddressInfo* NetlinkWatcher::find_address(int ifindex, const InetAddress& address) const {
  for (const auto& [key, info] : state_.addresses)
    if (info.ifindex == ifindex && info.address == address) return &info;
  return nullptr;
}

std::vector<AddressInfo> NetlinkWatcher::find_address(const InetAddress& address) const {
  std::vector<AddressInfo> found;
  for (const auto& [key, info] : state_.addresses)
    if (info.address == address) found.push_back(info);
  return found;
}

bool NetlinkWatcher::has_address(int ifindex, const InetAddress& address) const {
  return find_address(ifindex, address) != nullptr;
}

bool NetlinkWatcher::link_up(int ifindex) const {
  const LinkInfo* link = find_link(ifindex);
  return link && link->up();
}

// --- Requests ------------------------------------------------------------------------------

Result<void> NetlinkWatcher::add_address(const AddressRequest& request) {
  auto message = address_message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, request.ifindex,
                                 request.address, request.prefixlen);
  if (!message) return std::unexpected(message.error());
  nl_msg* m = message->get();
  if ((!request.label.empty() && nla_put_string(m, IFA_LABEL, request.label.c_str()) < 0) ||
      nla_put_u32(m, IFA_FLAGS, request.flags) < 0 ||
      (request.proto != 0 && nla_put_u8(m, IFA_PROTO, request.proto) < 0))
    return fail("cannot build a netlink address message");
  if (auto done = this->request(m); !done) return done;
  // IPv4 queues its notification before the ACK: reading it now brings the state up to date in
  // the kernel's own order. Listeners hear of it from the loop, not from inside here.
  drain();
  schedule_flush();
  // IPv6 announces a new address from its DAD work, later (even with IFA_F_NODAD): the state
  // takes it now; the notification will find it known.
  AddressInfo info{request.ifindex, request.address, request.prefixlen,
                   request.address.family == AF_INET ? request.label : std::string(),
                   request.flags, request.proto, RT_SCOPE_UNIVERSE};
  state_.addresses.try_emplace(info.key(), info);
  return {};
}

Result<void> NetlinkWatcher::remove_address(int ifindex, const InetAddress& address,
                                            int prefixlen) {
  auto message = address_message(RTM_DELADDR, 0, ifindex, address, prefixlen);
  if (!message) return std::unexpected(message.error());
  auto done = request(message->get());
  drain();  // as in add_address: the state follows the kernel's order
  // Our own removal must never look like a failure to a listener.
  AddressKey key(ifindex, address, prefixlen);
  std::erase_if(pending_, [&](const NetEvent& e) {
    return e.kind == NetEventKind::AddressRemoved && e.address.key() == key;
  });
  // Gone either way; a notification still to come then finds nothing and says nothing.
  state_.addresses.erase(key);
  schedule_flush();
  return done;
}

Result<void> NetlinkWatcher::request(nl_msg* message) {
  struct Outcome {
    bool done = false;
    int error = 0;
  } outcome;
  NlCbPtr cb(nl_cb_alloc(NL_CB_DEFAULT));
  if (!cb) return fail("cannot allocate netlink callbacks");
  nl_cb_set(
      cb.get(), NL_CB_ACK, NL_CB_CUSTOM,
      [](nl_msg*, void* arg) noexcept -> int {
        static_cast<Outcome*>(arg)->done = true;
        return NL_STOP;
      },
      &outcome);
  nl_cb_err(
      cb.get(), NL_CB_CUSTOM,
      [](sockaddr_nl*, nlmsgerr* err, void* arg) noexcept -> int {
        auto* o = static_cast<Outcome*>(arg);
        o->done = true;
        o->error = -err->error;
        return NL_STOP;
      },
      &outcome);
  if (int err = nl_send_auto(requests_.get(), message); err < 0)
    return fail("cannot send a netlink request: {}", nl_error_text(err));
  while (!outcome.done) {
    // A refusal also ends nl_recvmsgs with an error; the outcome holds the kernel's errno.
    if (int err = nl_recvmsgs(requests_.get(), cb.get()); err < 0 && !outcome.done)
      return fail("no answer to a netlink request: {}", nl_error_text(err));
  }
  if (outcome.error != 0) return fail_errno(outcome.error, "the kernel refused the request");
  return {};
}

}  // namespace clusterd
