"""The quorum disk in the lab (issue 5, items 2, 3 and 5): node-and-disk-majority on the lab's
quorum LUN. Two nodes: the survivor of a killed owner wins the disk and runs the group. Four
nodes split 2|2 (public and private cut, storage up): the side holding the disk runs every
group and both its nodes stay quorate, the other stops. A configuration changed while a node
was down reaches it when it comes back, also when it starts alone (the disk's checkpoint). tgtd
restarted: the holder restores its reservation and nobody stops. Every lab is torn down, also on
failure; assertions use clusterctl --json and READ RESERVATION, never log text."""
import json
import os
import subprocess
import time

import pytest

from harness import BUILD, CLUSTERCTL, reservation_view, wait_for
from lab_harness import clab

LAB_PREFIX = os.environ.get("CLUSTERD_LAB_PREFIX", "qw")
GROUP = "vip"  # clusterlab --group ip-only: a group that starts fast
DISK_HELPER = os.path.abspath(os.path.join(BUILD, "daemon", "clusterd-disk"))
# A group added by `clusterctl apply` (an OCF agent that starts fast).
EXTRA_GROUP = """
  - name: extra
    preferred_owners: [node1, node2]
    resources:
      - name: dummy
        type: ocf
        agent: heartbeat:Dummy
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a lab needs root (namespaces)")


class Lab:
    def __init__(self, name, nodes, quorum="node-and-disk-majority"):
        self.name = name
        self.nodes = [f"node{i}" for i in range(1, nodes + 1)]
        self.quorum = quorum

    def up(self):
        clab("up", "--name", self.name, "--nodes", str(len(self.nodes)), "--group", "ip-only",
             "--quorum", self.quorum)
        return self

    def down(self):
        return clab("down", "--name", self.name, check=False)

    def run(self, *args):
        return clab(*args, "--name", self.name)

    def json(self, node, *args):
        r = subprocess.run([CLUSTERCTL, "--bus", f"/run/clusterlab/{self.name}/{node}/run/clusterd/bus",
                            *args, "--json"], capture_output=True, text=True, timeout=10)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def cluster(self, node):
        return self.json(node, "cluster")

    def owner(self, nodes):
        """The owner every node of `nodes` sees the group online on, else None."""
        owners = set()
        for n in nodes:
            g = next((g for g in self.json(n, "groups") or [] if g["name"] == GROUP), None)
            if not g or g["state"] != "online":
                return None
            owners.add(g["owner"])
        return owners.pop() if len(owners) == 1 else None

    def running_here(self, node):
        return any(r["state"] != "offline" for r in self.json(node, "resources") or [])

    def disk(self, node):
        c = self.cluster(node)
        return c["quorum_disk"] if c else None

    def config_text(self, node):
        with open(f"/run/clusterlab/{self.name}/{node}/etc/cluster.yaml") as f:
            return f.read()

    def apply(self, node, text, tmp_path):
        path = tmp_path / "cluster.yaml"
        path.write_text(text)
        clab("ctl", "--name", self.name, node, "apply", str(path))

    def events(self, node):
        return self.json(node, "events") or []

    def reservation(self, node):
        """READ RESERVATION and READ KEYS of the quorum LUN, asked from `node` with an observer's
        initiator (as test_lab_disk.py): {"holder": "node 2 write-exclusive" | None,
        "keys": ["node 2", ...]}, keys without the observer's unknown cluster id."""
        args = [DISK_HELPER, "--show-reservation", "--portal", "10.79.0.250:3260", "--target",
                f"iqn.2024-01.org.clusterd.lab:{self.name}.quorum", "--lun", "1", "--initiator",
                f"iqn.2026-11.org.clusterd:{self.name}:observer"]
        r = clab("exec", "--name", self.name, node, "--", *args, check=False)
        raw = reservation_view(r.stdout)
        holder = None
        if raw["holder"] not in (None, "none"):
            who, _, kind_of = raw["holder"].rpartition(" ")
            holder = f"{who.split(' of cluster')[0]} {kind_of}"
        return {"holder": holder, "keys": [k.split(" of cluster")[0] for k in raw["keys"]]}


