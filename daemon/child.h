// Child processes on the event loop: spawn a command in a session of its own, capture the tail
// of its output, see its exit at once through a pidfd, and enforce a deadline by killing its
// whole process group (architecture rule 4). Never polls, needs no SIGCHLD handler.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <systemd/sd-event.h>

#include "clock.h"
#include "error.h"
#include "handle.h"

namespace clusterd {

/// What to run and how.
struct ChildSpec {
  /// argv[0] is the program: a path, or a name looked up in the child's PATH.
  std::vector<std::string> argv;
  /// The complete environment, "NAME=value" each.
  std::vector<std::string> env;
  std::string cwd = "/";        ///< Working directory; empty: "/".
  std::string user;             ///< Name or uid; empty: keep ours.
  std::string group;            ///< Name or gid; empty: the user's primary group (or ours).
  std::optional<mode_t> umask;  ///< Empty: 022.
  std::size_t output_limit = 4096;  ///< Keep this many of the last bytes of output.
  bool capture_stderr = true;       ///< false: stderr goes to /dev/null (e.g. for meta-data XML).
  /// Given to the child as its fd 3 (e.g. one end of a socketpair for a helper's control
  /// channel); -1: none. The caller keeps its own descriptor.
  int pass_fd = -1;
  /// Non-empty: the child runs in a UTS namespace of its own with this host name
  /// (unshare(CLONE_NEWUTS) and sethostname before exec; needs CAP_SYS_ADMIN).
  std::string hostname;
};

/// How a child ended.
enum class ChildEnd {
  Exited,    ///< exit() with `status`.
  Signaled,  ///< Killed by signal `status`.
  Timeout,   ///< Its deadline passed; we SIGKILLed its process group.
};
const char* to_string(ChildEnd end);

/// A child's exit, with the tail of its output.
struct ChildExit {
  ChildEnd end = ChildEnd::Exited;
  int status = 0;  ///< Exit status, or the signal number.
  bool core_dumped = false;
  std::string output;  ///< Last bytes of stdout+stderr.

  /// "exited with status 3", "killed by signal 9", "timed out".
  std::string describe() const;
  /// The last non-empty line of the output, trimmed; empty when there is none.
  std::string last_line() const;
  /// True for exit status 0.
  bool success() const { return end == ChildEnd::Exited && status == 0; }
};

/// The last `capacity` bytes written to it.
class TailBuffer {
 public:
  explicit TailBuffer(std::size_t capacity) : capacity_(capacity) {}
  /// Appends, dropping the oldest bytes past the capacity.
  void append(std::string_view data);
  /// The content, oldest first.
  const std::string& str() const { return data_; }

 private:
  std::size_t capacity_;
  std::string data_;
};

/// The last non-empty line of `text`, trimmed of surrounding whitespace.
std::string last_line_of(std::string_view text);

/// A running (or exited, not yet destroyed) child process in its own session and process group.
/// Destroying it while the process runs SIGKILLs the process group and drops the event sources;
/// the process is still reaped later, from the loop, which must outlive the Child. Once the
/// process has been reaped, destroying it leaves the group alone (an OCF agent's background
/// service lives there); signal_group() first if that is wanted.
class Child {
 public:
  using ExitHandler = std::function<void(const ChildExit&)>;
  /// Forks and execs `spec`; returns once exec succeeded, or an error saying why it did not
  /// ("cannot execute /x: No such file or directory"). `on_exit` runs on `loop` once the child
  /// has been reaped; it may destroy the Child.
  static Result<std::unique_ptr<Child>> spawn(sd_event* loop, const ChildSpec& spec,
                                              ExitHandler on_exit);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  /// Process id (also its process group and session id).
  pid_t pid() const { return pid_; }
  /// True until the child has been reaped.
  bool running() const { return !exit_; }
  /// True when the process has exited, whether or not the loop has reaped it yet.
  bool has_exited() const;
  /// Its exit, once reaped.
  const std::optional<ChildExit>& exit() const { return exit_; }
  /// The output so far (the last ChildSpec::output_limit bytes).
  const std::string& output() const { return output_.str(); }

  /// Kills the process group with SIGKILL `timeout` from now, and then reports ChildEnd::Timeout.
  /// Replaces an earlier deadline.
  Result<void> set_deadline(Duration timeout);
  /// Sends `sig` to the whole process group. ESRCH (nobody left) is success.
  Result<void> signal_group(int sig);
  /// Reaps the child now if it has exited, without calling the exit handler; returns its exit.
  std::optional<ChildExit> reap_now();

 private:
  Child(sd_event* loop, pid_t pid, Fd pidfd, Fd output, std::size_t output_limit,
        ExitHandler on_exit);
  Result<void> watch();
  static int on_pidfd(sd_event_source* source, int fd, uint32_t events, void* userdata) noexcept;
  static int on_output(sd_event_source* source, int fd, uint32_t events, void* userdata) noexcept;
  static int on_deadline(sd_event_source* source, uint64_t usec, void* userdata) noexcept;
  bool try_reap();
  void drain_output();

  sd_event* loop_;
  pid_t pid_;
  Fd pidfd_;
  Fd output_fd_;
  ExitHandler on_exit_;
  EventSourcePtr pidfd_source_;
  EventSourcePtr output_source_;
  EventSourcePtr deadline_source_;
  TailBuffer output_;
  bool timed_out_ = false;
  std::optional<ChildExit> exit_;
};

/// Runs `spec` to completion on a private event loop, for the few places that must wait (OCF
/// meta-data during configuration loading). The child is killed after `timeout`.
Result<ChildExit> run_child_sync(const ChildSpec& spec, Duration timeout);

/// A PATH for children that does not depend on how the daemon was started.
inline constexpr const char* kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// pidfd_open(2) for `pid`; -1 with errno set on failure.
int open_pidfd(pid_t pid);
/// Name of signal `sig` without "SIG" ("TERM"), or its number as text.
std::string signal_name(int sig);
/// Parses "TERM", "SIGTERM" or "15" (case-insensitive names).
Result<int> parse_signal(const std::string& text);

}  // namespace clusterd
