"""The ledger group (virtual IP + ledgerd) in a two-node lab: a planned move seen from a client,
the gratuitous ARP that makes it quick, link failure, and an address somebody else answers for."""
import json
import os

import pytest

from harness import wait_for
from lab_harness import LEDGER_CLIENT, Lab

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
    """The node running the ledger group, or None."""
    for node in ("node1", "node2"):
        if lab.group(node, "ledger")["state"] == "online":
            return node
    return None


def resource(lab, node, name):
    return next(r for r in lab.group(node, "ledger")["resources"] if r["name"] == name)


def move(lab, to):
    """Planned move as an administrator does it before membership: offline on the owner, then
    online on `to`, each daemon told directly."""
    current = owner(lab)
    if current and current != to:
        lab.ctl(current, "offline", "ledger")
    lab.ctl(to, "online", "ledger")


def ledger_log(lab):
    return os.path.join(lab.directory(), "shared", "ledger", "ledger.log")


def test_move_announces_the_new_mac_and_the_client_loses_nothing(lab):
    move(lab, "node1")
    start = os.path.getsize(ledger_log(lab)) if os.path.exists(ledger_log(lab)) else 0
    client = lab.popen_client(LEDGER_CLIENT, f"{VIP}:7070", "--duration", "4", "--interval",
                              "10", "--max-backoff", "10", "--json")
    try:
        wait_for(lambda: os.path.exists(ledger_log(lab))
                 and os.path.getsize(ledger_log(lab)) > start + 200,
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
        wait_for(lambda: lab.group("node1", "ledger")["state"] in ("failed", "offline"),
                 timeout=30, what="the group given up on node1")
    finally:
        lab.exec("node1", "ip", "link", "set", "public", "up")
    move(lab, "node1")
    assert resource(lab, "node1", "vip")["state"] == "online"


def test_an_address_another_host_answers_for_is_refused(lab):
    current = owner(lab)
    if current:
        lab.ctl(current, "offline", "ledger")
    lab.client("ip", "addr", "add", f"{VIP}/32", "dev", "public")
    try:
        result = lab.ctl("node2", "online", "ledger", check=False)
        assert result.returncode == 1
        vip = resource(lab, "node2", "vip")
        assert vip["state"] == "failed"
        assert "already in use" in vip["reason"], vip["reason"]
        assert lab.exec("node2", "ip", "-br", "addr", "show", "public").stdout.count(VIP) == 0
    finally:
        lab.client("ip", "addr", "del", f"{VIP}/32", "dev", "public", check=False)
    lab.ctl("node2", "offline", "ledger")
    move(lab, "node1")
