"""The quorum disk in the lab (issue 5, items 2, 3 and 5): node-and-disk-majority on the lab's
quorum LUN. Two nodes: the survivor of a killed owner wins the disk and runs the group. Four
nodes split 2|2 (public and private cut, storage up): the side holding the disk runs every
group and both its nodes stay quorate, the other stops. Every lab is torn down, also on failure; assertions use clusterctl
--json, never log text."""
import json
import os
import subprocess

import pytest

from harness import CLUSTERCTL, wait_for
from lab_harness import clab

LAB_PREFIX = os.environ.get("CLUSTERD_LAB_PREFIX", "qw")
GROUP = "vip"  # clusterlab --group ip-only: a group that starts fast

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a lab needs root (namespaces)")


class Lab:
    def __init__(self, name, nodes):
        self.name = name
        self.nodes = [f"node{i}" for i in range(1, nodes + 1)]

    def up(self):
        clab("up", "--name", self.name, "--nodes", str(len(self.nodes)), "--group", "ip-only",
             "--quorum", "node-and-disk-majority")
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


@pytest.fixture
def lab2():
    lab = Lab(f"{LAB_PREFIX}2", 2)
    lab.down()
    try:
        yield lab.up()
    finally:
        lab.down()


@pytest.fixture
def lab4():
    lab = Lab(f"{LAB_PREFIX}4", 4)
    lab.down()
    try:
        yield lab.up()
    finally:
        lab.down()


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
