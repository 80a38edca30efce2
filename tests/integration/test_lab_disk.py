"""The ledger group's disk in a three-node lab (lab name prefix dk): the owner killed -> the new
owner preempted its key (only the new owner's key registered and holding) and the ledger client
finds every acknowledged record."""
import json
import os
import subprocess

import pytest

from harness import BUILD, wait_for
from lab_harness import LEDGER_CLIENT, Lab, clab

VIP = "10.77.0.100"
NAME = "dkdisk"
NODES = ["node1", "node2", "node3"]
DISK_HELPER = os.path.abspath(os.path.join(BUILD, "daemon", "clusterd-disk"))
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a lab needs root (namespaces)")


@pytest.fixture(scope="module")
def lab():
    lab = Lab(NAME)
    lab.down()
    try:
        lab.up("--nodes", str(len(NODES)))
        wait_for(lambda: owner(lab, NODES), timeout=60, what="ledger online (autostart)")
        yield lab
    finally:
        lab.down()


def owner(lab, nodes):
    """The node whose own view says the ledger group is online there, or None."""
    for node in nodes:
        r = clab("ctl", "--name", lab.name, node, "status", "--json", check=False)
        if r.returncode != 0:
            continue
        group = next((g for g in json.loads(r.stdout)["groups"] if g["name"] == "ledger"), None)
        if group and group["state"] == "online" and group["owner"] == node:
            return node
    return None


def reservation(lab, node):
    """READ RESERVATION and READ KEYS of the ledger LUN, asked from `node` with an observer's
    initiator: {"holder": "node 2 exclusive-access" | "none", "keys": ["node 2", ...]}."""
    args = [DISK_HELPER, "--show-reservation", "--portal", "10.79.0.250:3260", "--target",
            f"iqn.2024-01.org.clusterd.lab:{lab.name}.ledger", "--initiator",
            f"iqn.2026-11.org.clusterd:{lab.name}:observer"]
    out = lab.exec(node, *args).stdout
    view = {"holder": None, "keys": []}
    for line in out.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "holder":
            view["holder"] = rest
        elif kind == "key":
            view["keys"].append(rest)
    return view


def short(view):
    """'node 2' from 'node 2' or 'node 2 of cluster 9' (the observer may not know the id)."""
    return view.split(" of cluster")[0]


def test_kill_owner_new_owner_preempted_the_key_and_no_acknowledged_record_is_lost(lab):
    old = owner(lab, NODES)
    assert old
    view = reservation(lab, old)
    assert short(view["holder"].rsplit(" ", 1)[0]) == f"node {old[-1]}", view
    assert view["holder"].endswith("exclusive-access"), view
    client = subprocess.Popen(
        [*lab_client_prefix(lab), LEDGER_CLIENT, f"{VIP}:7070", "--duration", "10", "--interval",
         "5", "--connect-timeout", "200", "--max-backoff", "100", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: ledger_bytes(lab, old) > 2000, timeout=20,
                 what="the client's records landing on the disk")
        lab.run("kill-node", old)
        survivors = [n for n in NODES if n != old]
        new = wait_for(lambda: owner(lab, survivors), timeout=30, what="ledger on a survivor")
        out, err = client.communicate(timeout=90)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, f"{out}\n{err}"
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary.get("lost", 0) == 0 and summary["verified"], summary
    assert summary["acked"] > 50
    view = reservation(lab, new)
    # Only the new owner: the old owner's registration was preempted with its reservation.
    assert short(view["holder"].rsplit(" ", 1)[0]) == f"node {new[-1]}", view
    assert [short(k) for k in view["keys"]] == [f"node {new[-1]}"], view
    lab.run("start-node", old)


def ledger_bytes(lab, node):
    r = clab("exec", "--name", lab.name, node, "--", "stat", "-c", "%s",
             "/var/lib/clusterd/ledger/ledger.log", check=False)
    return int(r.stdout) if r.returncode == 0 else 0


def lab_client_prefix(lab):
    return ["ip", "netns", "exec", f"{lab.name}-client"]
