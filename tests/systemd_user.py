"""A real `systemd --user` manager for tests and benchmarks, as the lab runs one per node.

It runs in a mount namespace of its own with a tmpfs on /run/systemd (holding the
`/run/systemd/system` marker systemd checks for) and its own XDG_RUNTIME_DIR; clients reach it at
$XDG_RUNTIME_DIR/systemd/private, peer-to-peer, without Hello.

Before it starts, the manager is moved into a cgroup of its own (`own_cgroup`): a user manager
places its units relative to its own cgroup, stripped of a trailing `init.scope`, so two managers
started from the same cgroup (here everything runs in /init.scope) would both use /app.slice and
stopping a unit of one would kill the processes of the other's unit of the same name. On this
machine cgroup v1 and v2 are mounted side by side (hybrid: /sys/fs/cgroup/unified and the
name=systemd hierarchy); on a pure v2 machine /sys/fs/cgroup itself is the hierarchy. The cgroups
are removed when the manager has stopped.
"""
import os
import signal
import subprocess
import uuid

from harness import wait_for

SYSTEMD = "/lib/systemd/systemd"
CGROUP_ROOT = "/sys/fs/cgroup"


def available():
    """True when this machine can run the manager (root and systemd installed)."""
    return os.access(SYSTEMD, os.X_OK) and os.geteuid() == 0


def cgroup_hierarchies():
    """The hierarchies systemd tracks processes in: cgroup v2, and on hybrid systems the
    name=systemd v1 hierarchy too."""
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        return [CGROUP_ROOT]
    return [os.path.join(CGROUP_ROOT, h) for h in ("unified", "systemd")
            if os.path.exists(os.path.join(CGROUP_ROOT, h, "cgroup.procs"))]


class UserManager:
    """A systemd --user manager; stopped by PID. Units go in `self.units`."""

    def __init__(self, workdir, own_cgroup=True, name=None):
        self.runtime = os.path.join(workdir, "xdg")
        os.makedirs(self.runtime, mode=0o700)
        os.makedirs("/run/systemd", exist_ok=True)  # the mount point; stays empty on the host
        self.env = dict(os.environ, XDG_RUNTIME_DIR=self.runtime)
        self.private = os.path.join(self.runtime, "systemd", "private")
        self.units = os.path.join(self.runtime, "systemd", "user")
        self.cgroups = []
        script = ""
        if own_cgroup:
            name = name or f"clusterd-test-{uuid.uuid4().hex[:8]}"
            self.cgroups = [os.path.join(h, name) for h in cgroup_hierarchies()]
            # The shell moves itself, then execs the manager: it starts inside its own cgroup.
            script = "".join(f"mkdir {c} && echo $$ > {c}/cgroup.procs && " for c in self.cgroups)
        script += ("mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && "
                   f"exec {SYSTEMD} --user")
        self.proc = subprocess.Popen(["unshare", "-m", "sh", "-c", script], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: self.proc.poll() is not None or self.systemctl(
                "show", "-p", "SystemState", "--value",
                check=False).stdout.strip() in ("running", "degraded"),
                timeout=20, what="the user manager")
            assert self.proc.poll() is None, "the user manager exited at start"
        except AssertionError:
            self.stop()
            raise
        os.makedirs(self.units, exist_ok=True)

    def systemctl(self, *args, check=True):
        result = subprocess.run(["systemctl", "--user", *args], env=self.env, capture_output=True,
                                text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"systemctl --user {' '.join(args)}: {result.stderr}")
        return result

    def show(self, unit, prop):
        return self.systemctl("show", unit, "-p", prop, "--value").stdout.strip()

    def install(self, name, text):
        """Writes a unit file and reloads the manager."""
        with open(os.path.join(self.units, name), "w") as f:
            f.write(text)
        self.systemctl("daemon-reload")

    def unit_cgroup(self, unit):
        """The cgroup path systemd gave `unit` (ControlGroup)."""
        return self.show(unit, "ControlGroup")

    def stop(self):
        """SIGTERM: the manager stops its units and exits. Then its cgroups are removed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for cgroup in self.cgroups:
            remove_cgroup(cgroup)


def remove_cgroup(path):
    """Removes a cgroup tree bottom-up, killing (by PID) what the manager left in it."""
    if not os.path.isdir(path):
        return
    for root, dirs, _ in os.walk(path, topdown=False):
        for d in dirs:
            _rmdir(os.path.join(root, d))
    _rmdir(path)


def _rmdir(path):
    try:
        os.rmdir(path)
        return
    except OSError:
        pass
    with open(os.path.join(path, "cgroup.procs")) as f:
        pids = [int(p) for p in f.read().split()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: _try_rmdir(path), timeout=10, what=f"removing cgroup {path}")


def _try_rmdir(path):
    try:
        os.rmdir(path)
        return True
    except OSError:
        return False
