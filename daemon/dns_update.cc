#include "dns_update.h"

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace clusterd {
namespace {

constexpr std::size_t kHeaderSize = 12;
constexpr std::uint16_t kOpcodeUpdate = 5;
constexpr std::size_t kMaxNameLength = 253;  // Presentation form, without the trailing dot.
constexpr std::size_t kMaxLabelLength = 63;
constexpr int kMaxPointers = 32;  // Bounds a compression chain (a loop would never end).
constexpr const char* kHmacSha256 = "hmac-sha256";

// ---- Writing ------------------------------------------------------------------------------

class Writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v) {
    u8(v >> 8);
    u8(v & 0xff);
  }
  void u32(std::uint32_t v) {
    u16(v >> 16);
    u16(v & 0xffff);
  }
  void u48(std::uint64_t v) {
    u16((v >> 32) & 0xffff);
    u32(v & 0xffffffff);
  }
  void bytes(std::span<const std::uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  // A checked name, uncompressed and in lower case: also the canonical form TSIG digests.
  void name(std::string_view name) {
    std::size_t start = 0;
    while (start < name.size()) {
      std::size_t dot = name.find('.', start);
      if (dot == std::string_view::npos) dot = name.size();
      u8(static_cast<std::uint8_t>(dot - start));
      for (std::size_t i = start; i < dot; ++i)
        u8(static_cast<std::uint8_t>(std::tolower(static_cast<unsigned char>(name[i]))));
      start = dot + 1;
    }
    u8(0);
  }
  std::vector<std::uint8_t>& data() { return out_; }

 private:
  std::vector<std::uint8_t> out_;
};

void put16_at(std::vector<std::uint8_t>& out, std::size_t at, std::uint16_t v) {
  out[at] = v >> 8;
  out[at + 1] = v & 0xff;
}

std::uint16_t get16_at(std::span<const std::uint8_t> in, std::size_t at) {
  return static_cast<std::uint16_t>(in[at] << 8 | in[at + 1]);
}

void header(Writer& w, std::uint16_t id, std::uint16_t flags, std::uint16_t qd, std::uint16_t an,
            std::uint16_t ns, std::uint16_t ar) {
  w.u16(id);
  w.u16(flags);
  w.u16(qd);
  w.u16(an);
  w.u16(ns);
  w.u16(ar);
}

// RFC 2136 2.5.2: delete an RRset = NAME TYPE, class ANY, TTL 0, no RDATA.
void delete_rrset(Writer& w, std::string_view name, DnsType type) {
  w.name(name);
  w.u16(static_cast<std::uint16_t>(type));
  w.u16(kDnsClassAny);
  w.u32(0);
  w.u16(0);
}

void add_address(Writer& w, std::string_view name, std::uint32_t ttl, const InetAddress& a) {
  w.name(name);
  w.u16(static_cast<std::uint16_t>(a.family == AF_INET ? DnsType::A : DnsType::Aaaa));
  w.u16(kDnsClassIn);
  w.u32(ttl);
  w.u16(static_cast<std::uint16_t>(a.size()));
  w.bytes(std::span(a.bytes.data(), a.size()));
}

// ---- Reading ------------------------------------------------------------------------------

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}
  std::size_t pos() const { return pos_; }
  bool has(std::size_t n) const { return pos_ + n <= in_.size(); }
  Result<std::uint64_t> uint(std::size_t n, const char* what) {
    if (!has(n)) return fail("the DNS message ends inside {}", what);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = v << 8 | in_[pos_ + i];
    pos_ += n;
    return v;
  }
  Result<std::vector<std::uint8_t>> bytes(std::size_t n, const char* what) {
    if (!has(n)) return fail("the DNS message ends inside {}", what);
    std::vector<std::uint8_t> out(in_.begin() + pos_, in_.begin() + pos_ + n);
    pos_ += n;
    return out;
  }
  // A name, following compression pointers (RFC 1035 4.1.4) only backwards and a bounded number
  // of times.
  Result<std::string> name() {
    std::string out;
    std::size_t at = pos_;
    std::optional<std::size_t> resume;
    for (int pointers = 0;;) {
      if (at >= in_.size()) return fail("the DNS message ends inside a name");
      std::uint8_t len = in_[at];
      if ((len & 0xc0) == 0xc0) {
        if (at + 1 >= in_.size()) return fail("the DNS message ends inside a name");
        std::size_t target = (len & 0x3f) << 8 | in_[at + 1];
        if (target >= at || ++pointers > kMaxPointers)
          return fail("a compressed name in the DNS message points forward or loops");
        if (!resume) resume = at + 2;
        at = target;
        continue;
      }
      if (len & 0xc0) return fail("unknown label type 0x{:02x} in a DNS name", len);
      if (len == 0) break;
      if (at + 1 + len > in_.size()) return fail("the DNS message ends inside a name");
      if (!out.empty()) out += '.';
      for (std::size_t i = 0; i < len; ++i)
        out += static_cast<char>(std::tolower(in_[at + 1 + i]));
      if (out.size() > 255) return fail("a name in the DNS message is longer than 255 bytes");
      at += 1 + len;
    }
    pos_ = resume.value_or(at + 1);
    return out;
  }

 private:
  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
};

