// Test support for the membership module: two nodes in two network namespaces joined by two
// links, "public" (IPv4, va/vb) and "private" (IPv6, va2/vb2), with an nftables table "cut" in
// the local namespace for cutting links and dropping datagrams.
#pragma once

#include <memory>
#include <string>

#include "config.h"
#include "netns_fixture.h"

namespace clusterd::testing {

/// Wire indices of the networks in two_node_config(): 0 is a client-only network.
inline constexpr std::size_t kPublicNet = 1;
inline constexpr std::size_t kPrivateNet = 2;

/// Cluster 4242 with nodes a (id 1, local) and b (id 2, peer); heartbeat 20 ms x 5.
Config two_node_config();

/// The namespaces and links of two_node_config(), addresses configured.
class TwoLinkNet {
 public:
  /// Builds everything; the error says which step failed.
  static Result<std::unique_ptr<TwoLinkNet>> create();
  /// The namespaces (local = node a, peer = node b).
  NetnsPair& pair() { return *pair_; }
  /// Adds `rule` (nft syntax after "add rule inet cut ") in the local namespace.
  bool nft_rule(const std::string& rule);
  /// Drops everything in and out of local's side of `ifname` (a cable pulled).
  bool cut(const std::string& ifname);
  /// Removes every rule added.
  bool heal();

 private:
  TwoLinkNet() = default;
  Result<void> add_second_link();
  std::unique_ptr<NetnsPair> pair_;
};

}  // namespace clusterd::testing
