#include "ip_driver.h"

#include <linux/if_addr.h>

#include <charconv>
#include <optional>
#include <utility>

#include "announce.h"
#include "config_load.h"
#include "handle.h"
#include "log.h"
#include "netlink_watcher.h"

namespace clusterd {
namespace {

constexpr unsigned kMaxArpCount = 100;
constexpr Duration kMaxProbeWait = std::chrono::seconds(10);

const ParamValue* scalar(const Params& params, const char* name, Result<void>& error) {
  auto it = params.find(name);
  if (it == params.end()) return nullptr;
  if (it->second.kind != ParamValue::Kind::Scalar) {
    error = fail("{} must be a single value", name);
    return nullptr;
  }
  return &it->second;
}

Result<unsigned> parse_count(const char* name, const std::string& text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      value > kMaxArpCount)
    return fail("{}: '{}' is not a whole number from 0 to {}", name, text, kMaxArpCount);
  return value;
}

Result<bool> parse_bool(const char* name, const std::string& text) {
  if (text == "true" || text == "yes" || text == "on" || text == "1") return true;
  if (text == "false" || text == "no" || text == "off" || text == "0") return false;
  return fail("{}: '{}' is not true or false", name, text);
}

Result<Duration> parse_positive_duration(const char* name, const std::string& text,
                                         Duration max) {
  auto d = parse_duration(text);
  if (!d) return fail("{}: {}", name, d.error().message);
  if (d->count() <= 0 || *d > max)
    return fail("{}: '{}' must be more than 0 and at most {}", name, text, format_duration(max));
  return *d;
}

Result<void> parse_optional(const Params& params, IpParams& out) {
  Result<void> error;
  if (auto* v = scalar(params, "interface", error)) {
    if (v->scalar.empty() || v->scalar.size() > kMaxLabelLength)
      return fail("interface: '{}' is not an interface name", v->scalar);
    out.interface = v->scalar;
  }
  if (auto* v = scalar(params, "label", error)) {
    if (out.address.address.family != AF_INET)
      return fail("label: only IPv4 addresses carry labels");
    if (v->scalar.empty() || v->scalar.size() > kMaxLabelLength)
      return fail("label: '{}' must have 1 to {} characters", v->scalar, kMaxLabelLength);
    out.label = v->scalar;
  }
  if (auto* v = scalar(params, "arp_count", error)) {
    auto count = parse_count("arp_count", v->scalar);
    if (!count) return std::unexpected(count.error());
    out.arp_count = *count;
  }
  if (auto* v = scalar(params, "arp_interval", error)) {
    auto d = parse_positive_duration("arp_interval", v->scalar, std::chrono::seconds(60));
    if (!d) return std::unexpected(d.error());
    out.arp_interval = *d;
  }
  if (auto* v = scalar(params, "probe", error)) {
    auto probe = parse_bool("probe", v->scalar);
    if (!probe) return std::unexpected(probe.error());
    out.probe = *probe;
  }
  if (auto* v = scalar(params, "probe_wait", error)) {
    auto d = parse_positive_duration("probe_wait", v->scalar, kMaxProbeWait);
    if (!d) return std::unexpected(d.error());
    out.probe_wait = *d;
  }
  return error;
}

bool has_mac(const MacAddress& mac) { return mac != MacAddress{}; }

// --- The driver ----------------------------------------------------------------------------

class IpDriver final : public ResourceDriver {
 public:
  IpDriver(std::string resource, IpParams params, sd_event* loop,
           std::shared_ptr<NetlinkWatcher> netlink)
      : resource_(std::move(resource)),
        params_(std::move(params)),
        loop_(loop),
        netlink_(std::move(netlink)) {}

  void start(Done done) override;
  void stop(Done done) override;
  void monitor(MonitorLevel level, Done done) override;
  void cancel() override;

 private:
  /// Where the address goes.
  struct Target {
    int ifindex = 0;
    std::string ifname;
    MacAddress mac{};
    std::string label;  // IPv4 only
  };

