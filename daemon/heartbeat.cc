#include "heartbeat.h"

#include <sodium.h>

#include "byte_order.h"

namespace clusterd {
namespace {

constexpr std::array<const char*, kHeartbeatDropCount> kDropNames = {
    "truncated", "bad-magic",     "bad-version",     "foreign-cluster", "bad-auth",
    "bad-node",  "from-self",     "wrong-network",   "old-incarnation", "replay"};

// Byte offsets of the version-1 layout (all integers big-endian).
constexpr std::size_t kOffMagic = 0;
constexpr std::size_t kOffVersion = 4;
constexpr std::size_t kOffFlags = 5;
constexpr std::size_t kOffNetwork = 6;
constexpr std::size_t kOffNode = 7;
constexpr std::size_t kOffCluster = 8;
constexpr std::size_t kOffIncarnation = 12;
constexpr std::size_t kOffSequence = 20;
constexpr std::size_t kOffTerm = 28;
constexpr std::size_t kOffCoordinator = 36;  // then 3 reserved bytes, zero when sent
constexpr std::size_t kOffConfigVersion = 40;
constexpr std::size_t kOffHears = 48;
constexpr std::size_t kHearsSize = 32;
static_assert(kOffHears + kHearsSize == kHeartbeatBodySize);
static_assert(crypto_auth_hmacsha256_BYTES == kHeartbeatMacSize);
static_assert(crypto_auth_hmacsha256_KEYBYTES == std::tuple_size_v<SubKey>);

// Node i is bit (i % 8) of byte (i / 8).
void put_set(std::uint8_t* at, const NodeSet& set) {
  for (std::size_t byte = 0; byte < kHearsSize; ++byte) {
    std::uint8_t b = 0;
    for (int bit = 0; bit < 8; ++bit)
      if (set[byte * 8 + bit]) b |= static_cast<std::uint8_t>(1u << bit);
    at[byte] = b;
  }
}

NodeSet get_set(const std::uint8_t* at) {
  NodeSet set;
  for (std::size_t byte = 0; byte < kHearsSize; ++byte)
    for (int bit = 0; bit < 8; ++bit)
      if (at[byte] & (1u << bit)) set.set(byte * 8 + bit);
  set.reset(0);  // 0 is "no node"
  return set;
}

HeartbeatFrame parse_body(const std::uint8_t* in) {
  HeartbeatFrame f;
  f.flags = in[kOffFlags];
  f.network = in[kOffNetwork];
  f.node_id = in[kOffNode];
  f.cluster_id = static_cast<std::uint32_t>(get_be(in + kOffCluster, 4));
  f.incarnation = get_be(in + kOffIncarnation, 8);
  f.sequence = get_be(in + kOffSequence, 8);
  f.term = get_be(in + kOffTerm, 8);
  f.coordinator = in[kOffCoordinator];
  f.config_version = get_be(in + kOffConfigVersion, 8);
  f.hears = get_set(in + kOffHears);
  return f;
}

}  // namespace

const char* to_string(HeartbeatDrop drop) { return kDropNames[static_cast<std::size_t>(drop)]; }

std::uint64_t HeartbeatCounters::total_dropped() const {
  std::uint64_t sum = 0;
  for (auto n : dropped) sum += n;
  return sum;
}

void encode_heartbeat(const HeartbeatFrame& frame, const SubKey& key, HeartbeatBytes& out) {
  std::uint8_t* p = out.data();
  put_be(p + kOffMagic, kHeartbeatMagic, 4);
  p[kOffVersion] = kHeartbeatVersion;
  p[kOffFlags] = frame.flags;
  p[kOffNetwork] = frame.network;
  p[kOffNode] = frame.node_id;
  put_be(p + kOffCluster, frame.cluster_id, 4);
  put_be(p + kOffIncarnation, frame.incarnation, 8);
  put_be(p + kOffSequence, frame.sequence, 8);
  put_be(p + kOffTerm, frame.term, 8);
  p[kOffCoordinator] = frame.coordinator;
  p[kOffCoordinator + 1] = p[kOffCoordinator + 2] = p[kOffCoordinator + 3] = 0;
  put_be(p + kOffConfigVersion, frame.config_version, 8);
  put_set(p + kOffHears, frame.hears);
  crypto_auth_hmacsha256(p + kHeartbeatBodySize, p, kHeartbeatBodySize, key.data());
}

std::expected<HeartbeatFrame, HeartbeatDrop> decode_heartbeat(std::span<const std::uint8_t> in,
                                                              const SubKey& key,
                                                              std::uint32_t cluster_id) {
  if (in.size() <= kOffVersion) return std::unexpected(HeartbeatDrop::Truncated);
  if (get_be(in.data() + kOffMagic, 4) != kHeartbeatMagic)
    return std::unexpected(HeartbeatDrop::BadMagic);
  if (in[kOffVersion] != kHeartbeatVersion) return std::unexpected(HeartbeatDrop::BadVersion);
  if (in.size() != kHeartbeatFrameSize) return std::unexpected(HeartbeatDrop::Truncated);
  // The cluster id is checked before the MAC so that a neighbour cluster on the same group is
  // counted as such (its key differs, so it would otherwise look like an attack).
  if (get_be(in.data() + kOffCluster, 4) != cluster_id)
    return std::unexpected(HeartbeatDrop::ForeignCluster);
  if (crypto_auth_hmacsha256_verify(in.data() + kHeartbeatBodySize, in.data(),
                                    kHeartbeatBodySize, key.data()) != 0)
    return std::unexpected(HeartbeatDrop::BadAuth);
  return parse_body(in.data());
}

HeartbeatVerifier::HeartbeatVerifier(const SubKey& key, std::uint32_t cluster_id,
                                     std::uint8_t self, const NodeSet& members,
                                     std::size_t networks)
    : key_(key),
      cluster_id_(cluster_id),
      self_(self),
      members_(members),
      counters_(networks),
      last_(networks * 256) {}

std::expected<HeartbeatFrame, HeartbeatDrop> HeartbeatVerifier::accept(
    std::span<const std::uint8_t> in, std::size_t network) {
  HeartbeatCounters& c = counters_[network];
  ++c.received;
  auto frame = check(in, network);
  if (frame)
    ++c.accepted;
  else
    ++c.dropped[static_cast<std::size_t>(frame.error())];
  return frame;
}

void HeartbeatVerifier::count_oversized(std::size_t network) {
  ++counters_[network].received;
  ++counters_[network].dropped[static_cast<std::size_t>(HeartbeatDrop::Truncated)];
}

std::expected<HeartbeatFrame, HeartbeatDrop> HeartbeatVerifier::check(
    std::span<const std::uint8_t> in, std::size_t network) {
  auto frame = decode_heartbeat(in, key_, cluster_id_);
  if (!frame) return frame;
  if (frame->node_id == 0 || !members_[frame->node_id])
    return std::unexpected(HeartbeatDrop::BadNode);
  if (frame->node_id == self_) return std::unexpected(HeartbeatDrop::FromSelf);
  if (frame->network != network) return std::unexpected(HeartbeatDrop::WrongNetwork);
  if (auto drop = check_replay(*frame, network)) return std::unexpected(*drop);
  return frame;
}

std::optional<HeartbeatDrop> HeartbeatVerifier::check_replay(const HeartbeatFrame& frame,
                                                             std::size_t network) {
  Last& last = last_[network * 256 + frame.node_id];
  if (last.seen && frame.incarnation < last.incarnation) return HeartbeatDrop::OldIncarnation;
  if (last.seen && frame.incarnation == last.incarnation && frame.sequence <= last.sequence)
    return HeartbeatDrop::Replay;
  last = Last{frame.incarnation, frame.sequence, true};
  return std::nullopt;
}

}  // namespace clusterd