def made(lab):
    """Yields `lab` up; always takes it down (also when up or the test fails)."""
    lab.down()
    try:
        yield lab.up()
    finally:
        lab.down()


@pytest.fixture
def lab2():
    yield from made(Lab(f"{LAB_PREFIX}2", 2))


@pytest.fixture
def lab4():
    yield from made(Lab(f"{LAB_PREFIX}4", 4))


@pytest.fixture
def lab3_disk_only():
    yield from made(Lab(f"{LAB_PREFIX}3d", 3, quorum="disk-only"))


def holder(lab, nodes):
    """The node every node of `nodes` sees holding the disk, when that node says so too."""
    seen = {(lab.disk(n) or {}).get("holder") for n in nodes}
    if len(seen) != 1:
        return None
    h = seen.pop()
    return h if h and (lab.disk(h) or {}).get("held_here") else None


def test_two_nodes_the_survivor_wins_the_disk_and_runs_the_group(lab2):
    lab = lab2
    owner = wait_for(lambda: lab.owner(lab.nodes), timeout=20, what="the group online")
    wait_for(lambda: holder(lab, lab.nodes), timeout=10, what="a holder of the quorum disk")
    survivor = next(n for n in lab.nodes if n != owner)
    lab.run("kill-node", owner)
    wait_for(lambda: lab.owner([survivor]) == survivor, timeout=20,
             what="the survivor runs the group (one node + the disk)")
    c = lab.cluster(survivor)
    assert c["quorate"] and c["role"] == "leader"
    assert c["quorum_disk"]["holder"] == survivor and c["quorum_disk"]["held_here"]


def test_split_two_and_two_the_disk_side_runs_everything(lab4):
    lab = lab4
    owner = wait_for(lambda: lab.owner(lab.nodes), timeout=30, what="the group online")
    disk_holder = wait_for(lambda: holder(lab, lab.nodes), timeout=10, what="a disk holder")
    # Cut the half without the holder off on the heartbeat networks; storage stays up.
    ours = sorted([disk_holder, next(n for n in lab.nodes if n != disk_holder)])
    theirs = [n for n in lab.nodes if n not in ours]
    partner = next(n for n in ours if n != disk_holder)
    before = max((e["seq"] for e in lab.json(partner, "events") or []), default=0)
    lab.run("partition", *theirs, "--network", "public", "--network", "private")
    wait_for(lambda: lab.owner(ours) in ours, timeout=20, what="the disk's side runs the group")
    wait_for(lambda: all(not lab.cluster(n)["quorate"] for n in theirs), timeout=10,
             what="the other side has no quorum")
    wait_for(lambda: not any(lab.running_here(n) for n in theirs), timeout=10,
             what="the other side runs nothing")
    # Both nodes of the disk's side stay quorate: the holder counts the disk itself, its partner
    # through the holder's echoes (docs/quorum-disk.md, "Followers of the holder"), so the
    # partner never stopped its groups (no quorum event of its own since the cut).
    assert all(lab.cluster(n)["quorate"] for n in ours)
    assert holder(lab, ours) == disk_holder
    assert not [e for e in lab.json(partner, "events") if e["seq"] > before
                and e["kind"] == "quorum" and "lost" in e["reason"]]
    if owner in theirs:
        events = lab.json(owner, "events")
        assert any(e["kind"] == "quorum" and "quorum" in e["reason"] for e in events)
    lab.run("heal")
    wait_for(lambda: all(lab.cluster(n)["quorate"] for n in lab.nodes), timeout=20,
             what="one quorate cluster again")
    assert lab.owner(lab.nodes) in ours


def key_of(node):
    return f"node {node.removeprefix('node')}"


def only_holder(lab, asker, node):
    """True when the quorum LUN shows `node`'s key alone, holding Write Exclusive."""
    view = lab.reservation(asker)
    return view["holder"] == f"{key_of(node)} write-exclusive" and view["keys"] == [key_of(node)]


