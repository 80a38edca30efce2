// The durable ledger: DIR/ledger.log plus the in-memory idempotency index rebuilt from it.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "daemon/error.h"
#include "daemon/handle.h"
#include "record.h"

namespace clusterd::ledger {

/// What opening the store found, for the start-up log line.
struct LoadReport {
  uint64_t records = 0;          ///< Intact records read back.
  uint64_t clients = 0;          ///< Distinct client ids among them.
  uint64_t truncated_bytes = 0;  ///< Size of the torn last record cut off (0: none).
};

/// Appends records to DIR/ledger.log and answers which (client-id, seq) pairs it holds.
/// Appends are written at once but durable only after sync(); the server acknowledges nothing
/// before that. The log is locked (flock) so two servers cannot share one data directory.
class LedgerStore {
 public:
  enum class Outcome { Stored, Duplicate };

  /// Opens (creating if needed) DIR/ledger.log, truncates a torn last record, rebuilds the
  /// index. Fails when DIR is missing, not a directory or not writable, when another process
  /// holds the log, or when the log is corrupt before its last record.
  static Result<LedgerStore> open(const std::string& dir);

  /// Writes `record` unless its (client-id, seq) is already stored. Not durable until sync().
  Result<Outcome> append(const Record& record);
  /// fdatasync()s the log if anything was written since the last sync.
  Result<void> sync();

  /// True once the log may no longer match what was acknowledged (a failed fdatasync, or a
  /// failed write that could not be undone): the server must stop rather than continue.
  bool broken() const { return broken_; }
  /// Every stored seq of `client_id`, in the order they were stored.
  const std::vector<uint64_t>& seqs(const std::string& client_id) const;
  /// Number of records in the log.
  uint64_t count() const { return count_; }
  /// What open() found.
  const LoadReport& load_report() const { return report_; }
  /// The log's path.
  const std::string& path() const { return path_; }

 private:
  struct ClientIndex {
    std::unordered_set<uint64_t> stored;
    std::vector<uint64_t> order;
  };

  LedgerStore(std::string path, Fd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  Result<void> load();
  bool index(const Record& record);
  Result<void> write_all(const std::string& bytes);

  std::string path_;
  Fd fd_;
  uint64_t size_ = 0;
  uint64_t count_ = 0;
  bool dirty_ = false;
  bool broken_ = false;
  LoadReport report_;
  std::unordered_map<std::string, ClientIndex> clients_;
};

}  // namespace clusterd::ledger
