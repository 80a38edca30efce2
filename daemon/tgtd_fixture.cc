#include "tgtd_fixture.h"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "clock.h"
#include "handle.h"

namespace clusterd::testing {
namespace {

constexpr const char* kTgtd = "/usr/sbin/tgtd";
constexpr const char* kTgtadm = "/usr/sbin/tgtadm";
constexpr const char* kSocketDir = "/var/run/tgtd";
constexpr int kFirstControl = 200;
constexpr int kLastControl = 299;

std::string socket_path(int control) { return fmt::format("{}/socket.{}", kSocketDir, control); }

/// Starts argv with stdout and stderr appended to `log`; the PID, or an error. The child is
/// killed when the test process dies (PR_SET_PDEATHSIG), so no tgtd outlives a crashed test.
Result<pid_t> spawn(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return fail_errno(errno, "cannot fork to start {}", argv[0]);
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

/// True while `pid` (our child) runs; reaps it once it has exited.
bool child_running(pid_t pid) {
  int status = 0;
  return waitpid(pid, &status, WNOHANG) == 0;
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
Result<int> free_port() {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (!fd || bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) < 0 ||
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) < 0)
    return fail_errno(errno, "cannot find a free TCP port on 127.0.0.1");
  return ntohs(address.sin_port);
}

/// The inode of the listening UNIX socket bound to `path`, from /proc/net/unix; 0 if none.
unsigned long listening_inode(const std::string& path) {
  std::ifstream in("/proc/net/unix");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string num, refs, protocol, flags, type, state, path_field;
    unsigned long inode = 0;
    fields >> num >> refs >> protocol >> flags >> type >> state >> inode >> path_field;
    if (path_field == path && state == "01") return inode;
  }
  return 0;
}

/// Whether process `pid` has socket `inode` open: proof that a control socket is ours and not
/// another engineer's tgtd that took the same control number at the same moment.
bool holds_socket(pid_t pid, unsigned long inode) {
  std::string dir = fmt::format("/proc/{}/fd", pid);
  std::string wanted = fmt::format("socket:[{}]", inode);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::error_code link_ec;
    if (std::filesystem::read_symlink(entry.path(), link_ec).string() == wanted) return true;
  }
  return false;
}

void remove_socket_files(int control) {
  std::error_code ignored;
  std::filesystem::remove(socket_path(control), ignored);
  std::filesystem::remove(socket_path(control) + ".lock", ignored);
}

}  // namespace

std::string tgtd_unavailable() {
  if (geteuid() != 0) return "not root";
  if (access(kTgtd, X_OK) != 0 || access(kTgtadm, X_OK) != 0)
    return "tgtd is not installed (apt-get install tgt)";
  return {};
}

Result<std::unique_ptr<Tgtd>> Tgtd::start(const std::string& dir, std::uint64_t lun_bytes) {
  std::unique_ptr<Tgtd> tgtd(new Tgtd());
  tgtd->dir_ = dir;
  tgtd->lun_path_ = dir + "/lun.img";
  std::error_code ec;
  std::ofstream(tgtd->lun_path_, std::ios::binary).close();
  std::filesystem::resize_file(tgtd->lun_path_, lun_bytes, ec);  // sparse
  if (ec) return fail("cannot create the LUN file {}: {}", tgtd->lun_path_, ec.message());
  std::filesystem::create_directories(kSocketDir, ec);
  for (int control = kFirstControl; control <= kLastControl; ++control) {
    if (std::filesystem::exists(socket_path(control))) continue;
    // A fresh port per attempt: a failed start may have lost the port to someone else.
    auto port = free_port();
    if (!port) return std::unexpected(port.error());
    tgtd->portal_ = fmt::format("127.0.0.1:{}", *port);
    if (!tgtd->launch(control) || !tgtd->wait_ready()) {
      tgtd->kill();
      continue;
    }
    tgtd->iqn_ = fmt::format("iqn.2024-01.org.clusterd.test:pid{}-c{}", getpid(), control);
    if (auto ok = tgtd->add_target(); !ok) return std::unexpected(ok.error());
    return tgtd;
  }
  return fail("no free tgtd control number in {}..{} (see {}/tgtd.log)", kFirstControl,
              kLastControl, dir);
}

Tgtd::~Tgtd() { kill(); }

Result<void> Tgtd::launch(int control) {
  control_ = control;
  auto pid = spawn({kTgtd, "-f", "-C", std::to_string(control), "--iscsi", "portal=" + portal_},
                   dir_ + "/tgtd.log");
  if (!pid) return std::unexpected(pid.error());
  pid_ = *pid;
  return {};
}

Result<void> Tgtd::wait_ready() {
  // tgtd has no readiness notification: poll its control socket, with a deadline.
  MonoTime deadline = mono_now() + std::chrono::seconds(10);
  while (mono_now() < deadline) {
    if (!child_running(pid_)) {
      pid_ = 0;
      return fail("tgtd -C {} exited at start (see {}/tgtd.log)", control_, dir_);
    }
    unsigned long inode = listening_inode(socket_path(control_));
    if (inode != 0 && holds_socket(pid_, inode) &&
        tgtadm({"--op", "show", "--mode", "system"}) == 0) {
      owns_socket_ = true;
      return {};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return fail("tgtd -C {} did not answer within 10 s", control_);
}

int Tgtd::tgtadm(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{kTgtadm, "-C", std::to_string(control_)};
  argv.insert(argv.end(), args.begin(), args.end());
  auto pid = spawn(argv, "/dev/null");
  if (!pid) return -1;
  int status = 0;
  if (waitpid(*pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Result<void> Tgtd::add_target() {
  // One target, LUN 1 on the file, open to every initiator (lab/labkit/storage.py).
  if (tgtadm({"--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", "1", "-T", iqn_}) !=
          0 ||
      tgtadm({"--lld", "iscsi", "--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
              "-b", lun_path_}) != 0 ||
      tgtadm({"--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL"}) !=
          0)
    return fail("cannot set up target {} on tgtd -C {}", iqn_, control_);
  return {};
}

IscsiTarget Tgtd::target_for(const std::string& initiator_iqn, std::chrono::seconds timeout) const {
  IscsiTarget target;
  target.portals = {portal_};
  target.target_iqn = iqn_;
  target.lun = 1;
  target.initiator_iqn = initiator_iqn;
  target.timeout = timeout;
  return target;
}

void Tgtd::kill() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
  }
  // Only our own socket files: the control number may be another tgtd's after a lost race.
  if (owns_socket_) remove_socket_files(control_);
  owns_socket_ = false;
}

Result<void> Tgtd::restart() {
  int control = control_;
  kill();
  if (auto ok = launch(control); !ok) return ok;
  if (auto ok = wait_ready(); !ok) return ok;
  return add_target();
}

void Tgtd::freeze() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void Tgtd::thaw() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

bool TgtdCase::start() {
  if (auto why = tgtd_unavailable(); !why.empty()) {
    MESSAGE("skipped: " << why);
    return false;
  }
  auto started = Tgtd::start(dir.path());
  REQUIRE_MESSAGE(started.has_value(), (started ? "" : started.error().to_string()));
  tgtd = std::move(*started);
  return true;
}

}  // namespace clusterd::testing
