// The file system on a disk resource: mount(2) with mount(8)-style options, umount2(2),
// mkfs and fsck as child processes, and the mount table (/proc/self/mountinfo). Blocking
// calls: the disk helper runs them in its mounter process, never in the FUSE server.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clock.h"
#include "error.h"

namespace clusterd {

/// mount(8)-style options split into mount(2) flags and the file system's own data string.
struct MountOptions {
  unsigned long flags = 0;
  std::string data;  ///< Comma-separated options the file system parses ("errors=remount-ro").
};

/// Splits "ro,noatime,errors=remount-ro" into flags and data. Fails on empty items and on
/// options that mount(2) cannot express here (bind, remount, move, user).
Result<MountOptions> parse_mount_options(std::string_view options);

/// What to mount where.
struct MountSpec {
  std::string source;  ///< The block device.
  std::string target;  ///< The mount point (created if missing).
  std::string fstype = "ext4";
  std::string options;  ///< mount(8)-style, see parse_mount_options().
};

/// mount(2) of `spec`.
Result<void> mount_filesystem(const MountSpec& spec);

/// How to unmount.
enum class UnmountMode {
  Normal,  ///< Fails with EBUSY while files are open.
  Lazy,    ///< MNT_DETACH: gone from the tree now, freed when its last user goes.
};
const char* to_string(UnmountMode mode);

/// umount2(2) of `target`.
Result<void> unmount(const std::string& target, UnmountMode mode);

/// Runs mkfs.<fstype> on `device` (quiet, forced: the caller asked for it explicitly).
Result<void> make_filesystem(const std::string& device, const std::string& fstype,
                             Duration timeout);

/// What fsck did.
enum class FsckOutcome {
  Clean,     ///< Nothing to do.
  Repaired,  ///< Errors corrected (e2fsck exit 1 or 2).
  Skipped,   ///< No preen-mode checker for this type (its journal is replayed at mount).
};
const char* to_string(FsckOutcome outcome);

/// Preens the file system on `device` (`e2fsck -p` for ext2/3/4); fails when it needs a human
/// (exit 4 and up), with e2fsck's last line.
Result<FsckOutcome> check_filesystem(const std::string& device, const std::string& fstype,
                                     Duration timeout);

/// The sentence of e2fsck's output that says why it failed.
std::string e2fsck_reason(std::string_view output);

/// One line of /proc/self/mountinfo.
struct MountEntry {
  dev_t device = 0;           ///< st_dev of the mounted file system (major:minor).
  std::string mount_point;    ///< Unescaped.
  std::string fstype;         ///< "ext4", "fuse.clusterd-disk".
  std::string source;         ///< "/dev/loop3", "clusterd-disk".
  std::string options;        ///< Per-mount options ("rw,relatime").
  std::string super_options;  ///< Per-superblock options ("rw,errors=remount-ro").
};

/// True when the file system's superblock went read-only: "ro", or ext4's "emergency_ro"
/// (Linux 6.x, after its journal aborted) among the super options.
bool read_only_super(const MountEntry& entry);

/// Parses mountinfo text (see proc(5)); lines that do not parse are skipped.
std::vector<MountEntry> parse_mountinfo(std::string_view text);
/// The calling process's mount table.
Result<std::vector<MountEntry>> read_mountinfo();
/// The topmost mount at `path` (the last one listed), if any.
std::optional<MountEntry> find_mount(const std::vector<MountEntry>& mounts, std::string_view path);

/// Aborts the FUSE connection of the file system mounted with st_dev `device` by writing to
/// /sys/fs/fuse/connections/<minor>/abort (mounting fusectl there first if needed): every
/// request waiting on a hung or stopped server fails with ENOTCONN at once. The way out when a
/// FUSE server is stopped (SIGSTOP, frozen node) rather than dead: a dead server's connection
/// is aborted by the kernel when its /dev/fuse descriptor closes.
Result<void> abort_fuse_connection(dev_t device);

}  // namespace clusterd
