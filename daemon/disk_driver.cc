#include "disk_driver.h"

#include <build_config.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <optional>
#include <utility>

#include "child.h"
#include "config_load.h"
#include "filesystem.h"
#include "handle.h"
#include "log.h"
#include "scsi_pr.h"

namespace clusterd {
namespace {

// Answers of the helper on its control channel (disk_helper.h).
constexpr std::string_view kReady = "ready ";
constexpr std::string_view kVacant = "vacant ";
constexpr std::string_view kError = "error ";
// Sent unasked by a helper that failed while online, before it stops in order.
constexpr std::string_view kFailed = "failed ";
// The helper's stderr lines start with this; the resource's reason reads better without.
constexpr std::string_view kHelperPrefix = "clusterd-disk: ";
// A reply line longer than this is not one of the helper's.
constexpr std::size_t kMaxLine = 4096;

Result<std::string> scalar(const std::string& key, const ParamValue& value) {
  if (value.kind != ParamValue::Kind::Scalar) return fail("{} must be a single value", key);
  return value.scalar;
}

Result<int> whole_number(const std::string& key, const std::string& text, int min, int max) {
  int n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || n < min || n > max)
    return fail("{}: '{}' is not a whole number from {} to {}", key, text, min, max);
  return n;
}

Result<bool> boolean(const std::string& key, const std::string& text) {
  if (text == "true" || text == "yes" || text == "on" || text == "1") return true;
  if (text == "false" || text == "no" || text == "off" || text == "0") return false;
  return fail("{}: '{}' is not true or false", key, text);
}

// "10.0.0.1:3260, 10.0.0.2" or "10.0.0.1 10.0.0.2": several portals in one value, appended to
// `out` (a YAML list gives one value per entry; each is split the same way).
void split_portals(const std::string& text, std::vector<std::string>& out) {
  std::string item;
  for (char c : text + ",") {
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      if (!item.empty()) out.push_back(std::exchange(item, {}));
    } else {
      item += c;
    }
  }
}

// portal: a single value or a list (ParamSpec::or_list); either way, portals in order.
Result<std::vector<std::string>> portals_of(const ParamValue& value) {
  if (value.kind == ParamValue::Kind::Map) return fail("portal must be a single value or a list");
  std::vector<std::string> out;
  if (value.kind == ParamValue::Kind::Scalar) split_portals(value.scalar, out);
  for (const auto& item : value.list) split_portals(item, out);
  if (out.empty()) return fail("portal: give at least one HOST[:PORT]");
  return out;
}

bool valid_iqn(std::string_view name) {
  return name.starts_with("iqn.") || name.starts_with("eui.") || name.starts_with("naa.");
}

Result<void> apply(const std::string& key, const std::string& text, DiskParams& out) {
  if (key == "target" || key == "initiator") {
    if (!valid_iqn(text)) return fail("{}: '{}' is not an iSCSI name (iqn.YYYY-MM.domain:...)", key, text);
    (key == "target" ? out.target : out.initiator) = text;
  } else if (key == "lun") {
    auto n = whole_number(key, text, 0, 16383);
    if (!n) return std::unexpected(n.error());
    out.lun = *n;
  } else if (key == "mount_point") {
    if (!text.starts_with('/') || text == "/") return fail("mount_point: '{}' must be an absolute path other than /", text);
    out.mount_point = text;
  } else if (key == "filesystem") {
    if (text.empty()) return fail("filesystem must not be empty");
    out.filesystem = text;
  } else if (key == "options") {
    out.options = text;
  } else if (key == "mkfs" || key == "take_over") {
    auto b = boolean(key, text);
    if (!b) return std::unexpected(b.error());
    (key == "mkfs" ? out.mkfs : out.take_over) = *b;
  } else if (key == "io_timeout") {
    auto d = parse_duration(text);
    if (!d || *d < std::chrono::seconds(1) || *d > std::chrono::minutes(10))
      return fail("io_timeout: '{}' is not a duration from 1s to 10m", text);
    // The helper counts whole seconds: round up, never shorten what was asked.
    out.io_timeout = static_cast<int>((d->count() + 999) / 1000);
  } else {
    return fail("unknown parameter {} for a disk resource", key);
  }
  return {};
}

}  // namespace

