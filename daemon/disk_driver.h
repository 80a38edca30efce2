// The `disk` resource type: an iSCSI LUN under this node's SCSI-3 reservation, mounted at the
// resource's mount point (MSCS "Physical Disk"). The daemon's side only drives the per-disk
// helper clusterd-disk (docs/disk-resource.md), on the event loop and never blocking:
//   online  = clusterd-disk --cleanup (what a dead helper left), then the helper with a
//             socketpair as its fd 3, online at its "ready /dev/loopN" line;
//   offline = "stop", its exit (then SIGKILL and --cleanup past the stop timeout);
//   LooksAlive = the helper runs and the mount is there; IsAlive = "check" (READ RESERVATION
//             shows us holding the LUN, and a small read through the whole data path), and on
//             "vacant" (the target lost every reservation) "restore": the group is online here,
//             so the LUN is ours.
// The helper failing while online fails the resource with its own sentence ("failed
// reservation lost: held by node 2", sent unasked before it unmounts); a helper killed before
// it could say anything (the self-fence's hard deadline) is followed by a look at the LUN:
// held by another node, the reason says so.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "driver.h"
#include "error.h"
#include "resource_types.h"

namespace clusterd {

/// The parameters of a disk resource, validated.
struct DiskParams {
  std::vector<std::string> portals;  ///< "host[:port]", tried in order.
  std::string target;                ///< Target IQN.
  int lun = 1;                       ///< tgt puts its own controller at LUN 0.
  std::string initiator;             ///< Empty: default_initiator(cluster, node).
  std::string mount_point;           ///< Absolute.
  std::string filesystem = "ext4";
  std::string options;      ///< mount(8) options.
  bool mkfs = false;        ///< Format the LUN when blkid finds nothing on it (never otherwise).
  int io_timeout = 5;       ///< Seconds, for every iSCSI command.
  bool take_over = true;    ///< Preempt the holder at start (placement knows it is gone).
};

/// Validates `params` of a disk resource; the error names the parameter.
Result<DiskParams> parse_disk_params(const Params& params);

/// The initiator IQN of node `node` in cluster `cluster`: "iqn.2026-11.org.clusterd:CLUSTER:NODE",
/// names lowercased and '_' as '-' (IQNs allow lowercase letters, digits, '-', '.' and ':').
std::string default_initiator(std::string_view cluster, std::string_view node);

/// What the daemon adds to the parameters when it runs the helper.
struct DiskInvocation {
  std::string helper;     ///< Path of clusterd-disk.
  std::string fuse_dir;   ///< Where the helper mounts its FUSE file (per resource).
  std::string initiator;  ///< Resolved initiator IQN.
  std::uint32_t cluster_id = 0;
  std::uint32_t node_id = 0;
};

/// The helper's command line (control channel on fd 3).
std::vector<std::string> disk_helper_argv(const DiskParams& params, const DiskInvocation& how);
/// The command line that releases what a dead helper left: clusterd-disk --cleanup.
std::vector<std::string> disk_cleanup_argv(const DiskParams& params, const DiskInvocation& how);

/// The command line that asks the LUN who holds it and who is registered, without registering:
/// clusterd-disk --show-reservation, run when a helper died without saying why.
std::vector<std::string> disk_inquest_argv(const DiskParams& params, const DiskInvocation& how);
/// From --show-reservation's output: the holder ("node 2") when another key than node
/// `node_id`'s holds the LUN; nullopt when we hold it, nobody does, or the output says nothing.
std::optional<std::string> foreign_holder(std::string_view shown, std::uint32_t cluster_id,
                                          std::uint32_t node_id);

/// The helper's reason in its output: the last "clusterd-disk: <sentence>" line without the
/// prefix (log lines may come after it), else the last line.
std::string helper_sentence(std::string_view output);

/// clusterd-disk beside the running executable when it exists (a build tree), else the
/// installed libexecdir/clusterd/clusterd-disk.
std::string default_disk_helper();

/// Metadata of the built-in `disk` type for the configuration validator.
TypeInfo disk_type_info();

/// A driver for a disk resource; needs context.loop, cluster_id and node_id.
Result<std::unique_ptr<ResourceDriver>> make_disk_driver(const ResourceConfig& config,
                                                         const DriverContext& context);

}  // namespace clusterd
