// A minimal TCP server for the benchmarks: answers each connection with one line and closes it.
// Compiled, so that its start-up time does not hide the cluster's reaction time.
//
//   tiny_server PORT               listens on 127.0.0.1:PORT, answers "ok\n"
//   tiny_server PORT --any --name  listens on 0.0.0.0:PORT (any address, also a virtual IP added
//                                  later), answers "HOSTNAME\n" so a client sees which node
//                                  answered (in the lab the hostname is the node's name)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  bool any = false, name = false;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--any") == 0) {
      any = true;
    } else if (std::strcmp(argv[i], "--name") == 0) {
      name = true;
    } else {
      argc = 0;  // unknown option: show the usage
    }
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: tiny_server PORT [--any] [--name]\n");
    return 2;
  }
  std::string reply = "ok\n";
  if (name) {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) < 0) {
      std::perror("tiny_server: gethostname");
      return 1;
    }
    reply = std::string(host) + "\n";
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[1])));
  addr.sin_addr.s_addr = htonl(any ? INADDR_ANY : INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || listen(fd, 128) < 0) {
    std::perror("tiny_server");
    return 1;
  }
  for (;;) {
    int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    (void)!write(c, reply.data(), reply.size());
    close(c);
  }
}
