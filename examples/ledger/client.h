// ledger-client: writes numbered records through whatever failures happen, then reads them
// back and checks that every acknowledged record survived. The measuring instrument of the
// failover tests ("clients must survive failure of the server application ... with no loss of
// data").
#pragma once

#include <csignal>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "daemon/error.h"
#include "net.h"
#include "outage.h"
#include "protocol.h"

namespace clusterd::ledger {

/// What to run.
struct ClientOptions {
  Endpoint server;
  std::optional<uint64_t> count;   ///< Records to write (stops at whichever limit is first).
  std::optional<Millis> duration;  ///< How long to write.
  Millis interval = 10;            ///< Pause after each acknowledged record.
  std::string client_id;           ///< Empty: a random one.
  Millis timeout = 1000;           ///< Per request.
  /// Per connection attempt. Short on purpose: a SYN sent while the address was moving is lost,
  /// and the kernel would retransmit it only after 1 s; a fresh attempt finds the new owner.
  Millis connect_timeout = 100;
  Millis warn_after = 3000;        ///< Tell the user once an outage lasts this long.
  Millis give_up = 60000;          ///< Stop once an outage lasts this long.
  bool json = false;               ///< Print the JSON report as the last line.
  Millis backoff_initial = 10;     ///< First reconnect delay.
  Millis backoff_cap = 200;        ///< Longest reconnect delay.
};

/// The outcome of a run.
struct ClientReport {
  std::string client_id;            ///< The id the records were written under.
  uint64_t acked = 0;               ///< Records the server acknowledged.
  uint64_t read_back = 0;           ///< Distinct seqs READ returned.
  std::vector<uint64_t> lost_seqs;  ///< Acknowledged but missing from READ.
  uint64_t duplicates = 0;          ///< Seqs READ returned more than once (stored twice).
  uint64_t dup_acks = 0;            ///< "OK <seq> DUP" replies: a retry of a stored record.
  std::vector<Millis> outages_ms;   ///< Per outage, last success before to first success after.
  uint64_t reconnects = 0;          ///< Connections opened after a failure.
  Millis elapsed_ms = 0;            ///< The whole run, read-back included.
  bool gave_up = false;             ///< The server stayed unreachable for --give-up.
  bool verified = false;            ///< The read-back happened (false when it gave up).
};

/// Which acknowledged seqs are missing from `read`, and how many seqs `read` repeats.
void check_read_back(const std::vector<uint64_t>& acked, const std::vector<uint64_t>& read,
                     ClientReport& report);

/// The report as one JSON object on one line (no newline).
std::string to_json(const ClientReport& report);

/// A few lines for people.
std::string to_human(const ClientReport& report, const Endpoint& server);

/// 0: nothing lost; 1: acknowledged records missing; 3: gave up.
int exit_code(const ClientReport& report);

/// A random client id, "c-" and 16 hex digits.
std::string random_client_id();

/// Runs the write phase and the read-back. `stop` (set from a signal handler) ends the write
/// phase early; the read-back still runs.
class LedgerClient {
 public:
  LedgerClient(ClientOptions options, const volatile std::sig_atomic_t* stop);

  /// Writes, reads back, and reports. Progress and outage notices go to stderr.
  ClientReport run();

 private:
  enum class Attempt { Done, GaveUp, Stopped };
  template <typename Fn>
  Attempt with_retries(Fn&& exchange, bool stoppable);
  bool ensure_connected(std::string& error);
  void note_success();
  bool note_failure(const std::string& error);
  bool write_phase_over(uint64_t seq) const;
  Result<void> append(uint64_t seq);
  Result<std::vector<uint64_t>> read_all();
  void pause(Millis ms) const;

  ClientOptions options_;
  const volatile std::sig_atomic_t* stop_;
  Millis start_;
  OutageTracker tracker_;
  OutageNotifier notifier_;
  Backoff backoff_;
  std::optional<LineConnection> connection_;
  uint64_t connections_ = 0;
  ClientReport report_;
};

}  // namespace clusterd::ledger
