"""Failover across nodes on real labs (lab/clusterlab): membership, coordinator election, node
loss, partitions, moves and the ledger client through the virtual IP. Every lab is torn down,
also on failure. Assertions use clusterctl --json, never log text."""
import json
import os
import subprocess
import threading
import time

import pytest

from harness import CLUSTERCTL, wait_for
from lab_harness import LEDGER_CLIENT, clab, ledger_log_size

VIP = "10.77.0.100"
# Labs are named PREFIX3 and PREFIX5; engineers running this file at once pick their own prefix.
LAB_PREFIX = os.environ.get("CLUSTERD_LAB_PREFIX", "fo")
AGENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agents")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a lab needs root (namespaces)")


class Lab:
    """A lab made with clusterlab. clusterctl talks to each node's bus socket from the host."""

    def __init__(self, name, nodes):
        self.name = name
        self.nodes = [f"node{i}" for i in range(1, nodes + 1)]
        self.count = nodes

    def up(self, *args):
        clab("up", "--name", self.name, "--nodes", str(self.count), *args)
        return self

    def down(self):
        return clab("down", "--name", self.name, check=False)

    def run(self, *args, check=True):
        return clab(*args, "--name", self.name, check=check)

    def bus(self, node):
        return f"/run/clusterlab/{self.name}/{node}/run/clusterd/bus"

    def addresses(self, node):
        """The IPv4 addresses configured in `node`'s network namespace."""
        r = subprocess.run(["ip", "-n", f"{self.name}-{node}", "-4", "-o", "addr", "show"],
                           capture_output=True, text=True, check=True)
        return {line.split()[3].split("/")[0] for line in r.stdout.splitlines()}

    def ctl(self, node, *args, check=True, timeout=10):
        r = subprocess.run([CLUSTERCTL, "--bus", self.bus(node), *args], capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"clusterctl {' '.join(args)} on {node}: {r.returncode} "
                                 f"{r.stderr}")
        return r

    def json(self, node, *args):
        r = self.ctl(node, *args, "--json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def cluster(self, node):
        return self.json(node, "cluster")

    def group(self, node, name="ledger"):
        groups = self.json(node, "groups") or []
        return next((g for g in groups if g["name"] == name), None)

    def running_here(self, node):
        """Groups with any resource not offline in `node`'s own resource manager."""
        resources = self.json(node, "resources") or []
        groups = set()
        for r in resources:
            if r["state"] != "offline":
                groups.add(r["group"])
        return groups

    def log(self, node):
        with open(f"/run/clusterlab/{self.name}/{node}/clusterd.log") as f:
            return f.read()

    def client(self, *cmd, **kw):
        return subprocess.Popen(["ip", "netns", "exec", f"{self.name}-client", *cmd], **kw)

    def client_run(self, *cmd, timeout=10):
        return subprocess.run(["ip", "netns", "exec", f"{self.name}-client", *cmd],
                              capture_output=True, text=True, timeout=timeout)


def coordinator_of(lab, nodes):
    """The coordinator every node of `nodes` agrees on, or None."""
    seen = set()
    for n in nodes:
        c = lab.cluster(n)
        if not c or not c["coordinator"]:
            return None
        seen.add(c["coordinator"])
    return seen.pop() if len(seen) == 1 else None


def online_on(lab, node_set, group="ledger"):
    """The owner when every node of `node_set` sees `group` online there, else None."""
    owners = set()
    for n in node_set:
        g = lab.group(n, group)
        if not g or g["state"] != "online":
            return None
        owners.add(g["owner"])
    return owners.pop() if len(owners) == 1 else None


def vip_answers(lab):
    r = lab.client_run("bash", "-c", f"exec 3<>/dev/tcp/{VIP}/7070 && echo PING >&3 && "
                       "timeout 1 head -n1 <&3", timeout=5)
    return r.stdout.strip() == "PONG"


def make_lab(name, nodes, *args):
    lab = Lab(name, nodes)
    lab.down()
    try:
        lab.up(*args)
    except Exception:
        lab.down()
        raise
    return lab


def running_lab(name, nodes, timeout):
    """A lab with the ledger group online, torn down afterwards (kept with CLUSTERLAB_KEEP=1)."""
    lab = make_lab(name, nodes)
    try:
        wait_for(lambda: online_on(lab, lab.nodes), timeout=timeout, what="ledger online")
        yield lab
    finally:
        if not os.environ.get("CLUSTERLAB_KEEP"):
            lab.down()


@pytest.fixture
def lab3():
    yield from running_lab(f"{LAB_PREFIX}3", 3, timeout=20)


class Sampler:
    """Samples, in the background, which nodes run the group, and records any moment two do."""

    def __init__(self, lab, nodes):
        self.lab, self.nodes = lab, list(nodes)
        self.double = []
        self.samples = 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop_flag.is_set():
            running = [n for n in self.nodes if "ledger" in self.lab.running_here(n)]
            self.samples += 1
            if len(running) > 1:
                self.double.append(running)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(timeout=10)


# -- membership -------------------------------------------------------------------------------

def test_three_nodes_agree_on_term_and_coordinator_and_run_the_group_once(lab3):
    lab = lab3
    leader = wait_for(lambda: coordinator_of(lab, lab.nodes), timeout=10, what="one coordinator")
    views = [lab.cluster(n) for n in lab.nodes]
    assert len({v["term"] for v in views}) == 1
    assert all(v["quorate"] for v in views)
    assert [v["role"] for v in views].count("leader") == 1
    assert next(v for v in views if v["role"] == "leader")["node"] == leader
    for n in lab.nodes:
        assert [x["state"] for x in lab.json(n, "nodes")] == ["up", "up", "up"]
        text = lab.ctl(n, "nodes").stdout
        assert f"coordinator {leader}" in text
    owner = online_on(lab, lab.nodes)
    assert owner == "node1"  # first preferred owner
    assert [n for n in lab.nodes if "ledger" in lab.running_here(n)] == ["node1"]
    wait_for(lambda: vip_answers(lab), timeout=10, what="the VIP to answer")


# -- node loss --------------------------------------------------------------------------------

def test_kill_owner_fails_over_and_the_ledger_loses_nothing(lab3):
    lab = lab3
    wait_for(lambda: vip_answers(lab), timeout=10, what="the VIP to answer")
    start = ledger_log_size(lab, "node1")
    client = lab.client(LEDGER_CLIENT, f"{VIP}:7070", "--duration", "8", "--interval", "5",
                        "--connect-timeout", "200", "--max-backoff", "100", "--json",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The crash comes once the client's records are landing on the ledger.
        wait_for(lambda: ledger_log_size(lab, "node1") > start + 2000,
                 what="the client writing through the VIP")
        lab.run("kill-node", "node1")
        survivors = ["node2", "node3"]
        new_owner = wait_for(lambda: online_on(lab, survivors) in survivors and
                             online_on(lab, survivors), timeout=10,
                             what="ledger online on a survivor")
        out, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, f"ledger client: {out}\n{err}"
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary.get("lost", 0) == 0, summary
    timelines = lab.json(new_owner, "timeline", "ledger")
    assert timelines and timelines[-1]["cause"] == "node-loss"
    phases = [p["phase"] for p in timelines[-1]["phases"]]
    assert phases[0] == "detected" and phases[-1] == "online", phases
    assert "decided-start" in phases


PROBE_SCRIPT = """
import socket, sys, time
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        with socket.create_connection((sys.argv[1], 7070), timeout=0.05) as s:
            s.settimeout(0.2)
            s.sendall(b"PING\\n")
            if s.recv(16).startswith(b"PONG"):
                print(time.monotonic())
                sys.exit(0)
    except OSError:
        time.sleep(0.005)
sys.exit(1)
"""


def failover_time(lab):
    """Kill the owner; time until the VIP answers again on a survivor (seconds). The probe runs
    in the client namespace with short connect timeouts (CLOCK_MONOTONIC is the same there)."""
    owner = online_on(lab, lab.nodes)
    survivors = [n for n in lab.nodes if n != owner]
    # The crash begins when the owner's links go down (kill-node's first step, done here so t0
    # does not include clusterlab's own start-up); kill-node then SIGKILLs everything of it.
    t0 = time.monotonic()
    for net in ("public", "private", "storage"):
        subprocess.run(["ip", "-n", f"{lab.name}-sw-{net}", "link", "set", owner, "down"],
                       check=True)
    lab.run("kill-node", owner)
    probe = lab.client_run("/usr/bin/python3", "-c", PROBE_SCRIPT, VIP, timeout=15)
    assert probe.returncode == 0, probe.stderr
    elapsed = float(probe.stdout) - t0
    wait_for(lambda: online_on(lab, survivors) in survivors, timeout=10, what="survivors agree")
    return owner, elapsed


# -- partitions -------------------------------------------------------------------------------

def test_partition_minority_stops_its_groups_and_the_pair_runs_them(lab3):
    lab = lab3
    assert online_on(lab, lab.nodes) == "node1"
    with Sampler(lab, lab.nodes) as sampler:
        lab.run("partition", "node1", "--network", "public", "--network", "private")
        wait_for(lambda: not lab.cluster("node1")["quorate"], timeout=5, what="node1 fenced")
        wait_for(lambda: "ledger" not in lab.running_here("node1"), timeout=5,
                 what="node1 stopped its group")
        pair = ["node2", "node3"]
        owner = wait_for(lambda: online_on(lab, pair) in pair and online_on(lab, pair),
                         timeout=10, what="the pair runs the group")
        lab.run("heal")
        wait_for(lambda: all(lab.cluster(n)["quorate"] for n in lab.nodes), timeout=10,
                 what="one quorate cluster again")
        wait_for(lambda: coordinator_of(lab, lab.nodes), timeout=10, what="one coordinator")
        assert online_on(lab, lab.nodes) == owner
    assert sampler.samples > 10
    assert sampler.double == [], "the group ran on two nodes at once"
    events = lab.json("node1", "events")
    assert any(e["kind"] == "quorum" and "quorum lost" in e["reason"] for e in events)


# -- administration ---------------------------------------------------------------------------

def test_move_pause_drain_resume(lab3):
    lab = lab3
    lab.ctl("node3", "move", "ledger", "node2")
    wait_for(lambda: online_on(lab, lab.nodes) == "node2", timeout=10, what="moved to node2")
    lab.ctl("node1", "pause", "node3")
    wait_for(lambda: lab.json("node2", "nodes")[2]["state"] == "paused", timeout=5,
             what="node3 paused")
    lab.ctl("node1", "drain", "node2")
    # node3 is paused, so the group leaves node2 for node1.
    wait_for(lambda: online_on(lab, lab.nodes) == "node1", timeout=10, what="drained to node1")
    lab.ctl("node2", "resume", "node2")
    lab.ctl("node2", "resume", "node3")
    wait_for(lambda: [x["state"] for x in lab.json("node1", "nodes")] == ["up"] * 3,
             timeout=5, what="all up")
    r = lab.ctl("node1", "move", "nosuch", check=False)
    assert r.returncode != 0


def test_move_and_drain_wait_until_the_group_is_online_on_its_new_owner(lab3):
    lab = lab3
    r = lab.ctl("node3", "move", "ledger", "node2", "--wait", "--timeout", "30s", timeout=40)
    # Returned only once the target itself shows the group online.
    g = lab.group("node2")
    assert g["state"] == "online" and g["owner"] == "node2", g
    assert r.stdout.splitlines()[-1] == "ledger: online on node2", r.stdout
    # A refused move ends the wait at once with the coordinator's reason, whichever node asks
    # (followers hear the refusal after their D-Bus call returned).
    for node in lab.nodes:
        r = lab.ctl(node, "move", "ledger", "node2", "--wait", "--timeout", "30s", check=False,
                    timeout=20)
        assert r.returncode == 1, (node, r.stdout, r.stderr)
        assert "already online on node2" in r.stderr, (node, r.stderr)
    lab.ctl("node1", "pause", "node1")
    wait_for(lambda: lab.json("node3", "nodes")[0]["state"] == "paused", timeout=5,
             what="node1 paused")
    r = lab.ctl("node3", "move", "ledger", "node1", "--wait", check=False, timeout=20)
    assert r.returncode == 1 and "node1 is paused" in r.stderr, r.stderr
    # drain --wait: every group of node2 online elsewhere (node1 is paused: node3) on return.
    r = lab.ctl("node1", "drain", "node2", "--wait", "--timeout", "30s", timeout=40)
    g = lab.group("node3")
    assert g["state"] == "online" and g["owner"] == "node3", g
    assert r.stdout.splitlines()[-1] == "ledger: online on node3", r.stdout
    # Without --wait the answer comes once the coordinator accepted (the default, as before).
    lab.ctl("node2", "resume", "node1")
    lab.ctl("node2", "resume", "node2")
    r = lab.ctl("node2", "move", "ledger", "node1")
    assert r.returncode == 0
    wait_for(lambda: online_on(lab, lab.nodes) == "node1", timeout=10, what="moved to node1")


# -- joining ----------------------------------------------------------------------------------

def node_transitions(lab, observer, node, after=0):
    """(from, to) of the node events `observer` recorded about `node` after event `after`."""
    return [(e["from"], e["to"]) for e in lab.json(observer, "events")
            if e["kind"] == "node" and e["seq"] > after and e["reason"].startswith(f"{node}:")]


def last_seq(lab, node):
    return max((e["seq"] for e in lab.json(node, "events")), default=0)


def test_a_restarted_node_passes_through_joining_to_up(lab3):
    lab = lab3
    lab.run("stop-node", "node3")
    wait_for(lambda: lab.json("node1", "nodes")[2]["state"] == "down", timeout=10,
             what="node3 down")
    seen = {n: last_seq(lab, n) for n in ("node1", "node2")}
    lab.run("start-node", "node3")
    for n in ("node1", "node2"):
        wait_for(lambda: lab.json(n, "nodes")[2]["state"] == "up", timeout=15,
                 what=f"node3 up on {n}")
        # Heard first while still catching up, then up: never up before it caught up. (The
        # events are recorded on the daemon's next tick, a moment after the state shows.)
        changes = wait_for(lambda: len(node_transitions(lab, n, "node3", seen[n])) >= 2 and
                           node_transitions(lab, n, "node3", seen[n]), timeout=5,
                           what=f"{n} recording node3's changes")
        assert changes[:2] == [("down", "joining"), ("joining", "up")], (n, changes)
    # The restarted node judged itself the same way from its start.
    own = wait_for(lambda: len(node_transitions(lab, "node3", "node3")) >= 2 and
                   node_transitions(lab, "node3", "node3"), timeout=5, what="node3's own changes")
    assert own[:2] == [("down", "joining"), ("joining", "up")], own
    wait_for(lambda: [x["state"] for x in lab.json("node3", "nodes")] == ["up"] * 3, timeout=5,
             what="node3 sees everyone up")
    assert online_on(lab, lab.nodes) == "node1"  # nothing moved meanwhile


# -- replicated configuration ---------------------------------------------------------------

EXTRA_GROUP = """
  - name: extra
    preferred_owners: [node3]
    resources:
      - name: dummy
        type: ocf
        agent: heartbeat:Dummy
"""


def test_apply_on_any_node_is_committed_and_applied_everywhere(lab3, tmp_path):
    lab = lab3
    with open(f"/run/clusterlab/{lab.name}/node1/etc/cluster.yaml") as f:
        text = f.read()
    new = tmp_path / "cluster.yaml"
    new.write_text(text.rstrip("\n") + "\n" + EXTRA_GROUP.lstrip("\n"))
    before = lab.cluster("node1")["config_version"]
    lab.ctl("node2", "apply", str(new))
    wait_for(lambda: all(lab.cluster(n)["config_version"] == before + 1 for n in lab.nodes),
             timeout=10, what="every node on the new version")
    for n in lab.nodes:
        with open(f"/run/clusterlab/{lab.name}/{n}/etc/cluster.yaml") as f:
            assert "name: extra" in f.read(), n  # persisted on every node
    wait_for(lambda: online_on(lab, lab.nodes, "extra") == "node3", timeout=10,
             what="the new group online on its preferred owner")
    assert online_on(lab, lab.nodes) == "node1"  # the ledger was not touched
    # A bad file is refused where it is applied and nothing is committed.
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("preferred_owners: [node1", "preferred_owners: [node9"))
    assert lab.ctl("node3", "apply", str(bad), check=False).returncode == 1
    assert lab.cluster("node3")["config_version"] == before + 1


# -- authentication ---------------------------------------------------------------------------

REPLAY_SCRIPT = """
import socket, struct, sys
group, port = sys.argv[1], int(sys.argv[2])
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
r.bind((group, port))
r.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("10.77.0.250")))
r.settimeout(5)
frame, _ = r.recvfrom(2048)          # a real, authenticated heartbeat of some node
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("10.77.0.250"))
forged = bytearray(frame)
forged[30] ^= 1                      # one bit of the sequence: the MAC no longer verifies
s.sendto(bytes(forged), (group, port))
s.sendto(frame, (group, port))       # the same frame again: a replay
print(len(frame))
"""


def test_forged_and_replayed_frames_are_dropped_and_counted(lab3):
    lab = lab3

    def drops(reason):
        return sum(h["drops"][reason] for n in lab.nodes for h in lab.cluster(n)["heartbeat"])

    forged, replayed = drops("bad-auth"), drops("replay")
    r = lab.client_run("/usr/bin/python3", "-c", REPLAY_SCRIPT, multicast_group(lab), "5405")
    assert r.returncode == 0 and r.stdout.strip() == "112", r.stderr
    wait_for(lambda: drops("bad-auth") > forged, timeout=5, what="the forged frame counted")
    wait_for(lambda: drops("replay") > replayed, timeout=5, what="the replayed frame counted")
    # Nothing of it disturbed the membership.
    assert all(lab.cluster(n)["quorate"] for n in lab.nodes)
    assert online_on(lab, lab.nodes) == "node1"


def multicast_group(lab):
    with open(f"/run/clusterlab/{lab.name}/node1/etc/cluster.yaml") as f:
        text = f.read()
    for line in text.splitlines():
        if "multicast_group" in line:
            return line.split(":", 1)[1].strip()
    # The default: 239.192.H.L from the cluster id (heartbeat_socket.h).
    for line in text.splitlines():
        if line.strip().startswith("id:"):
            cid = int(line.split(":", 1)[1])
            return f"239.192.{(cid >> 8) & 255}.{cid & 255}"
    raise AssertionError("no cluster id")


# -- failback, maintenance, restarts, load ----------------------------------------------------

def apply_text(lab, node, text, tmp_path, name="cluster.yaml"):
    path = tmp_path / name
    path.write_text(text)
    lab.ctl(node, "apply", str(path))


def lab_config(lab):
    with open(f"/run/clusterlab/{lab.name}/node1/etc/cluster.yaml") as f:
        return f.read()


def test_failback_immediate_returns_the_group_to_its_preferred_owner(lab3, tmp_path):
    lab = lab3
    text = lab_config(lab).replace(
        "preferred_owners: [node1, node2, node3]\n",
        "preferred_owners: [node1, node2, node3]\n    failback:\n      mode: immediate\n")
    assert "mode: immediate" in text
    apply_text(lab, "node2", text, tmp_path)
    lab.run("kill-node", "node1")
    survivors = ["node2", "node3"]
    wait_for(lambda: online_on(lab, survivors) == "node2", timeout=10, what="failover to node2")
    lab.run("start-node", "node1")
    wait_for(lambda: online_on(lab, lab.nodes) == "node1", timeout=20, what="failback to node1")
    causes = [t["cause"] for t in lab.json("node3", "timeline", "ledger")]
    assert causes[-2:] == ["node-loss", "failback"], causes


def test_maintenance_mode_freezes_failover_until_it_ends(lab3):
    lab = lab3
    lab.ctl("node2", "maintenance", "on")
    wait_for(lambda: all(lab.cluster(n)["maintenance"] for n in lab.nodes), timeout=5,
             what="maintenance everywhere")
    lab.run("kill-node", "node1")
    survivors = ["node2", "node3"]
    wait_for(lambda: all(lab.json(n, "nodes")[0]["state"] == "down" for n in survivors),
             timeout=5, what="node1 seen down")
    # Frozen: nobody starts the group while maintenance lasts (sampled for a second).
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert not any("ledger" in lab.running_here(n) for n in survivors)
    lab.ctl("node3", "maintenance", "off")
    wait_for(lambda: online_on(lab, survivors) in survivors, timeout=10,
             what="failover after maintenance")


def test_restarting_every_daemon_in_turn_keeps_the_group_online(lab3):
    lab = lab3
    with Sampler(lab, lab.nodes) as sampler:
        for node in lab.nodes:
            lab.run("stop-node", node)
            others = [n for n in lab.nodes if n != node]
            wait_for(lambda: online_on(lab, others) in others, timeout=15,
                     what=f"the group online while {node} restarts")
            lab.run("start-node", node)
            wait_for(lambda: all(lab.cluster(n) and lab.cluster(n)["quorate"]
                                 for n in lab.nodes), timeout=15, what=f"{node} back")
            wait_for(lambda: online_on(lab, lab.nodes), timeout=15, what="all agree")
    assert sampler.double == [], "the group ran on two nodes at once"


def test_every_core_busy_for_a_while_evicts_nobody(lab3):
    lab = lab3
    seconds = float(os.environ.get("CLUSTERD_HOG_SECONDS", "30"))
    terms = {lab.cluster(n)["term"] for n in lab.nodes}
    events_before = {n: lab.cluster(n)["nodes"] for n in lab.nodes}
    hogs = [subprocess.Popen(["/usr/bin/python3", "-c",
                              f"import time\nend=time.monotonic()+{seconds}\n"
                              "while time.monotonic()<end: pass"])
            for _ in range(2 * (os.cpu_count() or 2))]
    try:
        for h in hogs:
            h.wait(timeout=seconds + 30)
    finally:
        for h in hogs:
            if h.poll() is None:
                h.kill()
                h.wait()
    assert events_before
    assert {lab.cluster(n)["term"] for n in lab.nodes} == terms, "an election happened"
    for n in lab.nodes:
        events = lab.json(n, "events")
        assert not any("unreachable" in e["reason"] for e in events), n
        assert not any(e["kind"] == "quorum" and "lost" in e["reason"] for e in events), n
    assert online_on(lab, lab.nodes) == "node1"


# -- five nodes -------------------------------------------------------------------------------

@pytest.fixture
def lab5():
    yield from running_lab(f"{LAB_PREFIX}5", 5, timeout=30)


def test_five_nodes_partition_three_two_and_kill(lab5):
    lab = lab5
    assert online_on(lab, lab.nodes) == "node1"
    with Sampler(lab, lab.nodes) as sampler:
        lab.run("partition", "node1", "node2", "--network", "public", "--network", "private")
        majority = ["node3", "node4", "node5"]
        wait_for(lambda: not lab.cluster("node1")["quorate"], timeout=5, what="node1 fenced")
        owner = wait_for(lambda: online_on(lab, majority) in majority and
                         online_on(lab, majority), timeout=10, what="the majority runs it")
        assert owner == "node3"  # the next preferred owner on the quorate side
        lab.run("heal")
        wait_for(lambda: coordinator_of(lab, lab.nodes), timeout=10, what="one coordinator")
        lab.run("kill-node", owner)
        rest = [n for n in lab.nodes if n != owner]
        wait_for(lambda: online_on(lab, rest) in rest, timeout=10, what="failover after kill")
    assert sampler.double == []


def test_one_way_cut_the_owner_hears_everyone_but_fences_itself(lab3):
    """node1 hears the others, they no longer hear it: the echoes of its heartbeats stop
    advancing, so it fences itself before the others start its group."""
    lab = lab3
    assert online_on(lab, lab.nodes) == "node1"
    with Sampler(lab, lab.nodes) as sampler:
        lab.run("partition", "node1", "--outbound-only")
        wait_for(lambda: not lab.cluster("node1")["quorate"], timeout=5, what="node1 fenced")
        pair = ["node2", "node3"]
        wait_for(lambda: online_on(lab, pair) in pair, timeout=10, what="the pair runs it")
        # node1 still hears both peers all along; itself it counts as joining again: fenced,
        # it must catch up with the cluster before it may own anything.
        assert [n["state"] for n in lab.json("node1", "nodes")] == ["joining", "up", "up"]
        lab.run("heal")
        wait_for(lambda: all(lab.cluster(n)["quorate"] for n in lab.nodes), timeout=10,
                 what="one cluster again")
        wait_for(lambda: [n["state"] for n in lab.json("node1", "nodes")] == ["up"] * 3,
                 timeout=10, what="node1 caught up again")
    assert sampler.double == [], "the group ran on two nodes at once"


# -- the hard self-stop deadline --------------------------------------------------------------

SLOW_GROUP = f"""
  - name: slow
    preferred_owners: [node1, node2, node3]
    resources:
      - name: vip2
        type: ip
        params:
          address: 10.77.0.101/24
      - name: app
        type: ocf
        agent: {AGENTS}/stop-hangs
        depends: [vip2]
        timeouts:
          stop: 90s
"""


def test_hard_deadline_removes_an_address_whose_stop_never_began(lab3, tmp_path):
    """node1 loses the quorum while the stop of `app` hangs; `app` stops before `vip2` (it
    depends on it), so the engine never gets to remove the address. The hard deadline does."""
    lab = lab3
    apply_text(lab, "node2", lab_config(lab).rstrip("\n") + "\n" + SLOW_GROUP.lstrip("\n"),
               tmp_path)
    wait_for(lambda: online_on(lab, lab.nodes, "slow") == "node1", timeout=15,
             what="the slow group online on node1")
    assert "10.77.0.101" in lab.addresses("node1")
    with Sampler(lab, lab.nodes) as sampler:
        lab.run("partition", "node1", "--network", "public", "--network", "private")
        wait_for(lambda: "10.77.0.101" not in lab.addresses("node1"), timeout=5,
                 what="the address gone from node1")
        # app's stop still runs (90 s budget): the address went at the deadline, not by vip2's
        # own stop, and the engine shows vip2 down, not online.
        resources = {r["name"]: r for r in lab.json("node1", "resources", "slow")}
        assert resources["app"]["state"] == "offline-pending", resources["app"]
        assert resources["vip2"]["state"] in ("failed", "offline"), resources["vip2"]
        events = lab.json("node1", "events")
        assert any(e["kind"] == "quorum" and e["group"] == "slow" and
                   "removed address 10.77.0.101/32 of resource vip2" in e["reason"]
                   for e in events), [e["reason"] for e in events if e["kind"] == "quorum"]
        pair = ["node2", "node3"]
        wait_for(lambda: online_on(lab, pair, "slow") in pair, timeout=15,
                 what="the pair runs the slow group")
        # Still gone: the engine did not add it back.
        assert "10.77.0.101" not in lab.addresses("node1")
        lab.run("heal")
    assert sampler.double == [], "the ledger ran on two nodes at once"
