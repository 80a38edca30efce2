"""The network name in a three-node lab with the service group (`clusterlab up --group service`):
the `name` resource registers ledger.lab.test in the lab's real DNS server (named, RFC 2136 with
TSIG), and the client reaches ledgerd by that name before and after a move and a node crash.
The event history proves the order: ip -> name -> service online, the reverse offline."""
import os

import pytest

from harness import wait_for
from lab_harness import LEDGER_CLIENT, Lab, dns_answer, dns_serial

VIP = "10.77.0.100"
NAME = "ledger.lab.test"
GROUP = "service"
ONLINE_ORDER = ["vip", "netname", "ledgerd"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a lab needs root (namespaces)")


@pytest.fixture(scope="module")
def lab():
    lab = Lab("nmnames")
    lab.down()
    try:
        lab.up("--nodes", "3", "--group", GROUP)  # three: a crash keeps a quorum
        wait_for(lambda: owner(lab) == "node1", timeout=30, what="service online on node1")
        yield lab
    finally:
        lab.down()


def owner(lab, view="node1"):
    g = lab.group(view, GROUP)
    return g["owner"] if g["state"] == "online" else None


def live_view(lab):
    """A node whose daemon runs (the other one may have been killed)."""
    status = lab.status()
    return next(n["name"] for n in status["nodes"] if n["daemon"]["running"])


def events(lab, node):
    return [e for e in lab.ctl(node, "events", "--json")
            if e["kind"] == "resource" and e["group"] == GROUP]


def reaches_by_name(lab, count=5):
    """ledger-client in the client namespace, by name: getaddrinfo resolves through the lab's
    DNS server (clusterlab client bind-mounts the lab's resolv.conf)."""
    r = lab.client(LEDGER_CLIENT, f"{NAME}:7070", "--count", str(count), "--give-up", "20",
                   "--json", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def delete_record(lab):
    """Deletes the name's A records with the lab's key, from the client."""
    key = os.path.join(lab.directory(), "dns", "update.key")
    lab.client("sh", "-c", f"printf 'server 10.77.0.53\\nzone lab.test\\nupdate delete {NAME} A"
               f"\\nsend\\n' | nsupdate -k {key}")


def transitions(lab, node, after, to):
    return [e["resource"] for e in events(lab, node) if e["seq"] > after and e["to"] == to]


def last_seq(lab, node):
    return max((e["seq"] for e in lab.ctl(node, "events", "--json")), default=0)


def test_the_name_is_registered_with_the_configured_ttl(lab):
    assert dns_answer(lab, NAME) == [(VIP, 5)]
    # The key really is required: an unsigned update is refused by the server.
    r = lab.client("sh", "-c", f"printf 'server 10.77.0.53\\nzone lab.test\\nupdate delete {NAME} A"
                   "\\nsend\\n' | nsupdate", check=False)
    assert r.returncode != 0 and "REFUSED" in (r.stdout + r.stderr)
    assert dns_answer(lab, NAME) == [(VIP, 5)]


def test_dependents_get_the_network_name(lab):
    node = owner(lab)
    env = lab.exec(node, "sh", "-c", "tr '\\0' '\\n' < /proc/$(systemctl --user show ledgerd "
                   "-p MainPID --value)/environ").stdout
    assert "CLUSTER_NETWORK_NAME=ledger" in env.splitlines()


def test_the_client_reaches_the_ledger_by_name_across_a_move(lab):
    reaches_by_name(lab)
    before = dns_serial(lab)
    marks = {n: last_seq(lab, n) for n in ("node1", "node2")}
    lab.ctl("node2", "move", GROUP, "node2")
    wait_for(lambda: owner(lab) == "node2", timeout=30, what="service online on node2")
    # Offline in reverse order on node1, online in order on node2.
    assert transitions(lab, "node1", marks["node1"], "offline") == ONLINE_ORDER[::-1]
    assert transitions(lab, "node2", marks["node2"], "online") == ONLINE_ORDER
    # Deleted by node1, registered by node2: two more zone versions, the record as it was.
    assert dns_serial(lab) >= before + 2
    assert dns_answer(lab, NAME) == [(VIP, 5)]
    reaches_by_name(lab)


def test_the_client_reaches_the_ledger_by_name_after_the_owner_crashes(lab):
    if owner(lab) is None:
        lab.ctl("node1", "online", GROUP, check=False)
    crashed = wait_for(lambda: owner(lab), timeout=30, what="service online somewhere")
    view = "node3" if crashed != "node3" else "node1"
    # Remove the record behind the cluster's back first: seeing it again after the crash shows
    # that the survivor registered it (an update that changes nothing leaves no other trace).
    delete_record(lab)
    assert dns_answer(lab, NAME) == []
    marks = {n: last_seq(lab, n) for n in ("node1", "node2", "node3") if n != crashed}
    lab.run("kill-node", crashed)
    try:
        survivor = wait_for(lambda: owner(lab, view) not in (None, crashed) and owner(lab, view),
                            timeout=60, what="service failed over")
        assert transitions(lab, survivor, marks[survivor], "online") == ONLINE_ORDER
        assert dns_answer(lab, NAME) == [(VIP, 5)]
        reaches_by_name(lab)
    finally:
        lab.run("start-node", crashed)


def test_offline_deletes_the_records_and_online_registers_them_again(lab):
    node = wait_for(lambda: owner(lab, live_view(lab)), timeout=30, what="an owner")
    mark = last_seq(lab, node)
    lab.ctl(node, "offline", f"{GROUP}/netname")
    wait_for(lambda: transitions(lab, node, mark, "offline") == ["ledgerd", "netname"],
             timeout=30, what="ledgerd, then netname offline")
    assert dns_answer(lab, NAME) == []
    lab.ctl(node, "online", f"{GROUP}/ledgerd")  # and what it depends on
    wait_for(lambda: owner(lab, node) == node, timeout=30, what="service online again")
    assert dns_answer(lab, NAME) == [(VIP, 5)]