#define TRY_ASSIGN(var, expr)                             \
  auto var##_result = (expr);                             \
  if (!var##_result) return std::unexpected(var##_result.error()); \
  auto var = std::move(*var##_result)

Result<DnsRecord> read_record(Reader& r) {
  DnsRecord rec;
  TRY_ASSIGN(name, r.name());
  TRY_ASSIGN(type, r.uint(2, "a record's type"));
  TRY_ASSIGN(klass, r.uint(2, "a record's class"));
  TRY_ASSIGN(ttl, r.uint(4, "a record's TTL"));
  TRY_ASSIGN(length, r.uint(2, "a record's length"));
  TRY_ASSIGN(rdata, r.bytes(length, "a record's data"));
  rec.name = std::move(name);
  rec.type = static_cast<std::uint16_t>(type);
  rec.klass = static_cast<std::uint16_t>(klass);
  rec.ttl = static_cast<std::uint32_t>(ttl);
  rec.rdata = std::move(rdata);
  return rec;
}

// RFC 8945 4.2: the TSIG RDATA. The algorithm name is never compressed.
Result<TsigRecord> read_tsig(const DnsRecord& rec, std::size_t offset) {
  Reader r(rec.rdata);
  TsigRecord t;
  TRY_ASSIGN(algorithm, r.name());
  TRY_ASSIGN(time, r.uint(6, "the TSIG time"));
  TRY_ASSIGN(fudge, r.uint(2, "the TSIG fudge"));
  TRY_ASSIGN(mac_size, r.uint(2, "the TSIG MAC size"));
  TRY_ASSIGN(mac, r.bytes(mac_size, "the TSIG MAC"));
  TRY_ASSIGN(original_id, r.uint(2, "the TSIG original id"));
  TRY_ASSIGN(error, r.uint(2, "the TSIG error"));
  TRY_ASSIGN(other_len, r.uint(2, "the TSIG other length"));
  TRY_ASSIGN(other, r.bytes(other_len, "the TSIG other data"));
  t.key_name = rec.name;
  t.algorithm = std::move(algorithm);
  t.time_signed = time;
  t.fudge = static_cast<std::uint16_t>(fudge);
  t.mac = std::move(mac);
  t.original_id = static_cast<std::uint16_t>(original_id);
  t.error = static_cast<std::uint16_t>(error);
  t.other = std::move(other);
  t.offset = offset;
  return t;
}

#undef TRY_ASSIGN

// ---- TSIG ---------------------------------------------------------------------------------

// RFC 8945 4.3.3: the TSIG variables, after the message in the digest.
std::vector<std::uint8_t> tsig_variables(const std::string& key, const std::string& algorithm,
                                         std::uint64_t time_signed, std::uint16_t fudge,
                                         std::uint16_t error,
                                         std::span<const std::uint8_t> other) {
  Writer w;
  w.name(key);
  w.u16(kDnsClassAny);
  w.u32(0);
  w.name(algorithm);
  w.u48(time_signed);
  w.u16(fudge);
  w.u16(error);
  w.u16(static_cast<std::uint16_t>(other.size()));
  w.bytes(other);
  return std::move(w.data());
}

std::vector<std::uint8_t> hmac_sha256(std::span<const std::uint8_t> secret,
                                      std::span<const std::span<const std::uint8_t>> parts) {
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, secret.data(), secret.size());
  for (auto part : parts) crypto_auth_hmacsha256_update(&state, part.data(), part.size());
  std::vector<std::uint8_t> mac(crypto_auth_hmacsha256_BYTES);
  crypto_auth_hmacsha256_final(&state, mac.data());
  sodium_memzero(&state, sizeof state);
  return mac;
}

// RFC 8945 5.3.1: a response's digest starts with the request's MAC, with its length.
std::vector<std::uint8_t> request_mac_prefix(std::span<const std::uint8_t> request_mac) {
  if (request_mac.empty()) return {};
  Writer w;
  w.u16(static_cast<std::uint16_t>(request_mac.size()));
  w.bytes(request_mac);
  return std::move(w.data());
}

Result<void> check_key(const TsigKey& key) {
  if (key.algorithm != kHmacSha256)
    return fail("TSIG algorithm '{}' of key '{}' is not supported (only {})", key.algorithm,
                key.name, kHmacSha256);
  if (key.secret.empty()) return fail("TSIG key '{}' has an empty secret", key.name);
  if (sodium_init() < 0) return fail("libsodium could not be initialised");
  return {};
}

// ---- Key files ----------------------------------------------------------------------------

// The key file is a tiny subset of named.conf: tokens are words, quoted strings and the
// punctuation { } ;. Comments (#, //, /* */) are skipped.
std::vector<std::string> tokenize(std::string_view text) {
  std::vector<std::string> tokens;
  std::size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '#' || text.substr(i, 2) == "//") {
      i = text.find('\n', i);
      if (i == std::string_view::npos) break;
    } else if (text.substr(i, 2) == "/*") {
      i = text.find("*/", i + 2);
      if (i == std::string_view::npos) break;
      i += 2;
    } else if (c == '"') {
      std::size_t end = text.find('"', i + 1);
      if (end == std::string_view::npos) end = text.size();
      tokens.emplace_back(text.substr(i, end - i));  // Keeps the opening quote as a marker.
      i = end + 1;
    } else if (c == '{' || c == '}' || c == ';') {
      tokens.emplace_back(1, c);
      ++i;
    } else {
      std::size_t end = i;
      while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end])) &&
             std::string_view("{};\"").find(text[end]) == std::string_view::npos)
        ++end;
      tokens.emplace_back(text.substr(i, end - i));
      i = end;
    }
  }
  return tokens;
}

