// The `ip` resource type: a virtual IP address that moves with its group (MSCS "IP Address"
// resource). Online = probe (IPv4, RFC 5227), add over netlink, announce; offline = remove what
// we added; health = the address still on its link and the link up, read from the shared
// NetlinkWatcher's state, whose notifications report failures the moment they happen.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "driver.h"
#include "error.h"
#include "inet_address.h"
#include "resource_types.h"

namespace clusterd {

/// IFA_PROTO value marking addresses added by clusterd (the kernel uses 0-3 for its own).
/// IPv6 addresses have no label, so this marker is how an IPv6 address is recognised as ours.
inline constexpr std::uint8_t kClusterdAddressProto = 0x43;

/// Longest IPv4 address label the kernel keeps (IFNAMSIZ - 1).
inline constexpr std::size_t kMaxLabelLength = 15;

/// The parameters of an ip resource, validated.
struct IpParams {
  InetPrefix address;     ///< As configured; IPv4 is added as /32 whatever the length.
  std::string interface;  ///< Empty: the link whose own subnet contains the address.
  std::string label;      ///< As configured ("web" or "eth0:web"); empty: derived.
  unsigned arp_count = 5;
  Duration arp_interval{200};
  bool probe = true;
  Duration probe_wait{100};
};

/// Validates `params` of an ip resource.
Result<IpParams> parse_ip_params(const Params& params);

/// The IPv4 label for an address on `ifname`: `label` when given ("web" becomes
/// "IFNAME:web"; a full "IFNAME:web" is taken as is), else "IFNAME:RESOURCE" cut to 15
/// characters. Error when the label cannot fit or names another interface.
Result<std::string> ipv4_label(std::string_view ifname, std::string_view resource,
                               std::string_view label);

/// Metadata of the built-in `ip` type for the configuration validator.
TypeInfo ip_type_info();

class NetlinkWatcher;  // netlink_watcher.h
struct AddressInfo;    // netlink_watcher.h

/// Whether `address` (an entry for the address of ip resource `resource`, on link `ifname`)
/// was added by clusterd for that resource: IPv4 by its label, IPv6 by the IFA_PROTO marker.
bool is_resource_address(const AddressInfo& address, std::string_view ifname,
                         std::string_view resource, const IpParams& params);

/// An address of an ip resource found still configured, and what removing it came to.
struct LeftoverAddress {
  std::string group;
  std::string resource;
  std::string ifname;
  InetAddress address;
  int prefixlen = 0;
  Result<void> removed;  ///< The removal's outcome (ENODEV/EADDRNOTAVAIL count as removed).
};

/// Removes, with `netlink`, every address that an ip resource of `config` added and that is
/// still configured, whatever the resource's state (the self-fence hard deadline: nothing of
/// this node may keep a virtual IP). Use a watcher other than the ip drivers' shared one: the
/// drivers then hear of the removal like any removal by someone else and fail their resource,
/// so the engine stops it instead of adding the address again.
std::vector<LeftoverAddress> remove_resource_addresses(NetlinkWatcher& netlink,
                                                       const Config& config);

/// A driver for an ip resource; needs `context.netlink` and `context.loop`.
Result<std::unique_ptr<ResourceDriver>> make_ip_driver(const ResourceConfig& config,
                                                       const DriverContext& context);

/// Same, from already validated parameters (tests use it to set short intervals).
Result<std::unique_ptr<ResourceDriver>> make_ip_driver(const std::string& resource,
                                                       const IpParams& params,
                                                       const DriverContext& context);

}  // namespace clusterd
