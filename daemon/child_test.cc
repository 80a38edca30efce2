#include "child.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "loop_test_util.h"

namespace clusterd {
namespace {

using testing::TestLoop;
using namespace std::chrono_literals;

ChildSpec shell(std::string script) {
  ChildSpec spec;
  spec.argv = {"/bin/sh", "-c", std::move(script)};
  spec.env = {std::string("PATH=") + kDefaultPath};
  return spec;
}

// Spawns `spec` and runs the loop until it has been reaped.
ChildExit run(TestLoop& loop, const ChildSpec& spec, Duration deadline = 0ms) {
  std::optional<ChildExit> result;
  auto child = Child::spawn(loop.get(), spec, [&](const ChildExit& e) { result = e; });
  REQUIRE(child);
  if (deadline.count() > 0) REQUIRE((*child)->set_deadline(deadline));
  REQUIRE(loop.run_until([&] { return result.has_value(); }));
  return *result;
}

}  // namespace

TEST_CASE("ChildEnd has a name for every value") {
  for (auto end : {ChildEnd::Exited, ChildEnd::Signaled, ChildEnd::Timeout})
    CHECK(std::string(to_string(end)) != "?");
}

TEST_CASE("TailBuffer keeps the last bytes") {
  TailBuffer tail(8);
  tail.append("abc");
  CHECK(tail.str() == "abc");
  tail.append("defghij");
  CHECK(tail.str() == "cdefghij");
  tail.append("0123456789");
  CHECK(tail.str() == "23456789");
}

TEST_CASE("last_line_of finds the last non-empty line") {
  CHECK(last_line_of("one\ntwo\n\n  ") == "two");
  CHECK(last_line_of("  only  ") == "only");
  CHECK(last_line_of("") == "");
  CHECK(last_line_of("\n\n") == "");
}

TEST_CASE("signals parse by name and number") {
  CHECK(parse_signal("TERM").value() == SIGTERM);
  CHECK(parse_signal("sigint").value() == SIGINT);
  CHECK(parse_signal("9").value() == SIGKILL);
  CHECK_FALSE(parse_signal("NOPE"));
  CHECK_FALSE(parse_signal("0"));
  CHECK(signal_name(SIGHUP) == "HUP");
}

TEST_CASE("a child's exit status and output are reported") {
  TestLoop loop;
  auto exit = run(loop, shell("echo hello; echo oops >&2; exit 3"));
  CHECK(exit.end == ChildEnd::Exited);
  CHECK(exit.status == 3);
  CHECK(exit.describe() == "exited with status 3");
  CHECK(exit.output == "hello\noops\n");
  CHECK(exit.last_line() == "oops");
  CHECK_FALSE(exit.success());
}

TEST_CASE("a child killed by a signal is described") {
  TestLoop loop;
  auto exit = run(loop, shell("kill -9 $$"));
  CHECK(exit.end == ChildEnd::Signaled);
  CHECK(exit.status == SIGKILL);
  CHECK(exit.describe() == "killed by signal 9");
}

TEST_CASE("exec failures are reported by spawn") {
  TestLoop loop;
  ChildSpec spec;
  spec.argv = {"/nonexistent/x"};
  auto child = Child::spawn(loop.get(), spec, {});
  REQUIRE_FALSE(child);
  CHECK(child.error().to_string() == "cannot execute /nonexistent/x: No such file or directory");

  testing::TempDir dir;
  std::string plain = dir.path() + "/plain";
  Fd(open(plain.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  spec.argv = {plain};
  child = Child::spawn(loop.get(), spec, {});
  REQUIRE_FALSE(child);
  CHECK(child.error().to_string() == "cannot execute " + plain + ": Permission denied");

  spec.argv = {"no-such-program-here"};
  child = Child::spawn(loop.get(), spec, {});
  REQUIRE_FALSE(child);
  CHECK(child.error().to_string().starts_with("cannot execute no-such-program-here"));

  spec = shell("true");
  spec.cwd = "/nonexistent";
  child = Child::spawn(loop.get(), spec, {});
  REQUIRE_FALSE(child);
  CHECK(child.error().to_string() == "cannot change to directory /nonexistent: No such file or directory");

  spec = shell("true");
  spec.user = "no-such-user-here";
  CHECK_FALSE(Child::spawn(loop.get(), spec, {}));
}

TEST_CASE("a child gets its environment, directory and umask, and a PATH search") {
  TestLoop loop;
  ChildSpec spec;
  spec.argv = {"sh", "-c", "echo $FOO; pwd; umask"};
  spec.env = {"FOO=bar", "PATH=/usr/bin:/bin"};
  spec.cwd = "/tmp";
  spec.umask = 077;
  auto exit = run(loop, spec);
  CHECK(exit.success());
  CHECK(exit.output == "bar\n/tmp\n0077\n");
}

TEST_CASE("a child runs in its own session with stdin from /dev/null and no inherited fds") {
  TestLoop loop;
  Fd leaked(open("/dev/null", O_RDONLY));  // no O_CLOEXEC: the child must close it anyway
  REQUIRE(leaked);
  auto exit = run(loop, shell(fmt::format(
                            "test -e /proc/$$/fd/{} && echo leaked; readlink /proc/$$/fd/0; "
                            "test $(ps -o sid= -p $$) -eq $$ && echo leader",
                            leaked.get())));
  CHECK(exit.success());
  CHECK(exit.output == "/dev/null\nleader\n");
}

TEST_CASE("a passed descriptor arrives as fd 3 and nothing else is inherited") {
  TestLoop loop;
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  Fd ours(sv[0]), theirs(sv[1]);
  auto spec = shell("echo hello >&3; test -e /proc/$$/fd/4 && echo leaked; echo done");
  spec.pass_fd = theirs.get();
  auto exit = run(loop, spec);
  CHECK(exit.success());
  CHECK(exit.output == "done\n");
  char buf[16] = {};
  CHECK(::read(ours.get(), buf, sizeof buf) == 6);
  CHECK(std::string(buf) == "hello\n");
}

TEST_CASE("a child starts at niceness 0 whatever the daemon's") {
  TestLoop loop;
  int before = getpriority(PRIO_PROCESS, 0);
  REQUIRE(setpriority(PRIO_PROCESS, 0, 5) == 0);  // raising niceness needs no privilege
  auto exit = run(loop, shell("cut -d' ' -f19 /proc/$$/stat"));
  setpriority(PRIO_PROCESS, 0, before);  // back (root) or stays 5 (tests run as root here)
  CHECK(exit.success());
  CHECK(exit.output == "0\n");
}

TEST_CASE("a child can run as another user") {
  if (geteuid() != 0) return;
  TestLoop loop;
  auto spec = shell("id -u; id -g");
  spec.user = "nobody";
  spec.group = "nogroup";
  auto exit = run(loop, spec);
  CHECK(exit.success());
  CHECK(exit.output == "65534\n65534\n");
}

TEST_CASE("a child starts with no signals blocked even if the daemon blocks them") {
  TestLoop loop;
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, &old);
  std::optional<ChildExit> result;
  auto child = Child::spawn(loop.get(), shell("exec sleep 100"),
                            [&](const ChildExit& e) { result = e; });
  sigprocmask(SIG_SETMASK, &old, nullptr);
  REQUIRE(child);
  REQUIRE((*child)->signal_group(SIGTERM));
  REQUIRE(loop.run_until([&] { return result.has_value(); }));
  CHECK(result->end == ChildEnd::Signaled);
  CHECK(result->status == SIGTERM);
}

TEST_CASE("a deadline kills the whole process group, including a grandchild ignoring TERM") {
  TestLoop loop;
  std::optional<ChildExit> result;
  auto child = Child::spawn(
      loop.get(), shell("(trap '' TERM; exec sleep 1000) & echo $!; exec sleep 1000"),
      [&](const ChildExit& e) { result = e; });
  REQUIRE(child);
  pid_t pgid = (*child)->pid();
  REQUIRE(loop.run_until([&] { return !(*child)->output().empty(); }));
  pid_t grandchild = std::atoi((*child)->output().c_str());
  REQUIRE(grandchild > 0);
  CHECK_FALSE(testing::process_gone(grandchild));

  auto started = mono_now();
  REQUIRE((*child)->set_deadline(200ms));
  REQUIRE(loop.run_until([&] { return result.has_value(); }));
  CHECK(mono_now().ms_since(started) >= 200);
  CHECK(mono_now().ms_since(started) < 2000);
  CHECK(result->end == ChildEnd::Timeout);
  CHECK(result->describe() == "timed out; its process group was killed");
  CHECK(loop.run_until([&] { return testing::group_gone(pgid); }, 2s));
  CHECK(testing::process_gone(grandchild));
}

TEST_CASE("destroying a Child kills its process group and reaps it from the loop") {
  TestLoop loop;
  bool called = false;
  auto child = Child::spawn(loop.get(), shell("sleep 1000 & exec sleep 1000"),
                            [&](const ChildExit&) { called = true; });
  REQUIRE(child);
  pid_t pid = (*child)->pid();
  CHECK((*child)->running());
  CHECK_FALSE((*child)->has_exited());
  child->reset();
  // Reaped by the loop: the pid disappears completely (not even a zombie is left).
  CHECK(loop.run_until([&] { return kill(pid, 0) < 0 && errno == ESRCH; }, 2s));
  CHECK(loop.run_until([&] { return testing::group_gone(pid); }, 2s));
  CHECK_FALSE(called);
}

TEST_CASE("reap_now collects an exit without calling the handler") {
  TestLoop loop;
  bool called = false;
  auto child = Child::spawn(loop.get(), shell("exit 4"), [&](const ChildExit&) { called = true; });
  REQUIRE(child);
  // A pidfd becomes readable when the child exits: wait for that without dispatching.
  Fd pidfd(open_pidfd((*child)->pid()));
  REQUIRE(pidfd);
  pollfd pfd{pidfd.get(), POLLIN, 0};
  REQUIRE(poll(&pfd, 1, 5000) == 1);
  REQUIRE((*child)->has_exited());
  auto exit = (*child)->reap_now();
  REQUIRE(exit);
  CHECK(exit->status == 4);
  CHECK_FALSE((*child)->running());
  loop.run_for(50ms);
  CHECK_FALSE(called);
}

TEST_CASE("run_child_sync waits for the child, with a deadline") {
  auto ok = run_child_sync(shell("echo done"), 2s);
  REQUIRE(ok);
  CHECK(ok->output == "done\n");
  auto slow = run_child_sync(shell("sleep 100"), 100ms);
  REQUIRE(slow);
  CHECK(slow->end == ChildEnd::Timeout);
}

}  // namespace clusterd
