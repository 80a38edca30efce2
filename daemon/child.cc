#include "child.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <pwd.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cstring>
#include <string_view>

#include "log.h"

namespace clusterd {

const char* to_string(ChildEnd end) {
  switch (end) {
    case ChildEnd::Exited: return "exited";
    case ChildEnd::Signaled: return "signaled";
    case ChildEnd::Timeout: return "timeout";
  }
  return "?";
}

std::string ChildExit::describe() const {
  switch (end) {
    case ChildEnd::Exited: return fmt::format("exited with status {}", status);
    case ChildEnd::Signaled:
      return fmt::format("killed by signal {}{}", status, core_dumped ? " (core dumped)" : "");
    case ChildEnd::Timeout: return "timed out; its process group was killed";
  }
  return "?";
}

std::string ChildExit::last_line() const { return last_line_of(output); }

void TailBuffer::append(std::string_view data) {
  if (data.size() >= capacity_) {
    data_.assign(data.substr(data.size() - capacity_));
    return;
  }
  std::size_t total = data_.size() + data.size();
  if (total > capacity_) data_.erase(0, total - capacity_);
  data_.append(data);
}

std::string last_line_of(std::string_view text) {
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  auto start = text.find_last_of('\n');
  if (start != std::string_view::npos) text.remove_prefix(start + 1);
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  return std::string(text);
}

std::string signal_name(int sig) {
  const char* name = sigabbrev_np(sig);
  return name ? name : std::to_string(sig);
}

Result<int> parse_signal(const std::string& text) {
  int number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec == std::errc() && end == text.data() + text.size()) {
    if (number > 0 && number < NSIG) return number;
    return fail("'{}' is not a signal number (1-{})", text, NSIG - 1);
  }
  std::string upper;
  for (char c : text) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string_view name = upper;
  if (name.starts_with("SIG")) name.remove_prefix(3);
  for (int sig = 1; sig < NSIG; ++sig) {
    const char* abbrev = sigabbrev_np(sig);
    if (abbrev && name == abbrev) return sig;
  }
  return fail("'{}' is not a signal name (e.g. TERM, INT, HUP, KILL)", text);
}

