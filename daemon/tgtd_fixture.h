// Test support for the storage module: a private tgtd (Linux SCSI target daemon) on loopback
// with one file-backed LUN, so IscsiSession and PrClient are tested against a real target.
// Facts (lab/labkit/storage.py): `tgtd -f -C N` serves control socket /var/run/tgtd/socket.N
// on the host filesystem, so N must be unique on the machine (we pick free numbers from 200
// up); tgtd ignores SIGTERM, so it is stopped with SIGKILL, by PID.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "error.h"
#include "iscsi_session.h"
#include "loop_test_util.h"

namespace clusterd::testing {

/// Why tgtd tests cannot run here ("not root", "tgtd is not installed"), or empty.
std::string tgtd_unavailable();

/// One tgtd with target iqn.2024-01.org.clusterd.test:<name>, LUN 1 on a sparse file.
class Tgtd {
 public:
  /// Starts tgtd at 127.0.0.1 on a free port and sets up the target; the LUN file and log go
  /// into `dir` (which must outlive this object).
  static Result<std::unique_ptr<Tgtd>> start(const std::string& dir,
                                             std::uint64_t lun_bytes = 16 << 20);
  /// Kills tgtd (SIGKILL, by PID), reaps it and removes its control socket files.
  ~Tgtd();
  Tgtd(const Tgtd&) = delete;
  Tgtd& operator=(const Tgtd&) = delete;

  /// "127.0.0.1:PORT"
  const std::string& portal() const { return portal_; }
  /// The target's IQN.
  const std::string& target_iqn() const { return iqn_; }
  /// The PID of the running tgtd (0 after kill()).
  pid_t pid() const { return pid_; }
  /// What a session of initiator `initiator_iqn` connects to, with a short timeout.
  IscsiTarget target_for(const std::string& initiator_iqn,
                         std::chrono::seconds timeout = std::chrono::seconds(2)) const;

  /// SIGKILL and reap: every session breaks, every reservation is gone with the process.
  void kill();
  /// kill(), then a fresh tgtd on the same port, control number and LUN file: what a target
  /// restart without APTPL looks like to initiators.
  Result<void> restart();
  /// SIGSTOP: the target stops answering but keeps its connections open.
  void freeze();
  /// SIGCONT after freeze().
  void thaw();

 private:
  Tgtd() = default;
  Result<void> launch(int control);
  Result<void> wait_ready();
  Result<void> add_target();
  int tgtadm(const std::vector<std::string>& args) const;

  std::string dir_;
  std::string lun_path_;
  std::string iqn_;
  std::string portal_;
  int control_ = -1;
  pid_t pid_ = 0;
  bool owns_socket_ = false;  ///< The control socket was seen held by our tgtd.
};

/// A tgtd in a directory of its own for one test case. start() is false (with a doctest
/// message) where tgtd tests cannot run; a tgtd that does not come up fails the test.
struct TgtdCase {
  TempDir dir;
  std::unique_ptr<Tgtd> tgtd;
  bool start();
};

}  // namespace clusterd::testing
