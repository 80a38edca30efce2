"""The storage namespace: tgtd with one file-backed LUN per target, on the storage network.

tgtd facts (tgt 1.0.85): `tgtd -f -C N` runs one instance per control number N, whose control
socket is /var/run/tgtd/socket.N on the host filesystem (so N must be unique across labs); it
ignores SIGTERM: shut it down with `tgtadm --op delete --mode system` (after deleting targets
with --force), or SIGKILL.
"""
import os
import time

from . import topology
from .run import LabError, run

SOCKET_DIR = "/var/run/tgtd"
FIRST_CONTROL = 100
LUN_SIZES = {"quorum": 16 << 20}
DATA_LUN_SIZE = 256 << 20


def pick_control_number():
    """The lowest control number >= FIRST_CONTROL whose socket does not exist. Called under
    the global lock, so two labs never pick the same."""
    n = FIRST_CONTROL
    while os.path.exists(os.path.join(SOCKET_DIR, f"socket.{n}")):
        n += 1
    return n


def tgtadm(control, *args, check=True, timeout=10):
    return run(["tgtadm", "-C", str(control), *args], check=check, timeout=timeout)


def wait_ready(control, is_alive, timeout=10.0):
    """Waits until tgtd answers on its control socket (polling with a deadline: tgtd has no
    readiness notification)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tgtadm(control, "--op", "show", "--mode", "system", check=False).returncode == 0:
            return
        if not is_alive():
            raise LabError("tgtd exited at start; see its log in the lab's storage directory")
        time.sleep(0.05)
    raise LabError(f"tgtd did not answer on control socket {control} within {timeout:.0f} s")


def make_lun_file(path, size):
    """A sparse backing file: it only uses space as it is written."""
    with open(path, "wb") as f:
        f.truncate(size)


def add_target(state, control, tid, prefix, lun_name, backing):
    """One target with LUN 1 backed by `backing`, open to every initiator (the storage network is
    the access control); recorded so `down` deletes it."""
    iqn = topology.target_iqn(prefix, lun_name)
    state.record("target", control=control, tid=tid)
    define_target(control, tid, iqn, backing)
    return iqn


def define_target(control, tid, iqn, backing):
    """Target `tid` named `iqn` with LUN 1 backed by `backing`, open to every initiator."""
    tgtadm(control, "--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", str(tid),
           "-T", iqn)
    tgtadm(control, "--lld", "iscsi", "--op", "new", "--mode", "logicalunit", "--tid", str(tid),
           "--lun", "1", "-b", backing)
    tgtadm(control, "--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", str(tid),
           "-I", "ALL")


def shutdown(control, tids):
    """Graceful tgtd shutdown: drop targets (even with sessions), then the daemon. Best effort:
    `down` SIGKILLs whatever is left afterwards."""
    for tid in tids:
        tgtadm(control, "--lld", "iscsi", "--op", "delete", "--mode", "target", "--tid",
               str(tid), "--force", check=False, timeout=5)
    tgtadm(control, "--op", "delete", "--mode", "system", check=False, timeout=5)


def remove_socket_files(control):
    for name in (f"socket.{control}", f"socket.{control}.lock"):
        try:
            os.unlink(os.path.join(SOCKET_DIR, name))
        except FileNotFoundError:
            pass


def show_targets(control):
    return tgtadm(control, "--lld", "iscsi", "--op", "show", "--mode", "target").stdout
