#include "scsi_pr.h"

#include <doctest/doctest.h>

#include <vector>

namespace clusterd {
namespace {

const PrType kAllTypes[] = {PrType::WriteExclusive,
                            PrType::ExclusiveAccess,
                            PrType::WriteExclusiveRegistrantsOnly,
                            PrType::ExclusiveAccessRegistrantsOnly,
                            PrType::WriteExclusiveAllRegistrants,
                            PrType::ExclusiveAccessAllRegistrants};

const PrOutAction kAllOut[] = {PrOutAction::Register,
                               PrOutAction::Reserve,
                               PrOutAction::Release,
                               PrOutAction::Clear,
                               PrOutAction::Preempt,
                               PrOutAction::PreemptAndAbort,
                               PrOutAction::RegisterAndIgnoreExistingKey};

const PrInAction kAllIn[] = {PrInAction::ReadKeys, PrInAction::ReadReservation,
                             PrInAction::ReportCapabilities, PrInAction::ReadFullStatus};

const HoldStep kAllSteps[] = {HoldStep::Reserve, HoldStep::PreemptOwn, HoldStep::PreemptHolder,
                              HoldStep::Refuse};

void put64(std::vector<std::uint8_t>& v, std::uint64_t x) {
  for (int i = 7; i >= 0; --i) v.push_back(static_cast<std::uint8_t>(x >> (8 * i)));
}

void put32(std::vector<std::uint8_t>& v, std::uint32_t x) {
  for (int i = 3; i >= 0; --i) v.push_back(static_cast<std::uint8_t>(x >> (8 * i)));
}

PrReservation held_by(std::uint64_t key, PrType type = PrType::ExclusiveAccess) {
  PrReservation r;
  r.holder = PrReservation::Holder{key, type};
  return r;
}

}  // namespace

TEST_CASE("every PR enum has a name") {
  for (PrType t : kAllTypes) CHECK(to_string(t) != "unknown");
  for (PrOutAction a : kAllOut) CHECK(to_string(a) != "unknown");
  for (PrInAction a : kAllIn) CHECK(to_string(a) != "unknown");
  for (HoldStep s : kAllSteps) CHECK(to_string(s) != "unknown");
}

TEST_CASE("reservation_key: 'C', 24-bit cluster id, 32-bit node id; decodes back") {
  std::uint64_t key = reservation_key(0x123456, 7);
  CHECK(key == 0x4312345600000007ULL);
  auto owner = key_owner(key);
  REQUIRE(owner.has_value());
  CHECK(*owner == KeyOwner{0x123456, 7});
  CHECK(reservation_key(1, 1) != reservation_key(1, 2));
  CHECK(reservation_key(1, 1) != reservation_key(2, 1));
  CHECK(reservation_key(1, 1) != 0);  // zero would mean "unregister"

  CHECK_FALSE(key_owner(0x1122334455667788ULL).has_value());
  CHECK(describe_key(reservation_key(9, 3), 9) == "node 3");
  CHECK(describe_key(reservation_key(8, 3), 9) == "node 3 of cluster 8");
  CHECK(describe_key(0x1122334455667788ULL, 9) == "foreign key 0x1122334455667788");
}

TEST_CASE("pr_out_cdb and pr_out_parameters follow SPC-3 6.12") {
  auto cdb = pr_out_cdb(PrOutAction::PreemptAndAbort, PrType::ExclusiveAccess);
  CHECK(cdb[0] == 0x5f);
  CHECK(cdb[1] == 5);
  CHECK(cdb[2] == 0x03);  // scope LU (0), type 3
  CHECK(cdb[5] == 0);
  CHECK(cdb[8] == 24);  // parameter list length: tgt insists on exactly 24
  CHECK(cdb[9] == 0);

  auto list = pr_out_parameters(0x0102030405060708ULL, 0x1112131415161718ULL);
  CHECK(list[0] == 0x01);
  CHECK(list[7] == 0x08);
  CHECK(list[8] == 0x11);
  CHECK(list[15] == 0x18);
  CHECK(list[20] == 0);  // no SPEC_I_PT, ALL_TG_PT, APTPL

  auto in = pr_in_cdb(PrInAction::ReadReservation, 0x1234);
  CHECK(in[0] == 0x5e);
  CHECK(in[1] == 1);
  CHECK(in[7] == 0x12);
  CHECK(in[8] == 0x34);
}

TEST_CASE("parse_read_keys: keys in order, truncation noticed, short data refused") {
  std::vector<std::uint8_t> data;
  put32(data, 42);     // generation
  put32(data, 3 * 8);  // additional length: three keys
  put64(data, 0xa);
  put64(data, 0xb);
  auto full = data;
  put64(full, 0xc);

  auto keys = parse_read_keys(full);
  REQUIRE(keys.has_value());
  CHECK(keys->generation == 42);
  CHECK(keys->keys == std::vector<std::uint64_t>{0xa, 0xb, 0xc});
  CHECK_FALSE(keys->truncated);

  auto cut = parse_read_keys(data);  // the target had more than we made room for
  REQUIRE(cut.has_value());
  CHECK(cut->keys.size() == 2);
  CHECK(cut->truncated);

  CHECK_FALSE(parse_read_keys(std::span(data).first(7)).has_value());
}

TEST_CASE("parse_read_reservation: none, a holder with its type, bad data") {
  std::vector<std::uint8_t> none;
  put32(none, 5);
  put32(none, 0);
  auto empty = parse_read_reservation(none);
  REQUIRE(empty.has_value());
  CHECK(empty->generation == 5);
  CHECK_FALSE(empty->holder.has_value());

  std::vector<std::uint8_t> held;
  put32(held, 6);
  put32(held, 16);
  put64(held, 0x4300000100000002ULL);
  held.resize(24, 0);
  held[21] = 0x03;  // scope 0, Exclusive Access
  auto one = parse_read_reservation(held);
  REQUIRE(one.has_value());
  REQUIRE(one->holder.has_value());
  CHECK(one->holder->key == 0x4300000100000002ULL);
  CHECK(one->holder->type == PrType::ExclusiveAccess);

  held[21] = 0x04;  // type 4 is obsolete
  CHECK_FALSE(parse_read_reservation(held).has_value());
  CHECK_FALSE(parse_read_reservation(std::span(held).first(20)).has_value());
}

TEST_CASE("parse_report_capabilities: the type mask as tgt sends it") {
  // tgt 1.0.85: length 8, TMV set, types EX_AC_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX.
  std::vector<std::uint8_t> data{0x00, 0x08, 0x00, 0x80, 0xea, 0x01, 0x00, 0x00};
  auto caps = parse_report_capabilities(data);
  REQUIRE(caps.has_value());
  CHECK(caps->type_mask_valid);
  CHECK_FALSE(caps->persist_through_power_loss);
  CHECK(caps->supports(PrType::ExclusiveAccess));
  CHECK(caps->supports(PrType::WriteExclusive));
  CHECK(caps->supports(PrType::ExclusiveAccessAllRegistrants));
  data[3] = 0;  // without TMV the mask means nothing
  CHECK_FALSE(parse_report_capabilities(data)->supports(PrType::ExclusiveAccess));
}

TEST_CASE("parse_supported_commands: descriptors with and without service actions") {
  // As tgt 1.0.85 lists PERSISTENT RESERVE OUT: actions 0-4, 6, 7 but not 5 (PREEMPT AND ABORT).
  std::vector<std::uint8_t> data{0, 0, 0, 0};
  auto add = [&](std::uint8_t opcode, int action, bool ctdp) {
    data.insert(data.end(),
                {opcode, 0, 0, static_cast<std::uint8_t>(action < 0 ? 0 : action), 0,
                 static_cast<std::uint8_t>((action >= 0 ? 1 : 0) | (ctdp ? 2 : 0)), 0, 10});
    if (ctdp) data.insert(data.end(), 12, 0);
  };
  add(0x00, -1, false);  // TEST UNIT READY
  for (int action : {0, 1, 2, 3, 4, 6, 7}) add(0x5f, action, action == 3);
  data[3] = static_cast<std::uint8_t>(data.size() - 4);

  auto commands = parse_supported_commands(data);
  REQUIRE(commands.has_value());
  CHECK(commands->size() == 8);
  CHECK(lists_command(*commands, 0x00, 0));
  CHECK(lists_command(*commands, 0x5f, 4));
  CHECK(lists_command(*commands, 0x5f, 6));  // found past the CTDP descriptor of action 3
  CHECK_FALSE(lists_command(*commands, 0x5f, 5));
  CHECK_FALSE(lists_command(*commands, 0x5e, 0));
  CHECK_FALSE(parse_supported_commands(std::span(data).first(3)).has_value());
}

TEST_CASE("decide_hold: the table") {
  const std::uint64_t me = reservation_key(1, 1);
  const std::uint64_t other = reservation_key(1, 2);
  const std::uint64_t third = reservation_key(1, 3);
  const TakeOverPolicy never{};
  const TakeOverPolicy any{true, {}};
  const TakeOverPolicy only_third{true, {third}};

  CHECK(decide_hold(PrReservation{}, me, never) == HoldStep::Reserve);
  CHECK(decide_hold(PrReservation{}, me, any) == HoldStep::Reserve);
  CHECK(decide_hold(held_by(me), me, never) == HoldStep::PreemptOwn);
  // Our key with another type (e.g. left by older software): preempting our own key converts it.
  CHECK(decide_hold(held_by(me, PrType::WriteExclusive), me, never) == HoldStep::PreemptOwn);
  CHECK(decide_hold(held_by(other), me, never) == HoldStep::Refuse);
  CHECK(decide_hold(held_by(other), me, any) == HoldStep::PreemptHolder);
  CHECK(decide_hold(held_by(other), me, only_third) == HoldStep::Refuse);
  CHECK(decide_hold(held_by(third), me, only_third) == HoldStep::PreemptHolder);
}

TEST_CASE("holds_exclusive: our key and Exclusive Access, nothing less") {
  const std::uint64_t me = reservation_key(1, 1);
  CHECK(holds_exclusive(held_by(me), me));
  CHECK_FALSE(holds_exclusive(held_by(me, PrType::WriteExclusiveRegistrantsOnly), me));
  CHECK_FALSE(holds_exclusive(held_by(reservation_key(1, 2)), me));
  CHECK_FALSE(holds_exclusive(PrReservation{}, me));
}

}  // namespace clusterd