std::string helper_sentence(std::string_view output) {
  // The helper's reason is its last "clusterd-disk: " line; log lines may follow it.
  std::size_t at = output.rfind(std::string("\n").append(kHelperPrefix));
  if (at != std::string_view::npos) ++at;
  else if (output.starts_with(kHelperPrefix)) at = 0;
  else return last_line_of(output);
  std::string_view rest = output.substr(at + kHelperPrefix.size());
  return last_line_of(rest.substr(0, rest.find('\n')));
}

Result<DiskParams> parse_disk_params(const Params& params) {
  DiskParams out;
  for (const auto& [key, value] : params) {
    if (key == "portal") {
      auto portals = portals_of(value);
      if (!portals) return std::unexpected(portals.error());
      out.portals = std::move(*portals);
      continue;
    }
    auto text = scalar(key, value);
    if (!text) return std::unexpected(text.error());
    if (auto ok = apply(key, *text, out); !ok) return std::unexpected(ok.error());
  }
  if (out.portals.empty()) return fail("portal is required");
  if (out.target.empty()) return fail("target is required");
  if (out.mount_point.empty()) return fail("mount_point is required");
  return out;
}

std::string default_initiator(std::string_view cluster, std::string_view node) {
  auto iqn_part = [](std::string_view name) {
    std::string out;
    for (char c : name) out += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  return fmt::format("iqn.2026-11.org.clusterd:{}:{}", iqn_part(cluster), iqn_part(node));
}

std::vector<std::string> disk_helper_argv(const DiskParams& p, const DiskInvocation& how) {
  std::vector<std::string> argv{how.helper};
  for (const auto& portal : p.portals) argv.insert(argv.end(), {"--portal", portal});
  argv.insert(argv.end(), {"--target", p.target, "--lun", std::to_string(p.lun), "--initiator",
                           how.initiator, "--cluster-id", std::to_string(how.cluster_id),
                           "--node-id", std::to_string(how.node_id), "--io-timeout",
                           std::to_string(p.io_timeout)});
  if (p.take_over) argv.push_back("--take-over");
  argv.insert(argv.end(), {"--fuse-dir", how.fuse_dir, "--mount-point", p.mount_point,
                           "--fstype", p.filesystem});
  if (!p.options.empty()) argv.insert(argv.end(), {"--options", p.options});
  if (p.mkfs) argv.push_back("--mkfs-if-blank");
  argv.insert(argv.end(), {"--control-fd", "3"});
  return argv;
}

std::vector<std::string> disk_cleanup_argv(const DiskParams& p, const DiskInvocation& how) {
  return {how.helper, "--cleanup", "--fuse-dir", how.fuse_dir, "--mount-point", p.mount_point};
}

std::vector<std::string> disk_inquest_argv(const DiskParams& p, const DiskInvocation& how) {
  std::vector<std::string> argv{how.helper, "--show-reservation"};
  for (const auto& portal : p.portals) argv.insert(argv.end(), {"--portal", portal});
  argv.insert(argv.end(), {"--target", p.target, "--lun", std::to_string(p.lun), "--initiator",
                           how.initiator, "--cluster-id", std::to_string(how.cluster_id),
                           "--io-timeout", std::to_string(p.io_timeout)});
  return argv;
}

std::optional<std::string> foreign_holder(std::string_view shown, std::uint32_t cluster_id,
                                          std::uint32_t node_id) {
  // "holder node 2 exclusive-access" (describe_reservation); "holder none" says nobody.
  constexpr std::string_view kHolder = "holder ";
  std::string ours = describe_key(reservation_key(cluster_id, node_id), cluster_id);
  while (!shown.empty()) {
    std::string_view line = shown.substr(0, shown.find('\n'));
    shown.remove_prefix(std::min(shown.size(), line.size() + 1));
    if (!line.starts_with(kHolder)) continue;
    line.remove_prefix(kHolder.size());
    std::string_view who = line.substr(0, line.rfind(' '));
    if (line == "none" || who == ours) return std::nullopt;
    return std::string(who);
  }
  return std::nullopt;
}

std::string default_disk_helper() {
  std::error_code ec;
  auto beside = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "clusterd-disk";
  if (!ec && std::filesystem::exists(beside, ec)) return beside.string();
  return std::string(CLUSTERD_LIBEXECDIR) + "/clusterd-disk";
}

TypeInfo disk_type_info() {
  using K = ParamValue::Kind;
  TypeInfo info;
  info.name = "disk";
  info.params = {
      {"portal", true, "", K::Scalar, "string",
       "iSCSI portal HOST[:PORT] (3260); several, tried in order: a list, or separated by "
       "commas.",
       false, true},
      {"target", true, "", K::Scalar, "string", "Target IQN.", true},
      {"lun", false, "1", K::Scalar, "integer",
       "Logical unit number (tgt keeps LUN 0 for its own controller, so data LUNs start at 1)."},
      {"initiator", false, "", K::Scalar, "string",
       "This node's initiator IQN; default iqn.2026-11.org.clusterd:CLUSTER:NODE."},
      {"mount_point", true, "", K::Scalar, "string", "Where the file system is mounted.", true},
      {"filesystem", false, "ext4", K::Scalar, "string", "File system type."},
      {"options", false, "", K::Scalar, "string", "Mount options, mount(8) style."},
      {"mkfs", false, "false", K::Scalar, "boolean",
       "Make a file system when the LUN has none (blkid finds nothing); never reformats."},
      {"io_timeout", false, "5s", K::Scalar, "duration",
       "Deadline of every iSCSI command (whole seconds, 1s to 10m)."},
      {"take_over", false, "true", K::Scalar, "boolean",
       "Preempt another node's reservation at start (placement starts a group only once its "
       "old owner is down); false: a held LUN fails the start."},
  };
  info.advised_start_timeout = std::chrono::seconds(60);  // mkfs or fsck of a large LUN
  info.advised_stop_timeout = std::chrono::seconds(30);
  info.advised_monitor_timeout = std::chrono::seconds(15);  // > io_timeout + a reconnect
  info.advised_monitor_interval = std::chrono::seconds(5);
  return info;
}

namespace {

/// Drives one clusterd-disk; see disk_driver.h.
class DiskDriver final : public ResourceDriver {
 public:
  DiskDriver(const ResourceConfig& config, const DriverContext& context, DiskParams params,
             DiskInvocation how)
      : loop_(context.loop),
        name_(config.name),
        timeouts_(config.timeouts),
        monitor_timeout_(config.monitor.timeout),
        params_(std::move(params)),
        how_(std::move(how)) {}
  ~DiskDriver() override = default;

  void start(Done done) override;
  void stop(Done done) override;
  void monitor(MonitorLevel level, Done done) override;
  void cancel() override;
  pid_t main_pid() const override { return helper_ && helper_->running() ? helper_->pid() : 0; }

 private:
  /// Inquest: the helper died while online without saying why (SIGKILLed: the self-fence's hard
  /// deadline, which a frozen node meets at once on waking); the LUN is asked who holds it.
  enum class Phase {
    Idle, Cleaning, Starting, Online, Checking, Restoring, Stopping, Killing, Inquest
  };

  void run_cleanup(std::function<void(const ChildExit&)> then);
  void spawn_helper();
  Result<void> watch_control(Fd ours);
  void on_helper_exit(const ChildExit& exit);
  void on_line(const std::string& line);
  void on_helper_failed(std::string why);
  void start_inquest(const ChildExit& helper_exit, std::string reason);
  void check_dead_helper(Done done);
  void on_inquest_exit(const ChildExit& exit);
  bool read_control();
  std::string not_running_reason() const;
  void on_deadline();
  void kill_and_clean(ActionResult result);
  bool send(std::string_view command);
  void arm_deadline(Duration timeout);
  void finish(ActionResult result);
  void deliver_later(ActionResult result, Done done);
  std::string helper_reason(const ChildExit& exit) const;
  bool mounted() const;

  static int on_control(sd_event_source*, int fd, uint32_t, void* userdata) noexcept;
  static int on_timer(sd_event_source*, uint64_t, void* userdata) noexcept;

  sd_event* loop_;
  std::string name_;
  ActionTimeouts timeouts_;
  Duration monitor_timeout_;
  DiskParams params_;
  DiskInvocation how_;
  Phase phase_ = Phase::Idle;
  std::unique_ptr<Child> helper_;
  std::unique_ptr<Child> cleanup_;
  std::unique_ptr<Child> inquest_;  ///< clusterd-disk --show-reservation after a silent death.
  std::string inquest_reason_;      ///< The helper's exit and last line, while the inquest runs.
  std::string inquest_death_;       ///< "the disk helper was killed by signal 9".
  Fd control_;
  EventSourcePtr control_source_;
  EventSourcePtr deadline_;
  std::string input_;
  int stale_replies_ = 0;  ///< Replies to a cancelled check still on their way.
  /// The helper's own reason ("reservation lost: held by node 2"), once it said "failed".
  std::optional<std::string> helper_failure_;
  Done done_;
  DeferredCall deferred_;
  DeferredCall report_;  ///< The unsolicited failure report, off the reading callback.
};

void DiskDriver::start(Done done) {
  if (helper_ && helper_->running() && phase_ == Phase::Online)
    return deliver_later({ActionStatus::Ok, "", -1}, std::move(done));
  done_ = std::move(done);
  phase_ = Phase::Cleaning;
  helper_failure_.reset();
  report_.cancel();
  inquest_.reset();
  arm_deadline(timeouts_.start);
  helper_.reset();
  // A helper that died (or a daemon that was killed) may have left its mounts: release them
  // first, or the new helper refuses to stack a second mount over them.
  run_cleanup([this](const ChildExit& exit) {
    if (!exit.success())
      log(LogLevel::Warning, {{"RESOURCE", name_}}, "clusterd-disk --cleanup {}: {}, starting anyway",
          exit.describe(), helper_sentence(exit.output));
    spawn_helper();
  });
}

void DiskDriver::run_cleanup(std::function<void(const ChildExit&)> then) {
  ChildSpec spec;
  spec.argv = disk_cleanup_argv(params_, how_);
  spec.env = {std::string("PATH=") + kDefaultPath};
  auto child = Child::spawn(loop_, spec, [then](const ChildExit& exit) { then(exit); });
  if (!child) {
    ChildExit failed;
    failed.end = ChildEnd::Exited;
    failed.status = 127;
    failed.output = child.error().to_string();
    deferred_.post(loop_, [then = std::move(then), failed] { then(failed); });
    return;
  }
  cleanup_ = std::move(*child);
}

void DiskDriver::spawn_helper() {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    return finish({ActionStatus::Failed,
                   fmt::format("cannot create the disk helper's control socket: {}", strerror(errno)),
                   -1});
  Fd ours(pair[0]), theirs(pair[1]);
  ChildSpec spec;
  spec.argv = disk_helper_argv(params_, how_);
  spec.env = {std::string("PATH=") + kDefaultPath};
  spec.pass_fd = theirs.get();
  auto child = Child::spawn(loop_, spec, [this](const ChildExit& exit) { on_helper_exit(exit); });
  if (!child) {
    ActionStatus status = child.error().errno_value == ENOENT ? ActionStatus::NotInstalled
                                                             : ActionStatus::Failed;
    return finish({status, child.error().to_string(), -1});
  }
  helper_ = std::move(*child);
  if (auto ok = watch_control(std::move(ours)); !ok) {
    helper_.reset();
    return finish({ActionStatus::Failed, ok.error().to_string(), -1});
  }
  phase_ = Phase::Starting;
  log(LogLevel::Info, {{"RESOURCE", name_}}, "started clusterd-disk as pid {} for {} LUN {}",
      helper_->pid(), params_.target, params_.lun);
}

Result<void> DiskDriver::watch_control(Fd ours) {
  control_source_.reset();
  input_.clear();
  stale_replies_ = 0;
  control_ = std::move(ours);
  sd_event_source* source = nullptr;
  int r = sd_event_add_io(loop_, &source, control_.get(), EPOLLIN, on_control, this);
  if (r < 0) return fail_errno(r, "cannot watch the disk helper's control socket");
  control_source_.reset(source);
  return {};
}

int DiskDriver::on_control(sd_event_source*, int, uint32_t, void* userdata) noexcept {
  static_cast<DiskDriver*>(userdata)->read_control();
  return 0;
}

// Reads what the helper sent and handles each complete line; false once nothing is left.
bool DiskDriver::read_control() {
  if (!control_) return false;
  char buffer[1024];
  ssize_t n = ::recv(control_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
  if (n <= 0) {
    // The helper closed its end: its exit follows through the pidfd.
    control_source_.reset();
    return false;
  }
  input_.append(buffer, static_cast<std::size_t>(n));
  std::size_t newline;
  while ((newline = input_.find('\n')) != std::string::npos) {
    std::string line = input_.substr(0, newline);
    input_.erase(0, newline + 1);
    on_line(line);  // may finish the action; the driver stays alive until Done returns
  }
  if (input_.size() > kMaxLine) input_.clear();
  return true;
}

void DiskDriver::on_line(const std::string& line) {
  // Unasked, so it is no reply: it neither ends a start nor counts as a stale check's answer.
  if (line.starts_with(kFailed)) return on_helper_failed(line.substr(kFailed.size()));
  if (phase_ == Phase::Starting) {
    if (line.starts_with(kReady)) {
      phase_ = Phase::Online;
      log(LogLevel::Info, {{"RESOURCE", name_}}, "{} mounted at {} through {}", params_.target,
          params_.mount_point, line.substr(kReady.size()));
      return finish({ActionStatus::Ok, "", -1});
    }
    // "error <why>": the helper exits (status 3) right after; its exit ends the start.
    return;
  }
  if (stale_replies_ > 0) {
    --stale_replies_;
    return;
  }
  if (phase_ == Phase::Checking && line.starts_with(kVacant)) {
    // The target lost every reservation (tgt: a restart). The group is online here, so the
    // cluster says the LUN is ours: reserve it again (docs/disks.md, holes of the lab's target).
    log(LogLevel::Warning, {{"RESOURCE", name_}}, "{}: restoring the reservation",
        line.substr(kVacant.size()));
    phase_ = Phase::Restoring;
    if (!send("restore")) finish({ActionStatus::Failed, "the disk helper's control socket is closed", -1});
    return;
  }
  if (phase_ == Phase::Checking || phase_ == Phase::Restoring) {
    bool restored = phase_ == Phase::Restoring;
    phase_ = Phase::Online;
    if (line == "ok") {
      if (restored) log(LogLevel::Notice, {{"RESOURCE", name_}}, "reservation restored");
      return finish({ActionStatus::Ok, "", -1});
    }
    std::string why = line.starts_with(kError) ? line.substr(kError.size()) : line;
    return finish({ActionStatus::Failed, why, -1});
  }
}

void DiskDriver::on_helper_failed(std::string why) {
  if (helper_failure_) return;
  log(LogLevel::Err, {{"RESOURCE", name_}}, "the disk helper failed: {}", why);
  helper_failure_ = std::move(why);
  // A check in flight gets the same sentence as its answer; otherwise tell the engine now,
  // before the helper's unmount is all a LooksAlive would see. Posted, because monitor() also
  // reads the socket and must not be re-entered by the engine's failure handling.
  report_.post(loop_, [this] {
    if (phase_ == Phase::Online && helper_failure_) report_failure(*helper_failure_);
  });
}

void DiskDriver::on_helper_exit(const ChildExit& exit) {
  // What it said last may still wait in the socket (the exit can be dispatched first): a
  // "failed" line, or the answer to a check in flight.
  while (read_control()) {
  }
  control_source_.reset();
  control_.reset();
  Phase phase = std::exchange(phase_, Phase::Idle);
  std::string reason = helper_reason(exit);
  switch (phase) {
    case Phase::Starting:
      return kill_and_clean({ActionStatus::Failed, reason, exit.status});
    case Phase::Online:
    case Phase::Checking:
    case Phase::Restoring:
      log(LogLevel::Err, {{"RESOURCE", name_}}, "{}", reason);
      report_.cancel();  // what it would report comes now, from here
      // Killed before it could tell: the LUN still knows whether another node took it. The
      // inquest answers a check in flight, or reports.
      if (!helper_failure_) return start_inquest(exit, std::move(reason));
      if (phase == Phase::Online) return report_failure(*helper_failure_);
      return finish({ActionStatus::Failed, *helper_failure_, exit.status});
    case Phase::Stopping:
      if (exit.success()) return finish({ActionStatus::Ok, "", -1});
      log(LogLevel::Warning, {{"RESOURCE", name_}}, "{}; releasing its mounts", reason);
      return kill_and_clean({ActionStatus::Ok, "", -1});
    case Phase::Idle:
    case Phase::Cleaning:
    case Phase::Killing:
    case Phase::Inquest:
      return;
  }
}

void DiskDriver::start_inquest(const ChildExit& helper_exit, std::string reason) {
  phase_ = Phase::Inquest;
  inquest_reason_ = std::move(reason);
  inquest_death_ = fmt::format("the disk helper {}{}",
                               helper_exit.end == ChildEnd::Exited ? "" : "was ",
                               helper_exit.describe());
  ChildSpec spec;
  spec.argv = disk_inquest_argv(params_, how_);
  spec.env = {std::string("PATH=") + kDefaultPath};
  auto child = Child::spawn(loop_, spec, [this](const ChildExit& exit) { on_inquest_exit(exit); });
  if (!child) {
    // Nothing to ask with: the reason stays the exit's. Answered from the loop, never from
    // inside the engine's own call.
    return deferred_.post(loop_, [this] {
      ChildExit none;
      none.status = 127;
      on_inquest_exit(none);
    });
  }
  inquest_ = std::move(*child);
  // One login and two commands, each within io_timeout.
  (void)inquest_->set_deadline(std::chrono::seconds(3 * params_.io_timeout));
}

void DiskDriver::on_inquest_exit(const ChildExit& exit) {
  if (phase_ != Phase::Inquest) return;  // a stop or start overtook it
  phase_ = Phase::Idle;
  std::string reason = inquest_reason_;
  if (exit.success())
    if (auto holder = foreign_holder(exit.output, how_.cluster_id, how_.node_id))
      reason = fmt::format("reservation lost: held by {} ({})", *holder, inquest_death_);
  helper_failure_ = reason;
  log(LogLevel::Err, {{"RESOURCE", name_}}, "{}", reason);
  // A monitor that came meanwhile waited for this answer; otherwise it is news to the engine.
  if (done_) return finish({ActionStatus::Failed, reason, -1});
  report_failure(reason);
}

std::string DiskDriver::helper_reason(const ChildExit& exit) const {
  std::string reason = fmt::format("disk helper {}", exit.describe());
  std::string line = helper_sentence(exit.output);
  if (!line.empty()) reason += ": " + line;
  return reason;
}

void DiskDriver::kill_and_clean(ActionResult result) {
  // Whatever is left of the helper goes first (SIGKILL to its group), then its mounts.
  if (helper_ && helper_->running()) helper_->signal_group(SIGKILL);
  phase_ = Phase::Killing;
  run_cleanup([this, result = std::move(result)](const ChildExit& exit) {
    phase_ = Phase::Idle;
    if (exit.success()) return finish(result);
    finish({ActionStatus::Failed,
            fmt::format("cannot release the disk's mounts: {}", helper_sentence(exit.output)),
            -1});
  });
}

void DiskDriver::stop(Done done) {
  inquest_.reset();
  if (!helper_ || !helper_->running() || helper_->has_exited()) {
    // Nothing runs; a helper that died may still have left its mounts.
    done_ = std::move(done);
    arm_deadline(timeouts_.stop);
    return kill_and_clean({ActionStatus::Ok, "", -1});
  }
  done_ = std::move(done);
  arm_deadline(timeouts_.stop);
  phase_ = Phase::Stopping;
  // The helper unmounts, detaches, flushes, releases the reservation and exits 0.
  if (!send("stop")) helper_->signal_group(SIGTERM);
}

void DiskDriver::monitor(MonitorLevel level, Done done) {
  if (phase_ == Phase::Inquest) {
    // The helper is dead and the reason is on its way: answer with it.
    done_ = std::move(done);
    return arm_deadline(monitor_timeout_);
  }
  if (phase_ == Phase::Online && helper_ && helper_->running() && helper_->has_exited())
    return check_dead_helper(std::move(done));
  if (!helper_ || !helper_->running() || helper_->has_exited() || phase_ != Phase::Online)
    return deliver_later({ActionStatus::NotRunning, not_running_reason(), -1}, std::move(done));
  if (level == MonitorLevel::LooksAlive) {
    ActionResult result{ActionStatus::Ok, "", -1};
    if (!mounted()) {
      // A helper that failed said why before it began to unmount: read it, if it is waiting.
      while (read_control()) {
      }
      result = {ActionStatus::Failed,
                helper_failure_.value_or(fmt::format("{} is not mounted", params_.mount_point)),
                -1};
    }
    return deliver_later(std::move(result), std::move(done));
  }
  done_ = std::move(done);
  phase_ = Phase::Checking;
  arm_deadline(monitor_timeout_);
  if (!send("check")) {
    phase_ = Phase::Online;
    finish({ActionStatus::Failed, "the disk helper's control socket is closed", -1});
  }
}

// The helper is dead but the loop has not dispatched its exit yet (a check came first, as after
// a thaw, when every overdue timer fires at once): this check's answer is its reason.
void DiskDriver::check_dead_helper(Done done) {
  auto exit = helper_->reap_now();
  while (read_control()) {
  }
  control_source_.reset();
  control_.reset();
  if (!exit || helper_failure_) {
    phase_ = Phase::Idle;
    return deliver_later({ActionStatus::Failed, not_running_reason(), -1}, std::move(done));
  }
  log(LogLevel::Err, {{"RESOURCE", name_}}, "{}", helper_reason(*exit));
  done_ = std::move(done);
  arm_deadline(monitor_timeout_);
  start_inquest(*exit, helper_reason(*exit));
}

std::string DiskDriver::not_running_reason() const {
  return helper_failure_.value_or("the disk helper is not running");
}

bool DiskDriver::mounted() const {
  auto mounts = read_mountinfo();
  return mounts && find_mount(*mounts, params_.mount_point);
}

void DiskDriver::cancel() {
  deferred_.cancel();
  deadline_.reset();
  done_ = nullptr;
  switch (phase_) {
    case Phase::Checking:
    case Phase::Restoring:
      ++stale_replies_;
      phase_ = Phase::Online;
      break;
    case Phase::Cleaning:
    case Phase::Starting:
    case Phase::Stopping:
    case Phase::Killing:
      helper_.reset();  // SIGKILLs its group; mounts are released by the next start or stop
      cleanup_.reset();
      control_source_.reset();
      control_.reset();
      phase_ = Phase::Idle;
      break;
    case Phase::Inquest:  // goes on: its answer becomes a failure report
    case Phase::Idle:
    case Phase::Online:
      break;
  }
}

bool DiskDriver::send(std::string_view command) {
  if (!control_) return false;
  std::string line = std::string(command) + "\n";
  // A few bytes into an empty socket buffer: never blocks in practice, and must not.
  return ::send(control_.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT) ==
         static_cast<ssize_t>(line.size());
}

void DiskDriver::arm_deadline(Duration timeout) {
  deadline_.reset();
  sd_event_source* source = nullptr;
  auto usec = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(timeout).count());
  if (sd_event_add_time_relative(loop_, &source, CLOCK_BOOTTIME, usec, 1000, on_timer, this) >= 0)
    deadline_.reset(source);
}

int DiskDriver::on_timer(sd_event_source*, uint64_t, void* userdata) noexcept {
  static_cast<DiskDriver*>(userdata)->on_deadline();
  return 0;
}

void DiskDriver::on_deadline() {
  deadline_.reset();
  switch (phase_) {
    case Phase::Cleaning:
    case Phase::Starting:
      return kill_and_clean({ActionStatus::Timeout,
                             fmt::format("the disk was not mounted within {}",
                                         format_duration(timeouts_.start)), -1});
    case Phase::Checking:
    case Phase::Restoring:
      ++stale_replies_;
      phase_ = Phase::Online;
      return finish({ActionStatus::Timeout,
                     fmt::format("the disk helper did not answer a check within {}",
                                 format_duration(monitor_timeout_)), -1});
    case Phase::Stopping:
      log(LogLevel::Warning, {{"RESOURCE", name_}},
          "the disk helper did not stop within {}; killing it", format_duration(timeouts_.stop));
      return kill_and_clean({ActionStatus::Ok, "", -1});
    case Phase::Killing:
      cleanup_.reset();
      phase_ = Phase::Idle;
      return finish({ActionStatus::Timeout, "releasing the disk's mounts did not finish in time", -1});
    case Phase::Inquest:
      return finish({ActionStatus::Failed, inquest_reason_, -1});
    case Phase::Idle:
    case Phase::Online:
      return;
  }
}

void DiskDriver::deliver_later(ActionResult result, Done done) {
  deferred_.post(loop_, [result = std::move(result), done = std::move(done)] { done(result); });
}

// Ends the action in flight. The engine may destroy this driver from `done`: call it last.
void DiskDriver::finish(ActionResult result) {
  deadline_.reset();
  Done done = std::exchange(done_, nullptr);
  if (done) done(std::move(result));
}

}  // namespace

Result<std::unique_ptr<ResourceDriver>> make_disk_driver(const ResourceConfig& config,
                                                         const DriverContext& context) {
  auto params = parse_disk_params(config.params);
  if (!params) return fail("resource {}: {}", config.name, params.error().message);
  if (context.cluster_id == 0 || context.node_id == 0)
    return fail("resource {}: no cluster id or node id for the reservation key", config.name);
  DiskInvocation how;
  how.helper = context.disk_helper.empty() ? default_disk_helper() : context.disk_helper;
  how.fuse_dir = fmt::format("{}/disk/{}", context.state_dir, config.name);
  how.initiator = params->initiator.empty()
                      ? default_initiator(context.cluster_name, context.node_name)
                      : params->initiator;
  how.cluster_id = context.cluster_id;
  how.node_id = context.node_id;
  return std::unique_ptr<ResourceDriver>(new DiskDriver(config, context, std::move(*params), how));
}

}  // namespace clusterd
