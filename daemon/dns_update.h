// DNS messages for the `name` resource: RFC 2136 dynamic UPDATE replacing one name's address
// records, a plain query to check them, and TSIG (RFC 8945, HMAC-SHA256) to sign requests and
// verify responses. Written here rather than taken from a library: the subset is small (one zone
// section, one update section, no compression on output) and Debian's ldns would be a new
// dependency for it; HMAC-SHA256 comes from libsodium, which the daemon already links.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"
#include "inet_address.h"

namespace clusterd {

/// The record types used here (RFC 1035, 3596, 6891, 8945).
enum class DnsType : std::uint16_t {
  A = 1,
  Soa = 6,
  Aaaa = 28,
  Opt = 41,
  Tsig = 250,
  Any = 255,
};

inline constexpr std::uint16_t kDnsClassIn = 1;
inline constexpr std::uint16_t kDnsClassAny = 255;  ///< RFC 2136 2.5.2: "delete an RRset".

/// Response codes: the header's RCODE (RFC 1035, RFC 2136) and the TSIG record's error field
/// (RFC 8945: BADSIG, BADKEY, BADTIME).
enum class DnsRcode : std::uint16_t {
  NoError = 0,
  FormErr = 1,
  ServFail = 2,
  NxDomain = 3,
  NotImp = 4,
  Refused = 5,
  YxDomain = 6,
  YxRrset = 7,
  NxRrset = 8,
  NotAuth = 9,
  NotZone = 10,
  BadSig = 16,
  BadKey = 17,
  BadTime = 18,
};
/// "NOERROR", "NOTAUTH", "BADSIG", ... as dig prints them; "RCODE23" for others.
std::string to_string(DnsRcode rcode);
/// Every named value, for the completeness test.
inline constexpr DnsRcode kDnsRcodes[] = {
    DnsRcode::NoError, DnsRcode::FormErr,  DnsRcode::ServFail, DnsRcode::NxDomain,
    DnsRcode::NotImp,  DnsRcode::Refused,  DnsRcode::YxDomain, DnsRcode::YxRrset,
    DnsRcode::NxRrset, DnsRcode::NotAuth,  DnsRcode::NotZone,  DnsRcode::BadSig,
    DnsRcode::BadKey,  DnsRcode::BadTime};

/// Checks a host name or FQDN: labels of 1-63 letters, digits and '-' (not first or last;
/// RFC 1123 lets a label start with a digit), 253 characters in all. A trailing dot is allowed.
/// Returns the name in lower case without the trailing dot.
Result<std::string> check_dns_name(std::string_view text);

/// A TSIG key as BIND writes it (tsig-keygen, ddns-confgen):
/// `key "name" { algorithm hmac-sha256; secret "BASE64"; };`
struct TsigKey {
  std::string name;       ///< Lower case, no trailing dot.
  std::string algorithm;  ///< Only "hmac-sha256" is supported.
  std::vector<std::uint8_t> secret;
};

/// Parses the first key statement of a BIND key file's text.
Result<TsigKey> parse_tsig_key(std::string_view text);
/// Reads and parses a BIND key file.
Result<TsigKey> read_tsig_key_file(const std::string& path);

/// One name's address records, replaced as a whole.
struct DnsUpdate {
  std::uint16_t id = 0;
  std::string zone;  ///< The zone that holds `name`, e.g. "lab.test".
  std::string name;  ///< FQDN, e.g. "ledger.lab.test".
  std::uint32_t ttl = 5;
  std::vector<InetAddress> addresses;  ///< Empty: the records are only deleted.
};

/// RFC 2136 UPDATE: zone section `zone SOA IN`, no prerequisites, update section "delete the
/// name's A RRset", "delete its AAAA RRset", then one add per address. Both deletes always come
/// first, so one message replaces whatever the name had (a failed node's stale records too).
/// Names are written uncompressed. Errors for bad names.
Result<std::vector<std::uint8_t>> encode_dns_update(const DnsUpdate& update);

/// A query for `name`'s records of `type`, recursion not desired (we ask the authority).
Result<std::vector<std::uint8_t>> encode_dns_query(std::uint16_t id, std::string_view name,
                                               DnsType type);

/// One resource record of a decoded message.
struct DnsRecord {
  std::string name;  ///< Lower case, no trailing dot ("" for the root).
  std::uint16_t type = 0;
  std::uint16_t klass = 0;
  std::uint32_t ttl = 0;
  std::vector<std::uint8_t> rdata;
};

/// The TSIG record of a message (RFC 8945 4.2).
struct TsigRecord {
  std::string key_name;
  std::string algorithm;
  std::uint64_t time_signed = 0;
  std::uint16_t fudge = 0;
  std::vector<std::uint8_t> mac;
  std::uint16_t original_id = 0;
  std::uint16_t error = 0;
  std::vector<std::uint8_t> other;
  std::size_t offset = 0;  ///< Where the record starts in the message.
};

/// A decoded message: header, answers and the TSIG record if it has one.
struct DnsMessage {
  std::uint16_t id = 0;
  std::uint16_t flags = 0;
  std::uint16_t question_count = 0;
  std::vector<DnsRecord> answers;  ///< Answer section (the prerequisite section of an UPDATE).
  std::optional<TsigRecord> tsig;  ///< Only as the last record of the additional section.

  bool is_response() const { return flags & 0x8000; }
  unsigned opcode() const { return (flags >> 11) & 0xf; }
  DnsRcode rcode() const { return static_cast<DnsRcode>(flags & 0xf); }
};

/// Decodes a message (name compression followed, with a bound on pointers). Errors say what is
/// malformed.
Result<DnsMessage> decode_dns_message(std::span<const std::uint8_t> wire);

/// The addresses of `message`'s A and AAAA answers for `name`.
std::vector<InetAddress> answer_addresses(const DnsMessage& message, std::string_view name);
/// The smallest TTL among those answers, or nullopt when there are none.
std::optional<std::uint32_t> answer_ttl(const DnsMessage& message, std::string_view name);

/// Default TSIG fudge (RFC 8945 10: 300 s is the recommended value).
inline constexpr std::uint16_t kTsigFudge = 300;

/// Signs a message in place: appends the TSIG record with `time_signed` (seconds since the
/// epoch) and counts it in ARCOUNT. Returns the MAC, which the response's MAC covers. A
/// response is signed with its request's MAC as `request_mac` (RFC 8945 5.3).
Result<std::vector<std::uint8_t>> tsig_sign(std::vector<std::uint8_t>& message,
                                            const TsigKey& key, std::uint64_t time_signed,
                                            std::uint16_t fudge = kTsigFudge,
                                            std::span<const std::uint8_t> request_mac = {});

/// Checks the TSIG of a message as it came off the wire (`decoded` is its decoding): the key
/// name and algorithm are ours, the MAC matches, and `now` is within the fudge. For a response,
/// `request_mac` is the MAC of the request it answers (RFC 8945 5.3); for a request, empty.
Result<void> tsig_verify(std::span<const std::uint8_t> wire, const DnsMessage& decoded,
                         const TsigKey& key, std::span<const std::uint8_t> request_mac,
                         std::uint64_t now);

}  // namespace clusterd
