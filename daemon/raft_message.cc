#include "raft_message.h"

#include <fmt/format.h>

#include <array>

#include "byte_codec.h"

namespace clusterd {

namespace {

constexpr std::array<const char*, kMessageTypeCount> kMessageTypeNames = {
    "pre-vote",        "pre-vote-response", "vote", "vote-response", "append",
    "append-response", "install-snapshot"};

constexpr std::uint8_t kMagic0 = 'C';
constexpr std::uint8_t kMagic1 = 'R';
constexpr std::uint8_t kFlagReject = 1;
constexpr std::uint8_t kFlagSnapshot = 2;
constexpr std::uint8_t kKnownFlags = kFlagReject | kFlagSnapshot;
// term, index, type, length: the smallest possible encoded entry.
constexpr std::size_t kMinEntrySize = 8 + 8 + 2 + 4;

// Reads big-endian integers; every read checks the remaining length first.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}
  std::size_t remaining() const { return in_.size() - pos_; }

  Result<std::uint64_t> uint(int width, const char* what) {
    if (remaining() < static_cast<std::size_t>(width))
      return fail("raft message truncated in {}", what);
    std::uint64_t v = 0;
    for (int i = 0; i < width; ++i) v = (v << 8) | in_[pos_++];
    return v;
  }
  Result<Bytes> bytes(const char* what) {
    auto size = uint(4, what);
    if (!size) return std::unexpected(size.error());
    if (remaining() < *size)
      return fail("raft message truncated in {} ({} bytes announced, {} left)", what, *size,
                  remaining());
    Bytes out(in_.begin() + pos_, in_.begin() + pos_ + *size);
    pos_ += *size;
    return out;
  }

 private:
  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
};

void write_entry(BeWriter& w, const Entry& e) {
  w.u64(e.term);
  w.u64(e.index);
  w.u16(e.type);
  w.bytes(e.data);
}

Result<Entry> read_entry(Reader& r) {
  Entry e;
  auto term = r.uint(8, "entry term");
  auto index = r.uint(8, "entry index");
  auto type = r.uint(2, "entry type");
  if (!term || !index || !type) return fail("raft message truncated in an entry");
  auto data = r.bytes("entry data");
  if (!data) return std::unexpected(data.error());
  return Entry{*term, *index, static_cast<std::uint16_t>(*type), std::move(*data)};
}

Result<Snapshot> read_snapshot(Reader& r) {
  auto index = r.uint(8, "snapshot index");
  auto term = r.uint(8, "snapshot term");
  if (!index || !term) return fail("raft message truncated in the snapshot header");
  auto data = r.bytes("snapshot data");
  if (!data) return std::unexpected(data.error());
  return Snapshot{*index, *term, std::move(*data)};
}

// The fixed-size part after magic and version: type, flags, ids and counters.
struct Header {
  std::uint8_t flags = 0;
  std::uint32_t entry_count = 0;
};

Result<Header> read_fixed(Reader& r, Message& m) {
  std::uint64_t v[11];
  const char* names[11] = {"type",     "flags",  "from", "to",          "term",       "log index",
                           "log term", "commit", "hint", "lease stamp", "entry count"};
  const int widths[11] = {1, 1, 4, 4, 8, 8, 8, 8, 8, 8, 4};
  for (int i = 0; i < 11; ++i) {
    auto x = r.uint(widths[i], names[i]);
    if (!x) return std::unexpected(x.error());
    v[i] = *x;
  }
  if (v[0] >= kMessageTypeCount) return fail("raft message has unknown type {}", v[0]);
  if ((v[1] & ~kKnownFlags) != 0) return fail("raft message has unknown flags {:#x}", v[1]);
  m.type = static_cast<MessageType>(v[0]);
  m.from = static_cast<NodeId>(v[2]);
  m.to = static_cast<NodeId>(v[3]);
  m.term = v[4];
  m.log_index = v[5];
  m.log_term = v[6];
  m.commit = v[7];
  m.hint = v[8];
  m.lease_stamp = v[9];
  m.reject = (v[1] & kFlagReject) != 0;
  return Header{static_cast<std::uint8_t>(v[1]), static_cast<std::uint32_t>(v[10])};
}

Result<void> read_entries(Reader& r, Message& m, std::uint32_t count) {
  if (count > 0 && m.type != MessageType::Append)
    return fail("raft {} message carries entries", to_string(m.type));
  // Bound the count by what the bytes could hold, so garbage cannot make us allocate gigabytes.
  if (count > r.remaining() / kMinEntrySize)
    return fail("raft message announces {} entries but has {} bytes left", count, r.remaining());
  m.entries.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    auto e = read_entry(r);
    if (!e) return std::unexpected(e.error());
    if (e->index != m.log_index + 1 + i)
      return fail("raft message entry {} has index {}, expected {}", i, e->index,
                  m.log_index + 1 + i);
    m.entries.push_back(std::move(*e));
  }
  return {};
}

}  // namespace

