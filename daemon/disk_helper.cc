#include "disk_helper.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>

#include "child.h"
#include "disk_mounter.h"
#include "disk_server.h"
#include "file_block_device.h"
#include "filesystem.h"
#include "handle.h"

namespace clusterd {

const char* to_string(DiskHelperExit exit) {
  switch (exit) {
    case DiskHelperExit::Stopped:
      return "stopped";
    case DiskHelperExit::Failed:
      return "failed";
    case DiskHelperExit::Usage:
      return "usage";
    case DiskHelperExit::StartFailed:
      return "start-failed";
  }
  return "?";
}

const char* disk_helper_usage() {
  return "usage: clusterd-disk DISK --fuse-dir DIR [--fuse-name NAME]\n"
         "                     [--mount-point DIR [--fstype TYPE] [--options OPTS] [--mkfs |\n"
         "                     --mkfs-if-blank] [--no-fsck]] [--ready-fd FD] [--control-fd FD]\n"
         "       clusterd-disk --cleanup --fuse-dir DIR [--mount-point DIR]\n"
         "       clusterd-disk --show-reservation ISCSI\n"
         "DISK is --file PATH [--block-size N], or ISCSI --cluster-id N --node-id N\n"
         "     [--io-timeout SECONDS] [--take-over]\n"
         "ISCSI is --portal HOST[:PORT] [--portal ...] --target IQN [--lun N] --initiator IQN\n"
         "Serves the disk as DIR/NAME over FUSE, attaches a loop device to it and mounts it.\n"
         "Readiness: \"ready /dev/loopN\" on FD; commands on the control FD: check, restore,\n"
         "stop.\n";
}

namespace {

Result<int> parse_int(std::string_view flag, std::string_view text, int min) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min)
    return fail("{} wants a number of at least {}, not '{}'", flag, min, text);
  return value;
}

// Flags whose value is a string, and where it goes.
struct StringFlag {
  std::string_view flag;
  std::string DiskHelperOptions::*member;
};

constexpr StringFlag kStringFlags[] = {
    {"--file", &DiskHelperOptions::file},
    {"--target", &DiskHelperOptions::target},
    {"--initiator", &DiskHelperOptions::initiator},
    {"--fuse-dir", &DiskHelperOptions::fuse_dir},
    {"--fuse-name", &DiskHelperOptions::fuse_name},
    {"--mount-point", &DiskHelperOptions::mount_point},
    {"--fstype", &DiskHelperOptions::fstype},
    {"--options", &DiskHelperOptions::mount_options},
};

std::optional<std::uint32_t*> id_flag(DiskHelperOptions& o, std::string_view flag) {
  if (flag == "--cluster-id") return &o.cluster_id;
  if (flag == "--node-id") return &o.node_id;
  return std::nullopt;
}

// Flags that take a value, and where it goes.
Result<void> set_value(DiskHelperOptions& o, std::string_view flag, std::string_view value) {
  for (const StringFlag& f : kStringFlags) {
    if (f.flag != flag) continue;
    o.*f.member = value;
    return {};
  }
  if (flag == "--portal") {
    if (value.empty()) return fail("--portal needs HOST[:PORT], not an empty string");
    o.portals.emplace_back(value);
  } else if (auto id = id_flag(o, flag)) {
    // Reservation keys hold 24 bits of cluster id and node ids 1..255 (scsi_pr.h).
    auto n = parse_int(flag, value, 1);
    if (!n) return std::unexpected(n.error());
    int max = flag == "--node-id" ? 255 : (1 << 24) - 1;
    if (*n > max) return fail("{} must be at most {}, not {}", flag, max, *n);
    **id = static_cast<std::uint32_t>(*n);
  } else if (flag == "--lun" || flag == "--io-timeout") {
    auto n = parse_int(flag, value, flag == "--lun" ? 0 : 1);
    if (!n) return std::unexpected(n.error());
    (flag == "--lun" ? o.lun : o.io_timeout) = *n;
  } else if (flag == "--block-size") {
    auto n = parse_int(flag, value, 512);
    if (!n) return std::unexpected(n.error());
    if (!valid_block_size(static_cast<std::uint32_t>(*n)))
      return fail("--block-size must be a power of two from 512 to 65536, not {}", *n);
    o.block_size = static_cast<std::uint32_t>(*n);
  } else if (flag == "--ready-fd" || flag == "--control-fd") {
    auto n = parse_int(flag, value, 0);
    if (!n) return std::unexpected(n.error());
    (flag == "--ready-fd" ? o.ready_fd : o.control_fd) = *n;
  } else {
    return fail("unknown option {}", flag);
  }
  return {};
}