std::string unquote(const std::string& token) {
  return token.starts_with('"') ? token.substr(1) : token;
}

Result<std::vector<std::uint8_t>> decode_base64(const std::string& text) {
  std::vector<std::uint8_t> out(text.size());
  std::size_t len = 0;
  if (sodium_init() < 0) return fail("libsodium could not be initialised");
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), " \t\r\n", &len,
                        nullptr, sodium_base64_VARIANT_ORIGINAL) != 0)
    return fail("the TSIG secret is not valid base64");
  out.resize(len);
  return out;
}

}  // namespace

std::string to_string(DnsRcode rcode) {
  switch (rcode) {
    case DnsRcode::NoError: return "NOERROR";
    case DnsRcode::FormErr: return "FORMERR";
    case DnsRcode::ServFail: return "SERVFAIL";
    case DnsRcode::NxDomain: return "NXDOMAIN";
    case DnsRcode::NotImp: return "NOTIMP";
    case DnsRcode::Refused: return "REFUSED";
    case DnsRcode::YxDomain: return "YXDOMAIN";
    case DnsRcode::YxRrset: return "YXRRSET";
    case DnsRcode::NxRrset: return "NXRRSET";
    case DnsRcode::NotAuth: return "NOTAUTH";
    case DnsRcode::NotZone: return "NOTZONE";
    case DnsRcode::BadSig: return "BADSIG";
    case DnsRcode::BadKey: return "BADKEY";
    case DnsRcode::BadTime: return "BADTIME";
  }
  return fmt::format("RCODE{}", static_cast<unsigned>(rcode));
}

Result<std::string> check_dns_name(std::string_view text) {
  if (text.ends_with('.')) text.remove_suffix(1);
  if (text.empty()) return fail("a DNS name cannot be empty");
  if (text.size() > kMaxNameLength)
    return fail("DNS name '{}' is longer than {} characters", text, kMaxNameLength);
  std::string out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t dot = std::min(text.find('.', start), text.size());
    std::string_view label = text.substr(start, dot - start);
    if (label.empty()) return fail("DNS name '{}' has an empty label", text);
    if (label.size() > kMaxLabelLength)
      return fail("label '{}' of DNS name '{}' is longer than {} characters", label, text,
                  kMaxLabelLength);
    for (char c : label)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-')
        return fail("DNS name '{}' has '{}': only letters, digits, '-' and '.' are allowed", text,
                    c);
    if (label.front() == '-' || label.back() == '-')
      return fail("label '{}' of DNS name '{}' starts or ends with '-'", label, text);
    for (char c : label) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (dot < text.size()) out += '.';
    start = dot + 1;
  }
  return out;
}