const char* to_string(MessageType type) {
  auto i = static_cast<std::size_t>(type);
  return i < kMessageTypeNames.size() ? kMessageTypeNames[i] : "?";
}

Bytes encode_message(const Message& m) {
  BeWriter w;
  w.u8(kMagic0);
  w.u8(kMagic1);
  w.u8(kMessageVersion);
  w.u8(static_cast<std::uint8_t>(m.type));
  w.u8((m.reject ? kFlagReject : 0) | (m.snapshot ? kFlagSnapshot : 0));
  w.u32(m.from);
  w.u32(m.to);
  for (std::uint64_t v : {m.term, m.log_index, m.log_term, m.commit, m.hint, m.lease_stamp})
    w.u64(v);
  w.u32(static_cast<std::uint32_t>(m.entries.size()));
  for (const Entry& e : m.entries) write_entry(w, e);
  if (m.snapshot) {
    w.u64(m.snapshot->index);
    w.u64(m.snapshot->term);
    w.bytes(m.snapshot->data);
  }
  return w.take();
}

Result<Message> decode_message(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < 3 || bytes[0] != kMagic0 || bytes[1] != kMagic1)
    return fail("not a raft message (bad magic)");
  if (bytes[2] != kMessageVersion)
    return fail("raft message version {} is not supported (expected {})", bytes[2],
                kMessageVersion);
  Reader r(bytes.subspan(3));
  Message m;
  auto header = read_fixed(r, m);
  if (!header) return std::unexpected(header.error());
  if (auto ok = read_entries(r, m, header->entry_count); !ok) return std::unexpected(ok.error());
  bool has_snapshot = (header->flags & kFlagSnapshot) != 0;
  if (has_snapshot != (m.type == MessageType::InstallSnapshot))
    return fail("raft {} message {} a snapshot", to_string(m.type),
                has_snapshot ? "carries" : "lacks");
  if (has_snapshot) {
    auto s = read_snapshot(r);
    if (!s) return std::unexpected(s.error());
    m.snapshot = std::move(*s);
  }
  if (r.remaining() != 0) return fail("raft message has {} trailing bytes", r.remaining());
  return m;
}

std::string describe(const Message& m) {
  std::string s = fmt::format("{} {}->{} t{}", to_string(m.type), m.from, m.to, m.term);
  switch (m.type) {
    case MessageType::PreVote:
    case MessageType::Vote:
      return s + fmt::format(" last={}/{}", m.log_index, m.log_term);
    case MessageType::PreVoteResponse:
    case MessageType::VoteResponse:
      return s + (m.reject ? " rejected" : " granted");
    case MessageType::Append:
      return s + fmt::format(" prev={}/{} n={} commit={}", m.log_index, m.log_term,
                             m.entries.size(), m.commit);
    case MessageType::AppendResponse:
      return s +
             fmt::format(" {} prev={} hint={}", m.reject ? "rejected" : "ok", m.log_index, m.hint);
    case MessageType::InstallSnapshot:
      return s + fmt::format(" snapshot={}/{}", m.snapshot ? m.snapshot->index : 0,
                             m.snapshot ? m.snapshot->term : 0);
  }
  return s;
}

}  // namespace clusterd