  const InetAddress& vip() const { return params_.address.address; }
  std::string vip_text() const { return vip().to_string(); }
  bool ipv4() const { return vip().family == AF_INET; }
  // IPv4 as a host address: one added inside the subnet of the link's primary address would
  // become a secondary, and the kernel deletes secondaries with their primary unless
  // promote_secondaries is set. IPv6 has no secondaries and keeps its configured length.
  int prefixlen() const { return ipv4() ? 32 : params_.address.prefixlen; }

  Result<Target> resolve() const;
  bool is_ours(const AddressInfo& address) const;
  std::optional<AddressInfo> find_ours() const;
  void check_existing_and_go(Done done);
  void probe_then_add(Done done);
  void add_and_announce(Done done);
  void go_online(Done done);
  void on_net_event(const NetEvent& event);
  void complete(Done done, ActionResult result);
  static int on_complete(sd_event_source* source, void* userdata) noexcept;
  std::string link_name(int ifindex) const;

  std::string resource_;
  IpParams params_;
  sd_event* loop_;
  std::shared_ptr<NetlinkWatcher> netlink_;
  std::optional<Target> target_;
  bool online_ = false;            // started (or adopted) and not stopped since
  bool failure_reported_ = false;  // report_failure said so already for this start
  std::unique_ptr<ArpProbe> probe_;
  std::unique_ptr<ArpProbe> spent_probe_;  ///< Finished; closed later, off the takeover path.
  std::unique_ptr<Announcer> announcer_;
  NetlinkWatcher::Subscription subscription_;
  EventSourcePtr completion_;
  Done completion_done_;
  ActionResult completion_result_;
};

ActionResult failed(std::string reason) { return {ActionStatus::Failed, std::move(reason), -1}; }

Result<IpDriver::Target> IpDriver::resolve() const {
  const LinkInfo* link = params_.interface.empty() ? netlink_->find_link_for_subnet(vip())
                                                   : netlink_->find_link(params_.interface);
  if (!link && params_.interface.empty())
    return fail("no interface has an address in a subnet containing {}; set 'interface'",
                vip_text());
  if (!link) return fail_errno(ENODEV, "interface {} does not exist", params_.interface);
  Target target{link->ifindex, link->name, link->mac, ""};
  if (ipv4()) {
    auto label = ipv4_label(link->name, resource_, params_.label);
    if (!label) return std::unexpected(Error{EINVAL, label.error().message});
    target.label = *label;
  }
  return target;
}

// IPv4: our label on that link (a resource's label is its identity: MSCS adopts nothing
// else). IPv6 has no labels: our IFA_PROTO marker.
bool IpDriver::is_ours(const AddressInfo& address) const {
  return is_resource_address(address, link_name(address.ifindex), resource_, params_);
}

std::optional<AddressInfo> IpDriver::find_ours() const {
  for (const auto& address : netlink_->find_address(vip()))
    if ((!target_ || address.ifindex == target_->ifindex) && is_ours(address)) return address;
  return std::nullopt;
}

std::string IpDriver::link_name(int ifindex) const {
  const LinkInfo* link = netlink_->find_link(ifindex);
  return link ? link->name : fmt::format("ifindex {}", ifindex);
}

void IpDriver::start(Done done) {
  cancel();
  online_ = false;
  failure_reported_ = false;
  auto target = resolve();
  if (!target) {
    auto status = target.error().errno_value == EINVAL ? ActionStatus::InvalidConfig
                                                       : ActionStatus::Failed;
    return complete(std::move(done), {status, target.error().message, -1});
  }
  target_ = *target;
  if (!netlink_->link_up(target_->ifindex))
    return complete(std::move(done), failed(fmt::format("link {} is down", target_->ifname)));
  check_existing_and_go(std::move(done));
}

void IpDriver::check_existing_and_go(Done done) {
  for (const auto& address : netlink_->find_address(vip())) {
    if (address.ifindex == target_->ifindex && is_ours(address)) {
      // Left by an earlier run of ours (a daemon restart): take it over as it is.
      log(LogLevel::Notice, {{"RESOURCE", resource_}, {"INTERFACE", target_->ifname}},
          "adopting {} already configured on {} with our marker", vip_text(), target_->ifname);
      return go_online(std::move(done));
    }
    return complete(std::move(done),
                    failed(fmt::format("{} is already configured on {}, not by clusterd",
                                       vip_text(), link_name(address.ifindex))));
  }
  if (params_.probe && ipv4() && has_mac(target_->mac)) return probe_then_add(std::move(done));
  add_and_announce(std::move(done));
}

// RFC 5227 2.1: ask before taking; a host still answering for the address (an old owner that
// did not stop, or anybody else) must keep it.
void IpDriver::probe_then_add(Done done) {
  auto probe = ArpProbe::start(
      loop_, target_->ifindex, target_->mac, vip(), params_.probe_wait,
      [this, done = std::move(done)](ArpProbe::Outcome outcome) mutable {
        // Closed only after the address is added and announced: closing a packet socket waits
        // for an RCU grace period (~10 ms), which must not delay the takeover.
        spent_probe_ = std::move(probe_);
        if (outcome.in_use)
          return complete(std::move(done),
                          failed(fmt::format("{} is already in use by {}", vip_text(),
                                             to_string(outcome.owner))));
        add_and_announce(std::move(done));
      });
  if (!probe)
    return complete(std::move(done), failed(fmt::format("cannot probe for {} on {}: {}",
                                                        vip_text(), target_->ifname,
                                                        probe.error().to_string())));
  probe_ = std::move(*probe);
}

void IpDriver::add_and_announce(Done done) {
  AddressRequest request{target_->ifindex, vip(),
                         prefixlen(),      target_->label,
                         ipv4() ? 0u : static_cast<std::uint32_t>(IFA_F_NODAD),
                         kClusterdAddressProto};
  // IFA_F_NODAD: the kernel's duplicate address detection would hold the address tentative
  // (unusable) for 1-2 s; the failover path must not wait that long.
  if (auto added = netlink_->add_address(request); !added)
    return complete(std::move(done), failed(fmt::format("cannot add {} to {}: {}", vip_text(),
                                                        target_->ifname,
                                                        added.error().to_string())));
  log(LogLevel::Info, {{"RESOURCE", resource_}, {"INTERFACE", target_->ifname}},
      "added {}/{} to {}", vip_text(), prefixlen(), target_->ifname);
  go_online(std::move(done));
}

void IpDriver::go_online(Done done) {
  subscription_ = netlink_->subscribe([this](const NetEvent& event) { on_net_event(event); });
  online_ = true;
  if (params_.arp_count > 0 && has_mac(target_->mac)) {
    auto announcer = Announcer::start(loop_, target_->ifindex, target_->mac, vip(),
                                      params_.arp_count, params_.arp_interval);
    if (!announcer)
      return complete(std::move(done),
                      failed(fmt::format("{} is on {} but could not be announced: {}", vip_text(),
                                         target_->ifname, announcer.error().to_string())));
    announcer_ = std::move(*announcer);
  }
  complete(std::move(done), {});
}

void IpDriver::on_net_event(const NetEvent& event) {
  if (!online_ || failure_reported_ || !target_) return;
  int ifindex = target_->ifindex;
  std::string reason;
  // Each event is checked against the current state, so an old event delivered late never
  // fails a resource that is fine now.
  if (event.kind == NetEventKind::AddressRemoved && event.address.ifindex == ifindex &&
      event.address.address == vip() && !netlink_->has_address(ifindex, vip()))
    reason = fmt::format("address {} was removed from {}", vip_text(), target_->ifname);
  else if (event.kind == NetEventKind::LinkDown && event.link.ifindex == ifindex &&
           !netlink_->link_up(ifindex))
    reason = fmt::format("link {} went down", target_->ifname);
  else if (event.kind == NetEventKind::LinkRemoved && event.link.ifindex == ifindex)
    reason = fmt::format("link {} was removed", target_->ifname);
  else
    return;
  failure_reported_ = true;
  announcer_.reset();
  report_failure(std::move(reason));
}

void IpDriver::stop(Done done) {
  cancel();
  announcer_.reset();
  subscription_.reset();
  online_ = false;
  auto ours = find_ours();
  if (!ours) return complete(std::move(done), {});  // nothing of ours is there
  auto removed = netlink_->remove_address(ours->ifindex, vip(), ours->prefixlen);
  // ENODEV: the link is gone, and the address with it.
  if (!removed && removed.error().errno_value != ENODEV &&
      removed.error().errno_value != EADDRNOTAVAIL)
    return complete(std::move(done), failed(fmt::format("cannot remove {} from {}: {}",
                                                        vip_text(), link_name(ours->ifindex),
                                                        removed.error().to_string())));
  log(LogLevel::Info, {{"RESOURCE", resource_}}, "removed {} from {}", vip_text(),
      link_name(ours->ifindex));
  complete(std::move(done), {});
}

void IpDriver::monitor(MonitorLevel, Done done) {
  // Both levels read the watcher's state: it is exact (notifications), so the thorough check
  // has nothing more to ask the kernel.
  auto ours = find_ours();
  if (!ours) {
    std::string where = target_ ? target_->ifname : "any interface";
    std::string reason = fmt::format("address {} is not configured on {}", vip_text(), where);
    return complete(std::move(done), {online_ ? ActionStatus::Failed : ActionStatus::NotRunning,
                                      std::move(reason), -1});
  }
  if (!netlink_->link_up(ours->ifindex))
    return complete(std::move(done),
                    failed(fmt::format("link {} is down", link_name(ours->ifindex))));
  complete(std::move(done), {});
}

void IpDriver::cancel() {
  probe_.reset();
  spent_probe_.reset();
  completion_.reset();
  completion_done_ = nullptr;
}

// Done runs from the loop, never inside the call that started the action: the engine may
// not expect its callback before start/stop/monitor returned.
void IpDriver::complete(Done done, ActionResult result) {
  completion_done_ = std::move(done);
  completion_result_ = std::move(result);
  sd_event_source* source = nullptr;
  if (sd_event_add_defer(loop_, &source, on_complete, this) < 0) {
    auto now = std::move(completion_done_);
    now(std::move(completion_result_));
    return;
  }
  sd_event_source_set_description(source, "ip-action-done");
  completion_.reset(source);
}

int IpDriver::on_complete(sd_event_source*, void* userdata) noexcept {
  auto* self = static_cast<IpDriver*>(userdata);
  // Done may destroy the driver: take everything out of it first.
  EventSourcePtr source = std::move(self->completion_);
  Done done = std::move(self->completion_done_);
  ActionResult result = std::move(self->completion_result_);
  if (done) done(std::move(result));
  return 0;
}

}  // namespace