namespace {

// Everything the child needs after fork, prepared before it: between fork and exec only
// async-signal-safe calls are allowed (no allocation, no NSS lookups).
struct Credentials {
  bool change = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

struct Prepared {
  std::string path;
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::string cwd;
  mode_t umask = 022;
  bool capture_stderr = true;
  int pass_fd = -1;
  std::string hostname;
  Credentials creds;
};

// What the child writes to the CLOEXEC pipe when it cannot reach exec.
enum class Stage : int { Setup, Hostname, Chdir, Credentials, Exec };
struct ExecReport {
  Stage stage;
  int err;
};

std::string env_value(const std::vector<std::string>& env, std::string_view name) {
  for (const auto& entry : env)
    if (entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=')
      return entry.substr(name.size() + 1);
  return {};
}

Result<std::string> find_program(const std::string& name, const std::vector<std::string>& env) {
  if (name.empty()) return fail("cannot execute an empty command");
  if (name.find('/') != std::string::npos) return name;
  std::string path = env_value(env, "PATH");
  if (path.empty()) path = kDefaultPath;
  std::string_view rest = path;
  while (!rest.empty()) {
    auto colon = rest.find(':');
    std::string dir(rest.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return fail_errno(ENOENT, "cannot execute {} (searched {})", name, path);
}

bool parse_id(const std::string& text, unsigned* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

Result<gid_t> lookup_group(const std::string& group) {
  unsigned id = 0;
  if (parse_id(group, &id)) return static_cast<gid_t>(id);
  errno = 0;
  const struct group* gr = getgrnam(group.c_str());
  if (!gr) return fail_errno(errno, "unknown group '{}'", group);
  return gr->gr_gid;
}

Result<Credentials> lookup_credentials(const std::string& user, const std::string& group) {
  Credentials creds;
  if (user.empty() && group.empty()) return creds;
  creds.change = true;
  creds.uid = getuid();
  creds.gid = getgid();
  if (!user.empty()) {
    unsigned id = 0;
    errno = 0;
    const passwd* pw = parse_id(user, &id) ? getpwuid(id) : getpwnam(user.c_str());
    if (!pw && !parse_id(user, &id)) return fail_errno(errno, "unknown user '{}'", user);
    creds.uid = pw ? pw->pw_uid : id;
    creds.gid = pw ? pw->pw_gid : id;
    if (pw) {
      // initgroups() in the child could do NSS lookups after fork; getgrouplist here does the
      // same lookup safely in the parent.
      int n = 64;
      creds.groups.resize(n);
      if (getgrouplist(pw->pw_name, creds.gid, creds.groups.data(), &n) < 0) {
        creds.groups.resize(n);
        getgrouplist(pw->pw_name, creds.gid, creds.groups.data(), &n);
      }
      creds.groups.resize(n);
    }
  }
  if (!group.empty()) {
    auto gid = lookup_group(group);
    if (!gid) return std::unexpected(gid.error());
    creds.gid = *gid;
  }
  if (creds.groups.empty()) creds.groups.push_back(creds.gid);
  return creds;
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

Result<Prepared> prepare(const ChildSpec& spec) {
  if (spec.argv.empty()) return fail("cannot execute an empty command");
  auto path = find_program(spec.argv[0], spec.env);
  if (!path) return std::unexpected(path.error());
  auto creds = lookup_credentials(spec.user, spec.group);
  if (!creds) return std::unexpected(creds.error());
  Prepared p;
  p.path = std::move(*path);
  p.argv = c_strings(spec.argv);
  p.envp = c_strings(spec.env);
  p.cwd = spec.cwd.empty() ? "/" : spec.cwd;
  p.umask = spec.umask.value_or(022);
  p.capture_stderr = spec.capture_stderr;
  p.pass_fd = spec.pass_fd;
  p.hostname = spec.hostname;
  p.creds = std::move(*creds);
  return p;
}

[[noreturn]] void child_fail(int report_fd, Stage stage) {
  ExecReport report{stage, errno};
  ssize_t n = ::write(report_fd, &report, sizeof report);
  (void)n;
  _exit(127);
}

// Runs in the child between fork and exec: async-signal-safe calls only.
[[noreturn]] void exec_child(const Prepared& p, int null_fd, int out_fd, int report_fd) {
  // Keep the descriptors we need away from 0-3 before overwriting those.
  constexpr int kHigh = 10;
  null_fd = fcntl(null_fd, F_DUPFD_CLOEXEC, kHigh);
  out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, kHigh);
  report_fd = fcntl(report_fd, F_DUPFD_CLOEXEC, kHigh);
  if (null_fd < 0 || out_fd < 0 || report_fd < 0) child_fail(report_fd, Stage::Setup);
  int pass_fd = p.pass_fd >= 0 ? fcntl(p.pass_fd, F_DUPFD_CLOEXEC, kHigh) : -1;
  if (p.pass_fd >= 0 && pass_fd < 0) child_fail(report_fd, Stage::Setup);
  if (setsid() < 0) child_fail(report_fd, Stage::Setup);
  // The daemon blocks the signals sd-event handles; a child must start with a clean slate or
  // it would never see its stop signal.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // The daemon runs at a raised priority (clusterd --nice); what it starts does not.
  setpriority(PRIO_PROCESS, 0, 0);
  if (dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 ||
      dup2(p.capture_stderr ? out_fd : null_fd, 2) < 0)
    child_fail(report_fd, Stage::Setup);
  // dup2 clears close-on-exec: fd 3 survives exec.
  if (pass_fd >= 0 && dup2(pass_fd, 3) < 0) child_fail(report_fd, Stage::Setup);
  // Everything but 0-2 (0-3 with a passed fd) and the report pipe goes (close_range: Linux 5.9).
  close_range(pass_fd >= 0 ? 4 : 3, report_fd - 1, 0);
  close_range(report_fd + 1, ~0U, 0);
  umask(p.umask);
  // Before dropping privileges: a new UTS namespace needs CAP_SYS_ADMIN.
  if (!p.hostname.empty() &&
      (unshare(CLONE_NEWUTS) < 0 || sethostname(p.hostname.data(), p.hostname.size()) < 0))
    child_fail(report_fd, Stage::Hostname);
  if (chdir(p.cwd.c_str()) < 0) child_fail(report_fd, Stage::Chdir);
  if (p.creds.change) {
    if (setgroups(p.creds.groups.size(), p.creds.groups.data()) < 0 ||
        setgid(p.creds.gid) < 0 || setuid(p.creds.uid) < 0)
      child_fail(report_fd, Stage::Credentials);
  }
  execve(p.path.c_str(), p.argv.data(), p.envp.data());
  child_fail(report_fd, Stage::Exec);
}

std::unexpected<Error> exec_error(const ChildSpec& spec, const Prepared& p, ExecReport report) {
  switch (report.stage) {
    case Stage::Hostname:
      return fail_errno(report.err, "cannot give {} a UTS namespace with host name '{}'", p.path,
                        p.hostname);
    case Stage::Chdir: return fail_errno(report.err, "cannot change to directory {}", p.cwd);
    case Stage::Credentials:
      return fail_errno(report.err, "cannot switch to user '{}' group '{}' for {}", spec.user,
                        spec.group, p.path);
    case Stage::Exec: return fail_errno(report.err, "cannot execute {}", p.path);
    case Stage::Setup: break;
  }
  return fail_errno(report.err, "cannot set up the process for {}", p.path);
}

// Waits for the exec report: EOF means exec succeeded (the CLOEXEC pipe closed). The child
// reaches exec or fails within microseconds, so this short blocking read is bounded.
std::optional<ExecReport> read_exec_report(int fd) {
  ExecReport report{};
  ssize_t n;
  do n = ::read(fd, &report, sizeof report);
  while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof report)) return report;
  return std::nullopt;
}

void wait_blocking(pid_t pid) {
  siginfo_t info{};
  while (waitid(P_PID, pid, &info, WEXITED) < 0 && errno == EINTR) {
  }
}

// A child whose owner is gone: SIGKILLed already, reaped from the loop when it dies so it does
// not linger as a zombie. The loop owns the source (floating) and frees the state with it.
struct Orphan {
  pid_t pid;
  Fd pidfd;
};

int on_orphan_exit(sd_event_source* source, int, uint32_t, void* userdata) noexcept {
  auto* orphan = static_cast<Orphan*>(userdata);
  siginfo_t info{};
  if (waitid(P_PIDFD, orphan->pidfd.get(), &info, WEXITED | WNOHANG) < 0 || info.si_pid != 0) {
    // Taking the loop's reference back while the dispatch pins the source frees it (and the
    // Orphan, through the destroy callback) once this callback returns.
    sd_event_source_set_enabled(source, SD_EVENT_OFF);
    sd_event_source_set_floating(source, 0);
  }
  return 0;
}

void reap_in_background(sd_event* loop, pid_t pid, Fd pidfd) {
  auto orphan = std::make_unique<Orphan>(Orphan{pid, std::move(pidfd)});
  sd_event_source* source = nullptr;
  if (sd_event_add_io(loop, &source, orphan->pidfd.get(), EPOLLIN, on_orphan_exit,
                      orphan.get()) < 0) {
    wait_blocking(pid);  // SIGKILLed already: this returns as soon as the kernel has it down.
    return;
  }
  sd_event_source_set_destroy_callback(source,
                                       [](void* p) { delete static_cast<Orphan*>(p); });
  orphan.release();
  sd_event_source_set_floating(source, 1);
  sd_event_source_unref(source);
}

}  // namespace

int open_pidfd(pid_t pid) {
  // Through syscall(): glibc 2.36's <sys/pidfd.h> lacks extern "C", so C++ cannot link it.
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

Result<std::unique_ptr<Child>> Child::spawn(sd_event* loop, const ChildSpec& spec,
                                            ExitHandler on_exit) {
  auto prepared = prepare(spec);
  if (!prepared) return std::unexpected(prepared.error());
  int out[2], report[2];
  if (pipe2(out, O_CLOEXEC) < 0) return fail_errno(errno, "cannot create an output pipe");
  Fd out_read(out[0]), out_write(out[1]);
  if (pipe2(report, O_CLOEXEC) < 0) return fail_errno(errno, "cannot create a pipe");
  Fd report_read(report[0]), report_write(report[1]);
  Fd null_fd(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null_fd) return fail_errno(errno, "cannot open /dev/null");

  pid_t pid = fork();
  if (pid < 0) return fail_errno(errno, "cannot fork for {}", prepared->path);
  if (pid == 0) exec_child(*prepared, null_fd.get(), out_write.get(), report_write.get());

  report_write.reset();
  out_write.reset();
  if (auto report = read_exec_report(report_read.get())) {
    wait_blocking(pid);
    return exec_error(spec, *prepared, *report);
  }
  Fd pidfd(open_pidfd(pid));
  if (!pidfd) {
    int err = errno;
    kill(pid, SIGKILL);
    wait_blocking(pid);
    return fail_errno(err, "cannot open a pidfd for {} (pid {})", prepared->path, pid);
  }
  fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
  std::unique_ptr<Child> child(
      new Child(loop, pid, std::move(pidfd), std::move(out_read), spec.output_limit,
                std::move(on_exit)));
  if (auto watched = child->watch(); !watched) return std::unexpected(watched.error());
  return child;
}

Child::Child(sd_event* loop, pid_t pid, Fd pidfd, Fd output, std::size_t output_limit,
             ExitHandler on_exit)
    : loop_(loop),
      pid_(pid),
      pidfd_(std::move(pidfd)),
      output_fd_(std::move(output)),
      on_exit_(std::move(on_exit)),
      output_(output_limit) {}

Child::~Child() {
  pidfd_source_.reset();
  output_source_.reset();
  deadline_source_.reset();
  if (exit_) return;
  kill(-pid_, SIGKILL);
  reap_in_background(loop_, pid_, std::move(pidfd_));
}

Result<void> Child::watch() {
  sd_event_source* source = nullptr;
  int r = sd_event_add_io(loop_, &source, pidfd_.get(), EPOLLIN, on_pidfd, this);
  if (r < 0) return fail_errno(r, "cannot watch process {}", pid_);
  pidfd_source_.reset(source);
  r = sd_event_add_io(loop_, &source, output_fd_.get(), EPOLLIN, on_output, this);
  if (r < 0) return fail_errno(r, "cannot watch the output of process {}", pid_);
  output_source_.reset(source);
  return {};
}

bool Child::has_exited() const {
  if (exit_) return true;
  pollfd pfd{pidfd_.get(), POLLIN, 0};
  return poll(&pfd, 1, 0) > 0;
}

Result<void> Child::set_deadline(Duration timeout) {
  if (exit_) return {};
  sd_event_source* source = nullptr;
  // 1 ms accuracy: sd-event's default (250 ms) would blur short agent deadlines.
  int r = sd_event_add_time_relative(loop_, &source, CLOCK_BOOTTIME,
                                     static_cast<uint64_t>(timeout.count()) * 1000, 1000,
                                     on_deadline, this);
  if (r < 0) return fail_errno(r, "cannot arm the deadline of process {}", pid_);
  deadline_source_.reset(source);
  return {};
}

Result<void> Child::signal_group(int sig) {
  if (kill(-pid_, sig) < 0 && errno != ESRCH)
    return fail_errno(errno, "cannot send SIG{} to process group {}", signal_name(sig), pid_);
  return {};
}

std::optional<ChildExit> Child::reap_now() {
  if (!exit_) try_reap();
  return exit_;
}

// Collects the exit if there is one; true when the child has been reaped (now or before).
bool Child::try_reap() {
  if (exit_) return true;
  siginfo_t info{};
  if (waitid(P_PIDFD, pidfd_.get(), &info, WEXITED | WNOHANG) < 0 || info.si_pid == 0)
    return false;
  drain_output();
  ChildExit exit;
  exit.end = info.si_code == CLD_EXITED ? ChildEnd::Exited : ChildEnd::Signaled;
  if (timed_out_) exit.end = ChildEnd::Timeout;
  exit.status = info.si_status;
  exit.core_dumped = info.si_code == CLD_DUMPED;
  exit.output = output_.str();
  exit_ = std::move(exit);
  pidfd_source_.reset();
  // Whatever the child left running in the background must not block on a full pipe nobody
  // reads: closing our end gives it EPIPE instead.
  output_source_.reset();
  output_fd_.reset();
  deadline_source_.reset();
  return true;
}

void Child::drain_output() {
  if (!output_fd_) return;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(output_fd_.get(), buffer, sizeof buffer);
    if (n > 0) {
      output_.append(std::string_view(buffer, static_cast<std::size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {  // EOF: every writer is gone.
      output_source_.reset();
      output_fd_.reset();
    }
    return;
  }
}

int Child::on_pidfd(sd_event_source*, int, uint32_t, void* userdata) noexcept {
  auto* self = static_cast<Child*>(userdata);
  if (!self->try_reap()) return 0;
  // The handler may destroy the Child: nothing of `self` is touched after it.
  ExitHandler handler = self->on_exit_;
  if (handler) handler(*self->exit_);
  return 0;
}

int Child::on_output(sd_event_source*, int, uint32_t, void* userdata) noexcept {
  static_cast<Child*>(userdata)->drain_output();
  return 0;
}

int Child::on_deadline(sd_event_source*, uint64_t, void* userdata) noexcept {
  auto* self = static_cast<Child*>(userdata);
  self->timed_out_ = true;
  if (auto r = self->signal_group(SIGKILL); !r)
    log(LogLevel::Err, {}, "{}", r.error().to_string());
  // The pidfd reports the exit (as a timeout) once the kernel has the process down.
  self->deadline_source_.reset();
  return 0;
}

Result<ChildExit> run_child_sync(const ChildSpec& spec, Duration timeout) {
  sd_event* raw = nullptr;
  int r = sd_event_new(&raw);
  if (r < 0) return fail_errno(r, "cannot create an event loop");
  EventPtr loop(raw);
  std::optional<ChildExit> result;
  auto child = Child::spawn(loop.get(), spec, [&](const ChildExit& e) { result = e; });
  if (!child) return std::unexpected(child.error());
  if (auto armed = (*child)->set_deadline(timeout); !armed) return std::unexpected(armed.error());
  while (!result) {
    r = sd_event_run(loop.get(), UINT64_MAX);
    if (r < 0) return fail_errno(r, "cannot run the event loop for {}", spec.argv[0]);
  }
  return *result;
}

}  // namespace clusterd
