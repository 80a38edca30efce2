// SCSI-3 persistent reservations (SPC-3 5.6, 6.11, 6.12), the pure parts: reservation keys,
// PERSISTENT RESERVE IN/OUT CDBs and parameter lists, response parsing, and the decision the
// disk sequences take on what READ RESERVATION shows. The interface PersistentReservations is
// what a device offers (IscsiSession on a real LUN); PrClient (pr_client.h) runs the sequences.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"

namespace clusterd {

// ---- Reservation keys -------------------------------------------------------------------------

/// The top byte of every clusterd key: 'C'. It tells our keys from other software's on a shared
/// target, and keeps every key nonzero (a zero key means "unregister" in REGISTER).
inline constexpr std::uint8_t kKeyTag = 0x43;

/// The 8-byte key of node `node_id` (1..255) in cluster `cluster_id` (1..2^24-1):
/// byte 0 = 'C', bytes 1-3 = cluster id, bytes 4-7 = node id (big-endian, as on the wire).
std::uint64_t reservation_key(std::uint32_t cluster_id, std::uint32_t node_id);

/// Whose key it is, when it is a clusterd key.
struct KeyOwner {
  std::uint32_t cluster_id = 0;
  std::uint32_t node_id = 0;
  friend bool operator==(const KeyOwner&, const KeyOwner&) = default;
};

/// The owner of `key`, or nullopt when it is not a clusterd key.
std::optional<KeyOwner> key_owner(std::uint64_t key);

/// "node 3" when `key` is ours in `cluster_id`, "node 3 of cluster 9", or "foreign key 0x...".
std::string describe_key(std::uint64_t key, std::uint32_t cluster_id);

// ---- Commands ---------------------------------------------------------------------------------

/// Reservation types (SPC-3 table 167). clusterd uses ExclusiveAccess only: with the
/// registrants-only types a fenced node could simply register again and write.
enum class PrType : std::uint8_t {
  WriteExclusive = 1,
  ExclusiveAccess = 3,
  WriteExclusiveRegistrantsOnly = 5,
  ExclusiveAccessRegistrantsOnly = 6,
  WriteExclusiveAllRegistrants = 7,
  ExclusiveAccessAllRegistrants = 8,
};

/// "exclusive-access", ...
std::string_view to_string(PrType type);

/// PERSISTENT RESERVE OUT service actions (SPC-3 table 171).
enum class PrOutAction : std::uint8_t {
  Register = 0,
  Reserve = 1,
  Release = 2,
  Clear = 3,
  Preempt = 4,
  PreemptAndAbort = 5,
  RegisterAndIgnoreExistingKey = 6,
};

/// "REGISTER", "PREEMPT AND ABORT", ... as SPC-3 names them, for messages.
std::string_view to_string(PrOutAction action);

/// PERSISTENT RESERVE IN service actions (SPC-3 table 160).
enum class PrInAction : std::uint8_t {
  ReadKeys = 0,
  ReadReservation = 1,
  ReportCapabilities = 2,
  ReadFullStatus = 3,
};

/// "READ KEYS", ... for messages.
std::string_view to_string(PrInAction action);

/// Length of the basic PERSISTENT RESERVE OUT parameter list (SPC-3 6.12.3).
inline constexpr std::uint32_t kPrOutParameterLength = 24;

/// PERSISTENT RESERVE OUT CDB: scope LU, `type`, parameter list length 24.
std::array<std::uint8_t, 10> pr_out_cdb(PrOutAction action, PrType type);
/// The basic parameter list: reservation key, service action reservation key, all flags clear
/// (no SPEC_I_PT, ALL_TG_PT or APTPL: tgt refuses them, and we want none).
std::array<std::uint8_t, kPrOutParameterLength> pr_out_parameters(std::uint64_t key,
                                                                  std::uint64_t sa_key);
/// PERSISTENT RESERVE IN CDB with allocation length `length`.
std::array<std::uint8_t, 10> pr_in_cdb(PrInAction action, std::uint16_t length);

// ---- Responses --------------------------------------------------------------------------------

/// READ KEYS: every registered key (one per registered I_T nexus, so a key may repeat).
struct PrKeys {
  std::uint32_t generation = 0;
  std::vector<std::uint64_t> keys;
  bool truncated = false;  ///< The allocation length was too small for all keys.
};

/// The reservation READ RESERVATION reports; nullopt holder: none.
struct PrReservation {
  std::uint32_t generation = 0;
  struct Holder {
    std::uint64_t key = 0;
    PrType type = PrType::ExclusiveAccess;
  };
  std::optional<Holder> holder;
};

/// REPORT CAPABILITIES (SPC-3 6.11.4).
struct PrCapabilities {
  bool compatible_reservation_handling = false;  ///< CRH
  bool persist_through_power_loss = false;       ///< PTPL_C: APTPL supported
  bool type_mask_valid = false;                  ///< TMV
  std::uint16_t type_mask = 0;                   ///< bytes 4-5 as sent
  /// True when the type mask is valid and lists `type`.
  bool supports(PrType type) const;
};

/// Parses READ KEYS parameter data (`data` = what the target sent).
Result<PrKeys> parse_read_keys(std::span<const std::uint8_t> data);
/// Parses READ RESERVATION parameter data.
Result<PrReservation> parse_read_reservation(std::span<const std::uint8_t> data);
/// Parses REPORT CAPABILITIES parameter data.
Result<PrCapabilities> parse_report_capabilities(std::span<const std::uint8_t> data);

/// One command REPORT SUPPORTED OPERATION CODES lists (SPC-4 6.35.2, "all commands").
struct SupportedCommand {
  std::uint8_t opcode = 0;
  std::optional<std::uint16_t> service_action;  ///< Set when SERVACTV is.
};

/// Parses the "all commands" parameter data. (Not the one-command form: tgt answers that one
/// for PERSISTENT RESERVE OUT as if every service action were supported.)
Result<std::vector<SupportedCommand>> parse_supported_commands(std::span<const std::uint8_t> data);
/// Whether `commands` lists `opcode` with `service_action`.
bool lists_command(const std::vector<SupportedCommand>& commands, std::uint8_t opcode,
                   std::uint16_t service_action);

// ---- Decisions --------------------------------------------------------------------------------

/// What to do, given the reservation READ RESERVATION shows, to end up holding it.
enum class HoldStep {
  Reserve,        ///< Nobody holds it: RESERVE.
  PreemptOwn,     ///< Our key holds it, maybe through an old nexus or another type: PREEMPT
                  ///< our own key, which moves the reservation to this nexus as Exclusive Access.
  PreemptHolder,  ///< Another key holds it and we may take it: PREEMPT that key (fencing).
  Refuse,         ///< Another key holds it and we may not take it.
};

/// "reserve", ...
std::string_view to_string(HoldStep step);

/// Which other holders a sequence may preempt.
struct TakeOverPolicy {
  bool allowed = false;                ///< false: never preempt another key.
  std::vector<std::uint64_t> victims;  ///< Empty (and allowed): any other holder.
  /// True when `key` (another node's) may be preempted.
  bool may_preempt(std::uint64_t key) const;
};

/// The step toward holding the reservation with `my_key`.
HoldStep decide_hold(const PrReservation& now, std::uint64_t my_key, const TakeOverPolicy& policy);

/// Whether `now` shows `my_key` holding an Exclusive Access reservation: the confirmation that
/// ends every sequence (it is what catches "another node took it meanwhile").
bool holds_exclusive(const PrReservation& now, std::uint64_t my_key);

// ---- The device interface ---------------------------------------------------------------------

/// Persistent reservation commands on one I_T nexus. Failures carry an IoFailure kind
/// (scsi_command.h): Conflict for RESERVATION CONFLICT, Unreachable/Timeout for the transport.
class PersistentReservations {
 public:
  virtual ~PersistentReservations() = default;

  /// Any PERSISTENT RESERVE OUT with the basic parameter list.
  virtual Result<void> pr_out(PrOutAction action, PrType type, std::uint64_t key,
                              std::uint64_t sa_key) = 0;
  /// READ KEYS.
  virtual Result<PrKeys> pr_read_keys() = 0;
  /// READ RESERVATION.
  virtual Result<PrReservation> pr_read_reservation() = 0;
  /// REPORT CAPABILITIES.
  virtual Result<PrCapabilities> pr_report_capabilities() = 0;
  /// Whether PREEMPT AND ABORT is supported (asked once, then remembered). False when unknown:
  /// plain PREEMPT fences as well; PREEMPT AND ABORT also aborts the victim's queued commands.
  virtual Result<bool> supports_preempt_and_abort() = 0;
};

}  // namespace clusterd
