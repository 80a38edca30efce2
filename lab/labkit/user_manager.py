"""A real `systemd --user` manager per node (`clusterlab up --systemd`), for `service` resources.

Recipe (tests/systemd_user.py explains the why of each step):
- the manager first moves into a cgroup of its own, `clusterlab-PREFIX-NODE`, in every hierarchy
  systemd tracks processes in (hybrid here: unified and name=systemd), or units of the same name
  on different nodes would share a cgroup and stopping one would kill the other's processes;
  that happens on the host side, before entering the node;
- /var/lib/clusterd is made shared in the node first, and the manager's `unshare -m` makes its
  copy a slave: a disk mounted there by clusterd (in the node's namespace) appears to the units;
- then, inside the node's namespaces, `unshare -m`: a tmpfs on /run/systemd with the
  /run/systemd/system marker, and the cgroup hierarchies mounted again (the node's /sys is a sysfs
  of its own, without them);
- XDG_RUNTIME_DIR=/run/user/0 in the node (NODE/run/user/0 on the host): its private socket is
  /run/user/0/systemd/private, which clusterd gets as CLUSTERD_SYSTEMD_BUS, and user units live
  in /run/user/0/systemd/user.

The manager is one of the node's extra processes (tag `systemd`): kill-node kills it with its
units, start-node starts it again (after clusterd, which reconnects to it), and `down` kills it,
then removes its cgroups.
"""
import os
import time

from .run import LabError, run

SYSTEMD = "/lib/systemd/systemd"
CGROUP_ROOT = "/sys/fs/cgroup"
RUNTIME_DIR = "/run/user/0"
PRIVATE = RUNTIME_DIR + "/systemd/private"
UNIT_DIR = RUNTIME_DIR + "/systemd/user"
TAG = "systemd"
# Where the lab's disk resources mount their file systems (the ledger LUN on
# /var/lib/clusterd/ledger): a bind mount of each node's own directory (nodes.py).
SHARED_MOUNTS = ("/var/lib/clusterd",)
READY_TIMEOUT = 20.0


def hierarchies():
    """(host path, mount arguments inside the node) of each hierarchy systemd tracks."""
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        return [(CGROUP_ROOT, None)]
    found = []
    if os.path.exists(os.path.join(CGROUP_ROOT, "unified", "cgroup.procs")):
        found.append((os.path.join(CGROUP_ROOT, "unified"), "-t cgroup2 cgroup2"))
    if os.path.exists(os.path.join(CGROUP_ROOT, "systemd", "cgroup.procs")):
        found.append((os.path.join(CGROUP_ROOT, "systemd"), "-t cgroup -o none,name=systemd cgroup"))
    return found


def cgroup_name(prefix, node):
    return f"clusterlab-{prefix}-{node}"


def cgroups(prefix, node):
    """Host paths of the manager's cgroups."""
    return [os.path.join(path, cgroup_name(prefix, node)) for path, _ in hierarchies()]


def _inner_script():
    """Runs inside the node after `unshare -m`."""
    steps = ["mount -t tmpfs tmpfs /run/systemd", "mkdir -p /run/systemd/system"]
    found = hierarchies()
    if found and found[0][1] is None:  # pure cgroup v2: one mount on /sys/fs/cgroup
        steps.append("mount -t cgroup2 cgroup2 /sys/fs/cgroup")
    elif found:
        steps.append("mount -t tmpfs cgroup /sys/fs/cgroup")
        for path, args in found:
            target = os.path.join(CGROUP_ROOT, os.path.basename(path))
            steps += [f"mkdir -p {target}", f"mount {args} {target}"]
    steps.append(f"exec {SYSTEMD} --user")
    return " && ".join(steps)


def argv(prefix, node, enter):
    """The manager's command line, started from the host's mount namespace: join its cgroups,
    then enter the node (`enter`: the node's nsenter prefix) and start systemd."""
    moves = "".join(f"mkdir -p {c} && echo $$ > {c}/cgroup.procs && " for c in cgroups(prefix, node))
    inner = " ".join(enter) + " unshare -m --propagation slave sh -c '" + _inner_script() + "'"
    return ["sh", "-c", moves + "exec " + inner]


def share_mounts(enter):
    """Makes the node's SHARED_MOUNTS shared, before its manager starts: the manager's mount
    namespace (`unshare -m --propagation slave`) then receives what the node mounts there later,
    such as a disk resource's file system, as units on a real host see what clusterd mounts; the
    rest of the node stays private, and nothing the manager mounts flows back."""
    for path in SHARED_MOUNTS:
        run(enter + ["mount", "--make-shared", path])


def prepare(node_run):
    """Directories in the node's /run (NODE/run on the host): the runtime directory (0700, as
    systemd wants it), the unit directory and the /run/systemd mount point."""
    runtime = os.path.join(node_run, "user", "0")
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    os.chmod(runtime, 0o700)
    os.makedirs(os.path.join(runtime, "systemd", "user"), exist_ok=True)
    os.makedirs(os.path.join(node_run, "systemd"), exist_ok=True)
    return runtime


def install_unit(node_run, name, text):
    """Writes a user unit into the node (read by the manager when it starts, or after a reload)."""
    path = os.path.join(node_run, "user", "0", "systemd", "user", name)
    with open(path, "w") as f:
        f.write(text)
    return path


def wait_ready(node_run, is_alive, timeout=READY_TIMEOUT):
    """Waits (polling with a deadline) until the manager's private socket exists."""
    socket = os.path.join(node_run, "user", "0", "systemd", "private")
    deadline = time.monotonic() + timeout
    while not os.path.exists(socket):
        if not is_alive():
            raise LabError("the node's systemd --user manager exited at start; see its log "
                           f"({TAG}.log in the node's directory)")
        if time.monotonic() > deadline:
            raise LabError(f"the systemd --user manager did not open {socket} within "
                           f"{timeout:.0f} s")
        time.sleep(0.05)


def remove_cgroups(prefix, node):
    """Removes the manager's cgroup trees bottom-up; fails when a process is still in one."""
    for top in cgroups(prefix, node):
        if not os.path.isdir(top):
            continue
        for root, dirs, _ in os.walk(top, topdown=False):
            for d in dirs:
                _rmdir(os.path.join(root, d))
        _rmdir(top)


def _rmdir(path, timeout=5.0):
    # A cgroup is removable only once the kernel has finished with its last (killed) process.
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if time.monotonic() > deadline:
                raise LabError(f"cannot remove cgroup {path}: {e.strerror}")
            time.sleep(0.05)
