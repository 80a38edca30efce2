"""What the lab benchmarks share: labs made with clusterlab (through tests/integration/
test_failover.py's helpers), the TCP server on every node, keepalived, the client probe, a
precise link cut, and the membership events of the survivors.

Clocks: CLOCK_MONOTONIC and CLOCK_REALTIME are the host's in every namespace of the lab (there
are no time namespaces), so the probe's monotonic times compare with the bench's, and the wall
times of clusterd's events (ISO 8601, milliseconds, UTC) compare with time.time() here.
"""
import ctypes
import datetime
import fcntl
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

from common import harness, summary  # noqa: F401 (re-exported)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from lab_harness import clab  # noqa: E402
from test_failover import Lab, make_lab, online_on  # noqa: E402,F401

VIP = "10.77.0.100"
PORT = 7070
TINY_SERVER = os.path.join(harness.BUILD, "bench", "tiny_server")
VIP_PROBE = os.path.join(harness.BUILD, "bench", "vip_probe")
KEEPALIVED = "/usr/sbin/keepalived"
NETWORKS = ("public", "private", "storage")

# Aggressive settings (docs in README.md, benchmarks): 10 ms heartbeats; see aggressive.py for
# the choice of misses.
AGGRESSIVE_INTERVAL = "5ms"
AGGRESSIVE_MISSES = 5


def lab_dir(name):
    return f"/run/clusterlab/{name}"


def check_binaries(*paths):
    for path in paths:
        if not os.access(path, os.X_OK):
            raise SystemExit(f"{path} is missing: build first (ninja -C {harness.BUILD})")


# -- servers on every node ---------------------------------------------------------------------

def spawn(lab, node, tag, *argv):
    """`clusterlab spawn`: a process of the node that kill-node and down end."""
    clab("spawn", "--name", lab.name, node, "--tag", tag, "--", *argv)


def start_servers(lab):
    """tiny_server on every node, on 0.0.0.0:PORT, answering with the node's name: whichever
    node holds the VIP answers at once, nothing has to start on failover."""
    for node in lab.nodes:
        spawn(lab, node, "tiny", TINY_SERVER, str(PORT), "--any", "--name")


# -- keepalived --------------------------------------------------------------------------------

KEEPALIVED_CONF = """# Written by bench/labbench.py for lab {lab}, node {node}.
global_defs {{
  router_id {node}
  vrrp_version 3
  script_user root
  enable_script_security
}}
vrrp_instance bench {{
  state BACKUP
  interface public
  virtual_router_id {router_id}
  priority {priority}
  advert_int {advert}
  virtual_ipaddress {{
    {vip}/32 dev public
  }}
}}
"""


def keepalived_priority(index, nodes):
    """node1 highest, then node2, ...: the same order as clusterd's preferred owners, spread
    over VRRP's range. Why spread: a backup takes over after 3 adverts plus a skew of
    (256 - priority) / 256 adverts; at advert_int 0.01 priorities 199 and 198 give skews only
    0.04 ms apart, so both backups may become master at once, and a client that heard the
    loser's gratuitous ARP last would keep the wrong MAC until the winner's second burst
    (vrrp_garp_master_delay, 5 s). One run with 199/198/197 did take 5036 ms; three more with
    their logs showed a single master each time, so that cause is a suspicion, not a finding.
    Spread evenly (250, 170, 90 for 3 nodes) the skews are ~3 ms apart, enough for the
    winner's first advert to reach the others first."""
    return 250 - (index - 1) * (240 // max(nodes, 1))


def start_keepalived(lab, advert="0.01", vip=VIP, router_id=77):
    """keepalived (VRRP v3, so advert_int may be fractional) on every node's public interface,
    in the foreground under the lab's keeper; its config and pid files in the node's own /run,
    which is in the lab's directory on the host."""
    for i, node in enumerate(lab.nodes, start=1):
        run_dir = os.path.join(lab_dir(lab.name), node, "run", "keepalived")
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "keepalived.conf"), "w") as f:
            f.write(KEEPALIVED_CONF.format(lab=lab.name, node=node,
                                           priority=keepalived_priority(i, len(lab.nodes)),
                                           advert=advert,
                                           vip=vip, router_id=router_id))
        spawn(lab, node, "keepalived", KEEPALIVED, "--dont-fork",
                "--log-console", "--log-detail", "--vrrp", "--no-syslog",
                "--use-file=/run/keepalived/keepalived.conf",
                "--pid=/run/keepalived/keepalived.pid", "--vrrp_pid=/run/keepalived/vrrp.pid")


# -- the client probe --------------------------------------------------------------------------

def probe_answers(lab, seconds=0.3):
    """{node: answers} seen by the client over `seconds` (a short run of the probe)."""
    r = subprocess.run(["ip", "netns", "exec", f"{lab.name}-client", VIP_PROBE, VIP, str(PORT),
                        "--seconds", str(seconds)], capture_output=True, text=True,
                       timeout=seconds + 10)
    seen = {}
    for line in r.stdout.splitlines():
        node = line.split()[1]
        seen[node] = seen.get(node, 0) + 1
    return seen


def one_owner_answers(lab):
    """The node answering on the VIP when exactly one does, else None."""
    seen = probe_answers(lab)
    return next(iter(seen)) if len(seen) == 1 else None


