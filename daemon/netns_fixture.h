// Test support for the net module: two private network namespaces joined by a veth pair, and
// a way to drive an sd-event loop until a condition holds. Never touches the namespace the
// tests started in, and leaves nothing behind: the namespaces are unnamed and vanish with their
// last file descriptor, also when the test process dies.
#pragma once

#include "loop_test_util.h"

#include <functional>
#include <memory>
#include <string>

#include <systemd/sd-event.h>

#include "clock.h"
#include "error.h"
#include "handle.h"
#include "inet_address.h"

namespace clusterd::testing {

/// Namespaces "local" (where the code under test runs) and "peer" (the rest of the segment),
/// with veth "va" in local and "vb" in peer, both up. The calling thread is in local from
/// construction until destruction.
class NetnsPair {
 public:
  /// Builds both namespaces and the link; the error says which step failed.
  static Result<std::unique_ptr<NetnsPair>> create();
  ~NetnsPair();
  NetnsPair(const NetnsPair&) = delete;
  NetnsPair& operator=(const NetnsPair&) = delete;

  /// Runs a shell command in local; its exit status.
  int local(const std::string& command);
  /// Runs a shell command in peer; its exit status.
  int peer(const std::string& command);
  /// Runs a shell command in peer and returns its standard output.
  std::string peer_output(const std::string& command);
  /// Calls `fn` with the thread in peer (to open sockets there).
  void in_peer(const std::function<void()>& fn);
  /// Hardware address of "va".
  MacAddress local_mac() const { return local_mac_; }

 private:
  NetnsPair() = default;
  Result<void> enter(int fd);
  Fd original_;
  Fd local_;
  Fd peer_;
  MacAddress local_mac_{};
};

}  // namespace clusterd::testing
