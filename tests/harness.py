"""Runs real clusterd daemons and clusterctl for the integration tests and the benchmarks.

Every daemon gets a private directory (config, bus socket, state) and is stopped by PID at the end;
nothing is left running. Waiting is always a poll with a deadline, never a bare sleep.
"""
import json
import os
import signal
import socket
import subprocess
import tempfile
import textwrap
import time

BUILD = os.environ.get("CLUSTERD_BUILD") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "build")
CLUSTERD = os.path.join(BUILD, "daemon", "clusterd")
CLUSTERCTL = os.path.join(BUILD, "cli", "clusterctl")
HERE = os.path.dirname(os.path.abspath(__file__))
AGENTS = os.path.join(HERE, "integration", "agents")


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Polls `predicate` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def reservation_view(text):
    """`clusterd-disk --show-reservation`'s output as {"holder": "<key> <type>" or "none",
    "keys": ["<key>", ...]} (READ RESERVATION and READ KEYS)."""
    view = {"holder": None, "keys": []}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "holder":
            view["holder"] = rest
        elif kind == "key":
            view["keys"].append(rest)
    return view


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    """True when `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def pgroup_members(pgid):
    """PIDs (not zombies) whose process group is `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


class Daemon:
    """One clusterd process with its own config, socket and state directory."""

    def __init__(self, workdir, config_text, node="node1"):
        self.dir = workdir
        self.node = node
        self.config = os.path.join(workdir, "cluster.yaml")
        self.bus = os.path.join(workdir, "bus")
        self.state = os.path.join(workdir, "state")
        self.log = os.path.join(workdir, "clusterd.log")
        self.proc = None
        self.write_config(config_text)

    def write_config(self, text):
        with open(self.config, "w") as f:
            f.write(textwrap.dedent(text))

    def start(self, wait=True):
        os.makedirs(self.state, exist_ok=True)
        self.logfile = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [CLUSTERD, "--config", self.config, "--node", self.node, "--bus-socket", self.bus,
             "--state-dir", self.state, "--log-target", "stderr", "--log-level", "debug"],
            stdout=self.logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if wait:
            wait_for(lambda: self.proc.poll() is not None or self.ctl_ok("status"),
                     timeout=15, what="clusterd to answer on its bus")
            assert self.proc.poll() is None, f"clusterd exited early:\n{self.log_text()}"
        return self

    def ctl_ok(self, *args):
        return self.ctl(*args, check=False).returncode == 0

    def ctl(self, *args, check=True, user=None, timeout=60):
        """Runs clusterctl against this daemon; `user` = uid to run as (via setpriv)."""
        cmd = [CLUSTERCTL, "--bus", self.bus, *args]
        if user is not None:
            cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + cmd
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"clusterctl {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}\nlog:\n{self.log_text()}")
        return result

    def json(self, *args):
        return json.loads(self.ctl(*args, "--json").stdout)

    def status(self):
        return self.json("status")

    def group(self, name):
        return next(g for g in self.status()["groups"] if g["name"] == name)

    def resource(self, group, name):
        return next(r for r in self.group(group)["resources"] if r["name"] == name)

    def wait_group(self, name, state, timeout=15):
        return wait_for(lambda: (g := self.group(name))["state"] == state and g,
                        timeout=timeout, what=f"group {name} {state}")

    def wait_resource(self, group, name, predicate, timeout=15, what=None):
        return wait_for(lambda: (r := self.resource(group, name)) and predicate(r) and r,
                        timeout=timeout, what=what or f"resource {group}/{name}")

    def events(self):
        return self.json("events")

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-6000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends `sig` and waits for the exit; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def make_workdir():
    """A short private directory (UNIX socket paths are limited to 108 bytes) that others may
    traverse (tests run clusterctl as an unprivileged user too)."""
    path = tempfile.mkdtemp(prefix="clusterd-")
    os.chmod(path, 0o755)
    return path
