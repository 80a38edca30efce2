#include "disk_test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>

namespace clusterd::testing {
namespace {

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

// waitpid with a deadline: polls a pidfd so that no sleep stands in for synchronisation.
}  // namespace

std::optional<int> wait_for_exit(pid_t pid, Duration limit) {
  Fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (pidfd) {
    pollfd p{pidfd.get(), POLLIN, 0};
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(limit).count();
    if (poll(&p, 1, static_cast<int>(ms)) == 0) return std::nullopt;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return std::nullopt;
  return decode_status(status);
}

namespace {

void pattern(std::vector<char>& buffer, unsigned seed) {
  std::mt19937 random(seed);
  for (char& c : buffer) c = static_cast<char>(random());
}

}  // namespace

std::string datapath_unavailable() {
  if (geteuid() != 0) return "not root";
  if (access("/dev/fuse", R_OK | W_OK) != 0) return "/dev/fuse is missing";
  if (access("/dev/loop-control", R_OK | W_OK) != 0) return "/dev/loop-control is missing";
  return "";
}

Result<std::unique_ptr<PrivateMountNamespace>> PrivateMountNamespace::enter() {
  Fd original(::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC));
  if (!original) return fail_errno(errno, "cannot open our mount namespace");
  if (unshare(CLONE_NEWNS) != 0) return fail_errno(errno, "cannot create a mount namespace");
  std::unique_ptr<PrivateMountNamespace> ns(new PrivateMountNamespace(std::move(original)));
  if (mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return fail_errno(errno, "cannot make every mount private");
  return ns;
}

PrivateMountNamespace::~PrivateMountNamespace() { (void)setns(original_.get(), CLONE_NEWNS); }

FenceSwitch::FenceSwitch() {
  void* memory = mmap(nullptr, sizeof(std::atomic<bool>), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  flag_ = new (memory) std::atomic<bool>(false);
}

FenceSwitch::~FenceSwitch() { munmap(flag_, sizeof(std::atomic<bool>)); }

Result<void> FenceableBlockDevice::write(std::uint64_t lba, std::uint32_t count,
                                         std::span<const std::byte> data) {
  if (fence_.fenced()) return fail_errno(EIO, "reservation conflict writing block {}", lba);
  return inner_->write(lba, count, data);
}

std::optional<int> run_in_child(const std::function<int()>& body, Duration limit) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) _exit(body());
  if (pid < 0) return std::nullopt;
  auto status = wait_for_exit(pid, limit);
  if (!status) {
    ::kill(pid, SIGKILL);
    (void)wait_for_exit(pid, std::chrono::seconds(10));
  }
  return status;
}

std::string disk_helper_path() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path() / "clusterd-disk";
}

Result<std::unique_ptr<HelperProcess>> HelperProcess::spawn(const std::vector<std::string>& args) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    return fail_errno(errno, "cannot create the control socket");
  Fd ours(pair[0]), theirs(pair[1]);
  std::string program = disk_helper_path();
  std::vector<std::string> argv_strings = {program};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  argv_strings.insert(argv_strings.end(), {"--control-fd", "3"});
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return fail_errno(errno, "cannot fork");
  if (pid == 0) {
    setpgid(0, 0);
    dup2(theirs.get(), 3);  // dup2 clears FD_CLOEXEC on the copy
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  setpgid(pid, pid);
  return std::unique_ptr<HelperProcess>(new HelperProcess(pid, std::move(ours)));
}

Result<std::unique_ptr<HelperProcess>> HelperProcess::fork(DiskHelperOptions options,
                                                           const BlockDeviceOpener& open) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    return fail_errno(errno, "cannot create the control socket");
  Fd ours(pair[0]), theirs(pair[1]);
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return fail_errno(errno, "cannot fork");
  if (pid == 0) {
    setpgid(0, 0);
    ours.reset();
    options.control_fd = theirs.get();
    _exit(static_cast<int>(run_disk_helper(options, open)));
  }
  setpgid(pid, pid);
  return std::unique_ptr<HelperProcess>(new HelperProcess(pid, std::move(ours)));
}

HelperProcess::~HelperProcess() {
  if (reaped_) return;
  kill_group(SIGKILL);
  (void)wait(std::chrono::seconds(10));
}

Result<std::string> HelperProcess::read_line(Duration limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    if (auto newline = input_.find('\n'); newline != std::string::npos) {
      std::string line = input_.substr(0, newline);
      input_.erase(0, newline + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{control_.get(), POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) == 0)
      return fail("no line from clusterd-disk in time");
    char buffer[512];
    ssize_t n = ::read(control_.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("clusterd-disk closed its control socket");
    input_.append(buffer, static_cast<std::size_t>(n));
  }
}

Result<void> HelperProcess::send(const std::string& line) {
  std::string text = line + "\n";
  if (::send(control_.get(), text.data(), text.size(), MSG_NOSIGNAL) < 0)
    return fail_errno(errno, "cannot send '{}' to clusterd-disk", line);
  return {};
}

std::optional<int> HelperProcess::wait(Duration limit) {
  auto status = wait_for_exit(pid_, limit);
  if (status) reaped_ = true;
  return status;
}

void HelperProcess::kill_group(int sig) { ::kill(-pid_, sig); }

int write_pattern_file(const std::string& path, std::size_t size, unsigned seed) {
  std::vector<char> buffer(size);
  pattern(buffer, seed);
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return errno;
  if (::write(fd.get(), buffer.data(), size) != static_cast<ssize_t>(size))
    return errno ? errno : EIO;
  if (fsync(fd.get()) != 0) return errno;
  return 0;
}

bool has_pattern(const std::string& path, std::size_t size, unsigned seed) {
  std::vector<char> expected(size), actual(size + 1);
  pattern(expected, seed);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  ssize_t n = ::read(fd.get(), actual.data(), actual.size());
  if (n != static_cast<ssize_t>(size)) return false;
  actual.resize(size);
  return actual == expected;
}

}  // namespace clusterd::testing
