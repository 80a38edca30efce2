#include "pr_client.h"

#include <algorithm>

#include "scsi_command.h"

namespace clusterd {
namespace {

template <typename... Args>
std::unexpected<Error> fail_as(IoFailure failure, fmt::format_string<Args...> format,
                               Args&&... args) {
  return fail_errno(errno_of(failure), format, std::forward<Args>(args)...);
}

bool is_conflict(const Result<void>& result) {
  return !result && failure_of(result.error()) == IoFailure::Conflict;
}

// The keys to remove from a LUN we hold: every other key once, and our own when it is
// registered through more than one nexus (READ KEYS lists one entry per registration).
std::vector<std::uint64_t> strangers(const std::vector<std::uint64_t>& keys, std::uint64_t ours) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t key : keys)
    if (key != ours && std::find(out.begin(), out.end(), key) == out.end()) out.push_back(key);
  if (std::count(keys.begin(), keys.end(), ours) > 1) out.push_back(ours);
  return out;
}

}  // namespace

PrClient::PrClient(PersistentReservations& device, std::uint32_t cluster_id, std::uint32_t node_id)
    : device_(device), cluster_id_(cluster_id), key_(reservation_key(cluster_id, node_id)) {}

std::string PrClient::who(std::uint64_t key) const { return describe_key(key, cluster_id_); }

Result<void> PrClient::acquire(bool take_over) {
  return hold(TakeOverPolicy{take_over, {}}, "acquire");
}

Result<void> PrClient::take_over(const std::vector<std::uint64_t>& victims) {
  return hold(TakeOverPolicy{true, victims}, "take over");
}

Result<void> PrClient::restore() { return hold(TakeOverPolicy{}, "restore"); }

Result<void> PrClient::reclaim() {
  if (auto ok = register_here(); !ok) return ok;
  // Our key may still be registered (and hold the reservation) through the old nexus: this
  // moves the reservation here and drops the old registration. It answers GOOD also when
  // another node took the LUN meanwhile, which is why confirm() follows.
  if (auto ok = preempt(key_); !ok && !is_conflict(ok)) return ok;
  auto held = confirm("reclaim");
  // Someone else holds the LUN now: we are fenced. Withdraw the registration the first step
  // made, so READ KEYS shows the owner alone (a stale key gives no access under Exclusive
  // Access, but it misleads whoever reads the keys).
  if (!held && is_conflict(held)) withdraw();
  if (!held) return held;
  return evict_others("reclaim");
}

void PrClient::withdraw() {
  // REGISTER AND IGNORE EXISTING KEY with service action key 0 unregisters (SPC-3 5.6.7).
  (void)device_.pr_out(PrOutAction::RegisterAndIgnoreExistingKey, PrType::ExclusiveAccess, 0, 0);
}

Result<void> PrClient::release() {
  if (auto ok = register_here(); !ok) return ok;
  // Gather every registration of our key on this nexus (and the reservation, if ours), so
  // one RELEASE and one unregister leave nothing behind.
  if (auto ok = preempt(key_); !ok && !is_conflict(ok)) return ok;
  auto released = device_.pr_out(PrOutAction::Release, PrType::ExclusiveAccess, key_, 0);
  if (!released) return released;
  // REGISTER AND IGNORE EXISTING KEY with service action key 0 unregisters (SPC-3 5.6.7).
  auto gone =
      device_.pr_out(PrOutAction::RegisterAndIgnoreExistingKey, PrType::ExclusiveAccess, 0, 0);
  if (!gone) return gone;
  return confirm_released();
}

Result<void> PrClient::check() {
  if (auto held = confirm("check"); !held) return held;
  return evict_others("check");
}

Result<void> PrClient::register_here() {
  return device_.pr_out(PrOutAction::RegisterAndIgnoreExistingKey, PrType::ExclusiveAccess, 0,
                        key_);
}

