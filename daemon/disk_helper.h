// clusterd-disk, the per-disk helper (architecture "Disks"): serves the LUN as one FUSE file,
// attaches a loop device to it with direct I/O, checks and mounts the file system, answers the
// daemon's health checks and stops in order. Two processes, because a mount reads through
// loop -> FUSE -> the server, so the server must never be the one that mounts:
//   - the server (the helper's main process): opens the BlockDevice, is an I/O flusher, serves
//     FUSE on an sd-event loop, talks to the daemon;
//   - the mounter (forked before the device is opened, so it holds neither the LUN's session nor
//     /dev/fuse): attaches the loop device, runs mkfs/fsck, mounts, checks, unmounts, detaches.
//
// Protocol with the daemon, one line each way:
//   readiness (--ready-fd, else --control-fd): "ready /dev/loopN" or "error <sentence>";
//   commands (--control-fd): "check" -> "ok" | "vacant <sentence>" | "error <sentence>";
//   "restore" -> "ok" | "error <sentence>"; "stop" -> "stopped" or "error <sentence>", then
//   the helper exits. Unasked, once online: "failed <sentence>" as soon as the helper fails
//   (fenced, FUSE gone, mounter died), before it stops in order. "vacant" (iSCSI mode): the target lost the reservation, and only the
//   daemon knows whether the group is still placed here and may say "restore". SIGTERM and the control fd's end (the daemon is
//   gone) stop it the same way. Failures are also one line on stderr, and the exit status says
//   which kind (DiskHelperExit).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "block_device.h"
#include "clock.h"
#include "error.h"

namespace clusterd {

/// Exit statuses of clusterd-disk.
enum class DiskHelperExit : int {
  Stopped = 0,      ///< Orderly stop: everything unmounted, detached and flushed.
  Failed = 1,       ///< Failed while running (mounter died, FUSE connection gone, stop failed).
  Usage = 2,        ///< Bad command line.
  StartFailed = 3,  ///< Could not open the device, serve the file, attach, check or mount.
};
/// "stopped", "failed", "usage", "start-failed".
const char* to_string(DiskHelperExit exit);

/// The command line.
struct DiskHelperOptions {
  std::string file;                ///< --file: a plain file as the LUN.
  // iSCSI mode (instead of --file): the LUN under this node's reservation.
  std::vector<std::string> portals;  ///< --portal HOST[:PORT], repeatable, tried in order.
  std::string target;                ///< --target IQN.
  int lun = 1;                       ///< --lun N.
  std::string initiator;             ///< --initiator IQN: this node's own.
  std::uint32_t cluster_id = 0;      ///< --cluster-id: with --node-id, the reservation key.
  std::uint32_t node_id = 0;         ///< --node-id.
  int io_timeout = 5;                ///< --io-timeout SECONDS for every iSCSI command.
  bool take_over = false;            ///< --take-over: preempt whoever holds the LUN.
  bool show_reservation = false;     ///< --show-reservation: print holder and keys, exit.
  std::uint32_t block_size = 512;  ///< --block-size (with --file).
  std::string fuse_dir;            ///< --fuse-dir: where the FUSE file system is mounted.
  std::string fuse_name = "disk";  ///< --fuse-name: the file's name in it.
  std::string mount_point;         ///< --mount-point: empty: attach the loop device only.
  std::string fstype = "ext4";     ///< --fstype.
  std::string mount_options;       ///< --options, mount(8) style.
  bool mkfs = false;               ///< --mkfs: make a new file system first (erases the disk).
  bool mkfs_if_blank = false;      ///< --mkfs-if-blank: only when blkid finds no file system.
  bool fsck = true;                ///< --no-fsck turns off the preen before mounting.
  int ready_fd = -1;               ///< --ready-fd.
  int control_fd = -1;             ///< --control-fd.
  bool cleanup = false;            ///< --cleanup: release a dead helper's mounts and exit.
  bool help = false;               ///< --help.
};

/// Whether `device` holds any file system (or other signature) blkid recognises: `blkid -p`
/// exit 0 yes, 2 no; anything else is an error (then nothing may be formatted).
Result<bool> has_filesystem(const std::string& device, Duration timeout);

/// Parses the arguments after the program name; the error names the offending argument.
Result<DiskHelperOptions> parse_disk_helper_args(std::span<const char* const> args);
/// The --help text.
const char* disk_helper_usage();

/// What a LUN under a persistent reservation adds to its BlockDevice (iSCSI mode): the server
/// asks it on `check`, `restore` and at the end of an orderly stop. A device without one (a
/// plain --file) has no reservation to check.
class ReservationGuard {
 public:
  virtual ~ReservationGuard() = default;
  /// READ RESERVATION shows us holding the LUN. Conflict (EBADE): fenced; Vacant (ENODATA): the
  /// target lost every reservation and only the daemon may say restore().
  virtual Result<void> check_reservation() = 0;
  /// Reserves again after the target lost the reservation (the daemon confirmed the group is
  /// still placed here).
  virtual Result<void> restore_reservation() = 0;
  /// Releases the reservation and withdraws our registration (orderly stop).
  virtual Result<void> release_reservation() = 0;
  /// Set once another node took the LUN: "reservation lost: held by node 2". Every I/O fails
  /// with EIO from then on.
  virtual const std::optional<std::string>& fenced() const = 0;
  /// Called once, on the server's loop thread, when the device finds itself fenced.
  virtual void set_fenced_handler(std::function<void()> handler) = 0;
};

/// Opens the LUN: chosen in one place (disk_helper_main.cc), called in the server process after
/// the mounter has been forked.
using BlockDeviceOpener = std::function<Result<std::unique_ptr<BlockDevice>>()>;

/// Runs the helper until it stops; returns its exit status. Blocks SIGTERM, SIGINT and SIGCHLD
/// in the calling process (they are handled on its loop).
DiskHelperExit run_disk_helper(const DiskHelperOptions& options, const BlockDeviceOpener& open);

/// Releases what a helper that died without stopping left behind: aborts its FUSE connection
/// (/sys/fs/fuse/connections/N/abort: waiters on a stopped server fail at once), then lazily
/// unmounts `mount_point` and `fuse_dir`. The loop device frees itself (LO_FLAGS_AUTOCLEAR)
/// once the mount's last user is gone. Nothing mounted is success.
Result<void> release_disk_mounts(const std::string& mount_point, const std::string& fuse_dir);

}  // namespace clusterd
