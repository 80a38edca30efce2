"""Node namespaces: each node is a network namespace plus a mount and a UTS namespace pinned on
files in the lab directory, entered with nsenter.

Inside a node's mount namespace, as on a machine of its own: /etc/clusterd and /var/lib/clusterd
are bind mounts of the node's directories in the lab directory; the whole of /run is the node's
own (so /run/clusterd, and the state files OCF agents keep in /run/resource-agents, never collide
between nodes); /sys is a sysfs of the node's network namespace (as `ip netns exec` does), so
/sys/class/net lists the node's own interfaces. /tmp stays the host's: build directories and test
files often live there and must be visible in the nodes.
"""
import os

from . import mounts
from .run import LabError, netns_path, nsenter, run

# Bind mounts in the node: lab directory NODE/KEY on PATH. /run comes last: it hides the lab
# directory (under the host's /run) from the node.
NODE_DIRS = {"etc": "/etc/clusterd", "lib": "/var/lib/clusterd", "run": "/run"}
# One directory of the lab, mounted at the same place in every node: it stands in for shared
# storage (the ledger's data) until disk resources exist.
SHARED = "/var/lib/clusterlab-shared"
HOST_TARGETS = ("/etc/clusterd", "/var/lib/clusterd", SHARED)
RUN_SUBDIRS = ("clusterd", "lock", "resource-agents")
BUS = "/run/clusterd/bus"
CONFIG = "/etc/clusterd/cluster.yaml"


class NodePaths:
    """Where one node's things are on the host."""

    def __init__(self, lab_dir, endpoint):
        self.endpoint = endpoint
        self.name = endpoint.name
        self.dir = os.path.join(lab_dir, endpoint.name)
        self.shared = os.path.join(lab_dir, "shared")
        self.mnt = os.path.join(lab_dir, "ns", f"{endpoint.name}.mnt")
        self.uts = os.path.join(lab_dir, "ns", f"{endpoint.name}.uts")
        self.net = netns_path(endpoint.netns)
        self.log = os.path.join(self.dir, "clusterd.log")

    def host_path(self, kind):
        """Host path of the node's private directory `kind` (a key of NODE_DIRS)."""
        return os.path.join(self.dir, kind)

    def on_host(self, path):
        """Host path of `path` inside the node, for paths under NODE_DIRS."""
        for kind, target in NODE_DIRS.items():
            if path == target or path.startswith(target.rstrip("/") + "/"):
                return os.path.join(self.host_path(kind), os.path.relpath(path, target))
        raise ValueError(f"{path} is not private to the node")

    @property
    def bus_on_host(self):
        return self.on_host(BUS)

    def enter(self):
        """nsenter prefix for running a command inside the node."""
        return nsenter(net=self.net, mount=self.mnt, uts=self.uts)


def ensure_host_dirs(note):
    """Bind mounts need their targets to exist on the host; creates the missing ones and calls
    `note(path)` for each so the last `down` can remove them again."""
    for target in HOST_TARGETS:
        if not os.path.isdir(target):
            os.makedirs(target, mode=0o755)
            note(target)


def make_dirs(paths):
    os.makedirs(paths.shared, mode=0o755, exist_ok=True)
    for kind in NODE_DIRS:
        os.makedirs(paths.host_path(kind), mode=0o755, exist_ok=True)
    for sub in RUN_SUBDIRS:
        os.makedirs(os.path.join(paths.host_path("run"), sub), mode=0o755, exist_ok=True)
    os.chmod(paths.host_path("etc"), 0o700)


def pin_namespaces(state, paths):
    """Creates the node's mount and UTS namespaces, pinned on files (recorded first)."""
    for pin in (paths.mnt, paths.uts):
        state.record("mount", path=pin)
        open(pin, "a").close()
    run(["unshare", f"--mount={paths.mnt}", f"--uts={paths.uts}", "--propagation", "private",
         "true"])


def _inside(paths, argv):
    return run(paths.enter() + argv)


def setup_inside(paths):
    """Hostname, /sys and the node's private directories."""
    _inside(paths, ["hostname", paths.name])
    _inside(paths, ["mount", "-t", "sysfs", "-o", "nosuid,nodev,noexec", "sysfs", "/sys"])
    drop_namespace_pins(paths)
    # Before /run is replaced by the node's own: the shared directory lives under the host's.
    _inside(paths, ["mount", "--bind", paths.shared, SHARED])
    for kind, target in NODE_DIRS.items():
        _inside(paths, ["mount", "--bind", paths.host_path(kind), target])


def drop_namespace_pins(paths):
    """The new mount namespace began as a copy of the host's, with every namespace pinned there
    at that moment (other labs' netns and pins); unmount those copies, or they would keep other
    labs' namespaces alive after those labs are gone."""
    for point, fstype in reversed(mounts.mounts_in(paths.mnt)):
        if fstype == "nsfs":
            run(paths.enter() + ["umount", "-l", point], check=False)


def write_file(path, data, mode):
    """Writes `data` (bytes) to `path` with `mode`, never briefly readable by others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def write_config(paths, config_text, authkey):
    etc = paths.host_path("etc")
    write_file(os.path.join(etc, "cluster.yaml"), config_text.encode(), 0o644)
    write_file(os.path.join(etc, "authkey"), authkey, 0o600)


def daemon_argv(paths, clusterd):
    return paths.enter() + [clusterd, "--config", CONFIG, "--node", paths.name,
                            "--log-target", "stderr"]


def check_binary(path, what):
    if os.sep in path and not os.access(path, os.X_OK):
        raise LabError(f"{what} {path} is missing or not executable; build it or pass --build")