Result<TsigKey> parse_tsig_key(std::string_view text) {
  auto tokens = tokenize(text);
  auto it = std::find(tokens.begin(), tokens.end(), "key");
  if (it == tokens.end() || tokens.end() - it < 3 || it[2] != "{")
    return fail("no 'key \"NAME\" {{ ... }};' statement found");
  TsigKey key;
  auto name = check_dns_name(unquote(it[1]));
  if (!name) return fail("the key's name: {}", name.error().message);
  key.name = *name;
  bool have_secret = false;
  for (it += 3; it != tokens.end() && *it != "}"; ++it) {
    if (tokens.end() - it < 2) break;
    if (*it == "algorithm") {
      key.algorithm = unquote(it[1]);
      std::transform(key.algorithm.begin(), key.algorithm.end(), key.algorithm.begin(),
                     [](unsigned char c) { return std::tolower(c); });
    } else if (*it == "secret") {
      auto secret = decode_base64(unquote(it[1]));
      if (!secret) return fail("key '{}': {}", key.name, secret.error().message);
      key.secret = std::move(*secret);
      have_secret = true;
    }
    it = std::find(it, tokens.end(), ";");
    if (it == tokens.end()) break;
  }
  if (key.algorithm.empty()) return fail("key '{}' has no algorithm", key.name);
  if (!have_secret) return fail("key '{}' has no secret", key.name);
  if (auto ok = check_key(key); !ok) return std::unexpected(ok.error());
  return key;
}

Result<TsigKey> read_tsig_key_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail_errno(errno, "cannot read TSIG key file {}", path);
  std::stringstream text;
  text << in.rdbuf();
  auto key = parse_tsig_key(text.str());
  if (!key) return fail("TSIG key file {}: {}", path, key.error().message);
  return key;
}

Result<std::vector<std::uint8_t>> encode_dns_update(const DnsUpdate& update) {
  auto zone = check_dns_name(update.zone);
  if (!zone) return fail("zone: {}", zone.error().message);
  auto name = check_dns_name(update.name);
  if (!name) return std::unexpected(name.error());
  if (*name != *zone && !name->ends_with("." + *zone))
    return fail("name '{}' is not in zone '{}'", *name, *zone);
  Writer w;
  auto count = static_cast<std::uint16_t>(2 + update.addresses.size());
  header(w, update.id, kOpcodeUpdate << 11, 1, 0, count, 0);
  w.name(*zone);
  w.u16(static_cast<std::uint16_t>(DnsType::Soa));
  w.u16(kDnsClassIn);
  delete_rrset(w, *name, DnsType::A);
  delete_rrset(w, *name, DnsType::Aaaa);
  for (const auto& address : update.addresses) {
    if (address.family != AF_INET && address.family != AF_INET6)
      return fail("cannot register an address of unknown family for '{}'", *name);
    add_address(w, *name, update.ttl, address);
  }
  return std::move(w.data());
}

Result<std::vector<std::uint8_t>> encode_dns_query(std::uint16_t id, std::string_view name,
                                               DnsType type) {
  auto checked = check_dns_name(name);
  if (!checked) return std::unexpected(checked.error());
  Writer w;
  header(w, id, 0, 1, 0, 0, 0);
  w.name(*checked);
  w.u16(static_cast<std::uint16_t>(type));
  w.u16(kDnsClassIn);
  return std::move(w.data());
}

Result<DnsMessage> decode_dns_message(std::span<const std::uint8_t> wire) {
  if (wire.size() < kHeaderSize) return fail("a DNS message of {} bytes has no header", wire.size());
  DnsMessage m;
  m.id = get16_at(wire, 0);
  m.flags = get16_at(wire, 2);
  m.question_count = get16_at(wire, 4);
  std::uint16_t an = get16_at(wire, 6), ns = get16_at(wire, 8), ar = get16_at(wire, 10);
  Reader r(wire);
  (void)r.uint(kHeaderSize, "the header");
  for (unsigned i = 0; i < m.question_count; ++i) {
    if (auto name = r.name(); !name) return std::unexpected(name.error());
    if (auto tc = r.uint(4, "a question"); !tc) return std::unexpected(tc.error());
  }
  unsigned total = an + ns + ar;
  for (unsigned i = 0; i < total; ++i) {
    std::size_t offset = r.pos();
    auto rec = read_record(r);
    if (!rec) return std::unexpected(rec.error());
    if (rec->type == static_cast<std::uint16_t>(DnsType::Tsig)) {
      if (i + 1 != total) return fail("the TSIG record is not the last of the DNS message");
      auto tsig = read_tsig(*rec, offset);
      if (!tsig) return std::unexpected(tsig.error());
      m.tsig = std::move(*tsig);
    } else if (i < an) {
      m.answers.push_back(std::move(*rec));
    }
  }
  return m;
}