bool is_resource_address(const AddressInfo& address, std::string_view ifname,
                         std::string_view resource, const IpParams& params) {
  if (params.address.address.family != AF_INET) return address.proto == kClusterdAddressProto;
  auto label = ipv4_label(ifname, resource, params.label);
  return label && address.label == *label;
}

std::vector<LeftoverAddress> remove_resource_addresses(NetlinkWatcher& netlink,
                                                       const Config& config) {
  std::vector<LeftoverAddress> out;
  for (const auto& group : config.groups) {
    for (const auto& resource : group.resources) {
      if (resource.type != "ip") continue;
      auto params = parse_ip_params(resource.params);
      if (!params) continue;  // never started: the validator refuses such a configuration
      for (const auto& a : netlink.find_address(params->address.address)) {
        const LinkInfo* link = netlink.find_link(a.ifindex);
        std::string ifname = link ? link->name : fmt::format("ifindex {}", a.ifindex);
        if (!is_resource_address(a, ifname, resource.name, *params)) continue;
        Result<void> removed = netlink.remove_address(a.ifindex, a.address, a.prefixlen);
        // ENODEV: the link went with it; EADDRNOTAVAIL: gone meanwhile. Either way: not there.
        if (!removed && (removed.error().errno_value == ENODEV ||
                         removed.error().errno_value == EADDRNOTAVAIL))
          removed = {};
        out.push_back({group.name, resource.name, ifname, a.address, a.prefixlen, removed});
      }
    }
  }
  return out;
}