def change_config_while_down(lab, tmp_path):
    """Stops the node that does not hold the disk, applies a new version on the other (which
    runs on its vote and the disk's), checks that the disk's checkpoint has it; returns
    (up, down, version)."""
    wait_for(lambda: lab.owner(lab.nodes), timeout=20, what="the group online")
    up = wait_for(lambda: holder(lab, lab.nodes), timeout=10, what="a holder of the quorum disk")
    down = next(n for n in lab.nodes if n != up)
    before = lab.cluster(up)["config_version"]
    lab.run("stop-node", down)
    text = lab.config_text(up)
    lab.apply(up, text.rstrip("\n") + "\n" + EXTRA_GROUP.lstrip("\n"), tmp_path)
    version = before + 1
    wait_for(lambda: lab.cluster(up)["config_version"] == version, timeout=10,
             what="the new version committed by one node and the disk")
    # The holder wrote it into the disk's checkpoint (the quorum log).
    wait_for(lambda: lab.disk(up).get("config_version") == version, timeout=10,
             what="the new version in the disk's checkpoint")
    assert "name: extra" not in lab.config_text(down)
    return up, down, version


def test_config_changed_while_a_node_is_down_reaches_it_when_it_comes_back(lab2, tmp_path):
    lab = lab2
    up, down, version = change_config_while_down(lab, tmp_path)
    lab.run("start-node", down)
    wait_for(lambda: (lab.cluster(down) or {}).get("config_version") == version, timeout=20,
             what=f"{down} on the new version")
    assert "name: extra" in lab.config_text(down)  # saved where the daemon reads it next time
    wait_for(lambda: all(lab.cluster(n)["quorate"] for n in lab.nodes), timeout=20,
             what="both nodes quorate")
    # The node that does not hold the disk shows a fresh record of it: its arbiter reads the
    # disk again every 10 P, so a later checkpoint written by the holder reaches its view.
    text = lab.config_text(up)
    lab.apply(up, text.replace("name: extra", "name: extra2"), tmp_path)
    wait_for(lambda: (lab.disk(down) or {}).get("config_version") == version + 1, timeout=10,
             what=f"{down}'s view of the disk showing the next checkpoint")
    assert not lab.disk(down)["held_here"]


def test_a_node_started_alone_reads_the_disk_and_never_brings_back_an_old_config(lab2, tmp_path):
    lab = lab2
    up, down, version = change_config_while_down(lab, tmp_path)
    # Every node stopped; then the one that missed the change starts alone. Its own state has
    # the old version; the disk's checkpoint has the new one (docs/quorum-disk.md, "Starting
    # and rejoining"). Two nodes + disk: {it, disk} is 2 of 3 votes, so once it wins the disk
    # it is the cluster and runs every group (the design's "Two nodes", node failure).
    lab.run("stop-node", up)
    lab.run("start-node", down)
    c = wait_for(lambda: lab.cluster(down), timeout=10, what=f"{down} answering")
    assert c["config_version"] == version, c  # from the first answer on: merged before Raft
    events = lab.events(down)
    assert any(e["kind"] == "quorum" and "checkpoint" in e["reason"] and "installed" in e["reason"]
               for e in events), events
    assert "name: extra" in lab.config_text(down)
    wait_for(lambda: lab.owner([down]) == down, timeout=30,
             what=f"{down} alone with the disk runs the group")
    c = lab.cluster(down)
    assert c["role"] == "leader" and c["quorate"] and c["config_version"] == version
    assert c["quorum_disk"]["holder"] == down and c["quorum_disk"]["held_here"]
    assert only_holder(lab, down, down), lab.reservation(down)
    # The group the old configuration did not have runs too: the new version is in force.
    wait_for(lambda: any(g["name"] == "extra" and g["state"] == "online"
                         for g in lab.json(down, "groups") or []), timeout=20,
             what="the group added while this node was down online")


