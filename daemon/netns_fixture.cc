#include "netns_fixture.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fmt/core.h>

namespace clusterd::testing {
namespace {

Result<Fd> open_current_netns() {
  Fd fd(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno(errno, "cannot open the current network namespace");
  return fd;
}

Result<Fd> new_netns() {
  if (unshare(CLONE_NEWNET) < 0) return fail_errno(errno, "cannot create a network namespace");
  return open_current_netns();
}

int shell(const std::string& command) {
  int status = std::system((command + " >/dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

Result<std::unique_ptr<NetnsPair>> NetnsPair::create() {
  std::unique_ptr<NetnsPair> pair(new NetnsPair());
  auto original = open_current_netns();
  if (!original) return std::unexpected(original.error());
  pair->original_ = std::move(*original);
  auto peer = new_netns();
  if (!peer) return std::unexpected(peer.error());
  pair->peer_ = std::move(*peer);
  if (auto back = pair->enter(pair->original_.get()); !back) return std::unexpected(back.error());
  auto local = new_netns();
  if (!local) return std::unexpected(local.error());
  pair->local_ = std::move(*local);
  // The peer end goes straight into the peer namespace, named by a path to our fd.
  std::string peer_path = fmt::format("/proc/{}/fd/{}", getpid(), pair->peer_.get());
  if (pair->local("ip link add va type veth peer name vb netns " + peer_path) != 0 ||
      pair->local("ip link set lo up && ip link set va up") != 0 ||
      pair->peer("ip link set lo up && ip link set vb up") != 0)
    return fail("cannot set up the veth pair between the test namespaces");
  // SIOCGIFHWADDR, not /sys: sysfs shows the namespace it was mounted in.
  Fd probe(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq request{};
  std::snprintf(request.ifr_name, IFNAMSIZ, "va");
  if (!probe || ioctl(probe.get(), SIOCGIFHWADDR, &request) < 0)
    return fail_errno(errno, "cannot read the hardware address of va");
  std::memcpy(pair->local_mac_.data(), request.ifr_hwaddr.sa_data, 6);
  return pair;
}

NetnsPair::~NetnsPair() { (void)enter(original_.get()); }

Result<void> NetnsPair::enter(int fd) {
  if (setns(fd, CLONE_NEWNET) < 0) return fail_errno(errno, "cannot enter a network namespace");
  return {};
}

int NetnsPair::local(const std::string& command) { return shell(command); }

int NetnsPair::peer(const std::string& command) {
  int status = -1;
  in_peer([&] { status = shell(command); });
  return status;
}

std::string NetnsPair::peer_output(const std::string& command) {
  std::string output;
  in_peer([&] {
    FILE* pipe = popen(command.c_str(), "r");
    if (!pipe) return;
    char buffer[512];
    while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
    pclose(pipe);
  });
  return output;
}

void NetnsPair::in_peer(const std::function<void()>& fn) {
  if (!enter(peer_.get())) return;
  fn();
  (void)enter(local_.get());
}

}  // namespace clusterd::testing
