"""Every resource type in one group (issue 6, items 3-4): `clusterlab up --group full` in a
three-node lab. The ledger LUN (`data`, disk) -> `vip` (ip) -> `netname` (name, registered in the
lab's named) -> `ledgerd` (a unit of the node's systemd --user manager, its data directory on the
disk's mount point). The event history proves the order (online along the dependencies, offline
against them); the client reaches the ledger by name before and after a move and a crash of the
owner, and every acknowledged record is still there, because the data moved with the disk; the
new owner registers the name in DNS again."""
import json
import os
import subprocess

import pytest

from harness import BUILD, wait_for
from lab_harness import (CLUSTERLAB, LEDGER_CLIENT, LEDGER_LOG, Lab, dns_answer, dns_serial,
                         ledger_log_size)

GROUP = "full"
NAME = "ledger.lab.test"
VIP = "10.77.0.100"
NODES = ["node1", "node2", "node3"]
MOUNT_POINT = "/var/lib/clusterd/ledger"
# The dependencies the group must have (labkit/cluster_yaml.py _full): the service on disk, ip
# and name, the name on the ip, and the ip on the disk (so the chain is total).
DEPENDS = {"data": [], "vip": ["data"], "netname": ["vip"],
           "ledgerd": ["data", "vip", "netname"]}
ONLINE_ORDER = ["data", "vip", "netname", "ledgerd"]
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access("/lib/systemd/systemd", os.X_OK),
    reason="needs root (namespaces) and systemd installed")


@pytest.fixture(scope="module")
def lab():
    lab = Lab("scfull")
    lab.down()
    try:
        lab.up("--nodes", str(len(NODES)), "--group", GROUP)
        wait_for(lambda: owner(lab, NODES) == "node1", timeout=60, what="full online on node1")
        yield lab
    finally:
        lab.down()


# -- views ---------------------------------------------------------------------------------------

def owner(lab, nodes):
    """The node whose own view has the group online there, or None (nodes that do not answer,
    such as a killed one, are skipped)."""
    for node in nodes:
        r = lab.ctl(node, "status", "--json", check=False)
        if not isinstance(r, dict):
            continue
        group = next((g for g in r["groups"] if g["name"] == GROUP), None)
        if group and group["state"] == "online" and group["owner"] == node:
            return node
    return None


def events(lab, node, after=0):
    """The group's resource transitions on `node` after sequence number `after`, oldest first."""
    return [e for e in lab.ctl(node, "events", "--json")
            if e["kind"] == "resource" and e["group"] == GROUP and e["seq"] > after]


def last_seq(lab, node):
    return max((e["seq"] for e in lab.ctl(node, "events", "--json")), default=0)


def seq_of(history, resource, to):
    """Sequence number of `resource`'s first transition to `to` in `history`."""
    found = [e["seq"] for e in history if e["resource"] == resource and e["to"] == to]
    assert found, f"no transition of {resource} to {to} in {history}"
    return found[0]


def assert_online_in_order(history):
    """Each resource was started (offline -> online-pending) only after everything it depends
    on was online, and they came online in the chain's order."""
    for name, needs in DEPENDS.items():
        started = seq_of(history, name, "online-pending")
        for dep in needs:
            assert seq_of(history, dep, "online") < started, (name, dep, history)
    online = [e for e in history if e["to"] == "online"]
    assert [e["resource"] for e in online] == ONLINE_ORDER, history
    assert [e["time"] for e in online] == sorted(e["time"] for e in online), online


def assert_offline_in_reverse(history):
    """Each resource was stopped (online -> offline-pending) only after everything that depends
    on it was offline, and they went offline in the reverse of the chain."""
    for name, needs in DEPENDS.items():
        for dep in needs:
            assert seq_of(history, name, "offline") < seq_of(history, dep, "offline-pending"), (
                dep, name, history)
    offline = [e for e in history if e["to"] == "offline"]
    assert [e["resource"] for e in offline] == ONLINE_ORDER[::-1], history
    assert [e["time"] for e in offline] == sorted(e["time"] for e in offline), offline


def delete_record(lab):
    """Deletes the name's A records with the lab's key, from the client, behind the cluster's
    back: only a new registration brings them back."""
    key = os.path.join(lab.directory(), "dns", "update.key")
    lab.client("sh", "-c", f"printf 'server 10.77.0.53\\nzone lab.test\\nupdate delete {NAME} A"
               f"\\nsend\\n' | nsupdate -k {key}")


# -- the ledger, by name --------------------------------------------------------------------------

