// clusterd-disk: the per-disk helper (see disk_helper.h). Installed in libexecdir; started by the
// daemon for a disk resource, or by hand with --file for a disk without iSCSI.
#include <cstdio>
#include <memory>
#include <span>

#include "disk_helper.h"
#include "file_block_device.h"
#include "log.h"
#include "reserved_lun.h"

namespace {

using namespace clusterd;

IscsiTarget iscsi_target(const DiskHelperOptions& options) {
  IscsiTarget target;
  target.portals = options.portals;
  target.target_iqn = options.target;
  target.lun = options.lun;
  target.initiator_iqn = options.initiator;
  target.timeout = std::chrono::seconds(options.io_timeout);
  return target;
}

// The one place that decides where the LUN comes from. Runs in the server process, after the
// mounter has been forked. An iSCSI LUN is held under our reservation before anything reads it.
Result<std::unique_ptr<BlockDevice>> open_block_device(const DiskHelperOptions& options) {
  if (!options.portals.empty()) {
    auto lun = ReservedLun::open(iscsi_target(options), options.cluster_id, options.node_id,
                                 options.take_over ? LunStart::TakeOver : LunStart::Acquire);
    if (!lun) return std::unexpected(lun.error());
    return std::unique_ptr<BlockDevice>(std::move(*lun));
  }
  auto file = FileBlockDevice::open(options.file, options.block_size);
  if (!file) return std::unexpected(file.error());
  return std::unique_ptr<BlockDevice>(std::move(*file));
}

int cleanup(const DiskHelperOptions& options) {
  auto ok = release_disk_mounts(options.mount_point, options.fuse_dir);
  if (ok) return 0;
  std::fprintf(stderr, "clusterd-disk: %s\n", ok.error().to_string().c_str());
  return static_cast<int>(DiskHelperExit::Failed);
}

int show_reservation(const DiskHelperOptions& options) {
  auto view = read_lun_reservation(iscsi_target(options));
  if (!view) {
    std::fprintf(stderr, "clusterd-disk: %s\n", view.error().to_string().c_str());
    return static_cast<int>(DiskHelperExit::Failed);
  }
  std::fputs(describe_reservation(*view, options.cluster_id).c_str(), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  log_setup(LogLevel::Info, LogTarget::Stderr);
  auto options = parse_disk_helper_args(std::span<const char* const>(argv + 1, argc - 1));
  if (!options) {
    std::fprintf(stderr, "clusterd-disk: %s\n%s", options.error().to_string().c_str(),
                 disk_helper_usage());
    return static_cast<int>(DiskHelperExit::Usage);
  }
  if (options->help) {
    std::fputs(disk_helper_usage(), stdout);
    return 0;
  }
  if (options->cleanup) return cleanup(*options);
  if (options->show_reservation) return show_reservation(*options);
  auto exit = run_disk_helper(*options, [&] { return open_block_device(*options); });
  return static_cast<int>(exit);
}
