// Big-endian (network byte order) integers of any width up to 8 bytes, for the wire formats
// (heartbeat frames, peer datagrams): explicit byte order, no alignment assumptions.
#pragma once

#include <cstdint>

namespace clusterd {

/// Writes the low `width` bytes of `v` at `at`, most significant first.
inline void put_be(std::uint8_t* at, std::uint64_t v, int width) {
  for (int i = width - 1; i >= 0; --i, v >>= 8) at[i] = static_cast<std::uint8_t>(v);
}

/// Reads a `width`-byte big-endian integer at `at`.
inline std::uint64_t get_be(const std::uint8_t* at, int width) {
  std::uint64_t v = 0;
  for (int i = 0; i < width; ++i) v = (v << 8) | at[i];
  return v;
}

}  // namespace clusterd
