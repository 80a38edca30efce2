#include "raft_storage.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <optional>
#include <string_view>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "handle.h"

namespace clusterd {
namespace {

using nlohmann::json;

std::string text_of(const Bytes& b) { return std::string(b.begin(), b.end()); }
Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

json to_json(const PersistentState& s) {
  json entries = json::array();
  for (const auto& e : s.entries)
    entries.push_back(
        {{"term", e.term}, {"index", e.index}, {"type", e.type}, {"data", text_of(e.data)}});
  json vote = s.hard.vote ? json(*s.hard.vote) : json(nullptr);
  return {{"term", s.hard.term},
          {"vote", vote},
          {"commit", s.hard.commit},
          {"snapshot",
           {{"index", s.snapshot.index},
            {"term", s.snapshot.term},
            {"data", text_of(s.snapshot.data)}}},
          {"entries", entries}};
}

PersistentState from_json(const json& j) {
  PersistentState s;
  s.hard.term = j.at("term").get<Term>();
  if (!j.at("vote").is_null()) s.hard.vote = j.at("vote").get<NodeId>();
  s.hard.commit = j.at("commit").get<Index>();
  const json& snap = j.at("snapshot");
  s.snapshot = {snap.at("index").get<Index>(), snap.at("term").get<Term>(),
                bytes_of(snap.at("data").get<std::string>())};
  for (const auto& e : j.at("entries"))
    s.entries.push_back({e.at("term").get<Term>(), e.at("index").get<Index>(),
                         e.at("type").get<std::uint16_t>(),
                         bytes_of(e.at("data").get<std::string>())});
  return s;
}

// Slot layout: magic "CLRS", format 1 (4 bytes), generation (8), payload length (8), FNV-1a 64
// of the payload (8), then the JSON payload. Integers little-endian.
constexpr std::array<char, 4> kSlotMagic = {'C', 'L', 'R', 'S'};
constexpr std::uint32_t kSlotFormat = 1;
constexpr std::size_t kSlotHeader = 32;

std::uint64_t fnv1a(std::string_view data) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
  return h;
}

void put64(std::string& out, std::size_t at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out[at + i] = static_cast<char>(v >> (8 * i));
}

std::uint64_t get64(std::string_view in, std::size_t at) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in[at + i]);
  return v;
}

std::string encode_slot(std::uint64_t generation, const std::string& payload) {
  std::string out(kSlotHeader, '\0');
  std::copy(kSlotMagic.begin(), kSlotMagic.end(), out.begin());
  for (int i = 0; i < 4; ++i) out[4 + i] = static_cast<char>(kSlotFormat >> (8 * i));
  put64(out, 8, generation);
  put64(out, 16, payload.size());
  put64(out, 24, fnv1a(payload));
  return out + payload;
}

/// A slot's generation and state, or nullopt when it is missing, torn or not ours.
struct SlotContent {
  std::uint64_t generation;
  PersistentState state;
};

std::optional<SlotContent> decode_slot(std::string_view bytes) {
  if (bytes.size() < kSlotHeader || !std::equal(kSlotMagic.begin(), kSlotMagic.end(), bytes.begin()))
    return std::nullopt;
  std::uint64_t length = get64(bytes, 16);
  if (length > bytes.size() - kSlotHeader) return std::nullopt;
  std::string_view payload = bytes.substr(kSlotHeader, length);
  if (fnv1a(payload) != get64(bytes, 24)) return std::nullopt;
  try {
    return SlotContent{get64(bytes, 8), from_json(json::parse(payload))};
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

/// The whole file, or nullopt when it does not exist.
Result<std::optional<std::string>> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return std::optional<std::string>();
    return fail_errno(errno, "could not read {}", path);
  }
  std::stringstream text;
  text << in.rdbuf();
  return std::optional<std::string>(text.str());
}

}  // namespace

Result<RaftStorage> RaftStorage::open(const std::string& state_dir) {
  RaftStorage storage(state_dir);
  bool any_slot = false;
  std::optional<SlotContent> newest;
  for (const char* name : kRaftSlotFiles) {
    std::string path = (std::filesystem::path(state_dir) / name).string();
    auto bytes = read_file(path);
    if (!bytes) return std::unexpected(bytes.error());
    if (!*bytes) continue;
    any_slot = true;
    auto slot = decode_slot(**bytes);
    if (slot && (!newest || slot->generation > newest->generation)) newest = std::move(slot);
  }
  if (newest) {
    storage.generation_ = newest->generation;
    storage.state_ = std::move(newest->state);
    return storage;
  }
  std::string legacy = (std::filesystem::path(state_dir) / kRaftLegacyFile).string();
  if (any_slot)
    return fail(
        "the Raft state files raft.0 and raft.1 in {} are both malformed; move them away only "
        "if this node's vote may be forgotten",
        state_dir);
  auto text = read_file(legacy);
  if (!text) return std::unexpected(text.error());
  if (!*text) return storage;  // a new node
  try {
    storage.state_ = from_json(json::parse(**text));
  } catch (const json::exception& e) {
    return fail(
        "the Raft state file {} is malformed ({}); move it away only if this node's vote "
        "may be forgotten",
        legacy, e.what());
  }
  return storage;
}

Result<void> RaftStorage::persist(const RaftReady& ready) {
  bool changed = false;
  if (ready.snapshot) {
    state_.snapshot = *ready.snapshot;
    state_.entries.clear();
    changed = true;
  }
  if (!ready.entries.empty()) {
    Index first = ready.entries.front().index;
    std::erase_if(state_.entries, [&](const Entry& e) { return e.index >= first; });
    state_.entries.insert(state_.entries.end(), ready.entries.begin(), ready.entries.end());
    changed = true;
  }
  if (ready.hard_state) {
    // Term and vote must be durable before anything is sent; the commit index alone need not.
    if (ready.hard_state->term != state_.hard.term || ready.hard_state->vote != state_.hard.vote)
      changed = true;
    state_.hard = *ready.hard_state;
  }
  return changed ? write() : Result<void>{};
}

Result<void> RaftStorage::compact(const Snapshot& snapshot) {
  state_.snapshot = snapshot;
  std::erase_if(state_.entries, [&](const Entry& e) { return e.index <= snapshot.index; });
  return write();
}

Result<void> RaftStorage::write() {
  std::uint64_t generation = generation_ + 1;
  Fd& fd = slots_[generation % 2];
  std::string path = (std::filesystem::path(dir_) / kRaftSlotFiles[generation % 2]).string();
  if (!fd) {
    fd = Fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) return fail_errno(errno, "could not open {}", path);
    // Once per slot and daemon start: the file's directory entry must be durable too.
    Fd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir || ::fsync(dir.get()) < 0) return fail_errno(errno, "could not sync {}", dir_);
  }
  std::string bytes = encode_slot(generation, to_json(state_).dump());
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd.get(), bytes.data() + done, bytes.size() - done,
                         static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(errno, "could not write {}", path);
    done += static_cast<std::size_t>(n);
  }
  // A stale tail past the payload is harmless (the header holds the length); the slot only
  // grows, so after the first writes fdatasync has no size change to flush.
  if (::fdatasync(fd.get()) < 0) return fail_errno(errno, "could not sync {}", path);
  generation_ = generation;
  return {};
}

}  // namespace clusterd