bool set_switch(DiskHelperOptions& o, std::string_view flag) {
  if (flag == "--mkfs")
    o.mkfs = true;
  else if (flag == "--mkfs-if-blank")
    o.mkfs_if_blank = true;
  else if (flag == "--no-fsck")
    o.fsck = false;
  else if (flag == "--cleanup")
    o.cleanup = true;
  else if (flag == "--take-over")
    o.take_over = true;
  else if (flag == "--show-reservation")
    o.show_reservation = true;
  else if (flag == "--help" || flag == "-h")
    o.help = true;
  else
    return false;
  return true;
}

Result<void> validate_iscsi(const DiskHelperOptions& o, bool need_key) {
  if (o.target.empty()) return fail("--target is required with --portal");
  if (o.initiator.empty()) return fail("--initiator is required with --portal");
  if (need_key && (o.cluster_id == 0 || o.node_id == 0))
    return fail("--cluster-id and --node-id are required with --portal (the reservation key)");
  return {};
}

Result<void> validate(const DiskHelperOptions& o) {
  if (o.help) return {};
  if (o.show_reservation) {
    if (o.portals.empty()) return fail("--show-reservation needs --portal");
    return validate_iscsi(o, false);
  }
  if (o.fuse_dir.empty()) return fail("--fuse-dir is required");
  if (o.cleanup) return {};
  if (!o.file.empty() && !o.portals.empty())
    return fail("--file and --portal exclude each other (one disk per helper)");
  if (o.file.empty() && o.portals.empty())
    return fail("--file or --portal is required (the disk to serve)");
  if (!o.portals.empty()) {
    if (auto ok = validate_iscsi(o, true); !ok) return ok;
  } else if (o.take_over) {
    return fail("--take-over needs --portal (a file has no reservation)");
  }
  if (o.mkfs && o.mount_point.empty()) return fail("--mkfs needs --mount-point");
  if (o.mkfs_if_blank && o.mount_point.empty()) return fail("--mkfs-if-blank needs --mount-point");
  if (o.fuse_name.empty() || o.fuse_name.find('/') != std::string::npos)
    return fail("--fuse-name must be one path component");
  return {};
}

}  // namespace

Result<bool> has_filesystem(const std::string& device, Duration timeout) {
  ChildSpec spec;
  spec.argv = {"blkid", "-p", "-o", "value", "-s", "TYPE", device};
  spec.env = {std::string("PATH=") + kDefaultPath};
  auto exit = run_child_sync(spec, timeout);
  if (!exit) return std::unexpected(exit.error());
  // blkid(8): 0 = a signature was found, 2 = none could be identified.
  if (exit->success()) return true;
  if (exit->end == ChildEnd::Exited && exit->status == 2) return false;
  return fail("cannot tell whether {} holds a file system: blkid -p {} ({})", device,
              exit->describe(), exit->last_line());
}

Result<DiskHelperOptions> parse_disk_helper_args(std::span<const char* const> args) {
  DiskHelperOptions options;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (set_switch(options, arg)) continue;
    std::optional<std::string_view> value;
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    }
    if (!arg.starts_with("--")) return fail("unexpected argument '{}'", arg);
    if (!value) return fail("{} needs a value", arg);
    if (auto ok = set_value(options, arg, *value); !ok) return std::unexpected(ok.error());
  }
  if (auto ok = validate(options); !ok) return std::unexpected(ok.error());
  return options;
}

