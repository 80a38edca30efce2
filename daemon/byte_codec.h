// Sequential big-endian writer and reader for the binary formats that are built field by
// field (Raft messages, the quorum disk's records, the daemon <-> arbiter protocol). Lengths
// of byte strings are u32 prefixes; every read checks what is left first.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "byte_order.h"

namespace clusterd {

/// Appends integers big-endian whatever the host order is.
class BeWriter {
 public:
  void u8(std::uint64_t v) { put(v, 1); }
  void u16(std::uint64_t v) { put(v, 2); }
  void u32(std::uint64_t v) { put(v, 4); }
  void u64(std::uint64_t v) { put(v, 8); }
  /// A u32 length, then the bytes.
  void bytes(std::span<const std::uint8_t> b) {
    u32(b.size());
    out_.insert(out_.end(), b.begin(), b.end());
  }
  /// As bytes().
  void text(const std::string& s) {
    bytes({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
  }
  /// What was written; the writer is empty afterwards.
  std::vector<std::uint8_t> take() { return std::move(out_); }

 private:
  void put(std::uint64_t v, int width) {
    out_.resize(out_.size() + static_cast<std::size_t>(width));
    put_be(out_.data() + out_.size() - width, v, width);
  }
  std::vector<std::uint8_t> out_;
};

/// Reads what BeWriter wrote; each read returns false (and reads nothing) when too little is
/// left.
class BeReader {
 public:
  explicit BeReader(std::span<const std::uint8_t> in) : in_(in) {}
  bool u8(std::uint8_t& v) { return get(v, 1); }
  bool u16(std::uint16_t& v) { return get(v, 2); }
  bool u32(std::uint32_t& v) { return get(v, 4); }
  bool u64(std::uint64_t& v) { return get(v, 8); }
  bool bytes(std::vector<std::uint8_t>& b) {
    std::uint32_t n = 0;
    std::size_t start = at_;
    if (!u32(n) || in_.size() - at_ < n) {
      at_ = start;
      return false;
    }
    b.assign(in_.begin() + static_cast<std::ptrdiff_t>(at_),
             in_.begin() + static_cast<std::ptrdiff_t>(at_ + n));
    at_ += n;
    return true;
  }
  bool text(std::string& s) {
    std::vector<std::uint8_t> b;
    if (!bytes(b)) return false;
    s.assign(b.begin(), b.end());
    return true;
  }
  /// A u8 that must be 0 or 1.
  bool flag(bool& v) {
    std::uint8_t b = 0;
    if (!u8(b)) return false;
    if (b > 1) {
      --at_;
      return false;
    }
    v = b == 1;
    return true;
  }
  /// What is left, unread.
  std::span<const std::uint8_t> rest() const { return in_.subspan(at_); }
  /// True when everything was read.
  bool done() const { return at_ == in_.size(); }

 private:
  template <typename T>
  bool get(T& v, std::size_t width) {
    if (in_.size() - at_ < width) return false;
    v = static_cast<T>(get_be(in_.data() + at_, static_cast<int>(width)));
    at_ += width;
    return true;
  }
  std::span<const std::uint8_t> in_;
  std::size_t at_ = 0;
};

}  // namespace clusterd
