// clusterd-qdisk: the quorum disk arbiter (qdisk_arbiter.h). Started by clusterd in the disk
// quorum modes with a SOCK_SEQPACKET control channel on fd 3 (qdisk_protocol.h); exits when the
// daemon closes it. Blocking iSCSI commands here never delay the daemon's heartbeats.
#include <poll.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <span>

#include "iscsi_session.h"
#include "log.h"
#include "qdisk_arbiter.h"

namespace {

using namespace clusterd;

/// Exit statuses: 0 the daemon closed the channel or had it release the disk, 1 failed while
/// running, 2 usage,
/// 3 could not start (the LUN unreachable or unreadable).
constexpr int kFailed = 1, kUsage = 2, kStartFailed = 3;

int die(int status, const std::string& why) {
  std::fprintf(stderr, "clusterd-qdisk: %s\n", why.c_str());
  return status;
}

IscsiTarget target_of(const QdiskHelperOptions& o) {
  IscsiTarget t;
  t.portals = o.portals;
  t.target_iqn = o.target;
  t.lun = o.lun;
  t.initiator_iqn = o.initiator;
  t.timeout = o.arbiter.timing.command_timeout;
  t.retries = 2;  // a unit attention once; more would stretch the deadline T
  return t;
}

Result<void> flush(int fd, QdiskArbiter& arbiter) {
  for (const QdiskFrame& f : arbiter.take_output())
    if (auto ok = send_frame(fd, f); !ok) return ok;
  return {};
}

// Waits for a frame or the arbiter's next deadline; false once the daemon closed the channel.
Result<bool> step(int fd, QdiskArbiter& arbiter) {
  std::int64_t wait = arbiter.next_deadline().ms_since(mono_now());
  pollfd pfd{fd, POLLIN, 0};
  int ready = poll(&pfd, 1, static_cast<int>(std::clamp<std::int64_t>(wait, 0, 1000)));
  if (ready < 0 && errno != EINTR) return fail_errno(errno, "cannot poll the control channel");
  if (ready > 0) {
    auto frame = receive_frame(fd);
    if (!frame) return std::unexpected(frame.error());
    if (!*frame) return false;
    arbiter.handle(**frame, mono_now());
  }
  arbiter.tick(mono_now());
  if (auto ok = flush(fd, arbiter); !ok) return std::unexpected(ok.error());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  log_setup(LogLevel::Info, LogTarget::Stderr);
  auto options = parse_qdisk_args(std::span<const char* const>(argv + 1, argc - 1));
  if (!options) return die(kUsage, options.error().to_string());
  // Its checks are the disk's heartbeat: as urgent as the daemon's own (clusterd --nice).
  (void)setpriority(PRIO_PROCESS, 0, -10);
  int fd = options->control_fd;
  auto lun = open_iscsi_quorum_lun(target_of(*options));
  if (!lun) return die(kStartFailed, lun.error().to_string());
  QdiskArbiter arbiter(**lun, options->arbiter);
  if (auto ok = arbiter.start(mono_now()); !ok) return die(kStartFailed, ok.error().to_string());
  if (auto ok = flush(fd, arbiter); !ok) return die(kFailed, ok.error().to_string());
  for (;;) {
    auto more = step(fd, arbiter);
    if (!more) return die(kFailed, more.error().to_string());
    if (!*more || arbiter.finished()) return 0;
  }
}
