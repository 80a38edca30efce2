"""The ledger group (virtual IP + ledgerd) in a two-node lab: a planned move seen from a client,
the gratuitous ARP that makes it quick, link failure, and an address somebody else answers for."""
import json
import os

import pytest

from harness import wait_for
from lab_harness import LEDGER_CLIENT, Lab, ledger_log_size

VIP = "10.77.0.100"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a lab needs root (namespaces)")


@pytest.fixture(scope="module")
def lab():
    lab = Lab("itledger")
    lab.down()
    try:
        lab.up("--nodes", "2")
        wait_for(lambda: lab.group("node1", "ledger")["state"] == "online", timeout=30,
                 what="ledger online on node1 (autostart)")
        yield lab
    finally:
        lab.down()


def owner(lab):
    """The node running the ledger group (as node1's view of the cluster says), or None."""
    g = lab.group("node1", "ledger")
    return g["owner"] if g["state"] == "online" else None


def resource(lab, node, name):
    return next(r for r in lab.group(node, "ledger")["resources"] if r["name"] == name)


def move(lab, to):
    """Planned move through the coordinator: offline on the owner, confirmed, online on `to`."""
    if owner(lab) == to:
        return
    if owner(lab) is None:
        lab.ctl("node1", "online", "ledger", check=False)
        wait_for(lambda: owner(lab), timeout=30, what="ledger online somewhere")
    if owner(lab) != to:
        lab.ctl(to, "move", "ledger", to)
    wait_for(lambda: owner(lab) == to and lab.group(to, "ledger")["state"] == "online",
             timeout=30, what=f"ledger online on {to}")


def test_move_announces_the_new_mac_and_the_client_loses_nothing(lab):
    move(lab, "node1")
    start = ledger_log_size(lab, "node1")
    client = lab.popen_client(LEDGER_CLIENT, f"{VIP}:7070", "--duration", "4", "--interval",
                              "10", "--max-backoff", "10", "--json")
    try:
        wait_for(lambda: ledger_log_size(lab, "node1") > start + 200,
                 what="the client's first records on the ledger")
        move(lab, "node2")
        # Right after the move: the client's neighbour entry already holds node2's MAC (the
        # gratuitous ARP moved it; without it the old entry would stay REACHABLE for ~30 s).
        neigh = lab.client("ip", "neigh", "show", VIP).stdout
        assert lab.mac("node2") in neigh, neigh
        assert lab.mac("node1") not in neigh, neigh
        out, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    report = json.loads(out.strip().splitlines()[-1])
    assert client.returncode == 0, err
    assert report["lost"] == 0 and report["verified"]
    assert report["acked"] > 50
    assert len(report["outages_ms"]) >= 1


def test_link_down_on_the_owner_fails_the_ip_resource(lab):
    move(lab, "node1")
    try:
        lab.exec("node1", "ip", "link", "set", "public", "down")
        wait_for(lambda: any(e["resource"] == "vip" and e["to"] == "failed"
                             and "down" in e["reason"]
                             for e in lab.ctl("node1", "events", "--json")),
                 what="vip failed because its link went down")
        # The group fails over (FailoverPolicy): it leaves node1.
        wait_for(lambda: lab.group("node1", "ledger")["owner"] != "node1"
                 or lab.group("node1", "ledger")["state"] in ("failed", "offline"),
                 timeout=30, what="the group given up on node1")
    finally:
        lab.exec("node1", "ip", "link", "set", "public", "up")
    move(lab, "node1")
    assert resource(lab, "node1", "vip")["state"] == "online"


def test_an_address_another_host_answers_for_is_refused(lab):
    if owner(lab):
        lab.ctl("node1", "offline", "ledger")
    lab.client("ip", "addr", "add", f"{VIP}/32", "dev", "public")
    last_seq = {n: max((e["seq"] for e in lab.ctl(n, "events", "--json")), default=0)
                for n in ("node1", "node2")}
    try:
        result = lab.ctl("node2", "online", "ledger", check=False)
        assert result.returncode == 1
        # Wherever the coordinator tried it, the probe found the address taken (read from the
        # event history: the coordinator may already have cleaned the failed group up).
        refused = [e for n in ("node1", "node2") for e in lab.ctl(n, "events", "--json")
                   if e["seq"] > last_seq[n] and e["resource"] == "vip" and e["to"] == "failed"]
        assert refused, "no node recorded the vip failing"
        assert all("already in use" in e["reason"] for e in refused), refused
        for n in ("node1", "node2"):
            assert lab.exec(n, "ip", "-br", "addr", "show", "public").stdout.count(VIP) == 0
    finally:
        lab.client("ip", "addr", "del", f"{VIP}/32", "dev", "public", check=False)
    lab.ctl("node2", "offline", "ledger", check=False)
    move(lab, "node1")
