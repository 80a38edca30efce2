#include "qdisk_protocol.h"

#include <doctest/doctest.h>
#include <sys/socket.h>

#include "handle.h"

namespace clusterd {
namespace {

std::vector<QdiskFrame> one_of_each() {
  Message vote;
  vote.type = MessageType::Vote;
  vote.from = 2;
  vote.to = kDiskVoterId;
  vote.term = 7;
  vote.log_index = 12;
  vote.log_term = 6;
  DiskVoterState state;
  state.term = 7;
  state.vote = 2;
  state.commit = 11;
  state.config_version = 3;
  state.checkpoint = {10, 6, {1, 2, 3}};
  state.tail = {Entry{6, 11, 5, {9}}, Entry{7, 12, 0, {}}};
  return {raft_frame(vote),
          facts_frame({3, true}),
          checkpoint_frame({40, 6, {'{', '}'}}, 9),
          held_frame(MonoTime{123456}, "preempted node 1 after a challenge of 730 ms"),
          confirmed_frame(MonoTime{987654321}),
          lost_frame("preempted by node 2"),
          record_frame({true, 2, 32, state}),
          record_frame({false, 0, 0, std::nullopt}),
          release_frame(),
          released_frame("released the reservation and unregistered")};
}

}  // namespace

TEST_CASE("qdisk protocol: every kind has a name") {
  for (int i = 1; i <= kQdiskKindCount; ++i)
    CHECK(std::string(to_string(static_cast<QdiskKind>(i))) != "unknown");
  CHECK(std::string(to_string(QdiskKind::Confirmed)) == "confirmed");
}

TEST_CASE("qdisk protocol: frames survive encoding") {
  for (const QdiskFrame& f : one_of_each()) {
    CAPTURE(to_string(f.kind));
    auto back = decode_frame(encode_frame(f));
    REQUIRE(back);
    CHECK(*back == f);
  }
}

TEST_CASE("qdisk protocol: truncation, trailing bytes, magic, version and kind are refused") {
  for (const QdiskFrame& f : one_of_each()) {
    CAPTURE(to_string(f.kind));
    Bytes b = encode_frame(f);
    for (std::size_t n = 0; n < b.size(); ++n)
      CHECK_FALSE(decode_frame(std::span(b).first(n)));
    Bytes longer = b;
    longer.push_back(0);
    CHECK_FALSE(decode_frame(longer));
  }
  Bytes b = encode_frame(lost_frame("x"));
  Bytes bad = b;
  bad[0] = 'X';
  CHECK(decode_frame(bad).error().message == "quorum disk frame has the wrong magic");
  bad = b;
  bad[2] = 9;
  CHECK(decode_frame(bad).error().message == "quorum disk frame has version 9, not 2");
  bad = b;
  bad[3] = 42;
  CHECK(decode_frame(bad).error().message == "quorum disk frame has unknown kind 42");
}

TEST_CASE("qdisk protocol: frames cross a SOCK_SEQPACKET pair one per datagram") {
  int pair[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) == 0);
  Fd a(pair[0]), b(pair[1]);
  auto frames = one_of_each();
  for (const auto& f : frames) REQUIRE(send_frame(a.get(), f));
  for (const auto& f : frames) {
    auto got = receive_frame(b.get());
    REQUIRE(got);
    REQUIRE(got->has_value());
    CHECK(**got == f);
  }
  a.reset();
  auto end = receive_frame(b.get());
  REQUIRE(end);
  CHECK_FALSE(end->has_value());
}

}  // namespace clusterd
