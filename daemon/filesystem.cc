#include "filesystem.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "child.h"

namespace clusterd {
namespace {

// mount(8)'s generic options (see mount(8) "FILESYSTEM-INDEPENDENT MOUNT OPTIONS").
struct FlagOption {
  std::string_view name;
  unsigned long flag;
  bool set;  ///< false: the option clears the flag ("rw", "exec", ...)
};

constexpr std::array kFlagOptions = {
    FlagOption{"ro", MS_RDONLY, true},
    FlagOption{"rw", MS_RDONLY, false},
    FlagOption{"nosuid", MS_NOSUID, true},
    FlagOption{"suid", MS_NOSUID, false},
    FlagOption{"nodev", MS_NODEV, true},
    FlagOption{"dev", MS_NODEV, false},
    FlagOption{"noexec", MS_NOEXEC, true},
    FlagOption{"exec", MS_NOEXEC, false},
    FlagOption{"sync", MS_SYNCHRONOUS, true},
    FlagOption{"async", MS_SYNCHRONOUS, false},
    FlagOption{"dirsync", MS_DIRSYNC, true},
    FlagOption{"noatime", MS_NOATIME, true},
    FlagOption{"atime", MS_NOATIME, false},
    FlagOption{"nodiratime", MS_NODIRATIME, true},
    FlagOption{"diratime", MS_NODIRATIME, false},
    FlagOption{"relatime", MS_RELATIME, true},
    FlagOption{"norelatime", MS_RELATIME, false},
    FlagOption{"strictatime", MS_STRICTATIME, true},
    FlagOption{"lazytime", MS_LAZYTIME, true},
    FlagOption{"nolazytime", MS_LAZYTIME, false},
};

// fstab-only options that mean nothing to mount(2).
constexpr std::array<std::string_view, 5> kIgnoredOptions = {"defaults", "auto", "noauto", "nofail",
                                                             "_netdev"};
// Options that change what mount does rather than how the file system behaves.
constexpr std::array<std::string_view, 8> kRefusedOptions = {"bind", "rbind", "remount", "move",
                                                             "user", "users", "owner",   "group"};

bool contains(const auto& list, std::string_view item) {
  for (std::string_view entry : list)
    if (entry == item) return true;
  return false;
}

Result<void> apply_option(std::string_view item, MountOptions& out) {
  if (item.empty()) return fail("mount options have an empty item");
  if (contains(kIgnoredOptions, item) || item.starts_with("x-")) return {};
  if (contains(kRefusedOptions, item))
    return fail("mount option '{}' is not allowed for a disk", item);
  for (const FlagOption& option : kFlagOptions) {
    if (option.name != item) continue;
    out.flags = option.set ? (out.flags | option.flag) : (out.flags & ~option.flag);
    return {};
  }
  if (!out.data.empty()) out.data += ',';
  out.data += item;
  return {};
}

std::string unescape_mountinfo(std::string_view field) {
  // proc(5): space, tab, newline and backslash appear as \040, \011, \012, \134.
  std::string out;
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      int value = 0;
      bool octal = true;
      for (std::size_t k = 1; k <= 3 && octal; ++k) {
        char c = field[i + k];
        octal = c >= '0' && c <= '7';
        value = value * 8 + (c - '0');
      }
      if (octal) {
        out += static_cast<char>(value);
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

std::optional<MountEntry> parse_mountinfo_line(const std::string& line) {
  std::istringstream in(line);
  std::string id, parent, devno, root, mount_point, options, field;
  if (!(in >> id >> parent >> devno >> root >> mount_point >> options)) return std::nullopt;
  while (in >> field && field != "-") {
  }
  MountEntry entry;
  if (!(in >> entry.fstype >> entry.source >> entry.super_options)) return std::nullopt;
  unsigned major_number = 0, minor_number = 0;
  if (std::sscanf(devno.c_str(), "%u:%u", &major_number, &minor_number) != 2) return std::nullopt;
  entry.device = makedev(major_number, minor_number);
  entry.mount_point = unescape_mountinfo(mount_point);
  entry.options = options;
  return entry;
}

Result<ChildExit> run_tool(std::vector<std::string> argv, Duration timeout) {
  ChildSpec spec;
  spec.argv = std::move(argv);
  spec.env = {std::string("PATH=") + kDefaultPath, "LC_ALL=C"};
  return run_child_sync(spec, timeout);
}

}  // namespace

std::string e2fsck_reason(std::string_view output) {
  // e2fsck's own verdict ("e2fsck: Bad magic number in super-block while trying to open ...")
  // says more than its last line, which is often advice ("e2fsck -b 32768 <device>").
  std::size_t at = output.rfind("e2fsck: ");
  if (at != std::string_view::npos && (at == 0 || output[at - 1] == '\n'))
    return last_line_of(output.substr(at, output.find('\n', at) - at));
  return last_line_of(output);
}

Result<MountOptions> parse_mount_options(std::string_view options) {
  MountOptions out;
  if (options.empty()) return out;
  std::size_t start = 0;
  while (true) {
    std::size_t comma = options.find(',', start);
    std::string_view item = options.substr(start, comma - start);
    if (auto ok = apply_option(item, out); !ok) return std::unexpected(ok.error());
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

Result<void> mount_filesystem(const MountSpec& spec) {
  auto options = parse_mount_options(spec.options);
  if (!options) return std::unexpected(options.error());
  std::error_code ec;
  std::filesystem::create_directories(spec.target, ec);
  if (ec) return fail_errno(ec.value(), "cannot create mount point {}", spec.target);
  if (::mount(spec.source.c_str(), spec.target.c_str(), spec.fstype.c_str(), options->flags,
              options->data.empty() ? nullptr : options->data.c_str()) != 0)
    return fail_errno(errno, "cannot mount {} ({}) at {}", spec.source, spec.fstype, spec.target);
  return {};
}

const char* to_string(UnmountMode mode) {
  switch (mode) {
    case UnmountMode::Normal:
      return "normal";
    case UnmountMode::Lazy:
      return "lazy";
  }
  return "?";
}

Result<void> unmount(const std::string& target, UnmountMode mode) {
  int flags = mode == UnmountMode::Lazy ? MNT_DETACH : 0;
  if (umount2(target.c_str(), flags | UMOUNT_NOFOLLOW) != 0)
    return fail_errno(errno, "cannot unmount {}", target);
  return {};
}

Result<void> make_filesystem(const std::string& device, const std::string& fstype,
                             Duration timeout) {
  std::vector<std::string> argv = {"mkfs." + fstype};
  if (fstype.starts_with("ext")) {
    // -F: the device is not a partition; nodiscard: the FUSE file cannot punch holes anyway.
    argv.insert(argv.end(), {"-q", "-F", "-E", "nodiscard"});
  } else if (fstype == "xfs") {
    argv.insert(argv.end(), {"-q", "-f", "-K"});
  }
  argv.push_back(device);
  auto exit = run_tool(argv, timeout);
  if (!exit) return std::unexpected(exit.error());
  if (!exit->success())
    return fail("{} on {} {}: {}", argv[0], device, exit->describe(), exit->last_line());
  return {};
}

const char* to_string(FsckOutcome outcome) {
  switch (outcome) {
    case FsckOutcome::Clean:
      return "clean";
    case FsckOutcome::Repaired:
      return "repaired";
    case FsckOutcome::Skipped:
      return "skipped";
  }
  return "?";
}

Result<FsckOutcome> check_filesystem(const std::string& device, const std::string& fstype,
                                     Duration timeout) {
  if (fstype != "ext2" && fstype != "ext3" && fstype != "ext4") return FsckOutcome::Skipped;
  auto exit = run_tool({"e2fsck", "-p", device}, timeout);
  if (!exit) return std::unexpected(exit.error());
  // e2fsck(8): 0 clean, 1 errors corrected, 2 corrected and "reboot" (meaningless for a disk
  // that is not mounted), 4 and up: left uncorrected or failed.
  if (exit->end == ChildEnd::Exited && exit->status == 0) return FsckOutcome::Clean;
  if (exit->end == ChildEnd::Exited && (exit->status == 1 || exit->status == 2))
    return FsckOutcome::Repaired;
  return fail("e2fsck -p {} {}: {}", device, exit->describe(), e2fsck_reason(exit->output));
}

bool read_only_super(const MountEntry& entry) {
  std::string_view options = entry.super_options;
  while (!options.empty()) {
    std::string_view item = options.substr(0, options.find(','));
    if (item == "ro" || item == "emergency_ro") return true;
    options.remove_prefix(std::min(options.size(), item.size() + 1));
  }
  return false;
}

std::vector<MountEntry> parse_mountinfo(std::string_view text) {
  std::vector<MountEntry> entries;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line))
    if (auto entry = parse_mountinfo_line(line)) entries.push_back(std::move(*entry));
  return entries;
}

Result<std::vector<MountEntry>> read_mountinfo() {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return fail_errno(errno, "cannot read /proc/self/mountinfo");
  std::stringstream text;
  text << in.rdbuf();
  return parse_mountinfo(text.str());
}

std::optional<MountEntry> find_mount(const std::vector<MountEntry>& mounts, std::string_view path) {
  for (auto it = mounts.rbegin(); it != mounts.rend(); ++it)
    if (it->mount_point == path) return *it;
  return std::nullopt;
}

Result<void> abort_fuse_connection(dev_t device) {
  const std::string dir = "/sys/fs/fuse/connections";
  std::string abort_file = fmt::format("{}/{}/abort", dir, minor(device));
  if (access(abort_file.c_str(), F_OK) != 0 &&
      ::mount("fusectl", dir.c_str(), "fusectl", 0, nullptr) != 0 && errno != EBUSY)
    return fail_errno(errno, "cannot mount fusectl at {}", dir);
  int fd = ::open(abort_file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail_errno(errno, "cannot open {}", abort_file);
  ssize_t n = ::write(fd, "1", 1);
  int err = errno;
  ::close(fd);
  if (n != 1) return fail_errno(err, "cannot write {}", abort_file);
  return {};
}

}  // namespace clusterd
