// The cluster key (/etc/clusterd/authkey) and the subkeys derived from it. Every node holds the
// same raw key; heartbeats and the peer transport each use their own derived subkey, so a key
// recovered from one protocol (or a bug that leaks it) does not forge the other.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "error.h"

namespace clusterd {

/// Smallest acceptable key file: 256 bits of secret.
inline constexpr std::size_t kAuthKeyMinSize = 32;
/// Largest key file read (a bigger file is refused, not truncated).
inline constexpr std::size_t kAuthKeyMaxSize = 4096;

/// A 256-bit symmetric key (HMAC-SHA256 key size).
using SubKey = std::array<std::uint8_t, 32>;

/// The keys a node uses, derived from the cluster key.
struct ClusterKeys {
  SubKey heartbeat;  ///< Authenticates heartbeat frames.
  SubKey transport;  ///< Authenticates peer transport datagrams.
};

/// Initialises libsodium once (idempotent); an error when the library cannot start.
Result<void> sodium_ready();

/// Reads the raw key file at `path`: a regular file of kAuthKeyMinSize..kAuthKeyMaxSize bytes,
/// owned by root or by us, with no permission bits for group or others.
Result<std::vector<std::uint8_t>> read_authkey(const std::string& path);

/// Derives the subkeys from the raw cluster key (BLAKE2b, then libsodium's crypto_kdf with
/// context "clusterd"; subkey ids 1 = heartbeat, 2 = transport). Deterministic: every node
/// holding the same key derives the same subkeys.
ClusterKeys derive_keys(std::span<const std::uint8_t> cluster_key);

/// read_authkey + derive_keys; the raw key is wiped from memory afterwards.
Result<ClusterKeys> load_cluster_keys(const std::string& path);

}  // namespace clusterd
