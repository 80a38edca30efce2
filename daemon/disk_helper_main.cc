// clusterd-disk: the per-disk helper (see disk_helper.h). Installed in libexecdir; started by the
// daemon for a disk resource, or by hand with --file for a disk without iSCSI.
#include <cstdio>
#include <memory>
#include <span>

#include "disk_helper.h"
#include "file_block_device.h"
#include "log.h"

namespace {

using namespace clusterd;

// The one place that decides where the LUN comes from. Runs in the server process, after the
// mounter has been forked.
Result<std::unique_ptr<BlockDevice>> open_block_device(const DiskHelperOptions& options) {
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
  auto exit = run_disk_helper(*options, [&] { return open_block_device(*options); });
  return static_cast<int>(exit);
}
