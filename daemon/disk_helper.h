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
//   commands (--control-fd): "check" -> "ok" | "error <sentence>"; "stop" -> "stopped" or
//   "error <sentence>", then the helper exits. SIGTERM and the control fd's end (the daemon is
//   gone) stop it the same way. Failures are also one line on stderr, and the exit status says
//   which kind (DiskHelperExit).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "block_device.h"
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
  std::uint32_t block_size = 512;  ///< --block-size (with --file).
  std::string fuse_dir;            ///< --fuse-dir: where the FUSE file system is mounted.
  std::string fuse_name = "disk";  ///< --fuse-name: the file's name in it.
  std::string mount_point;         ///< --mount-point: empty: attach the loop device only.
  std::string fstype = "ext4";     ///< --fstype.
  std::string mount_options;       ///< --options, mount(8) style.
  bool mkfs = false;               ///< --mkfs: make a new file system first (erases the disk).
  bool fsck = true;                ///< --no-fsck turns off the preen before mounting.
  int ready_fd = -1;               ///< --ready-fd.
  int control_fd = -1;             ///< --control-fd.
  bool cleanup = false;            ///< --cleanup: release a dead helper's mounts and exit.
  bool help = false;               ///< --help.
};

/// Parses the arguments after the program name; the error names the offending argument.
Result<DiskHelperOptions> parse_disk_helper_args(std::span<const char* const> args);
/// The --help text.
const char* disk_helper_usage();

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