Result<void> PrClient::hold(const TakeOverPolicy& policy, const char* sequence) {
  bool step_conflicted = false;
  auto held = hold_once(policy, sequence, &step_conflicted);
  // A take-over whose PREEMPT conflicted may have lost its registration to the holder's
  // defence (evict_others() in the holder's periodic check, between our REGISTER and our
  // PREEMPT): register and try once more. The defence runs once per check period, so a second
  // loss means the holder is not merely defending against stale keys.
  if (!held && policy.allowed && step_conflicted && is_conflict(held))
    held = hold_once(policy, sequence, &step_conflicted);
  if (!held) return held;
  // Before anything is mounted: whatever else is registered goes (a fenced owner's key, a
  // helper killed in the middle of its reclaim).
  return evict_others(sequence);
}

Result<void> PrClient::hold_once(const TakeOverPolicy& policy, const char* sequence,
                                 bool* step_conflicted) {
  if (auto ok = register_here(); !ok) return ok;
  auto now = device_.pr_read_reservation();
  if (!now) return std::unexpected(now.error());
  Result<void> step;
  switch (decide_hold(*now, key_, policy)) {
    case HoldStep::Reserve:
      step = device_.pr_out(PrOutAction::Reserve, PrType::ExclusiveAccess, key_, 0);
      break;
    case HoldStep::PreemptOwn:
      step = preempt(key_);
      break;
    case HoldStep::PreemptHolder:
      step = preempt(now->holder->key);
      break;
    case HoldStep::Refuse:
      withdraw();  // a registration we will not use only clutters READ KEYS
      return fail_as(IoFailure::Conflict, "{}: the LUN is reserved by {}", sequence,
                     who(now->holder->key));
  }
  // A conflict means the reservation changed between reading and acting: confirm() says how.
  *step_conflicted = is_conflict(step);
  if (!step && !*step_conflicted) return step;
  return confirm(sequence);
}

Result<void> PrClient::preempt(std::uint64_t victim) {
  auto abort = device_.supports_preempt_and_abort();
  if (!abort) return std::unexpected(abort.error());
  if (*abort) {
    auto done = device_.pr_out(PrOutAction::PreemptAndAbort, PrType::ExclusiveAccess, key_, victim);
    // ILLEGAL REQUEST: not executed, so plain PREEMPT is safe to send instead.
    if (done || failure_of(done.error()) != IoFailure::IllegalRequest) return done;
  }
  return device_.pr_out(PrOutAction::Preempt, PrType::ExclusiveAccess, key_, victim);
}

Result<void> PrClient::evict_others(const char* sequence) {
  auto keys = device_.pr_read_keys();
  if (!keys) return std::unexpected(keys.error());
  for (std::uint64_t other : strangers(keys->keys, key_)) {
    // We hold the reservation, so PREEMPT naming a key that does not hold it only removes that
    // key's registrations (SPC-3 5.6.10.4.3); naming our own key gathers our registrations on
    // other nexuses onto this one. Either way our reservation stays.
    auto gone = preempt(other);
    if (gone) continue;
    if (!is_conflict(gone)) return gone;
    // A conflict: the key went meanwhile (PREEMPT of an unregistered key is a conflict), or we
    // were preempted ourselves. confirm() tells the two apart.
    if (auto held = confirm(sequence); !held) return held;
  }
  return {};
}

Result<void> PrClient::confirm(const char* sequence) {
  auto now = device_.pr_read_reservation();
  if (!now) return std::unexpected(now.error());
  if (holds_exclusive(*now, key_)) return {};
  if (!now->holder)
    return fail_as(IoFailure::Vacant, "{}: the LUN has no reservation (the target lost it)",
                   sequence);
  if (now->holder->key == key_)
    return fail_as(IoFailure::Conflict, "{}: we hold the LUN as {}, not exclusive-access", sequence,
                   to_string(now->holder->type));
  return fail_as(IoFailure::Conflict, "{}: the LUN is reserved by {}", sequence,
                 who(now->holder->key));
}

Result<void> PrClient::confirm_released() {
  auto now = device_.pr_read_reservation();
  if (!now) return std::unexpected(now.error());
  if (now->holder && now->holder->key == key_)
    return fail_as(IoFailure::Device, "release: the LUN is still reserved by our key");
  auto keys = device_.pr_read_keys();
  if (!keys) return std::unexpected(keys.error());
  if (std::find(keys->keys.begin(), keys->keys.end(), key_) != keys->keys.end())
    return fail_as(IoFailure::Device,
                   "release: our key is still registered through another "
                   "session");
  return {};
}

}  // namespace clusterd