Result<IpParams> parse_ip_params(const Params& params) {
  TypeInfo info = ip_type_info();
  for (const auto& [name, value] : params)
    if (!info.find(name)) return fail("unknown parameter {} for an ip resource", name);
  IpParams out;
  Result<void> error;
  const ParamValue* address = scalar(params, "address", error);
  if (!error) return std::unexpected(error.error());
  if (!address) return fail("address is required");
  auto prefix = InetPrefix::parse(address->scalar);
  if (!prefix) return fail("address: {}", prefix.error().message);
  out.address = *prefix;
  if (auto optional = parse_optional(params, out); !optional)
    return std::unexpected(optional.error());
  return out;
}

Result<std::string> ipv4_label(std::string_view ifname, std::string_view resource,
                               std::string_view label) {
  std::string prefix = fmt::format("{}:", ifname);
  if (label.empty()) {
    if (prefix.size() >= kMaxLabelLength)
      return fail("interface name {} leaves no room for a label of at most {} characters; "
                  "set 'label'",
                  ifname, kMaxLabelLength);
    // Cut, not refused: the derived label only has to be stable and recognisable.
    return (prefix + std::string(resource)).substr(0, kMaxLabelLength);
  }
  std::string full = label.find(':') == std::string_view::npos
                         ? prefix + std::string(label)
                         : std::string(label);
  // The kernel's convention (and ifconfig's alias view) needs the interface name first.
  if (!full.starts_with(prefix) || full.size() == prefix.size())
    return fail("label {} must be NAME or {}NAME", label, prefix);
  if (full.size() > kMaxLabelLength)
    return fail("label {} is longer than {} characters", full, kMaxLabelLength);
  return full;
}

