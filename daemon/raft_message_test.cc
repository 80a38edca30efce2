#include "raft_message.h"

#include <doctest/doctest.h>

#include <set>
#include <string>

namespace clusterd {
namespace {

Message append_with_entries() {
  Message m;
  m.type = MessageType::Append;
  m.from = 1;
  m.to = 0xfffffffe;
  m.term = 0x0102030405060708ULL;
  m.log_index = 41;
  m.log_term = 6;
  m.commit = 40;
  m.lease_stamp = 123456789;
  m.entries = {Entry{7, 42, kEntryNoop, {}}, Entry{7, 43, 9, {0, 1, 2, 0xff}}};
  return m;
}

Message snapshot_message() {
  Message m;
  m.type = MessageType::InstallSnapshot;
  m.from = 2;
  m.to = 3;
  m.term = 9;
  m.lease_stamp = 5;
  m.snapshot = Snapshot{100, 8, {'s', 't', 'a', 't', 'e'}};
  return m;
}

Message vote_response() {
  Message m;
  m.type = MessageType::VoteResponse;
  m.from = 3;
  m.to = 1;
  m.term = 4;
  m.reject = true;
  return m;
}

}  // namespace

TEST_CASE("raft message types have names") {
  std::set<std::string> names;
  for (int i = 0; i < kMessageTypeCount; ++i) {
    std::string name = to_string(static_cast<MessageType>(i));
    CHECK(name != "?");
    names.insert(name);
  }
  CHECK(names.size() == kMessageTypeCount);
  CHECK(std::string(to_string(static_cast<MessageType>(kMessageTypeCount))) == "?");
}

TEST_CASE("raft messages round-trip through the wire encoding") {
  for (const Message& m : {append_with_entries(), snapshot_message(), vote_response(), Message{}}) {
    Bytes bytes = encode_message(m);
    auto back = decode_message(bytes);
    REQUIRE_MESSAGE(back, back.error().message);
    CHECK(*back == m);
  }
}

TEST_CASE("raft encoding is network byte order") {
  Bytes b = encode_message(append_with_entries());
  // magic, version, type, flags, from (4), to (4), then the term.
  CHECK(b[0] == 'C');
  CHECK(b[1] == 'R');
  CHECK(b[2] == kMessageVersion);
  CHECK(b[3] == static_cast<std::uint8_t>(MessageType::Append));
  CHECK(b[5] == 0);
  CHECK(b[8] == 1);  // from = 1, big-endian
  CHECK(b[13] == 0x01);
  CHECK(b[20] == 0x08);
}

TEST_CASE("raft decode rejects every truncation") {
  for (const Message& m : {append_with_entries(), snapshot_message(), vote_response()}) {
    Bytes bytes = encode_message(m);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      auto r = decode_message(std::span(bytes.data(), n));
      CHECK_FALSE(r);
    }
  }
}

TEST_CASE("raft decode rejects garbage with a reason") {
  Bytes good = encode_message(append_with_entries());
  auto reject = [](Bytes b) {
    auto r = decode_message(b);
    REQUIRE_FALSE(r);
    CHECK_FALSE(r.error().message.empty());
    return r.error().message;
  };
  SUBCASE("magic") {
    Bytes b = good;
    b[0] = 'X';
    CHECK(reject(b).find("magic") != std::string::npos);
  }
  SUBCASE("version") {
    Bytes b = good;
    b[2] = kMessageVersion + 1;
    CHECK(reject(b).find("version") != std::string::npos);
  }
  SUBCASE("type") {
    Bytes b = good;
    b[3] = kMessageTypeCount;
    CHECK(reject(b).find("type") != std::string::npos);
  }
  SUBCASE("flags") {
    Bytes b = good;
    b[4] = 0x80;
    CHECK(reject(b).find("flags") != std::string::npos);
  }
  SUBCASE("trailing bytes") {
    Bytes b = good;
    b.push_back(0);
    CHECK(reject(b).find("trailing") != std::string::npos);
  }
  SUBCASE("huge entry count") {
    Bytes b = encode_message(vote_response());
    b[61] = b[62] = 0xff;  // entry count, the last fixed field
    reject(b);
  }
  SUBCASE("entries out of sequence") {
    Message m = append_with_entries();
    m.entries[1].index = 50;
    CHECK(reject(encode_message(m)).find("index") != std::string::npos);
  }
  SUBCASE("entries on a vote") {
    Message m = vote_response();
    m.entries = {Entry{1, 1, 1, {}}};
    CHECK(reject(encode_message(m)).find("entries") != std::string::npos);
  }
  SUBCASE("snapshot missing") {
    Message m = snapshot_message();
    m.snapshot.reset();
    CHECK(reject(encode_message(m)).find("snapshot") != std::string::npos);
  }
}

TEST_CASE("raft decode survives random bytes") {
  std::uint64_t x = 12345;
  for (int round = 0; round < 2000; ++round) {
    Bytes b = encode_message(round % 2 ? append_with_entries() : snapshot_message());
    // Flip a few bytes past the magic and version, where the parser must do the work.
    for (int k = 0; k < 3; ++k) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      b[3 + (x >> 33) % (b.size() - 3)] ^= static_cast<std::uint8_t>(x >> 56);
    }
    auto r = decode_message(b);
    if (r) CHECK(encode_message(*r) == b);  // whatever parses is exactly what was sent
  }
}

}  // namespace clusterd
