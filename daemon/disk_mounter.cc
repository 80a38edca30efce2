#include "disk_mounter.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>

#include "disk_helper.h"
#include "filesystem.h"
#include "log.h"

namespace clusterd {
namespace {

// mkfs and fsck of a large LUN take long; the daemon's online timeout is the real bound (it kills
// the helper's process group), this one only keeps a wedged tool from outliving the helper.
constexpr Duration kToolTimeout = std::chrono::hours(1);
// Bytes read by a check: one page, aligned for O_DIRECT at any logical block size up to 4 KiB.
constexpr std::size_t kCheckBytes = 4096;

struct FreeDelete {
  void operator()(void* p) const noexcept { std::free(p); }
};

bool asked_read_only(const std::string& options) {
  auto parsed = parse_mount_options(options);
  return parsed && (parsed->flags & MS_RDONLY);
}

}  // namespace

int DiskMounter::run() {
  char buffer[256];
  while (true) {
    ssize_t n = recv(channel_.get(), buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // The server is gone (crashed or killed): its FUSE connection is aborted, so nothing
      // below can be written any more. Take the mount out of the tree and go.
      abandon();
      return 1;
    }
    std::string_view command(buffer, static_cast<std::size_t>(n));
    if (command == kMounterStart) {
      auto device = start();
      if (device)
        reply(std::string(kReplyReady) + *device);
      else
        reply(std::string(kReplyError) + device.error().to_string());
      if (!device) return 1;
    } else if (command == kMounterCheck) {
      auto ok = check();
      reply(ok ? std::string(kReplyOk) : std::string(kReplyError) + ok.error().to_string());
    } else if (command == kMounterStop) {
      auto ok = stop();
      reply(ok ? std::string(kReplyStopped) : std::string(kReplyError) + ok.error().to_string());
      return ok ? 0 : 1;
    } else {
      reply(fmt::format("{}unknown mounter command '{}'", kReplyError, command));
    }
  }
}

void DiskMounter::reply(std::string_view text) {
  // The server may be gone; its absence shows up as the end of the socket at the next recv().
  (void)send(channel_.get(), text.data(), text.size(), MSG_NOSIGNAL);
}

Result<std::string> DiskMounter::start() {
  LoopOptions loop_options;
  loop_options.block_size = options_.block_size;
  auto loop = LoopDevice::attach(options_.fuse_dir + "/" + options_.fuse_name, loop_options);
  if (!loop) return std::unexpected(loop.error());
  loop_ = std::move(*loop);
  if (options_.mount_point.empty()) return loop_->path();
  auto ready = prepare_filesystem();
  if (ready)
    ready = mount_filesystem(
        {loop_->path(), options_.mount_point, options_.fstype, options_.mount_options});
  if (!ready) {
    (void)loop_->detach();
    loop_.reset();
    return std::unexpected(ready.error());
  }
  mounted_ = true;
  return loop_->path();
}

Result<void> DiskMounter::prepare_filesystem() {
  bool make = options_.mkfs;
  if (options_.mkfs_if_blank) {
    // A disk resource with mkfs: true formats a blank LUN at its first start and never again:
    // anything blkid recognises is kept.
    auto found = has_filesystem(loop_->path(), kToolTimeout);
    if (!found) return std::unexpected(found.error());
    make = !*found;
  }
  if (make) return make_filesystem(loop_->path(), options_.fstype, kToolTimeout);
  if (!options_.fsck) return {};
  auto outcome = check_filesystem(loop_->path(), options_.fstype, kToolTimeout);
  if (!outcome) return std::unexpected(outcome.error());
  if (*outcome == FsckOutcome::Repaired)
    log(LogLevel::Notice, {}, "e2fsck repaired the file system on {}", options_.file);
  return {};
}

Result<void> DiskMounter::check() {
  if (!loop_) return fail("no loop device is attached");
  // One O_DIRECT read through loop -> FUSE -> server -> LUN: the whole data path answers.
  Fd fd(::open(loop_->path().c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
  if (!fd) return fail_errno(errno, "cannot open {}", loop_->path());
  std::unique_ptr<void, FreeDelete> buffer(std::aligned_alloc(kCheckBytes, kCheckBytes));
  ssize_t n = pread(fd.get(), buffer.get(), kCheckBytes, 0);
  if (n < 0) return fail_errno(errno, "cannot read through {}", loop_->path());
  if (!mounted_) return {};
  auto mounts = read_mountinfo();
  if (!mounts) return std::unexpected(mounts.error());
  auto entry = find_mount(*mounts, options_.mount_point);
  if (!entry || entry->source != loop_->path())
    return fail("{} is no longer mounted at {}", loop_->path(), options_.mount_point);
  // ext4 turns itself read-only when its journal aborts after a write failed (fenced LUN):
  // "ro", or "emergency_ro" on Linux 6.x, in the superblock's options.
  if (read_only_super(*entry) && !asked_read_only(options_.mount_options))
    return fail("the file system at {} went read-only after an I/O error", options_.mount_point);
  return {};
}

Result<void> DiskMounter::stop() {
  Result<void> result;
  if (mounted_) {
    result = unmount(options_.mount_point, UnmountMode::Normal);
    if (!result && result.error().errno_value == EBUSY) {
      // Someone still has files open (a dependent resource that did not stop): take the mount
      // out of the tree anyway, so that the disk can move; their next I/O fails.
      log(LogLevel::Warning, {}, "{} is busy, unmounting lazily", options_.mount_point);
      result = unmount(options_.mount_point, UnmountMode::Lazy);
    }
    mounted_ = false;
  }
  if (loop_) {
    auto detached = loop_->detach();
    loop_.reset();
    if (result && !detached) result = detached;
  }
  return result;
}

void DiskMounter::abandon() {
  if (mounted_) (void)unmount(options_.mount_point, UnmountMode::Lazy);
  mounted_ = false;
  if (loop_) (void)loop_->detach();
  loop_.reset();
}

}  // namespace clusterd