class Probe:
    """The probe in the client namespace, every 10 ms, until the answer comes from another node
    (or `seconds` pass)."""

    def __init__(self, lab, seconds=20):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", f"{lab.name}-client", VIP_PROBE, VIP, str(PORT),
             "--interval-ms", "10", "--timeout-ms", "100", "--seconds", str(seconds),
             "--until-change"], stdout=subprocess.PIPE, text=True)
        self.lines = []

    def first_answer(self):
        """Blocks until the first answer; returns the node."""
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the probe got no answer from the VIP")
        self.lines.append(line)
        return line.split()[1]

    def finish(self, timeout=30):
        """Waits for the change; returns (old node, last old answer, new node, first new
        answer) with monotonic times."""
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines += out.splitlines()
        if self.proc.returncode != 0:
            raise AssertionError("the probe saw no answer from another node")
        answers = [(float(t), n) for t, n in (line.split() for line in self.lines)]
        old = answers[0][1]
        new_t, new = answers[-1]
        last_old = max(t for t, n in answers if n == old)
        return old, last_old, new, new_t

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# -- the fault ---------------------------------------------------------------------------------

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def _socket_in_netns(path):
    """A datagram socket made inside network namespace `path` (it stays there)."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(target, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({path}) failed")
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        finally:
            if libc.setns(own, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to our own namespace failed")
    finally:
        os.close(own)
        os.close(target)


def _set_down(sock, ifname):
    req = struct.pack("16sH", ifname.encode(), 0)
    flags = struct.unpack("16sH", fcntl.ioctl(sock, _SIOCGIFFLAGS, req + b"\0" * 22)[:18])[1]
    fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH", ifname.encode(), flags & ~_IFF_UP)
                + b"\0" * 22)


def crash(lab, node):
    """The fault: the node's switch ports go down (storage, private, then public: the node is
    unreachable from the moment public goes, for heartbeats and VRRP alike), within
    microseconds of each other by ioctl from sockets opened in the switch namespaces
    beforehand; then `clusterlab kill-node` SIGKILLs every process of it. Returns the fault's
    (monotonic, wall) time: just before the last cut."""
    socks = {net: _socket_in_netns(f"/run/netns/{lab.name}-sw-{net}") for net in NETWORKS}
    try:
        for net in ("storage", "private"):
            _set_down(socks[net], node)
        t_mono, t_wall = time.monotonic(), time.time()
        _set_down(socks["public"], node)
    finally:
        for s in socks.values():
            s.close()
    lab.run("kill-node", node)
    return t_mono, t_wall


def random_pause(max_seconds=1.0):
    """Lets the fault land at a random moment of the heartbeat/advert cycle (not a
    synchronisation: the point is that the moment is random)."""
    time.sleep(random.uniform(0, max_seconds))


# -- clusterd's view of it ---------------------------------------------------------------------

def parse_time(iso):
    """Wall-clock seconds of clusterd's ISO 8601 UTC time with milliseconds."""
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def unreachable_at(lab, observer, node, after_wall):
    """Wall time at which `observer` recorded `node` unreachable (its view without the node
    installed), the first such event after `after_wall`, or None."""
    events = lab.json(observer, "events") or []
    for e in events:
        if (e["kind"] == "membership" and e["reason"].startswith(f"node {node} is unreachable")
                and parse_time(e["time"]) >= after_wall - 0.002):
            return parse_time(e["time"])
    return None


def view_installed(lab, survivors, node, fault_wall, timeout=10):
    """{survivor: seconds from the fault to its view without `node`}; waits for all."""
    deadline = time.monotonic() + timeout
    seen = {}
    while time.monotonic() < deadline and len(seen) < len(survivors):
        for s in survivors:
            if s not in seen:
                at = unreachable_at(lab, s, node, fault_wall - 1)
                if at is not None:
                    seen[s] = at - fault_wall
        if len(seen) < len(survivors):
            time.sleep(0.05)
    if len(seen) < len(survivors):
        raise AssertionError(f"not every survivor saw {node} go: {seen}")
    return seen


def heartbeat_counters(lab, node):
    """The node's heartbeat counters summed over its networks, from `clusterctl cluster`."""
    c = lab.cluster(node) or {}
    total = {"sent": 0, "received": 0, "accepted": 0, "dropped": 0}
    for h in c.get("heartbeat", []):
        for k in total:
            total[k] += h.get(k, 0)
    return total


def percentile(values, p):
    """The p-th percentile (nearest rank) of `values`."""
    v = sorted(values)
    return v[max(0, min(len(v) - 1, int(round(p / 100 * len(v) + 0.5)) - 1))]


def distribution(name, values_ms):
    print(f"{name}: min {min(values_ms):.0f} / p50 {percentile(values_ms, 50):.0f} / p90 "
          f"{percentile(values_ms, 90):.0f} / max {max(values_ms):.0f} ms, n={len(values_ms)}",
          flush=True)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def keep_logs(lab, why):
    """Copies the lab's logs (clusterd, spawned processes, keeper) to a new directory under
    /tmp before the lab goes, for a run worth a look; returns the directory."""
    dest = tempfile.mkdtemp(prefix=f"{lab.name}-logs-")
    root = lab_dir(lab.name)
    for base, _, files in os.walk(root):
        for name in files:
            if name.endswith(".log"):
                rel = os.path.relpath(os.path.join(base, name), root)
                os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
                shutil.copy(os.path.join(base, name), os.path.join(dest, rel))
    with open(os.path.join(dest, "WHY"), "w") as f:
        f.write(why + "\n")
    return dest


def lab_status(lab):
    return json.loads(clab("status", "--name", lab.name, "--json").stdout)