def test_storage_restart_the_holder_restores_its_reservation_and_nobody_stops(lab2):
    lab = lab2
    owner = wait_for(lambda: lab.owner(lab.nodes), timeout=20, what="the group online")
    disk_holder = wait_for(lambda: holder(lab, lab.nodes), timeout=10, what="a disk holder")
    assert only_holder(lab, disk_holder, disk_holder), lab.reservation(disk_holder)
    seen = {n: max([e["seq"] for e in lab.events(n)], default=0) for n in lab.nodes}
    lab.run("restart-storage")
    start = time.monotonic()
    # The restart wiped every registration (tgt has no APTPL); the holder's next check finds the
    # LUN vacant and reserves it again at once. The deadline only guards against a hang; the
    # time taken is printed (the design bound is one defence period P, 100 ms here, plus the
    # holder's new login).
    wait_for(lambda: only_holder(lab, disk_holder, disk_holder), timeout=10, interval=0.05,
             what="the holder's reservation restored after the tgtd restart")
    print(f"quorum LUN reservation restored {time.monotonic() - start:.2f} s after the tgtd "
          "restart")
    # The other node looks at the LUN every 10 P: it may have seen the vacancy in between.
    wait_for(lambda: holder(lab, lab.nodes) == disk_holder, timeout=10,
             what="every node seeing the same holder again")
    for n in lab.nodes:
        c = lab.cluster(n)
        assert c["quorate"] and not c["fenced"], (n, c)
        new = [e for e in lab.events(n) if e["seq"] > seen[n]]
        assert not any(e["kind"] == "quorum" and ("lost" in e["reason"] or "offline" in e["reason"])
                       for e in new), (n, new)
    assert lab.owner(lab.nodes) == owner


def test_clean_stop_of_the_holder_hands_the_disk_over_without_a_challenge(lab2):
    lab = lab2
    wait_for(lambda: lab.owner(lab.nodes), timeout=20, what="the group online")
    old = wait_for(lambda: holder(lab, lab.nodes), timeout=10, what="a disk holder")
    survivor = next(n for n in lab.nodes if n != old)
    seen = max([e["seq"] for e in lab.events(survivor)], default=0)
    lab.run("stop-node", old)  # SIGTERM: groups offline, the disk released, then it leaves
    # Released and unregistered: nobody holds the LUN until the survivor reserves it.
    wait_for(lambda: lab.owner([survivor]) == survivor, timeout=20,
             what="the survivor runs the group (one node + the disk)")
    wait_for(lambda: holder(lab, [survivor]) == survivor, timeout=10, what="the survivor holds the disk")
    assert only_holder(lab, survivor, survivor), lab.reservation(survivor)
    # How it won the disk, from its event history: at once on the release, not by outwaiting a
    # challenge (W) and preempting the old key.
    taken = [e["reason"] for e in lab.events(survivor)
             if e["seq"] > seen and e["kind"] == "quorum" and "holds the quorum disk" in e["reason"]]
    assert taken, lab.events(survivor)
    assert all(f"node {old.removeprefix('node')} released it" in r for r in taken), taken
    assert not any("challenge" in r or "preempted" in r for r in taken), taken
    assert lab.disk(survivor)["taken"] == taken[-1].split(": ", 1)[1]


def test_disk_only_the_holder_is_the_cluster_and_a_survivor_takes_over(lab3_disk_only):
    lab = lab3_disk_only
    owner = wait_for(lambda: lab.owner(lab.nodes), timeout=30, what="the group online")
    disk_holder = wait_for(lambda: holder(lab, lab.nodes), timeout=10, what="a disk holder")
    c = lab.cluster(disk_holder)
    # MSCS 1.0: the nodes have no votes, the holder of the disk leads; the others count the
    # disk through the holder's echoes, so every node is quorate and may own groups.
    assert c["role"] == "leader" and c["quorate"]
    assert all(n["votes"] == 0 for n in c["nodes"])
    assert c["quorum_disk"]["votes"] == 1
    wait_for(lambda: all(lab.cluster(n)["quorate"] for n in lab.nodes), timeout=10,
             what="every node quorate through the holder")
    assert owner in lab.nodes
    lab.run("kill-node", disk_holder)
    others = [n for n in lab.nodes if n != disk_holder]
    new = wait_for(lambda: holder(lab, others), timeout=20, what="a survivor holding the disk")
    wait_for(lambda: lab.owner(others) in others, timeout=20,
             what="a survivor runs the group")
    wait_for(lambda: all(lab.cluster(n)["quorate"] for n in others), timeout=10,
             what="both survivors quorate through the new holder")
    c = lab.cluster(new)
    assert c["role"] == "leader" and c["quorate"]
    assert "preempted" in c["quorum_disk"]["taken"], c["quorum_disk"]  # the dead holder fenced
    assert only_holder(lab, new, new), lab.reservation(new)
