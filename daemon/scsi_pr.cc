#include "scsi_pr.h"

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>

#include "byte_order.h"

namespace clusterd {

std::uint64_t reservation_key(std::uint32_t cluster_id, std::uint32_t node_id) {
  return (std::uint64_t{kKeyTag} << 56) | (std::uint64_t{cluster_id & 0xffffff} << 32) | node_id;
}

std::optional<KeyOwner> key_owner(std::uint64_t key) {
  if ((key >> 56) != kKeyTag) return std::nullopt;
  return KeyOwner{static_cast<std::uint32_t>((key >> 32) & 0xffffff),
                  static_cast<std::uint32_t>(key & 0xffffffff)};
}

std::string describe_key(std::uint64_t key, std::uint32_t cluster_id) {
  auto owner = key_owner(key);
  if (!owner) return fmt::format("foreign key {:#018x}", key);
  if (owner->cluster_id == cluster_id) return fmt::format("node {}", owner->node_id);
  return fmt::format("node {} of cluster {}", owner->node_id, owner->cluster_id);
}

std::string_view to_string(PrType type) {
  switch (type) {
    case PrType::WriteExclusive:
      return "write-exclusive";
    case PrType::ExclusiveAccess:
      return "exclusive-access";
    case PrType::WriteExclusiveRegistrantsOnly:
      return "write-exclusive-registrants-only";
    case PrType::ExclusiveAccessRegistrantsOnly:
      return "exclusive-access-registrants-only";
    case PrType::WriteExclusiveAllRegistrants:
      return "write-exclusive-all-registrants";
    case PrType::ExclusiveAccessAllRegistrants:
      return "exclusive-access-all-registrants";
  }
  return "unknown";
}

std::string_view to_string(PrOutAction action) {
  switch (action) {
    case PrOutAction::Register:
      return "REGISTER";
    case PrOutAction::Reserve:
      return "RESERVE";
    case PrOutAction::Release:
      return "RELEASE";
    case PrOutAction::Clear:
      return "CLEAR";
    case PrOutAction::Preempt:
      return "PREEMPT";
    case PrOutAction::PreemptAndAbort:
      return "PREEMPT AND ABORT";
    case PrOutAction::RegisterAndIgnoreExistingKey:
      return "REGISTER AND IGNORE EXISTING KEY";
  }
  return "unknown";
}

std::string_view to_string(PrInAction action) {
  switch (action) {
    case PrInAction::ReadKeys:
      return "READ KEYS";
    case PrInAction::ReadReservation:
      return "READ RESERVATION";
    case PrInAction::ReportCapabilities:
      return "REPORT CAPABILITIES";
    case PrInAction::ReadFullStatus:
      return "READ FULL STATUS";
  }
  return "unknown";
}

std::array<std::uint8_t, 10> pr_out_cdb(PrOutAction action, PrType type) {
  std::array<std::uint8_t, 10> cdb{};
  cdb[0] = 0x5f;  // PERSISTENT RESERVE OUT
  cdb[1] = static_cast<std::uint8_t>(action) & 0x1f;
  cdb[2] = static_cast<std::uint8_t>(type) & 0x0f;  // scope 0: logical unit
  put_be(&cdb[5], kPrOutParameterLength, 4);
  return cdb;
}

std::array<std::uint8_t, kPrOutParameterLength> pr_out_parameters(std::uint64_t key,
                                                                  std::uint64_t sa_key) {
  std::array<std::uint8_t, kPrOutParameterLength> list{};
  put_be(&list[0], key, 8);
  put_be(&list[8], sa_key, 8);
  return list;
}

std::array<std::uint8_t, 10> pr_in_cdb(PrInAction action, std::uint16_t length) {
  std::array<std::uint8_t, 10> cdb{};
  cdb[0] = 0x5e;  // PERSISTENT RESERVE IN
  cdb[1] = static_cast<std::uint8_t>(action) & 0x1f;
  put_be(&cdb[7], length, 2);
  return cdb;
}

namespace {

Result<void> need(std::span<const std::uint8_t> data, std::size_t bytes, std::string_view what) {
  if (data.size() < bytes)
    return fail_errno(EIO, "{} returned {} bytes, fewer than {}", what, data.size(), bytes);
  return {};
}

bool valid_type(std::uint8_t type) { return type == 1 || type == 3 || (type >= 5 && type <= 8); }

}  // namespace

Result<PrKeys> parse_read_keys(std::span<const std::uint8_t> data) {
  if (auto ok = need(data, 8, "READ KEYS"); !ok) return std::unexpected(ok.error());
  PrKeys keys;
  keys.generation = static_cast<std::uint32_t>(get_be(&data[0], 4));
  std::uint64_t listed = get_be(&data[4], 4);
  std::uint64_t present = (data.size() - 8) / 8;
  keys.truncated = listed / 8 > present;
  for (std::uint64_t i = 0; i < std::min(listed / 8, present); ++i)
    keys.keys.push_back(get_be(&data[8 + 8 * i], 8));
  return keys;
}

Result<PrReservation> parse_read_reservation(std::span<const std::uint8_t> data) {
  if (auto ok = need(data, 8, "READ RESERVATION"); !ok) return std::unexpected(ok.error());
  PrReservation reservation;
  reservation.generation = static_cast<std::uint32_t>(get_be(&data[0], 4));
  if (get_be(&data[4], 4) == 0) return reservation;
  if (auto ok = need(data, 24, "READ RESERVATION"); !ok) return std::unexpected(ok.error());
  std::uint8_t type = data[21] & 0x0f;
  if (!valid_type(type))
    return fail_errno(EIO, "READ RESERVATION reports an unknown reservation type {}", type);
  reservation.holder = PrReservation::Holder{get_be(&data[8], 8), static_cast<PrType>(type)};
  return reservation;
}

Result<PrCapabilities> parse_report_capabilities(std::span<const std::uint8_t> data) {
  if (auto ok = need(data, 8, "REPORT CAPABILITIES"); !ok) return std::unexpected(ok.error());
  PrCapabilities caps;
  caps.compatible_reservation_handling = data[2] & 0x10;
  caps.persist_through_power_loss = data[2] & 0x01;
  caps.type_mask_valid = data[3] & 0x80;
  caps.type_mask = static_cast<std::uint16_t>(get_be(&data[4], 2));
  return caps;
}

bool PrCapabilities::supports(PrType type) const {
  // SPC-3 table 163: the mask bit of each type, as a big-endian 16-bit value.
  std::uint16_t bit = 0;
  switch (type) {
    case PrType::WriteExclusiveAllRegistrants:
      bit = 0x8000;
      break;
    case PrType::ExclusiveAccessRegistrantsOnly:
      bit = 0x4000;
      break;
    case PrType::WriteExclusiveRegistrantsOnly:
      bit = 0x2000;
      break;
    case PrType::ExclusiveAccess:
      bit = 0x0800;
      break;
    case PrType::WriteExclusive:
      bit = 0x0200;
      break;
    case PrType::ExclusiveAccessAllRegistrants:
      bit = 0x0001;
      break;
  }
  return type_mask_valid && (type_mask & bit);
}

Result<std::vector<SupportedCommand>> parse_supported_commands(std::span<const std::uint8_t> data) {
  const char* what = "REPORT SUPPORTED OPERATION CODES";
  if (auto ok = need(data, 4, what); !ok) return std::unexpected(ok.error());
  std::size_t end = std::min<std::size_t>(data.size(), 4 + get_be(&data[0], 4));
  std::vector<SupportedCommand> commands;
  for (std::size_t at = 4; at + 8 <= end;) {
    SupportedCommand command{data[at], std::nullopt};
    if (data[at + 5] & 0x01)
      command.service_action = static_cast<std::uint16_t>(get_be(&data[at + 2], 2));
    commands.push_back(command);
    at += (data[at + 5] & 0x02) ? 20 : 8;  // CTDP: a 12-byte timeouts descriptor follows
  }
  return commands;
}

bool lists_command(const std::vector<SupportedCommand>& commands, std::uint8_t opcode,
                   std::uint16_t service_action) {
  return std::any_of(commands.begin(), commands.end(), [&](const SupportedCommand& c) {
    return c.opcode == opcode && (!c.service_action || *c.service_action == service_action);
  });
}

std::string_view to_string(HoldStep step) {
  switch (step) {
    case HoldStep::Reserve:
      return "reserve";
    case HoldStep::PreemptOwn:
      return "preempt-own";
    case HoldStep::PreemptHolder:
      return "preempt-holder";
    case HoldStep::Refuse:
      return "refuse";
  }
  return "unknown";
}

bool TakeOverPolicy::may_preempt(std::uint64_t key) const {
  if (!allowed) return false;
  return victims.empty() || std::find(victims.begin(), victims.end(), key) != victims.end();
}

HoldStep decide_hold(const PrReservation& now, std::uint64_t my_key, const TakeOverPolicy& policy) {
  if (!now.holder) return HoldStep::Reserve;
  // READ RESERVATION names a key, not a nexus: our key may hold it through a session that is
  // gone. Preempting our own key (SPC-3 5.6.10.4.3) moves it to this nexus in every case.
  if (now.holder->key == my_key) return HoldStep::PreemptOwn;
  return policy.may_preempt(now.holder->key) ? HoldStep::PreemptHolder : HoldStep::Refuse;
}

bool holds_exclusive(const PrReservation& now, std::uint64_t my_key) {
  return now.holder && now.holder->key == my_key && now.holder->type == PrType::ExclusiveAccess;
}

}  // namespace clusterd