TypeInfo ip_type_info() {
  using K = ParamValue::Kind;
  TypeInfo info;
  info.name = "ip";
  info.params = {
      {"address", true, "", K::Scalar, "string",
       "The virtual IP: 10.0.0.50, 10.0.0.50/24 or fd00::50/64 (IPv4 is added as /32)."},
      {"interface", false, "", K::Scalar, "string",
       "Interface to add it to; default: the one whose own subnet contains the address."},
      {"label", false, "", K::Scalar, "string",
       "IPv4 label NAME or IFACE:NAME (15 characters at most); default: IFACE:RESOURCE."},
      {"arp_count", false, "5", K::Scalar, "integer",
       "Gratuitous ARPs / unsolicited neighbour advertisements sent after adding (0-100)."},
      {"arp_interval", false, "200ms", K::Scalar, "duration", "Time between announcements."},
      {"probe", false, "true", K::Scalar, "boolean",
       "IPv4: refuse the address when an ARP probe (RFC 5227) gets an answer."},
      {"probe_wait", false, "100ms", K::Scalar, "duration",
       "How long to wait for an answer to the probe (at most 10s)."},
  };
  info.advised_start_timeout = std::chrono::seconds(5);
  info.advised_stop_timeout = std::chrono::seconds(5);
  info.advised_monitor_timeout = std::chrono::seconds(5);
  info.advised_monitor_interval = std::chrono::seconds(10);
  return info;
}

Result<std::unique_ptr<ResourceDriver>> make_ip_driver(const ResourceConfig& config,
                                                       const DriverContext& context) {
  auto params = parse_ip_params(config.params);
  if (!params) return fail("resource {}: {}", config.name, params.error().message);
  return make_ip_driver(config.name, *params, context);
}

Result<std::unique_ptr<ResourceDriver>> make_ip_driver(const std::string& resource,
                                                       const IpParams& params,
                                                       const DriverContext& context) {
  if (!context.loop || !context.netlink)
    return fail("resource {}: the ip type needs the daemon's event loop and netlink watcher",
                resource);
  return std::make_unique<IpDriver>(resource, params, context.loop, context.netlink);
}

}  // namespace clusterd
