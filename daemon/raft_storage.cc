#include "raft_storage.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
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

Result<void> fsync_path(const std::string& path, int flags) {
  Fd fd(open(path.c_str(), flags | O_CLOEXEC));
  if (fd.get() < 0) return fail_errno(errno, "could not open {} to sync it", path);
  if (fsync(fd.get()) < 0) return fail_errno(errno, "could not sync {}", path);
  return {};
}

}  // namespace

Result<RaftStorage> RaftStorage::open(const std::string& state_dir) {
  RaftStorage storage((std::filesystem::path(state_dir) / kRaftStateFile).string());
  std::ifstream in(storage.path_);
  if (!in) {
    if (errno == ENOENT) return storage;
    return fail_errno(errno, "could not read {}", storage.path_);
  }
  std::stringstream text;
  text << in.rdbuf();
  try {
    storage.state_ = from_json(json::parse(text.str()));
  } catch (const json::exception& e) {
    return fail(
        "the Raft state file {} is malformed ({}); move it away only if this node's vote "
        "may be forgotten",
        storage.path_, e.what());
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
    state_.hard = *ready.hard_state;
    changed = true;
  }
  return changed ? write() : Result<void>{};
}

Result<void> RaftStorage::compact(const Snapshot& snapshot) {
  state_.snapshot = snapshot;
  std::erase_if(state_.entries, [&](const Entry& e) { return e.index <= snapshot.index; });
  return write();
}

Result<void> RaftStorage::write() const {
  std::string tmp = path_ + ".new";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << to_json(state_).dump();
    out.flush();
    if (!out) return fail_errno(errno, "could not write {}", tmp);
  }
  if (auto r = fsync_path(tmp, O_RDONLY); !r) return r;
  if (std::rename(tmp.c_str(), path_.c_str()) < 0)
    return fail_errno(errno, "could not replace {}", path_);
  return fsync_path(std::filesystem::path(path_).parent_path().string(), O_RDONLY | O_DIRECTORY);
}

}  // namespace clusterd
