#include "quorum_guard.h"

#include <algorithm>
#include <vector>

namespace clusterd {
namespace {

/// Sent times kept: enough for echoes a few seconds late at 10 ms intervals.
constexpr std::size_t kSentKept = 512;

}  // namespace

QuorumGuard::QuorumGuard(std::uint8_t self, std::map<std::uint8_t, std::uint32_t> votes,
                         QuorumTiming timing)
    : self_(self), votes_(std::move(votes)), timing_(timing) {
  for (const auto& [node, v] : votes_) total_ += v;
}

void QuorumGuard::sent(std::uint64_t sequence, MonoTime at) {
  sent_.emplace_back(sequence, at);
  if (sent_.size() > kSentKept) sent_.pop_front();
}

std::optional<MonoTime> QuorumGuard::sent_at(std::uint64_t sequence) const {
  // Sequences grow with time, so the deque is sorted by both.
  auto it = std::lower_bound(sent_.begin(), sent_.end(), sequence,
                             [](const auto& p, std::uint64_t s) { return p.first < s; });
  if (it == sent_.end() || it->first != sequence) return std::nullopt;  // too old, or not ours
  return it->second;
}

void QuorumGuard::echoed(std::uint8_t from, std::uint64_t sequence) {
  if (auto at = sent_at(sequence)) confirm(from, *at);
}

void QuorumGuard::confirm(std::uint8_t from, MonoTime at) {
  if (from == self_ || !votes_.contains(from)) return;
  MonoTime& c = confirmations_[from];
  c = std::max(c, at);
}

void QuorumGuard::forget(std::uint8_t from) { confirmations_.erase(from); }

void QuorumGuard::relayed(std::uint8_t voter, std::uint64_t sequence, Usec age_usec) {
  auto at = sent_at(sequence);
  if (at && at->usec >= age_usec) confirm(voter, MonoTime{at->usec - age_usec});
}

std::optional<MonoTime> QuorumGuard::confirmed(MonoTime now) const {
  std::vector<std::pair<MonoTime, std::uint32_t>> times;
  times.emplace_back(now, votes_.contains(self_) ? votes_.at(self_) : 0);
  for (const auto& [node, at] : confirmations_) times.emplace_back(at, votes_.at(node));
  std::sort(times.begin(), times.end(), [](const auto& a, const auto& b) { return a > b; });
  std::uint64_t votes = 0;
  for (const auto& [at, v] : times) {
    votes += v;
    if (2 * votes > total_) return at;
  }
  return std::nullopt;
}

bool QuorumGuard::quorate(MonoTime now) const {
  auto c = confirmed(now);
  return c && now < *c + timing_.stop_after();
}

std::optional<MonoTime> QuorumGuard::stop_deadline(MonoTime now) const {
  auto c = confirmed(now);
  if (!c || now >= *c + timing_.stop_after()) return std::nullopt;
  return *c + timing_.stop_after();
}

MonoTime QuorumGuard::kill_deadline(MonoTime now) const {
  auto c = confirmed(now);
  MonoTime bound = c ? *c + timing_.kill_after() : now;
  // Never less than the stop budget from the moment the stop began... unless the bound is nearer.
  return std::min(bound < now ? now : bound, now + timing_.stop_budget);
}

}  // namespace clusterd