def write_by_name(lab, client_id, count):
    """`count` records of `client_id`, by name from the client namespace (getaddrinfo resolves
    through the lab's named); the client's summary (it read its records back)."""
    r = lab.client(LEDGER_CLIENT, f"{NAME}:7070", "--client-id", client_id, "--count",
                   str(count), "--give-up", "30", "--json", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["acked"] == count and summary.get("lost") == 0, summary
    return summary


# READ CLIENT-ID by name: every stored sequence number, one per line, then END.
READ_SCRIPT = """
import socket, sys
s = socket.create_connection((sys.argv[1], 7070), timeout=5)
s.sendall(b"READ " + sys.argv[2].encode() + b"\\n")
f = s.makefile()
while True:
    line = f.readline().strip()
    print(line)
    if not line or line == "END":
        break
"""


def stored(lab, client_id):
    """The sequence numbers of `client_id` the ledger has, asked by name from the client."""
    r = lab.client("/usr/bin/python3", "-c", READ_SCRIPT, NAME, client_id)
    lines = r.stdout.split()
    assert lines and lines[-1] == "END", r.stdout + r.stderr
    return {int(seq) for seq in lines[:-1]}


def start_writer(lab, client_id):
    """A ledger client writing by name for a while, through whatever the test does meanwhile."""
    return subprocess.Popen(
        [CLUSTERLAB, "client", "--name", lab.name, "--", LEDGER_CLIENT, f"{NAME}:7070",
         "--client-id", client_id, "--duration", "8", "--interval", "5", "--connect-timeout",
         "200", "--max-backoff", "100", "--give-up", "60", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, CLUSTERD_BUILD=os.path.abspath(BUILD)))


def writer_summary(writer):
    try:
        out, err = writer.communicate(timeout=120)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == 0, f"{out}\n{err}"
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary.get("lost") == 0 and summary["verified"], summary
    return summary


def wait_for_writes(lab, node, more=2000):
    """Waits until the ledger's log on `node` has grown by `more` bytes (the writer is writing)."""
    start = ledger_log_size(lab, node)
    wait_for(lambda: ledger_log_size(lab, node) > start + more, timeout=20,
             what="the writer's records landing on the disk")


def assert_nothing_lost(lab, acked):
    """Every record in `acked` ({client id: count acknowledged}) is in the ledger now."""
    for client_id, count in acked.items():
        missing = set(range(1, count + 1)) - stored(lab, client_id)
        assert not missing, f"{client_id}: acknowledged but gone: {sorted(missing)[:20]}"


# -- tests ---------------------------------------------------------------------------------------

def test_online_in_dependency_order_with_the_data_on_the_disk(lab):
    history = events(lab, "node1")
    assert_online_in_order(history)
    # The unit's process sees the LUN's file system (the manager's mount namespace receives the
    # node's mounts) and ledgerd's log is on it, not on the node's directory below.
    main = int(lab.exec("node1", "systemctl", "--user", "show", "ledgerd", "-p", "MainPID",
                        "--value").stdout)
    assert main > 0
    seen_by_unit = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "--task", str(main),
                                   MOUNT_POINT], capture_output=True, text=True)
    assert seen_by_unit.returncode == 0, "ledgerd does not see the disk's mount"
    assert seen_by_unit.stdout.split()[1] == "ext4", seen_by_unit.stdout
    assert seen_by_unit.stdout.split()[0].startswith("/dev/loop"), seen_by_unit.stdout
    assert os.path.exists(f"/proc/{main}/root{LEDGER_LOG}")
    assert dns_answer(lab, NAME) == [(VIP, 5)]
    env = open(f"/proc/{main}/environ").read().split("\0")
    assert "CLUSTER_NETWORK_NAME=ledger" in env


def test_move_keeps_every_acknowledged_record_and_the_name(lab):
    source = owner(lab, NODES)
    target = next(n for n in NODES if n != source)
    acked = {"before-move": write_by_name(lab, "before-move", 40)["acked"]}
    marks = {n: last_seq(lab, n) for n in (source, target)}
    before = dns_serial(lab)
    writer = start_writer(lab, "during-move")
    try:
        wait_for_writes(lab, source)
        lab.ctl(source, "move", GROUP, target, "--wait", "--timeout", "60s")
        acked["during-move"] = writer_summary(writer)["acked"]
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert owner(lab, NODES) == target
    assert_offline_in_reverse(events(lab, source, marks[source]))
    assert_online_in_order(events(lab, target, marks[target]))
    # The old owner deleted the record, the new one added it: two more versions of the zone.
    assert dns_serial(lab) >= before + 2
    assert dns_answer(lab, NAME) == [(VIP, 5)]
    acked["after-move"] = write_by_name(lab, "after-move", 20)["acked"]
    assert_nothing_lost(lab, acked)
    # The disk went with the group: mounted on the new owner only.
    assert lab.exec(target, "findmnt", "-n", MOUNT_POINT, check=False).returncode == 0
    assert lab.exec(source, "findmnt", "-n", MOUNT_POINT, check=False).returncode != 0


def test_owner_crash_the_survivor_serves_by_name_and_registers_it_again(lab):
    crashed = owner(lab, NODES)
    assert crashed
    survivors = [n for n in NODES if n != crashed]
    acked = {"before-crash": write_by_name(lab, "before-crash", 40)["acked"]}
    marks = {n: last_seq(lab, n) for n in survivors}
    writer = start_writer(lab, "during-crash")
    try:
        wait_for_writes(lab, crashed)
        # Seeing the record again after the crash shows that the survivor registered it (an
        # update that changes nothing would leave no other trace). The writer, connected
        # already, resolves the name again only after the crash: through the new record.
        delete_record(lab)
        assert dns_answer(lab, NAME) == []
        lab.run("kill-node", crashed)
        new = wait_for(lambda: owner(lab, survivors), timeout=60, what="full on a survivor")
        acked["during-crash"] = writer_summary(writer)["acked"]
        assert_online_in_order(events(lab, new, marks[new]))
        assert dns_answer(lab, NAME) == [(VIP, 5)]
        acked["after-crash"] = write_by_name(lab, "after-crash", 20)["acked"]
        assert_nothing_lost(lab, acked)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        lab.run("start-node", crashed)
