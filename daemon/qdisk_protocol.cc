#include "qdisk_protocol.h"

#include <sys/socket.h>

#include "byte_codec.h"

namespace clusterd {
namespace {

constexpr std::uint8_t kMagic[2] = {'Q', 'D'};



void write_snapshot(BeWriter& w, const Snapshot& s) {
  w.u64(s.index);
  w.u64(s.term);
  w.bytes(s.data);
}

bool read_snapshot(BeReader& r, Snapshot& s) { return r.u64(s.index) && r.u64(s.term) && r.bytes(s.data); }

void write_state(BeWriter& w, const DiskVoterState& s) {
  w.u64(s.term);
  w.u32(s.vote.value_or(0));
  w.u64(s.commit);
  w.u64(s.config_version);
  write_snapshot(w, s.checkpoint);
  w.u32(s.tail.size());
  for (const Entry& e : s.tail) {
    w.u64(e.term);
    w.u64(e.index);
    w.u32(e.type);
    w.bytes(e.data);
  }
}

bool read_state(BeReader& r, DiskVoterState& s) {
  std::uint32_t vote = 0, count = 0;
  if (!r.u64(s.term) || !r.u32(vote) || !r.u64(s.commit) || !r.u64(s.config_version) ||
      !read_snapshot(r, s.checkpoint) || !r.u32(count))
    return false;
  if (vote != 0) s.vote = vote;
  for (std::uint32_t i = 0; i < count; ++i) {
    Entry e;
    std::uint32_t type = 0;
    if (!r.u64(e.term) || !r.u64(e.index) || !r.u32(type) || type > 0xffff || !r.bytes(e.data))
      return false;
    e.type = static_cast<std::uint16_t>(type);
    s.tail.push_back(std::move(e));
  }
  return true;
}

void write_body(BeWriter& w, const QdiskFrame& f) {
  switch (f.kind) {
    case QdiskKind::Raft: {
      Bytes m = encode_message(f.message);
      w.bytes(m);
      return;
    }
    case QdiskKind::Facts:
      w.u32(f.facts.leader);
      w.u8(f.facts.legitimate ? 1 : 0);
      return;
    case QdiskKind::Checkpoint:
      write_snapshot(w, f.snapshot);
      w.u64(f.config_version);
      return;
    case QdiskKind::Held:
      w.u64(f.at.usec);
      w.text(f.reason);
      return;
    case QdiskKind::Confirmed:
      w.u64(f.at.usec);
      return;
    case QdiskKind::Lost:
    case QdiskKind::Released:
      w.text(f.reason);
      return;
    case QdiskKind::Release:
      return;
    case QdiskKind::Record:
      w.u8(f.record.formatted ? 1 : 0);
      w.u32(f.record.holder);
      w.u32(f.record.slots);
      w.u8(f.record.state ? 1 : 0);
      if (f.record.state) write_state(w, *f.record.state);
      return;
  }
}

Result<void> read_body(BeReader& r, QdiskFrame& f) {
  bool ok = false;
  switch (f.kind) {
    case QdiskKind::Raft: {
      Bytes m;
      if (!r.bytes(m)) break;
      auto message = decode_message(m);
      if (!message) return fail("quorum disk frame: {}", message.error().message);
      f.message = std::move(*message);
      ok = true;
      break;
    }
    case QdiskKind::Facts:
      ok = r.u32(f.facts.leader) && r.flag(f.facts.legitimate);
      break;
    case QdiskKind::Checkpoint:
      ok = read_snapshot(r, f.snapshot) && r.u64(f.config_version);
      break;
    case QdiskKind::Held:
      ok = r.u64(f.at.usec) && r.text(f.reason);
      break;
    case QdiskKind::Confirmed:
      ok = r.u64(f.at.usec);
      break;
    case QdiskKind::Lost:
    case QdiskKind::Released:
      ok = r.text(f.reason);
      break;
    case QdiskKind::Release:
      ok = true;
      break;
    case QdiskKind::Record: {
      bool has_state = false;
      std::uint32_t slots = 0;
      ok = r.flag(f.record.formatted) && r.u32(f.record.holder) && r.u32(slots) &&
           slots <= 0xffff && r.flag(has_state);
      f.record.slots = static_cast<std::uint16_t>(slots);
      if (ok && has_state) ok = read_state(r, f.record.state.emplace());
      break;
    }
  }
  if (!ok) return fail("quorum disk frame ({}) is truncated or malformed", to_string(f.kind));
  if (!r.done()) return fail("quorum disk frame ({}) has trailing bytes", to_string(f.kind));
  return {};
}

}  // namespace

const char* to_string(QdiskKind kind) {
  static constexpr const char* kNames[kQdiskKindCount] = {
      "raft", "facts", "checkpoint", "held", "confirmed", "lost", "record", "release", "released"};
  auto i = static_cast<int>(kind) - 1;
  return i >= 0 && i < kQdiskKindCount ? kNames[i] : "unknown";
}

QdiskFrame raft_frame(Message message) {
  QdiskFrame f;
  f.kind = QdiskKind::Raft;
  f.message = std::move(message);
  return f;
}

QdiskFrame facts_frame(QdiskFacts facts) {
  QdiskFrame f;
  f.kind = QdiskKind::Facts;
  f.facts = facts;
  return f;
}

QdiskFrame checkpoint_frame(Snapshot snapshot, std::uint64_t config_version) {
  QdiskFrame f;
  f.kind = QdiskKind::Checkpoint;
  f.snapshot = std::move(snapshot);
  f.config_version = config_version;
  return f;
}

QdiskFrame held_frame(MonoTime since, std::string how) {
  QdiskFrame f;
  f.kind = QdiskKind::Held;
  f.at = since;
  f.reason = std::move(how);
  return f;
}

QdiskFrame confirmed_frame(MonoTime at) {
  QdiskFrame f;
  f.kind = QdiskKind::Confirmed;
  f.at = at;
  return f;
}

QdiskFrame lost_frame(std::string reason) {
  QdiskFrame f;
  f.kind = QdiskKind::Lost;
  f.reason = std::move(reason);
  return f;
}

QdiskFrame record_frame(QdiskRecord record) {
  QdiskFrame f;
  f.kind = QdiskKind::Record;
  f.record = std::move(record);
  return f;
}

QdiskFrame release_frame() {
  QdiskFrame f;
  f.kind = QdiskKind::Release;
  return f;
}

QdiskFrame released_frame(std::string what) {
  QdiskFrame f;
  f.kind = QdiskKind::Released;
  f.reason = std::move(what);
  return f;
}

Bytes encode_frame(const QdiskFrame& frame) {
  BeWriter w;
  w.u8(kMagic[0]);
  w.u8(kMagic[1]);
  w.u8(kQdiskProtocolVersion);
  w.u8(static_cast<std::uint8_t>(frame.kind));
  write_body(w, frame);
  return w.take();
}

Result<QdiskFrame> decode_frame(std::span<const std::uint8_t> bytes) {
  BeReader r(bytes);
  std::uint8_t m0 = 0, m1 = 0, version = 0, kind = 0;
  if (!r.u8(m0) || !r.u8(m1) || !r.u8(version) || !r.u8(kind))
    return fail("quorum disk frame is shorter than its header");
  if (m0 != kMagic[0] || m1 != kMagic[1]) return fail("quorum disk frame has the wrong magic");
  if (version != kQdiskProtocolVersion)
    return fail("quorum disk frame has version {}, not {}", version, kQdiskProtocolVersion);
  if (kind < 1 || kind > kQdiskKindCount) return fail("quorum disk frame has unknown kind {}", kind);
  QdiskFrame f;
  f.kind = static_cast<QdiskKind>(kind);
  if (auto ok = read_body(r, f); !ok) return std::unexpected(ok.error());
  return f;
}

Result<void> send_frame(int fd, const QdiskFrame& frame) {
  Bytes b = encode_frame(frame);
  if (b.size() > kQdiskMaxFrame)
    return fail("quorum disk frame ({}) of {} bytes exceeds {}", to_string(frame.kind), b.size(),
                kQdiskMaxFrame);
  ssize_t n = ::send(fd, b.data(), b.size(), MSG_NOSIGNAL);
  if (n < 0) return fail_errno(errno, "cannot send a quorum disk frame ({})", to_string(frame.kind));
  return {};
}

Result<std::optional<QdiskFrame>> receive_frame(int fd) {
  Bytes b(kQdiskMaxFrame);
  ssize_t n = ::recv(fd, b.data(), b.size(), MSG_TRUNC);
  if (n < 0) return fail_errno(errno, "cannot receive a quorum disk frame");
  if (n == 0) return std::optional<QdiskFrame>();
  if (static_cast<std::size_t>(n) > b.size())
    return fail("quorum disk frame of {} bytes exceeds {}", n, kQdiskMaxFrame);
  b.resize(static_cast<std::size_t>(n));
  auto frame = decode_frame(b);
  if (!frame) return std::unexpected(frame.error());
  return std::optional<QdiskFrame>(std::move(*frame));
}

}  // namespace clusterd
