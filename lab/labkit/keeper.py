"""The keeper: one small process per lab that starts the lab's long-running processes (clusterd
in each node, tgtd) and reaps them.

Why: `clusterlab up` returns, so whatever it starts is orphaned. Orphans go to PID 1, and where
PID 1 does not reap (containers, some VMs) every killed daemon would stay a zombie. The keeper
is a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so the daemons, and what *they* start
(agents), are reaped by it; it also remembers how each one ended, for `clusterlab status`.

Protocol: one JSON line per connection on KEEPER_SOCKET in the lab directory, one JSON reply.
  {"op": "spawn", "argv": [...], "log": PATH, "env": {...}} -> {"pid": N} | {"error": "..."}
  {"op": "exit", "pid": N} -> {"status": "exited 0" | "killed by SIGKILL" | null}
"""
import ctypes
import json
import os
import selectors
import signal
import socket
import subprocess
import sys

from .run import LabError

KEEPER_SOCKET = "keeper.sock"
_PR_SET_CHILD_SUBREAPER = 36
_MAX_EXITS = 1000


def describe_status(status):
    """A wait status as words ("exited 0", "killed by SIGKILL")."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited {os.WEXITSTATUS(status)}"


class Keeper:
    def __init__(self, lab_dir):
        self.path = os.path.join(lab_dir, KEEPER_SOCKET)
        self.exits = {}
        self.stopping = False

    def spawn(self, argv, log, env):
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            return os.posix_spawnp(
                argv[0], argv, env,
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                              (os.POSIX_SPAWN_DUP2, fd, 1), (os.POSIX_SPAWN_DUP2, fd, 2)],
                setsid=True, setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD,
                                        signal.SIGTERM))
        finally:
            os.close(fd)

    def answer(self, request):
        op = request.get("op")
        if op == "spawn":
            try:
                return {"pid": self.spawn(request["argv"], request["log"], request["env"])}
            except OSError as e:
                return {"error": f"cannot start {request['argv'][0]}: {e.strerror}"}
        if op == "exit":
            return {"status": self.exits.get(str(request["pid"]))}
        return {"error": f"unknown request {op!r}"}

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if len(self.exits) >= _MAX_EXITS:
                self.exits.pop(next(iter(self.exits)))
            self.exits[str(pid)] = describe_status(status)

    def serve_one(self, server):
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            try:
                request = json.loads(_read_line(conn))
                reply = self.answer(request)
            except (OSError, ValueError, KeyError) as e:
                reply = {"error": f"bad request: {e}"}
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                pass

    def serve(self, ready_fd):
        """Runs until SIGTERM; writes one line to `ready_fd` once it accepts requests."""
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._on_term)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        server.bind(self.path)
        server.listen(16)
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
        sel = selectors.DefaultSelector()
        sel.register(server, selectors.EVENT_READ)
        sel.register(wake_r, selectors.EVENT_READ)
        while not self.stopping:
            for key, _ in sel.select():
                if key.fileobj is server:
                    self.serve_one(server)
                else:
                    _drain(wake_r)
            self.reap()

    def _on_term(self, *_):
        self.stopping = True


def _drain(fd):
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _read_line(conn):
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode()


def main(lab_dir, ready_fd):
    """Entry point of `clusterlab _keeper`."""
    os.chdir("/")
    Keeper(lab_dir).serve(ready_fd)


def start(script, lab_dir, log):
    """Starts the keeper of `lab_dir` (detached, own session) and waits until it is ready.
    Returns its PID."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    with open(log, "ab") as logfile:
        proc = subprocess.Popen(
            [sys.executable, script, "_keeper", lab_dir, str(ready_w)], pass_fds=(ready_w,),
            stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
            start_new_session=True)
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as ready:
        line = ready.readline()  # EOF without a line: the keeper died before listening
    if line != b"ready\n":
        proc.wait()
        raise LabError(f"the lab's keeper process failed to start; see {log}")
    return proc.pid


def request(lab_dir, message, timeout=10):
    """Sends one request to the keeper of `lab_dir` and returns its reply."""
    path = os.path.join(lab_dir, KEEPER_SOCKET)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(json.dumps(message).encode() + b"\n")
            reply = json.loads(_read_line(s))
    except (OSError, ValueError) as e:
        raise LabError(f"the lab's keeper ({path}) did not answer: {e}")
    if "error" in reply:
        raise LabError(reply["error"])
    return reply


def spawn(lab_dir, argv, log, env):
    """Starts `argv` as a child of the keeper with output to `log`; returns its PID."""
    return request(lab_dir, {"op": "spawn", "argv": argv, "log": log, "env": env})["pid"]


def exit_status(lab_dir, pid):
    """How the keeper's child `pid` ended ("exited 0"), or None (running or unknown)."""
    try:
        return request(lab_dir, {"op": "exit", "pid": pid}, timeout=2).get("status")
    except LabError:
        return None
