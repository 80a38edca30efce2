// RAII owners for the C handles the daemon uses. One owner per handle (architecture rule 2).
#pragma once

#include <unistd.h>

#include <memory>
#include <utility>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

namespace clusterd {

/// Deleter that calls a C free function; the pointer is never null when it runs.
template <auto fn>
struct Free {
  template <typename T>
  void operator()(T* p) const noexcept {
    fn(p);
  }
};

using EventPtr = std::unique_ptr<sd_event, Free<sd_event_unref>>;
using EventSourcePtr = std::unique_ptr<sd_event_source, Free<sd_event_source_disable_unref>>;
using BusPtr = std::unique_ptr<sd_bus, Free<sd_bus_flush_close_unref>>;
using BusSlotPtr = std::unique_ptr<sd_bus_slot, Free<sd_bus_slot_unref>>;
using BusMessagePtr = std::unique_ptr<sd_bus_message, Free<sd_bus_message_unref>>;

/// An owned file descriptor; closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  /// The descriptor, still owned by this object.
  int get() const { return fd_; }
  /// True when a descriptor is held.
  explicit operator bool() const { return fd_ >= 0; }
  /// Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }
  /// Closes the held descriptor (if any) and takes `fd`.
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace clusterd
