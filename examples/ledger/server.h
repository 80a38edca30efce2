// ledgerd's event loop: one thread, epoll over the listening socket, the connections and a
// signalfd. Appends of one loop iteration share one fdatasync (group commit); no reply leaves
// before that sync, so every "OK" the client sees is on disk.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "daemon/error.h"
#include "daemon/handle.h"
#include "ledger_store.h"
#include "protocol.h"

namespace clusterd::ledger {

/// Serves the line protocol on `listener` until SIGTERM or SIGINT.
class Server {
 public:
  /// Takes the store and a listening socket. The caller has blocked SIGTERM and SIGINT.
  Server(LedgerStore store, Fd listener)
      : store_(std::move(store)), listener_(std::move(listener)) {}

  /// Runs until SIGTERM/SIGINT (then returns success after answering what it has read), or
  /// until the log can no longer be trusted (then an error: nothing more is acknowledged).
  Result<void> run();

 private:
  struct Connection {
    Fd fd;
    std::string in;
    std::string out;
    uint32_t events = 0;       // the epoll interest currently registered
    bool read_closed = false;  // peer sent EOF or we refuse to read more
    bool failed = false;       // socket error: drop without flushing
  };

  Result<void> setup();
  std::string handle_line(std::string_view line);
  void handle_event(int fd, uint32_t events);
  void accept_all();
  void read_from(Connection& connection);
  void process_lines(Connection& connection);
  void write_to(Connection& connection);
  void settle(int fd);
  Result<void> finish_iteration();

  LedgerStore store_;
  Fd listener_;
  Fd epoll_;
  Fd signals_;
  bool stopping_ = false;
  std::map<int, std::unique_ptr<Connection>> connections_;
  std::vector<int> touched_;  // connections with new output or state in this iteration
};

}  // namespace clusterd::ledger
