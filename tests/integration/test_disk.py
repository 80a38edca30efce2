"""The `disk` resource end to end: a real tgtd on 127.0.0.1, real daemons, the real clusterd-disk
(iSCSI session, SCSI-3 reservation, FUSE file, loop device, ext4). Needs root, tgtd, /dev/fuse and
loop devices; skipped otherwise.

Two daemons here are two standalone one-node clusters with the same cluster id and different node
ids: that is all the reservation key sees, so the second one's start takes the disk over exactly
as a new owner after a failover does."""
import os
import shutil
import subprocess
import sys

import pytest

from harness import BUILD, Daemon, free_port, reservation_view, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lab"))
from labkit import storage  # noqa: E402  (the lab's tgtadm steps, shared)
from labkit.run import LabError  # noqa: E402

DISK_HELPER = os.path.join(BUILD, "daemon", "clusterd-disk")
SOCKET_DIR = "/var/run/tgtd"
# Control numbers of this file's tgtd (the unit tests use 200-299, the lab 100 and up).
FIRST_CONTROL, LAST_CONTROL = 300, 399
CLUSTER_ID = 7


def unavailable():
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("tgtd") or not shutil.which("tgtadm"):
        return "tgtd is not installed"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    return None


pytestmark = pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")


class Tgtd:
    """One tgtd with one target, LUN 1 on a sparse file, open to every initiator."""

    def __init__(self, workdir, size=64 << 20):
        self.dir = workdir
        self.iqn = f"iqn.2024-01.org.clusterd.itest:disk{os.getpid()}"
        self.lun = os.path.join(workdir, "lun.img")
        with open(self.lun, "wb") as f:
            f.truncate(size)
        os.makedirs(SOCKET_DIR, exist_ok=True)
        self.proc = None
        for control in range(FIRST_CONTROL, LAST_CONTROL + 1):
            if os.path.exists(f"{SOCKET_DIR}/socket.{control}"):
                continue
            self.control, self.port = control, free_port()
            if self.launch():
                return
        raise AssertionError("no free tgtd control number")

    def launch(self):
        log = open(os.path.join(self.dir, "tgtd.log"), "ab")
        self.proc = subprocess.Popen(
            ["tgtd", "-f", "-C", str(self.control), "--iscsi", f"portal=127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            storage.wait_ready(self.control, lambda: self.proc.poll() is None)
        except LabError:
            self.kill()  # e.g. the port was taken meanwhile: try the next control number
            return False
        storage.define_target(self.control, 1, self.iqn, self.lun)
        return True

    @property
    def portal(self):
        return f"127.0.0.1:{self.port}"

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for suffix in ("", ".lock"):
            try:
                os.unlink(f"{SOCKET_DIR}/socket.{self.control}{suffix}")
            except FileNotFoundError:
                pass

    def reservation(self):
        """clusterd-disk --show-reservation: {'holder': 'node 1 exclusive-access' or 'none',
        'keys': ['node 1', ...]}"""
        out = subprocess.run(
            [DISK_HELPER, "--show-reservation", "--portal", self.portal, "--target", self.iqn,
             "--initiator", "iqn.2026-11.org.clusterd:itest:observer", "--cluster-id",
             str(CLUSTER_ID)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return reservation_view(out.stdout)


@pytest.fixture
def tgtd(workdir):
    target = Tgtd(workdir)
    yield target
    target.kill()


def disk_config(tgtd, node, node_id, mount_point, extra_resources=""):
    return f"""
    cluster:
      name: itest
      id: {CLUSTER_ID}
    nodes:
      - name: {node}
        id: {node_id}
    groups:
      - name: data
        preferred_owners: [{node}]
        autostart: false
        resources:
          - name: lun
            type: disk
            params:
              portal: {tgtd.portal}
              target: {tgtd.iqn}
              mount_point: {mount_point}
              mkfs: true
              io_timeout: 2s
            monitor:
              looks_alive: 1s
              is_alive: 2s
            restart:
              policy: never
            affects_group: false
{extra_resources}
    """


def mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


@pytest.fixture
def mounts(workdir):
    """Names mount points under workdir; at the end whatever a failed test left mounted there
    (the disk's mount, the helper's FUSE directory) is unmounted lazily, deepest first."""
    yield lambda name: os.path.join(workdir, name)
    with open("/proc/self/mountinfo") as f:
        left = [line.split()[4] for line in f if line.split()[4].startswith(workdir + "/")]
    for path in sorted(left, key=len, reverse=True):
        subprocess.run(["umount", "-l", path], check=False)


def test_online_mounts_ext4_data_survives_offline_online_and_release(workdir, tgtd, mounts,
                                                                       daemon_factory):
    mnt = mounts("mnt")
    d = daemon_factory(disk_config(tgtd, "node1", 1, mnt))
    d.ctl("online", "data")
    assert d.group("data")["state"] == "online"
    assert mounted(mnt)
    with open("/proc/self/mountinfo") as f:
        assert any(l.split()[4] == mnt and " ext4 " in l for l in f)
    view = tgtd.reservation()
    assert view == {"holder": "node 1 exclusive-access", "keys": ["node 1"]}
    with open(os.path.join(mnt, "record"), "w") as f:
        f.write("acknowledged\n")
        f.flush()
        os.fsync(f.fileno())

    d.ctl("offline", "data")
    assert d.group("data")["state"] == "offline"
    assert not mounted(mnt)
    # Released and unregistered: the next owner starts without preempting anybody.
    assert tgtd.reservation() == {"holder": "none", "keys": []}

    d.ctl("online", "data")
    assert mounted(mnt)
    with open(os.path.join(mnt, "record")) as f:
        assert f.read() == "acknowledged\n"  # mkfs: true did not format it again
    d.ctl("offline", "data")


@pytest.fixture
def two_daemons(workdir):
    """Makes a daemon in a directory of its own under workdir; stops them all at the end."""
    made = []

    def make(name, config_text, node):
        path = os.path.join(workdir, name)
        os.makedirs(path, exist_ok=True)
        d = Daemon(path, config_text, node=node)
        made.append(d)
        return d.start()

    yield make
    for d in made:
        try:
            d.stop()
        finally:
            d.kill()


def test_second_node_takes_over_first_is_fenced_and_its_resource_fails(workdir, tgtd, mounts,
                                                                        two_daemons):
    mnt_a, mnt_b = mounts("mnt-a"), mounts("mnt-b")
    a = two_daemons("a", disk_config(tgtd, "node1", 1, mnt_a), "node1")
    b = two_daemons("b", disk_config(tgtd, "node2", 2, mnt_b), "node2")

    a.ctl("online", "data")
    with open(os.path.join(mnt_a, "from-a"), "w") as f:
        f.write("a\n")
        f.flush()
        os.fsync(f.fileno())

    b.ctl("online", "data")  # take-over: preempts node 1's key
    assert b.group("data")["state"] == "online"
    assert os.path.exists(os.path.join(mnt_b, "from-a"))  # journal replayed, data there
    assert tgtd.reservation() == {"holder": "node 2 exclusive-access", "keys": ["node 2"]}

    # Node 1 finds out at its next write (EBADE -> EIO) or its next IsAlive, whichever is first.
    def write_a():
        try:
            with open(os.path.join(mnt_a, "late"), "w") as f:
                f.write("x")
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            pass
    write_a()
    lun = a.wait_resource("data", "lun", lambda r: r["state"] in ("failed", "offline"),
                          timeout=30, what="node 1's disk to fail")
    assert "reservation lost: held by node 2" in lun["reason"], lun
    # The fenced node released nothing of the new owner's. The helper told its reason before
    # its orderly stop (unmount, then release, which registers our key for a moment to gather
    # it): the end of that stop, not the failure, is when nothing of node 1 is left.
    wait_for(lambda: tgtd.reservation() == {"holder": "node 2 exclusive-access",
                                            "keys": ["node 2"]},
             timeout=20, what="node 1's helper done releasing, node 2 alone")
    assert not os.path.exists(os.path.join(mnt_b, "late"))
    b.ctl("offline", "data")
    assert tgtd.reservation() == {"holder": "none", "keys": []}


def test_tgtd_restart_reservation_restored_by_the_owner_within_an_is_alive(workdir, tgtd, mounts,
                                                                          daemon_factory):
    mnt = mounts("mnt")
    d = daemon_factory(disk_config(tgtd, "node1", 1, mnt))
    d.ctl("online", "data")
    tgtd.kill()
    assert tgtd.launch()  # same port, control number and LUN file; no reservation survives
    # IsAlive every 2 s: check -> vacant -> restore.
    wait_for(lambda: tgtd.reservation()["holder"] == "node 1 exclusive-access", timeout=20,
             what="the owner to restore its reservation")
    assert d.resource("data", "lun")["state"] == "online"
    assert mounted(mnt)
    d.ctl("offline", "data")
