// The `name` resource type: the group's network name (MSCS "Network Name", the virtual server's
// name). Resources that depend on it get it as CLUSTER_NETWORK_NAME, and process resources can
// take it as their host name; optionally the name is registered in DNS by RFC 2136 dynamic
// update with TSIG: online replaces the name's A/AAAA records with the group's addresses,
// offline deletes them (best effort), IsAlive checks that the server still has them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "dns_exchange.h"
#include "dns_update.h"
#include "driver.h"
#include "error.h"
#include "inet_address.h"
#include "resource_types.h"

namespace clusterd {

/// The default TTL of the records: short, because clients cache the answer that long and a
/// cached address is wrong from the moment the group comes up elsewhere with another address.
/// 5 s keeps a failover's stale window in the order of the failover itself; the price, more
/// queries, is nothing for a cluster's handful of names.
inline constexpr std::uint32_t kDefaultNameTtl = 5;
/// How long offline waits for the server to confirm the deletion, at most (within the stop
/// timeout): offline must not hang on an unreachable DNS server.
inline constexpr Duration kNameDeleteDeadline = std::chrono::seconds(5);

/// The parameters of a name resource, validated.
struct NameParams {
  std::string name;  ///< As configured, lower case: "ledger" or "ledger.lab.test".
  std::string fqdn;  ///< `name` if it has a dot, else name.zone; empty without either.
  std::string zone;  ///< The zone updates go to; empty when there is no DNS server.
  std::optional<DnsServer> dns_server;
  std::uint32_t ttl = kDefaultNameTtl;
  std::string tsig_key_file;             ///< Empty: unsigned updates.
  std::vector<InetAddress> addresses;    ///< Explicit; empty: the ip resources' addresses.
};

/// Validates `params` of a name resource (see name_type_info()).
Result<NameParams> parse_name_params(const Params& params);

/// Metadata of the built-in `name` type for the configuration validator.
TypeInfo name_type_info();

/// The addresses a name registers: its explicit `addresses`, else the address of every `ip`
/// resource it depends on, directly or through others, in dependency order. `group` may be
/// null (a resource outside a group).
Result<std::vector<InetAddress>> name_addresses(const GroupConfig* group,
                                                const std::string& resource,
                                                const NameParams& params);

/// The network name of `resource`: the `name` parameter of the first `name` resource it
/// depends on (directly or through others), lower case; "" when it depends on none.
std::string network_name_of(const GroupConfig* group, const std::string& resource);

/// network_name_of() for the resource a driver is made for, through the context's live group
/// definition.
std::string network_name_of(const DriverContext& context, const std::string& resource);

/// The environment variable that carries the network name to dependent resources.
inline constexpr const char* kNetworkNameVariable = "CLUSTER_NETWORK_NAME";

/// A driver for a name resource.
class NameDriver : public ResourceDriver {
 public:
  /// A driver for `config`, or an error naming the bad parameter.
  static Result<std::unique_ptr<NameDriver>> create(const ResourceConfig& config,
                                                    const DriverContext& context);
  ~NameDriver() override;

  void start(Done done) override;
  void stop(Done done) override;
  void monitor(MonitorLevel level, Done done) override;
  void cancel() override;

 private:
  NameDriver(const ResourceConfig& config, const DriverContext& context, NameParams params);
  Result<std::optional<TsigKey>> load_key() const;
  Result<void> send_update(const std::vector<InetAddress>& addresses, Duration deadline,
                           DnsExchange::Done on_answer);
  Result<void> send_query(DnsType type, Duration deadline, DnsExchange::Done on_answer);
  /// Signs `wire` with the TSIG key, if any, and sends it; the answer goes to `on_answer`.
  Result<void> send_signed(std::vector<std::uint8_t> wire, Duration deadline,
                           DnsExchange::Done on_answer);
  void on_registered(Result<DnsMessage> answer, const std::vector<InetAddress>& addresses);
  void on_deleted(Result<DnsMessage> answer);
  ActionResult deleted_result(const Result<DnsMessage>& answer);
  void check_next(std::vector<DnsType> types, std::vector<InetAddress> seen, Duration deadline);
  void on_checked(std::vector<InetAddress> seen);
  void finish(ActionResult result);
  void finish_later(ActionResult result);
  void deliver_later(ActionResult result, Done done);

  sd_event* loop_;
  std::string resource_;
  DriverContext context_;
  ActionTimeouts timeouts_;
  Duration monitor_timeout_;
  NameParams params_;
  std::vector<InetAddress> registered_;  ///< What the last successful online registered.
  std::unique_ptr<DnsExchange> exchange_;
  Done done_;
  DeferredCall deferred_;
};

/// The factory entry for kBuiltinTypes.
Result<std::unique_ptr<ResourceDriver>> make_name_driver(const ResourceConfig& config,
                                                         const DriverContext& context);

}  // namespace clusterd
