#include "client.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/random.h>
#include <time.h>

#include <algorithm>
#include <unordered_set>

namespace clusterd::ledger {
namespace {

std::string seconds(Millis ms) { return fmt::format("{:.1f} s", static_cast<double>(ms) / 1000.0); }

Millis longest(const std::vector<Millis>& outages) {
  return outages.empty() ? 0 : *std::max_element(outages.begin(), outages.end());
}

}  // namespace

void check_read_back(const std::vector<uint64_t>& acked, const std::vector<uint64_t>& read,
                     ClientReport& report) {
  std::unordered_set<uint64_t> seen;
  report.duplicates = 0;
  for (uint64_t seq : read) {
    if (!seen.insert(seq).second) ++report.duplicates;
  }
  report.read_back = seen.size();
  report.lost_seqs.clear();
  for (uint64_t seq : acked) {
    if (!seen.contains(seq)) report.lost_seqs.push_back(seq);
  }
  report.verified = true;
}

std::string to_json(const ClientReport& r) {
  std::string lost = r.verified ? std::to_string(r.lost_seqs.size()) : "null";
  return fmt::format(
      R"({{"client_id": "{}", "acked": {}, "lost": {}, "lost_seqs": [{}], "duplicates": {}, )"
      R"("dup_acks": {}, "outages_ms": [{}], "max_outage_ms": {}, "reconnects": {}, )"
      R"("elapsed_ms": {}, "read_back": {}, "verified": {}, "gave_up": {}}})",
      r.client_id, r.acked, lost, fmt::join(r.lost_seqs, ", "), r.duplicates, r.dup_acks,
      fmt::join(r.outages_ms, ", "), longest(r.outages_ms), r.reconnects, r.elapsed_ms, r.read_back,
      r.verified, r.gave_up);
}

std::string to_human(const ClientReport& r, const Endpoint& server) {
  std::string text = fmt::format("ledger-client {}: {} records acknowledged by {} in {}\n",
                                 r.client_id, r.acked, to_string(server), seconds(r.elapsed_ms));
  if (r.verified) {
    std::string which =
        r.lost_seqs.empty() ? "" : fmt::format(" (seq {})", fmt::join(r.lost_seqs, ", "));
    text += fmt::format("  read back {} records: {} acknowledged records lost{}, {} stored twice\n",
                        r.read_back, r.lost_seqs.size(), which, r.duplicates);
  } else {
    text += "  not verified: the server could not be reached to read the records back\n";
  }
  text += fmt::format("  {} outages (longest {} ms), {} reconnects, {} retries answered DUP\n",
                      r.outages_ms.size(), longest(r.outages_ms), r.reconnects, r.dup_acks);
  return text;
}

int exit_code(const ClientReport& report) {
  if (report.gave_up) return 3;
  return report.lost_seqs.empty() ? 0 : 1;
}

std::string random_client_id() {
  uint64_t value = 0;
  if (::getrandom(&value, sizeof value, 0) != sizeof value) {
    value = static_cast<uint64_t>(::time(nullptr)) ^ (static_cast<uint64_t>(::getpid()) << 32);
  }
  return fmt::format("c-{:016x}", value);
}

LedgerClient::LedgerClient(ClientOptions options, const volatile std::sig_atomic_t* stop)
    : options_(std::move(options)),
      stop_(stop),
      start_(now_ms()),
      tracker_(start_),
      notifier_(options_.warn_after, options_.give_up),
      backoff_(options_.backoff_initial, options_.backoff_cap) {
  if (options_.client_id.empty()) options_.client_id = random_client_id();
  report_.client_id = options_.client_id;
}

ClientReport LedgerClient::run() {
  std::vector<uint64_t> acked;
  Attempt attempt = Attempt::Done;
  for (uint64_t seq = 1; !write_phase_over(seq); ++seq) {
    attempt = with_retries([&] { return append(seq); }, true);
    if (attempt != Attempt::Done) break;
    acked.push_back(seq);
    pause(options_.interval);
  }
  report_.acked = acked.size();
  if (attempt != Attempt::GaveUp) {
    std::vector<uint64_t> read;
    auto read_attempt = with_retries(
        [&]() -> Result<void> {
          auto seqs = read_all();
          if (!seqs) return std::unexpected(seqs.error());
          read = std::move(*seqs);
          return {};
        },
        false);
    if (read_attempt == Attempt::Done) check_read_back(acked, read, report_);
    attempt = read_attempt;
  }
  Millis now = now_ms();
  report_.gave_up = attempt == Attempt::GaveUp;
  report_.outages_ms = tracker_.report(now);
  report_.reconnects = connections_ > 0 ? connections_ - 1 : 0;
  report_.elapsed_ms = now - start_;
  return report_;
}

bool LedgerClient::write_phase_over(uint64_t seq) const {
  if (*stop_) return true;
  if (options_.count && seq > *options_.count) return true;
  return options_.duration && now_ms() - start_ >= *options_.duration;
}

template <typename Fn>
LedgerClient::Attempt LedgerClient::with_retries(Fn&& exchange, bool stoppable) {
  for (;;) {
    if (stoppable && *stop_) return Attempt::Stopped;
    std::string error;
    if (ensure_connected(error)) {
      auto result = exchange();
      if (result) {
        note_success();
        return Attempt::Done;
      }
      error = result.error().to_string();
      connection_.reset();
    }
    if (!note_failure(error)) return Attempt::GaveUp;
    pause(backoff_.next());
  }
}

bool LedgerClient::ensure_connected(std::string& error) {
  if (connection_) return true;
  auto fd = connect_to(options_.server, now_ms() + options_.connect_timeout);
  if (!fd) {
    error = fd.error().to_string();
    return false;
  }
  connection_.emplace(std::move(*fd));
  ++connections_;
  return true;
}

void LedgerClient::note_success() {
  Millis now = now_ms();
  auto ended = tracker_.success(now);
  backoff_.reset();
  if (notifier_.update(tracker_, now) == OutageNotifier::Notice::Back && ended) {
    fmt::print(stderr, "ledger-client: server {} is back after {}\n", to_string(options_.server),
               seconds(*ended));
  }
}

bool LedgerClient::note_failure(const std::string& error) {
  Millis now = now_ms();
  tracker_.failure();
  if (notifier_.update(tracker_, now) == OutageNotifier::Notice::Unreachable) {
    fmt::print(stderr, "ledger-client: server {} unreachable for {} ({}); still trying\n",
               to_string(options_.server), seconds(tracker_.current(now)), error);
  }
  if (notifier_.should_give_up(tracker_, now)) {
    fmt::print(stderr, "ledger-client: giving up: server {} unreachable for {} ({})\n",
               to_string(options_.server), seconds(tracker_.current(now)), error);
    return false;
  }
  return true;
}

Result<void> LedgerClient::append(uint64_t seq) {
  Record record{options_.client_id, seq, fmt::format("record {} of {}", seq, options_.client_id)};
  Millis deadline = now_ms() + options_.timeout;
  if (auto ok = connection_->send(format_request(AppendRequest{record}), deadline); !ok) return ok;
  auto line = connection_->read_line(deadline);
  if (!line) return std::unexpected(line.error());
  auto reply = parse_append_reply(*line);
  if (!reply) return std::unexpected(reply.error());
  if (reply->seq != seq)
    return fail("the server acknowledged seq {} instead of {}", reply->seq, seq);
  if (reply->duplicate) ++report_.dup_acks;
  return {};
}

Result<std::vector<uint64_t>> LedgerClient::read_all() {
  Millis deadline = now_ms() + options_.timeout;
  auto ok = connection_->send(format_request(ReadRequest{options_.client_id}), deadline);
  if (!ok) return std::unexpected(ok.error());
  std::vector<uint64_t> seqs;
  for (;;) {
    // The timeout bounds silence, not the whole answer: a long ledger takes a while to send.
    auto line = connection_->read_line(now_ms() + options_.timeout);
    if (!line) return std::unexpected(line.error());
    if (*line == "END") return seqs;
    auto seq = parse_u64(*line);
    if (!seq) return fail("unexpected line '{}' in the answer to READ", line->substr(0, 80));
    seqs.push_back(*seq);
  }
}

void LedgerClient::pause(Millis ms) const {
  if (ms <= 0) return;
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1000000)};
  // A signal (the stop request) cuts the pause short; that is what we want.
  ::nanosleep(&ts, nullptr);
}

}  // namespace clusterd::ledger
