#include "qdisk_link.h"

#include <build_config.h>
#include <poll.h>
#include <sys/socket.h>

#include <filesystem>

#include "log.h"

namespace clusterd {
namespace {

/// A dead arbiter is started again after this long (not at once: a LUN that fails its start
/// would otherwise spin).
constexpr Duration kRestartDelay{1000};

}  // namespace

std::string default_qdisk_helper() {
  std::error_code ec;
  auto beside = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "clusterd-qdisk";
  if (!ec && std::filesystem::exists(beside, ec)) return beside.string();
  return std::string(CLUSTERD_LIBEXECDIR) + "/clusterd-qdisk";
}

QdiskLink::QdiskLink(sd_event* loop, std::vector<std::string> argv, FrameHandler on_frame,
                     ExitHandler on_exit)
    : loop_(loop), argv_(std::move(argv)), on_frame_(std::move(on_frame)), on_exit_(std::move(on_exit)) {}

QdiskLink::~QdiskLink() {
  channel_source_.reset();
  channel_.reset();  // the arbiter exits when its channel closes; the Child kills what is left
}

Result<std::unique_ptr<QdiskLink>> QdiskLink::start(sd_event* loop, std::vector<std::string> argv,
                                                    Duration first_record, FrameHandler on_frame,
                                                    ExitHandler on_exit) {
  std::unique_ptr<QdiskLink> link(
      new QdiskLink(loop, std::move(argv), std::move(on_frame), std::move(on_exit)));
  if (auto ok = link->spawn(); !ok) return std::unexpected(ok.error());
  if (auto ok = link->wait_first(first_record); !ok) {
    log(LogLevel::Warning, {}, "starting without the quorum disk's checkpoint: {}",
        ok.error().to_string());
    if (!link->child_->running()) link->schedule_restart();  // reaped while waiting
  }
  return link;
}

Result<void> QdiskLink::spawn() {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
    return fail_errno(errno, "cannot create the quorum disk arbiter's control socket");
  Fd ours(pair[0]), theirs(pair[1]);
  ChildSpec spec;
  spec.argv = argv_;
  spec.env = {std::string("PATH=") + kDefaultPath};
  spec.pass_fd = theirs.get();
  spec.output_limit = 8192;
  auto child = Child::spawn(loop_, spec, [this](const ChildExit& e) { on_child_exit(e); });
  if (!child) return std::unexpected(child.error());
  child_ = std::move(*child);
  channel_ = std::move(ours);
  ++starts_;
  sd_event_source* source = nullptr;
  int r = sd_event_add_io(loop_, &source, channel_.get(), EPOLLIN, on_channel, this);
  if (r < 0) return fail_errno(r, "cannot watch the quorum disk arbiter's control socket");
  channel_source_.reset(source);
  sd_event_source_set_description(source, "qdisk-channel");
  log(LogLevel::Info, {}, "started clusterd-qdisk as pid {}", child_->pid());
  return {};
}

Result<std::optional<QdiskFrame>> QdiskLink::receive_by(MonoTime end, Duration limit,
                                                       const char* silent) {
  for (;;) {
    std::int64_t left = end.ms_since(mono_now());
    if (left <= 0) return fail("the quorum disk arbiter {} within {} ms", silent, limit.count());
    pollfd pfd{channel_.get(), POLLIN, 0};
    int ready = poll(&pfd, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return fail_errno(errno, "cannot poll the quorum disk arbiter's channel");
    if (ready > 0) return receive_frame(channel_.get());
  }
}

Result<void> QdiskLink::wait_first(Duration limit) {
  MonoTime end = mono_now() + limit;
  for (;;) {
    auto frame = receive_by(end, limit, "sent no record");
    if (!frame) return std::unexpected(frame.error());
    if (!*frame) {
      auto exit = child_->reap_now();
      return fail("the quorum disk arbiter exited before its first record: {}",
                  exit ? exit->last_line() : std::string("no reason given"));
    }
    if ((*frame)->kind != QdiskKind::Record) {
      on_frame_(**frame);
      continue;
    }
    initial_ = (*frame)->record;
    on_frame_(**frame);
    return {};
  }
}

Result<std::string> QdiskLink::release(Duration limit) {
  released_ = true;
  restart_timer_.reset();
  if (!running()) return fail("the quorum disk arbiter is not running");
  if (auto ok = send_frame(channel_.get(), release_frame()); !ok) return std::unexpected(ok.error());
  channel_source_.reset();  // from here on this function reads the channel
  MonoTime end = mono_now() + limit;
  for (;;) {
    auto frame = receive_by(end, limit, "did not answer");
    if (!frame) return std::unexpected(frame.error());
    if (!*frame) return fail("the quorum disk arbiter exited without answering");
    if ((*frame)->kind == QdiskKind::Released) return (*frame)->reason;
  }
}

bool QdiskLink::send(const QdiskFrame& frame) {
  if (!running()) return false;
  if (auto ok = send_frame(channel_.get(), frame); !ok) {
    log(LogLevel::Debug, {}, "quorum disk arbiter: {}", ok.error().to_string());
    return false;
  }
  return true;
}

int QdiskLink::on_channel(sd_event_source*, int fd, uint32_t, void* userdata) noexcept {
  auto* self = static_cast<QdiskLink*>(userdata);
  auto frame = receive_frame(fd);
  if (!frame) {
    if (frame.error().errno_value == EAGAIN || frame.error().errno_value == EINTR) return 0;
    log(LogLevel::Warning, {}, "quorum disk arbiter: {}, ignoring the frame", frame.error().to_string());
    return 0;
  }
  if (!*frame) {  // closed: its exit follows through the pidfd
    self->channel_source_.reset();
    self->channel_.reset();
    return 0;
  }
  self->on_frame_(**frame);
  return 0;
}

void QdiskLink::on_child_exit(const ChildExit& exit) {
  channel_source_.reset();
  channel_.reset();
  if (released_) return;  // it exits after a clean release: nothing to report or restart
  std::string line = exit.last_line();
  std::string why = fmt::format("clusterd-qdisk {}{}{}", exit.describe(), line.empty() ? "" : ": ", line);
  log(LogLevel::Err, {}, "{}; starting it again in {} ms", why, kRestartDelay.count());
  schedule_restart();
  on_exit_(why);  // may not destroy this object
}

void QdiskLink::schedule_restart() {
  sd_event_source* source = nullptr;
  MonoTime at = mono_now() + kRestartDelay;
  int r = sd_event_add_time(loop_, &source, CLOCK_BOOTTIME, at.usec, 1000, on_restart, this);
  if (r < 0) {
    log(LogLevel::Err, {}, "cannot schedule the quorum disk arbiter's restart: {}", strerror(-r));
    return;
  }
  restart_timer_.reset(source);
}

int QdiskLink::on_restart(sd_event_source*, uint64_t, void* userdata) noexcept {
  auto* self = static_cast<QdiskLink*>(userdata);
  self->restart_timer_.reset();
  if (auto ok = self->spawn(); !ok) {
    log(LogLevel::Err, {}, "cannot start the quorum disk arbiter: {}", ok.error().to_string());
    self->schedule_restart();
  }
  return 0;
}

}  // namespace clusterd
