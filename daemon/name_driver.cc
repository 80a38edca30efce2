#include "name_driver.h"

#include <sodium.h>

#include <algorithm>
#include <ctime>

#include <fmt/format.h>

#include "config_load.h"
#include "group_plan.h"
#include "ip_driver.h"
#include "log.h"

namespace clusterd {
namespace {

// TTLs are 31-bit (RFC 2181 8); a week is plenty for anything a cluster would want.
constexpr Duration kMaxTtl = std::chrono::hours(24 * 7);

Result<std::string> scalar(const std::string& key, const ParamValue& value) {
  if (value.kind != ParamValue::Kind::Scalar) return fail("{} must be a single value", key);
  return value.scalar;
}

Result<std::uint32_t> parse_ttl(const std::string& text) {
  auto d = parse_duration(text);
  if (!d) return fail("ttl: {}", d.error().message);
  if (d->count() % 1000 != 0) return fail("ttl {} is not a whole number of seconds", text);
  if (*d > kMaxTtl) return fail("ttl {} is longer than a week", text);
  return static_cast<std::uint32_t>(d->count() / 1000);
}

Result<std::vector<InetAddress>> parse_addresses(const ParamValue& value) {
  std::vector<std::string> items =
      value.kind == ParamValue::Kind::List ? value.list : std::vector{value.scalar};
  if (value.kind == ParamValue::Kind::Map) return fail("addresses must be a list");
  std::vector<InetAddress> out;
  for (const auto& item : items) {
    auto prefix = InetPrefix::parse(item);  // "10.0.0.5/24" as an ip resource writes it too.
    if (!prefix) return fail("addresses: {}", prefix.error().message);
    out.push_back(prefix->address);
  }
  if (out.empty()) return fail("addresses is an empty list");
  return out;
}

Result<void> apply_param(const std::string& key, const ParamValue& value, NameParams& out) {
  if (key == "addresses") {
    auto addresses = parse_addresses(value);
    if (!addresses) return std::unexpected(addresses.error());
    out.addresses = std::move(*addresses);
    return {};
  }
  auto text = scalar(key, value);
  if (!text) return std::unexpected(text.error());
  if (key == "name") {
    auto name = check_dns_name(*text);
    if (!name) return fail("name: {}", name.error().message);
    out.name = *name;
  } else if (key == "zone") {
    auto zone = check_dns_name(*text);
    if (!zone) return fail("zone: {}", zone.error().message);
    out.zone = *zone;
  } else if (key == "dns_server") {
    auto server = parse_dns_server(*text);
    if (!server) return std::unexpected(server.error());
    out.dns_server = *server;
  } else if (key == "ttl") {
    auto ttl = parse_ttl(*text);
    if (!ttl) return std::unexpected(ttl.error());
    out.ttl = *ttl;
  } else if (key == "tsig_key_file") {
    if (!text->starts_with('/')) return fail("tsig_key_file '{}' must be an absolute path", *text);
    out.tsig_key_file = *text;
  } else {
    return fail("unknown parameter {} for a name resource", key);
  }
  return {};
}

// The FQDN and zone from name and zone: "ledger" + "lab.test", or "ledger.lab.test" alone
// (its zone is then everything after the first label).
Result<void> complete(NameParams& p) {
  bool dotted = p.name.find('.') != std::string::npos;
  if (dotted && !p.zone.empty() && p.name != p.zone && !p.name.ends_with("." + p.zone))
    return fail("name '{}' is not in zone '{}'", p.name, p.zone);
  p.fqdn = dotted ? p.name : (p.zone.empty() ? "" : p.name + "." + p.zone);
  if (dotted && p.zone.empty()) p.zone = p.name.substr(p.name.find('.') + 1);
  if (p.dns_server && p.fqdn.empty())
    return fail("name '{}' is a single label: set zone, or give a fully qualified name, for "
                "dns_server",
                p.name);
  if (!p.dns_server && !p.tsig_key_file.empty())
    return fail("tsig_key_file is set but dns_server is not");
  return {};
}

std::string join(const std::vector<InetAddress>& addresses) {
  std::string out;
  for (const auto& a : addresses) out += (out.empty() ? "" : ", ") + a.to_string();
  return out.empty() ? "nothing" : out;
}

std::uint16_t random_id() {
  std::uint16_t id = 0;
  randombytes_buf(&id, sizeof id);  // Unpredictable ids make blind spoofing harder (RFC 5452).
  return id;
}

bool same_set(std::vector<InetAddress> a, std::vector<InetAddress> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  b.erase(std::unique(b.begin(), b.end()), b.end());
  return a == b;
}

}  // namespace

Result<NameParams> parse_name_params(const Params& params) {
  NameParams out;
  for (const auto& [key, value] : params)
    if (auto r = apply_param(key, value, out); !r) return std::unexpected(r.error());
  if (out.name.empty()) return fail("name is required");
  if (auto r = complete(out); !r) return std::unexpected(r.error());
  if (!out.dns_server) out.zone.clear();
  return out;
}

TypeInfo name_type_info() {
  using K = ParamValue::Kind;
  TypeInfo info;
  info.name = "name";
  info.params = {
      {"name", true, "", K::Scalar, "string",
       "The network name: a DNS label (ledger) or a fully qualified name (ledger.lab.test)."},
      {"dns_server", false, "", K::Scalar, "string",
       "Register the name here by RFC 2136 update: ADDRESS[:PORT] or [IPv6]:PORT; unset: no DNS."},
      {"zone", false, "", K::Scalar, "string",
       "The zone to update; default: the name without its first label."},
      {"ttl", false, "5s", K::Scalar, "duration",
       "TTL of the registered records, whole seconds (short: clients cache that long)."},
      {"tsig_key_file", false, "", K::Scalar, "string",
       "BIND key file (key \"NAME\" { algorithm hmac-sha256; secret \"...\"; };) to sign with."},
      {"addresses", false, "", K::List, "list",
       "Addresses to register; default: those of the ip resources the name depends on."},
  };
  // An update is one UDP round trip, resent until the deadline.
  info.advised_start_timeout = std::chrono::seconds(10);
  info.advised_stop_timeout = std::chrono::seconds(10);
  return info;
}

Result<std::vector<InetAddress>> name_addresses(const GroupConfig* group,
                                                const std::string& resource,
                                                const NameParams& params) {
  if (!params.addresses.empty()) return params.addresses;
  std::vector<InetAddress> out;
  if (!group || !group->find(resource)) return out;
  for (const auto& dep : with_dependencies(*group, resource)) {
    const ResourceConfig* rc = group->find(dep);
    if (!rc || rc->type != "ip") continue;
    auto ip = parse_ip_params(rc->params);
    if (!ip) return fail("ip resource {}: {}", dep, ip.error().message);
    out.push_back(ip->address.address);
  }
  return out;
}

std::string network_name_of(const GroupConfig* group, const std::string& resource) {
  if (!group || !group->find(resource)) return "";
  for (const auto& dep : with_dependencies(*group, resource)) {
    const ResourceConfig* rc = group->find(dep);
    if (dep == resource || !rc || rc->type != "name") continue;
    auto it = rc->params.find("name");
    if (it == rc->params.end()) continue;
    auto checked = check_dns_name(it->second.scalar);
    return checked ? *checked : it->second.scalar;
  }
  return "";
}

std::string network_name_of(const DriverContext& context, const std::string& resource) {
  if (!context.group_definition) return "";
  auto group = context.group_definition();
  return network_name_of(group.get(), resource);
}

// ---- The driver ---------------------------------------------------------------------------

Result<std::unique_ptr<NameDriver>> NameDriver::create(const ResourceConfig& config,
                                                       const DriverContext& context) {
  auto params = parse_name_params(config.params);
  if (!params) return fail("resource {}: {}", config.name, params.error().message);
  return std::unique_ptr<NameDriver>(new NameDriver(config, context, std::move(*params)));
}

Result<std::unique_ptr<ResourceDriver>> make_name_driver(const ResourceConfig& config,
                                                         const DriverContext& context) {
  auto driver = NameDriver::create(config, context);
  if (!driver) return std::unexpected(driver.error());
  return std::unique_ptr<ResourceDriver>(std::move(*driver));
}

NameDriver::NameDriver(const ResourceConfig& config, const DriverContext& context,
                       NameParams params)
    : loop_(context.loop),
      resource_(config.name),
      context_(context),
      timeouts_(config.timeouts),
      monitor_timeout_(config.monitor.timeout),
      params_(std::move(params)) {}

NameDriver::~NameDriver() = default;

// Read at every action, not once: a rotated key takes effect without a daemon restart.
Result<std::optional<TsigKey>> NameDriver::load_key() const {
  if (params_.tsig_key_file.empty()) return std::optional<TsigKey>();
  auto key = read_tsig_key_file(params_.tsig_key_file);
  if (!key) return std::unexpected(key.error());
  return std::optional<TsigKey>(std::move(*key));
}

Result<void> NameDriver::send_update(const std::vector<InetAddress>& addresses,
                                     Duration deadline, DnsExchange::Done on_answer) {
  auto wire = encode_dns_update({random_id(), params_.zone, params_.fqdn, params_.ttl, addresses});
  if (!wire) return std::unexpected(wire.error());
  return send_signed(std::move(*wire), deadline, std::move(on_answer));
}

Result<void> NameDriver::send_query(DnsType type, Duration deadline,
                                    DnsExchange::Done on_answer) {
  auto wire = encode_dns_query(random_id(), params_.fqdn, type);
  if (!wire) return std::unexpected(wire.error());
  return send_signed(std::move(*wire), deadline, std::move(on_answer));
}

Result<void> NameDriver::send_signed(std::vector<std::uint8_t> wire, Duration deadline,
                                     DnsExchange::Done on_answer) {
  auto key = load_key();
  if (!key) return std::unexpected(key.error());
  std::vector<std::uint8_t> mac;
  if (*key) {
    auto signed_mac = tsig_sign(wire, **key, static_cast<std::uint64_t>(std::time(nullptr)));
    if (!signed_mac) return std::unexpected(signed_mac.error());
    mac = std::move(*signed_mac);
  }
  auto exchange = DnsExchange::start(loop_, *params_.dns_server, std::move(wire),
                                     std::move(*key), std::move(mac), deadline,
                                     std::move(on_answer));
  if (!exchange) return std::unexpected(exchange.error());
  exchange_ = std::move(*exchange);
  return {};
}

void NameDriver::start(Done done) {
  if (!params_.dns_server) {
    deliver_later({}, std::move(done));  // Nothing to register: the name is only exported.
    return;
  }
  auto group = context_.group_definition ? context_.group_definition() : nullptr;
  auto addresses = name_addresses(group.get(), resource_, params_);
  if (!addresses) {
    deliver_later({ActionStatus::InvalidConfig, addresses.error().message, -1}, std::move(done));
    return;
  }
  if (addresses->empty()) {
    deliver_later({ActionStatus::InvalidConfig,
                   fmt::format("name {} has no address to register: it depends on no ip "
                               "resource and sets no addresses",
                               params_.fqdn),
                   -1},
                  std::move(done));
    return;
  }
  done_ = std::move(done);
  auto sent = send_update(*addresses, timeouts_.start,
                          [this, addresses = *addresses](Result<DnsMessage> answer) {
                            on_registered(std::move(answer), addresses);
                          });
  if (!sent) finish_later({ActionStatus::Failed, sent.error().to_string(), -1});
}

void NameDriver::on_registered(Result<DnsMessage> answer,
                               const std::vector<InetAddress>& addresses) {
  if (!answer) {
    finish({ActionStatus::Timeout,
            fmt::format("registering {} in DNS: {}", params_.fqdn, answer.error().message), -1});
    return;
  }
  if (answer->rcode() != DnsRcode::NoError) {
    finish({ActionStatus::Failed,
            fmt::format("DNS server {} refused the update of {}: {}",
                        params_.dns_server->to_string(), params_.fqdn, describe_rcode(*answer)),
            -1});
    return;
  }
  registered_ = addresses;
  log(LogLevel::Info, {{"GROUP", context_.group}, {"RESOURCE", resource_}},
      "registered {} -> {} (TTL {} s) at {}", params_.fqdn, join(addresses), params_.ttl,
      params_.dns_server->to_string());
  finish({});
}

void NameDriver::stop(Done done) {
  if (!params_.dns_server) {
    deliver_later({}, std::move(done));
    return;
  }
  done_ = std::move(done);
  Duration deadline = std::min(timeouts_.stop, kNameDeleteDeadline);
  auto sent = send_update({}, deadline, [this](Result<DnsMessage> a) { on_deleted(std::move(a)); });
  if (!sent) finish_later(deleted_result(std::unexpected(sent.error())));
}

// Offline never fails on DNS: the group must be able to leave a node whose DNS server is gone.
// The reason says what was left behind; the next owner's update replaces it anyway.
void NameDriver::on_deleted(Result<DnsMessage> answer) { finish(deleted_result(answer)); }

ActionResult NameDriver::deleted_result(const Result<DnsMessage>& answer) {
  registered_.clear();
  std::string problem;
  if (!answer)
    problem = answer.error().message;
  else if (answer->rcode() != DnsRcode::NoError)
    problem = fmt::format("the server answered {}", describe_rcode(*answer));
  if (problem.empty()) return {};
  std::string reason = fmt::format("DNS records of {} left in place: {}", params_.fqdn, problem);
  log(LogLevel::Warning, {{"GROUP", context_.group}, {"RESOURCE", resource_}}, "{}", reason);
  return {ActionStatus::Ok, reason, -1};
}

void NameDriver::monitor(MonitorLevel level, Done done) {
  // LooksAlive has nothing local to look at; IsAlive asks the server.
  if (level == MonitorLevel::LooksAlive || !params_.dns_server || registered_.empty()) {
    deliver_later({}, std::move(done));
    return;
  }
  done_ = std::move(done);
  std::vector<DnsType> types;
  for (const auto& a : registered_) {
    DnsType t = a.family == AF_INET ? DnsType::A : DnsType::Aaaa;
    if (std::find(types.begin(), types.end(), t) == types.end()) types.push_back(t);
  }
  check_next(std::move(types), {}, monitor_timeout_);
}

// Queries the types one after the other, collecting the addresses the server has.
void NameDriver::check_next(std::vector<DnsType> types, std::vector<InetAddress> seen,
                            Duration deadline) {
  if (types.empty()) {
    on_checked(std::move(seen));
    return;
  }
  DnsType type = types.front();
  types.erase(types.begin());
  auto sent = send_query(type, deadline, [this, types, seen, deadline](Result<DnsMessage> a) mutable {
    if (!a || (a->rcode() != DnsRcode::NoError && a->rcode() != DnsRcode::NxDomain)) {
      // The server, not the name, is in trouble: every node would see the same, so moving the
      // group would not help. Healthy, with a warning.
      log(LogLevel::Warning, {{"GROUP", context_.group}, {"RESOURCE", resource_}},
          "cannot check {} in DNS, ignoring: {}", params_.fqdn,
          a ? describe_rcode(*a) : a.error().message);
      finish({});
      return;
    }
    for (const auto& addr : answer_addresses(*a, params_.fqdn)) seen.push_back(addr);
    check_next(std::move(types), std::move(seen), deadline);
  });
  if (!sent) finish_later({ActionStatus::Failed, sent.error().to_string(), -1});
}

void NameDriver::on_checked(std::vector<InetAddress> seen) {
  if (same_set(seen, registered_)) {
    finish({});
    return;
  }
  finish({ActionStatus::Failed,
          fmt::format("DNS server {} has {} for {}, not {}", params_.dns_server->to_string(),
                      join(seen), params_.fqdn, join(registered_)),
          -1});
}

void NameDriver::cancel() {
  deferred_.cancel();
  exchange_.reset();
  done_ = nullptr;
}

// Ends the action in flight. The engine may destroy this driver from `done`: call it last.
void NameDriver::finish(ActionResult result) {
  Done done = std::exchange(done_, nullptr);
  exchange_.reset();  // Even from inside its own callback: DnsExchange allows that.
  if (done) done(std::move(result));
}

void NameDriver::finish_later(ActionResult result) {
  exchange_.reset();
  deliver_later(std::move(result), std::exchange(done_, nullptr));
}

void NameDriver::deliver_later(ActionResult result, Done done) {
  deferred_.post(loop_, [result = std::move(result), done = std::move(done)] { done(result); });
}

}  // namespace clusterd
