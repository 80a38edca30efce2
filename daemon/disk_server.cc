#include "disk_server.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "disk_mounter.h"
#include "filesystem.h"
#include "log.h"

namespace clusterd {
namespace {

// A command line longer than this is not one of ours.
constexpr std::size_t kMaxControlLine = 256;

void write_line(int fd, const std::string& line) {
  std::string text = line + "\n";
  // Blocking, small and rare; a daemon that went away is noticed through the control fd's end.
  if (::send(fd, text.data(), text.size(), MSG_NOSIGNAL) < 0 && errno == ENOTSOCK)
    (void)!::write(fd, text.data(), text.size());
}

std::string describe_exit(const siginfo_t& info) {
  if (info.si_code == CLD_EXITED) return fmt::format("exited with status {}", info.si_status);
  return fmt::format("was killed by signal {}", info.si_status);
}

}  // namespace

const char* to_string(DiskServerState state) {
  switch (state) {
    case DiskServerState::Starting:
      return "starting";
    case DiskServerState::Ready:
      return "ready";
    case DiskServerState::Stopping:
      return "stopping";
    case DiskServerState::Done:
      return "done";
  }
  return "?";
}

namespace {

struct Transition {
  DiskServerState from;
  DiskServerState to;
};

// Every move the helper makes; a stop may overtake the start, and the mounter may die anywhere.
constexpr Transition kTransitions[] = {
    {DiskServerState::Starting, DiskServerState::Ready},
    {DiskServerState::Starting, DiskServerState::Stopping},
    {DiskServerState::Starting, DiskServerState::Done},
    {DiskServerState::Ready, DiskServerState::Stopping},
    {DiskServerState::Ready, DiskServerState::Done},
    {DiskServerState::Stopping, DiskServerState::Done},
};

}  // namespace

bool transition_allowed(DiskServerState from, DiskServerState to) {
  for (const Transition& t : kTransitions)
    if (t.from == from && t.to == to) return true;
  return false;
}

DiskServer::DiskServer(sd_event* loop, const DiskHelperOptions& options, Fd channel, pid_t mounter)
    : loop_(loop), options_(options), channel_(std::move(channel)), mounter_(mounter) {}

DiskServer::~DiskServer() = default;

Result<void> DiskServer::start(const BlockDeviceOpener& open) {
  if (auto ok = watch(); !ok) return ok;
  if (auto ok = refuse_existing_mounts(); !ok) return ok;
  auto device = open();
  if (!device) return std::unexpected(device.error());
  device_ = std::move(*device);
  // An iSCSI LUN comes with its reservation (disk_helper.h): checked on "check", restored on
  // "restore", released at the end of an orderly stop.
  guard_ = dynamic_cast<ReservationGuard*>(device_.get());
  if (guard_) guard_->set_fenced_handler([this] { on_fenced(); });
  if (auto ok = set_io_flusher(); !ok) {
    // Needs CAP_SYS_RESOURCE, which some containers drop. Serving without it works until memory
    // is short enough that reclaim writes back through our own loop device.
    log(LogLevel::Warning, {}, "{}, continuing without: reclaim may deadlock under memory pressure",
        ok.error().to_string());
  }
  std::error_code ec;
  std::filesystem::create_directories(options_.fuse_dir, ec);
  if (ec) return fail_errno(ec.value(), "cannot create FUSE directory {}", options_.fuse_dir);
  auto fuse = FuseFile::mount(loop_, *device_, {options_.fuse_dir, options_.fuse_name},
                              [this] { on_fuse_gone(); });
  if (!fuse) return std::unexpected(fuse.error());
  fuse_ = std::move(*fuse);
  send_mounter(kMounterStart, Expect::Start);
  return {};
}

Result<void> DiskServer::refuse_existing_mounts() const {
  // Two mounts of one ext4 (a second helper, or a dead one's leftovers over which we would stack)
  // corrupt it; a dead helper's mounts are released with clusterd-disk --cleanup.
  auto mounts = read_mountinfo();
  if (!mounts) return std::unexpected(mounts.error());
  for (const std::string& path : {options_.fuse_dir, options_.mount_point}) {
    if (path.empty() || !find_mount(*mounts, path)) continue;
    return fail("{} is already mounted (another helper, or a dead one's: clusterd-disk --cleanup)",
                path);
  }
  return {};
}

Result<void> DiskServer::watch() {
  sd_event_source* source = nullptr;
  int r = sd_event_add_io(loop_, &source, channel_.get(), EPOLLIN, on_channel, this);
  if (r < 0) return fail_errno(r, "cannot watch the mounter's socket");
  channel_source_.reset(source);
  r = sd_event_add_child(loop_, &source, mounter_, WEXITED, on_child, this);
  if (r < 0) return fail_errno(r, "cannot watch the mounter process");
  child_source_.reset(source);
  for (auto [sig, slot] : {std::pair{SIGTERM, &sigterm_source_}, {SIGINT, &sigint_source_}}) {
    r = sd_event_add_signal(loop_, &source, sig, on_signal, this);
    if (r < 0) return fail_errno(r, "cannot watch signal {}", sig);
    slot->reset(source);
  }
  if (options_.control_fd < 0) return {};
  r = sd_event_add_io(loop_, &source, options_.control_fd, EPOLLIN, on_control, this);
  if (r < 0) return fail_errno(r, "cannot watch control fd {}", options_.control_fd);
  control_source_.reset(source);
  return {};
}

void DiskServer::set_state(DiskServerState next, std::string_view why) {
  if (next == state_) return;
  if (!transition_allowed(state_, next)) {
    log(LogLevel::Err, {{"DISK", options_.fuse_dir}}, "refused transition {} -> {} ({})",
        to_string(state_), to_string(next), why);
    return;
  }
  log(LogLevel::Notice, {{"DISK", options_.fuse_dir}}, "{}: {} -> {}", why, to_string(state_),
      to_string(next));
  state_ = next;
}

void DiskServer::send_mounter(std::string_view command, Expect expect) {
  if (::send(channel_.get(), command.data(), command.size(), MSG_NOSIGNAL) < 0) {
    // The mounter is gone; its exit is on the way through the child event source.
    return;
  }
  expected_.push_back(expect);
}

int DiskServer::on_channel(sd_event_source*, int, uint32_t, void* userdata) noexcept {
  static_cast<DiskServer*>(userdata)->read_mounter();
  return 0;
}

bool DiskServer::read_mounter() {
  char buffer[4096];
  ssize_t n = recv(channel_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
  if (n > 0) {
    on_mounter_message(std::string_view(buffer, static_cast<std::size_t>(n)));
    return true;
  }
  if (n == 0 || (errno != EAGAIN && errno != EINTR))
    channel_source_.reset();  // its exit follows through the child source
  return false;
}

void DiskServer::on_mounter_message(std::string_view message) {
  if (expected_.empty()) {
    log(LogLevel::Warning, {}, "unexpected message from the mounter, ignoring: {}", message);
    return;
  }
  Expect expect = expected_.front();
  expected_.pop_front();
  switch (expect) {
    case Expect::Start:
      on_start_reply(message);
      break;
    case Expect::Check:
      answer(std::string(message));
      break;
    case Expect::Stop:
      stop_done_ = message == kReplyStopped;
      if (!stop_done_ && message.starts_with(kReplyError))
        record_failure(std::string(message.substr(kReplyError.size())));
      break;
  }
}

void DiskServer::on_start_reply(std::string_view message) {
  if (message.starts_with(kReplyReady)) {
    std::string device(message.substr(kReplyReady.size()));
    if (state_ != DiskServerState::Starting) return;  // a stop overtook the start
    set_state(DiskServerState::Ready, fmt::format("mounted through {}", device));
    announce(fmt::format("ready {}", device));
    served_ = true;
    return;
  }
  start_failed_ = true;
  std::string why(message.starts_with(kReplyError) ? message.substr(kReplyError.size()) : message);
  announce_failure(Error{0, why});
  record_failure(why);
}

void DiskServer::on_control_line(std::string_view line) {
  if (line == "check") {
    check();
  } else if (line == "restore") {
    restore();
  } else if (line == "stop") {
    stop_from_control_ = true;
    stop("stop requested");
  } else if (!line.empty()) {
    answer(fmt::format("error unknown command '{}' (check, restore, stop)", line));
  }
}

int DiskServer::on_control(sd_event_source*, int fd, uint32_t, void* userdata) noexcept {
  auto* self = static_cast<DiskServer*>(userdata);
  char buffer[512];
  ssize_t n = ::read(fd, buffer, sizeof buffer);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  if (n <= 0) {
    // The daemon is gone: nobody is left to watch this disk, so release it in order.
    self->control_source_.reset();
    self->stop("the control connection closed");
    return 0;
  }
  self->control_input_.append(buffer, static_cast<std::size_t>(n));
  std::size_t newline;
  while ((newline = self->control_input_.find('\n')) != std::string::npos) {
    std::string line = self->control_input_.substr(0, newline);
    self->control_input_.erase(0, newline + 1);
    self->on_control_line(line);
  }
  if (self->control_input_.size() > kMaxControlLine) self->control_input_.clear();
  return 0;
}

void DiskServer::check() {
  if (failure_) return answer("error " + *failure_);
  if (state_ != DiskServerState::Ready)
    return answer(fmt::format("error the disk is {}, not ready", to_string(state_)));
  if (guard_) {
    // IsAlive's first half: READ RESERVATION shows us holding the LUN. The mounter's check
    // below adds the small read through the whole data path.
    auto held = guard_->check_reservation();
    if (!held && held.error().errno_value == ENODATA) return answer("vacant " + held.error().message);
    if (!held) return answer("error " + (guard_->fenced() ? *guard_->fenced() : held.error().to_string()));
  }
  if (fuse_ && fuse_->first_write_error())
    return answer("error the disk refused a write: " + fuse_->first_write_error()->to_string());
  send_mounter(kMounterCheck, Expect::Check);
}

void DiskServer::restore() {
  if (!guard_) return answer("error this disk has no reservation to restore");
  if (failure_) return answer("error " + *failure_);
  auto restored = guard_->restore_reservation();
  answer(restored ? std::string("ok") : "error " + restored.error().to_string());
}

void DiskServer::on_fenced() {
  // Another node holds the LUN now: nothing we still write can land, and the daemon must learn
  // it (next check, or our exit) so that the resource fails here.
  record_failure(*guard_->fenced());
  stop("fenced");
}

void DiskServer::stop(std::string_view why) {
  if (state_ == DiskServerState::Stopping || state_ == DiskServerState::Done) return;
  set_state(DiskServerState::Stopping, why);
  send_mounter(kMounterStop, Expect::Stop);
}

int DiskServer::on_signal(sd_event_source*, const signalfd_siginfo* info, void* userdata) noexcept {
  static_cast<DiskServer*>(userdata)->stop(info->ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
  return 0;
}

void DiskServer::on_fuse_gone() {
  record_failure(
      fmt::format("the FUSE file system at {} was unmounted or aborted", options_.fuse_dir));
  stop("FUSE connection lost");
}

int DiskServer::on_child(sd_event_source*, const siginfo_t* info, void* userdata) noexcept {
  static_cast<DiskServer*>(userdata)->on_mounter_exit(*info);
  return 0;
}

void DiskServer::on_mounter_exit(const siginfo_t& info) {
  child_source_.reset();
  // The exit may be dispatched before the last replies were read: read them first.
  while (channel_source_ && read_mounter()) {
  }
  bool clean = info.si_code == CLD_EXITED && info.si_status == 0 && stop_done_;
  if (!clean && !start_failed_ && !failure_)
    record_failure(fmt::format("the mounter process {} unexpectedly", describe_exit(info)));
  if (state_ == DiskServerState::Starting && !start_failed_) announce_failure(Error{0, *failure_});
  // Drain what the mounter still owed: checks in flight get an answer.
  for (Expect expect : expected_)
    if (expect == Expect::Check) answer("error the mounter process is gone");
  expected_.clear();
  finish();
}

void DiskServer::finish() {
  if (device_ && !start_failed_) {
    if (auto ok = device_->flush(); !ok) record_failure(ok.error().to_string());
  }
  // Release and unregister, also after a failed start: the next owner then starts without
  // preempting anybody. It succeeds too once we were fenced (the new owner keeps its hold).
  if (guard_)
    if (auto ok = guard_->release_reservation(); !ok) record_failure(ok.error().to_string());
  if (fuse_) fuse_->unmount();
  exit_ = start_failed_ ? DiskHelperExit::StartFailed
          : failure_    ? DiskHelperExit::Failed
                        : DiskHelperExit::Stopped;
  if (stop_from_control_) answer(failure_ ? "error " + *failure_ : std::string(kReplyStopped));
  set_state(DiskServerState::Done, to_string(*exit_));
}

void DiskServer::record_failure(std::string message) {
  if (failure_) return;
  // The daemon puts the helper's last stderr line into the resource's failure reason.
  std::fprintf(stderr, "clusterd-disk: %s\n", message.c_str());
  failure_ = std::move(message);
  // Once online, the daemon hears the reason at once: the orderly stop that follows unmounts
  // first, and a LooksAlive that found the mount gone would otherwise be its only news.
  if (served_) answer(std::string(kFailedLine) + *failure_);
}

void DiskServer::announce(const std::string& line) {
  if (announced_) return;
  announced_ = true;
  int fd = options_.ready_fd >= 0 ? options_.ready_fd : options_.control_fd;
  if (fd < 0) return;
  write_line(fd, line);
  // A separate readiness fd says one thing only; closing it lets a reader wait for its end.
  if (options_.ready_fd >= 0 && options_.ready_fd != options_.control_fd)
    ::close(options_.ready_fd);
}

void DiskServer::announce_failure(const Error& error) { announce("error " + error.to_string()); }

void DiskServer::answer(const std::string& line) {
  if (options_.control_fd >= 0) write_line(options_.control_fd, line);
}

}  // namespace clusterd