Result<void> release_disk_mounts(const std::string& mount_point, const std::string& fuse_dir) {
  auto mounts = read_mountinfo();
  if (!mounts) return std::unexpected(mounts.error());
  Result<void> result;
  auto keep_first = [&](Result<void> r) {
    if (result && !r) result = std::move(r);
  };
  // First wake everything waiting on a stopped server, then take both mounts out of the tree.
  auto fuse = find_mount(*mounts, fuse_dir);
  bool ours = fuse && fuse->fstype == "fuse.clusterd-disk";
  if (ours) keep_first(abort_fuse_connection(fuse->device));
  if (!mount_point.empty() && find_mount(*mounts, mount_point))
    keep_first(unmount(mount_point, UnmountMode::Lazy));
  if (ours) keep_first(unmount(fuse_dir, UnmountMode::Lazy));
  return result;
}

}  // namespace clusterd

namespace clusterd {
namespace {

// The mounter's life: it starts before the LUN is opened, so it inherits neither the session's
// socket nor /dev/fuse. SIGTERM sent to the helper's whole process group must not kill it in the
// middle of an unmount: the server decides when it stops.
[[noreturn]] void run_mounter(const DiskHelperOptions& options, Fd channel) {
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  if (options.ready_fd >= 0) ::close(options.ready_fd);
  if (options.control_fd >= 0) ::close(options.control_fd);
  DiskMounter mounter(options, std::move(channel));
  int status = mounter.run();
  std::fflush(nullptr);
  _exit(status);
}

Result<pid_t> fork_mounter(const DiskHelperOptions& options, Fd* server_end) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
    return fail_errno(errno, "cannot create the mounter's socket");
  Fd server(pair[0]), mounter(pair[1]);
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) return fail_errno(errno, "cannot fork the mounter process");
  if (pid == 0) {
    server.reset();
    run_mounter(options, std::move(mounter));
  }
  *server_end = std::move(server);
  return pid;
}

Result<EventPtr> new_event_loop() {
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGTERM, SIGINT, SIGCHLD}) sigaddset(&mask, sig);
  // sd-event wants the signals it watches blocked (sd_event_add_signal, sd_event_add_child).
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0)
    return fail_errno(errno, "cannot block SIGTERM, SIGINT and SIGCHLD");
  sd_event* raw = nullptr;
  int r = sd_event_new(&raw);
  if (r < 0) return fail_errno(r, "cannot create an event loop");
  return EventPtr(raw);
}

void reap(pid_t pid) {
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

DiskHelperExit start_failed(const Error& error) {
  std::fprintf(stderr, "clusterd-disk: %s\n", error.to_string().c_str());
  return DiskHelperExit::StartFailed;
}

}  // namespace

DiskHelperExit run_disk_helper(const DiskHelperOptions& options, const BlockDeviceOpener& open) {
  signal(SIGPIPE, SIG_IGN);
  auto loop = new_event_loop();
  if (!loop) return start_failed(loop.error());
  Fd channel;
  auto mounter = fork_mounter(options, &channel);
  if (!mounter) return start_failed(mounter.error());
  DiskHelperExit exit;
  {
    DiskServer server(loop->get(), options, std::move(channel), *mounter);
    if (auto ok = server.start(open); !ok) {
      server.announce_failure(ok.error());
      exit = start_failed(ok.error());
    } else {
      while (!server.exit_status()) {
        int r = sd_event_run(loop->get(), UINT64_MAX);
        if (r < 0) {
          std::fprintf(stderr, "clusterd-disk: the event loop failed: %s\n", strerror(-r));
          return DiskHelperExit::Failed;
        }
      }
      return *server.exit_status();
    }
  }
  // Start failed before the mounter had anything to do: its socket is closed now, so it ends.
  reap(*mounter);
  return exit;
}

}  // namespace clusterd
