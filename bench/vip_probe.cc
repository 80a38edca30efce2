// The benchmarks' client probe: opens a TCP connection to ADDRESS:PORT every --interval-ms
// (several may be in flight: a connection to a dead owner hangs until its --timeout-ms) and
// prints one line per answer, as soon as it arrives:
//
//   MONOTONIC_SECONDS ANSWER        e.g. "12345.678901 node2"
//
// The servers (tiny_server --any --name) answer with their node's name, so the outage of a
// failover is the gap between the last answer of the old owner and the first of the new one.
// With --until-change the probe exits 0 right after the first answer from a node other than the
// first one that answered; it always stops after --seconds (exit 1 when no change was seen).
// Compiled, so that 100 connections a second cost little and start on time under load.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

namespace {

struct Options {
  sockaddr_in target{};
  double interval = 0.010;
  double timeout = 0.100;
  double seconds = 30;
  bool until_change = false;
};

struct Attempt {
  double started = 0;
  bool connected = false;
  std::string answer;
};

double now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: vip_probe ADDRESS PORT [--interval-ms N] [--timeout-ms N] [--seconds S] "
               "[--until-change]\n");
  std::exit(2);
}

Options parse(int argc, char** argv) {
  if (argc < 3) usage();
  Options o;
  o.target.sin_family = AF_INET;
  o.target.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[2])));
  if (inet_pton(AF_INET, argv[1], &o.target.sin_addr) != 1) usage();
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    bool has_value = i + 1 < argc;
    if (a == "--until-change") {
      o.until_change = true;
    } else if (a == "--interval-ms" && has_value) {
      o.interval = std::atof(argv[++i]) / 1000;
    } else if (a == "--timeout-ms" && has_value) {
      o.timeout = std::atof(argv[++i]) / 1000;
    } else if (a == "--seconds" && has_value) {
      o.seconds = std::atof(argv[++i]);
    } else {
      usage();
    }
  }
  if (o.interval <= 0 || o.timeout <= 0 || o.seconds <= 0) usage();
  return o;
}

class Probe {
 public:
  explicit Probe(const Options& o) : o_(o), ep_(epoll_create1(EPOLL_CLOEXEC)) {}

  /// Runs until the deadline or (with --until-change) the first answer from a second node.
  int run() {
    if (ep_ < 0) {
      std::perror("vip_probe: epoll_create1");
      return 2;
    }
    double end = now() + o_.seconds;
    double next = now();
    while (now() < end) {
      double t = now();
      if (t >= next) {
        start_attempt(t);
        next += o_.interval;
        if (next < t) next = t + o_.interval;  // we were late: do not burst to catch up
      }
      expire(now());
      int wait_ms = static_cast<int>((next - now()) * 1000);
      epoll_event events[64];
      int n = epoll_wait(ep_, events, 64, wait_ms < 0 ? 0 : wait_ms);
      for (int i = 0; i < n; ++i)
        if (handle(events[i].data.fd, now())) return 0;
    }
    return o_.until_change ? 1 : 0;
  }

 private:
  void start_attempt(double t) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return;  // out of descriptors for a moment: the next interval tries again
    int r = connect(fd, reinterpret_cast<const sockaddr*>(&o_.target), sizeof o_.target);
    if (r < 0 && errno != EINPROGRESS) {
      close(fd);
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.fd = fd;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    attempts_[fd] = Attempt{t, false, {}};
  }

  void finish(int fd) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    attempts_.erase(fd);
  }

  void expire(double t) {
    for (auto it = attempts_.begin(); it != attempts_.end();) {
      auto [fd, attempt] = *it++;  // finish() erases fd's entry, never the next one
      if (t - attempt.started > o_.timeout) finish(fd);
    }
  }

  /// True when the probe is done (a change was seen with --until-change).
  bool handle(int fd, double t) {
    auto it = attempts_.find(fd);
    if (it == attempts_.end()) return false;
    Attempt& a = it->second;
    if (!a.connected) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        finish(fd);
        return false;
      }
      a.connected = true;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.fd = fd;
      epoll_ctl(ep_, EPOLL_CTL_MOD, fd, &ev);
    }
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EAGAIN) return false;
    if (n > 0) a.answer.append(buf, static_cast<std::size_t>(n));
    auto newline = a.answer.find('\n');
    if (newline == std::string::npos && n > 0) return false;
    std::string answer = a.answer.substr(0, newline);
    finish(fd);
    if (answer.empty()) return false;
    std::printf("%.6f %s\n", t, answer.c_str());
    std::fflush(stdout);
    if (first_.empty()) first_ = answer;
    return o_.until_change && answer != first_;
  }

  Options o_;
  int ep_;
  std::map<int, Attempt> attempts_;
  std::string first_;
};

}  // namespace

int main(int argc, char** argv) { return Probe(parse(argc, argv)).run(); }