std::vector<InetAddress> answer_addresses(const DnsMessage& message, std::string_view name) {
  std::vector<InetAddress> out;
  for (const auto& rec : message.answers) {
    if (rec.name != name || rec.klass != kDnsClassIn) continue;
    int family = rec.type == static_cast<std::uint16_t>(DnsType::A)      ? AF_INET
                 : rec.type == static_cast<std::uint16_t>(DnsType::Aaaa) ? AF_INET6
                                                                         : AF_UNSPEC;
    if (family == AF_UNSPEC) continue;
    if (auto a = InetAddress::from_bytes(family, rec.rdata.data(), rec.rdata.size())) out.push_back(*a);
  }
  return out;
}

std::optional<std::uint32_t> answer_ttl(const DnsMessage& message, std::string_view name) {
  std::optional<std::uint32_t> ttl;
  for (const auto& rec : message.answers)
    if (rec.name == name && (rec.type == static_cast<std::uint16_t>(DnsType::A) ||
                             rec.type == static_cast<std::uint16_t>(DnsType::Aaaa)))
      ttl = std::min(ttl.value_or(rec.ttl), rec.ttl);
  return ttl;
}

Result<std::vector<std::uint8_t>> tsig_sign(std::vector<std::uint8_t>& message,
                                            const TsigKey& key, std::uint64_t time_signed,
                                            std::uint16_t fudge,
                                            std::span<const std::uint8_t> request_mac) {
  if (auto ok = check_key(key); !ok) return std::unexpected(ok.error());
  if (message.size() < kHeaderSize) return fail("cannot sign a DNS message without a header");
  auto prefix = request_mac_prefix(request_mac);
  auto variables = tsig_variables(key.name, key.algorithm, time_signed, fudge, 0, {});
  std::span<const std::uint8_t> parts[] = {prefix, message, variables};
  auto mac = hmac_sha256(key.secret, parts);
  std::uint16_t id = get16_at(message, 0);
  Writer rdata;
  rdata.name(key.algorithm);
  rdata.u48(time_signed);
  rdata.u16(fudge);
  rdata.u16(static_cast<std::uint16_t>(mac.size()));
  rdata.bytes(mac);
  rdata.u16(id);
  rdata.u16(0);  // Error.
  rdata.u16(0);  // Other length.
  Writer rr;
  rr.name(key.name);
  rr.u16(static_cast<std::uint16_t>(DnsType::Tsig));
  rr.u16(kDnsClassAny);
  rr.u32(0);
  rr.u16(static_cast<std::uint16_t>(rdata.data().size()));
  rr.bytes(rdata.data());
  message.insert(message.end(), rr.data().begin(), rr.data().end());
  put16_at(message, 10, get16_at(message, 10) + 1);
  return mac;
}

Result<void> tsig_verify(std::span<const std::uint8_t> wire, const DnsMessage& decoded,
                         const TsigKey& key, std::span<const std::uint8_t> request_mac,
                         std::uint64_t now) {
  if (auto ok = check_key(key); !ok) return std::unexpected(ok.error());
  if (!decoded.tsig) return fail("the DNS message is not signed");
  const TsigRecord& t = *decoded.tsig;
  if (t.key_name != key.name)
    return fail("the DNS message is signed with key '{}', not '{}'", t.key_name, key.name);
  if (t.algorithm != key.algorithm)
    return fail("the DNS message is signed with algorithm '{}', not '{}'", t.algorithm,
                key.algorithm);
  if (t.error != 0)
    return fail("the server reported TSIG error {}",
                to_string(static_cast<DnsRcode>(t.error)));
  // The digest covers the message as it was before the TSIG record was added.
  std::vector<std::uint8_t> unsigned_part(wire.begin(), wire.begin() + t.offset);
  put16_at(unsigned_part, 0, t.original_id);
  put16_at(unsigned_part, 10, get16_at(unsigned_part, 10) - 1);
  auto prefix = request_mac_prefix(request_mac);
  auto variables = tsig_variables(t.key_name, t.algorithm, t.time_signed, t.fudge, t.error,
                                  t.other);
  std::span<const std::uint8_t> parts[] = {prefix, unsigned_part, variables};
  auto mac = hmac_sha256(key.secret, parts);
  if (t.mac.size() != mac.size() || sodium_memcmp(t.mac.data(), mac.data(), mac.size()) != 0)
    return fail("the TSIG signature of the DNS message does not match key '{}'", key.name);
  std::uint64_t skew = now > t.time_signed ? now - t.time_signed : t.time_signed - now;
  if (skew > t.fudge)
    return fail("the DNS message was signed {} s away from our clock (fudge {} s)", skew,
                t.fudge);
  return {};
}

}  // namespace clusterd
