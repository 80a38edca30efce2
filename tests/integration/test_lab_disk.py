"""The ledger group's disk in a three-node lab (lab name prefix df), issue 5's lab tests:
- the owner killed -> the new owner preempted its key (only the new owner's key registered and
  holding) and the ledger client finds every acknowledged record;
- the owner frozen until the others took over, then thawed -> what it still tries to write is
  refused, its disk resource fails with the helper's own reason (reservation lost), it stops
  its groups, and the disk holds only what the new owner acknowledged;
- tgtd restarted (reservations wiped: tgt has no APTPL) -> the owner reserves the LUN again and
  nothing acknowledged is lost."""
import json
import os
import subprocess
import time

import pytest

from harness import BUILD, reservation_view, wait_for
from lab_harness import (CLUSTERLAB as CLUSTERLAB_EXEC, LEDGER_CLIENT, LEDGER_LOG, clab,
                         group_owner, ledger_lab)

VIP = "10.77.0.100"
NAME = "dfdisk"
NODES = ["node1", "node2", "node3"]
DISK_HELPER = os.path.abspath(os.path.join(BUILD, "daemon", "clusterd-disk"))
MOUNT_POINT = "/var/lib/clusterd/ledger"
# The lab's IsAlive period of the disk (labkit/cluster_yaml.py DISK_IS_ALIVE).
IS_ALIVE_S = 2.0
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a lab needs root (namespaces)")


@pytest.fixture(scope="module")
def lab():
    with ledger_lab(NAME, NODES) as lab:
        yield lab


def reservation(lab, node):
    """READ RESERVATION and READ KEYS of the ledger LUN, asked from `node` with an observer's
    initiator: {"holder": "node 2 exclusive-access" | "none", "keys": ["node 2", ...]}."""
    args = [DISK_HELPER, "--show-reservation", "--portal", "10.79.0.250:3260", "--target",
            f"iqn.2024-01.org.clusterd.lab:{lab.name}.ledger", "--initiator",
            f"iqn.2026-11.org.clusterd:{lab.name}:observer"]
    return reservation_view(lab.exec(node, *args).stdout)


def short(view):
    """'node 2' from 'node 2' or 'node 2 of cluster 9' (the observer may not know the id)."""
    return view.split(" of cluster")[0]


def test_kill_owner_new_owner_preempted_the_key_and_no_acknowledged_record_is_lost(lab):
    old = group_owner(lab, NODES)
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
        new = wait_for(lambda: group_owner(lab, survivors), timeout=30, what="ledger on a survivor")
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


# Sent from inside the frozen owner to its own (frozen) ledgerd through the virtual IP, which is
# still local there: the kernel queues the connection and the request, so the thawed ledgerd
# reads it first thing. Prints "sent", then the reply line ("" when the connection closed).
ZOMBIE_REQUEST = """
import socket, sys
s = socket.create_connection((sys.argv[1], 7070), timeout=5)
s.sendall(b"APPEND zombie 1 written-after-the-takeover\\n")
print("sent", flush=True)
s.settimeout(60)
try:
    print(s.makefile().readline().strip(), flush=True)
except OSError as e:
    print("error", e, flush=True)
"""


def start_client(lab, seconds):
    return subprocess.Popen(
        [*lab_client_prefix(lab), LEDGER_CLIENT, f"{VIP}:7070", "--duration", str(seconds),
         "--interval", "5", "--connect-timeout", "200", "--max-backoff", "100", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def client_summary(client, timeout=120):
    try:
        out, err = client.communicate(timeout=timeout)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, f"{out}\n{err}"
    return json.loads(out.strip().splitlines()[-1])


def ledger_request(lab, line):
    """One request to the ledger through the virtual IP, from the client namespace; the reply
    lines up to END (or the one line of a single-line reply)."""
    script = ("import socket, sys\n"
              "s = socket.create_connection((sys.argv[1], 7070), timeout=5)\n"
              "s.sendall(sys.argv[2].encode() + b'\\n')\n"
              "f = s.makefile()\n"
              "while True:\n"
              "    line = f.readline().strip()\n"
              "    print(line)\n"
              "    if not line or line == 'END' or not sys.argv[2].startswith('READ'): break\n")
    r = subprocess.run([*lab_client_prefix(lab), "/usr/bin/python3", "-c", script, VIP, line],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def group_runs_on(lab, node):
    """True while `node`'s own view has any resource of the ledger group online or pending
    on itself (None when its clusterd does not answer)."""
    r = clab("ctl", "--name", lab.name, node, "status", "--json", check=False)
    if r.returncode != 0:
        return None
    group = next((g for g in json.loads(r.stdout)["groups"] if g["name"] == "ledger"), None)
    return bool(group and group["owner"] == node and group["state"] != "offline"
                and group["state"] != "failed")


def disk_mounted(lab, node):
    return lab.exec(node, "findmnt", "-n", MOUNT_POINT, check=False).returncode == 0


def only_holder(lab, asker, node):
    """True when READ RESERVATION / READ KEYS show `node`'s key alone, holding Exclusive Access."""
    view = reservation(lab, asker)
    return (view["holder"] is not None and view["holder"].endswith("exclusive-access")
            and short(view["holder"].rsplit(" ", 1)[0]) == f"node {node[-1]}"
            and [short(k) for k in view["keys"]] == [f"node {node[-1]}"])


def test_frozen_owner_is_fenced_and_stops_its_groups_when_thawed(lab):
    old = group_owner(lab, NODES)
    assert old
    survivors = [n for n in NODES if n != old]
    client = start_client(lab, 15)
    zombie = None
    try:
        wait_for(lambda: ledger_bytes(lab, old) > 2000, timeout=20,
                 what="the client's records landing on the disk")
        lab.run("freeze-node", old)
        try:
            new = wait_for(lambda: group_owner(lab, survivors), timeout=30,
                           what="the ledger taken over by a survivor")
            assert only_holder(lab, new, new), reservation(lab, new)
            zombie = subprocess.Popen(
                [CLUSTERLAB_EXEC, "exec", "--name", lab.name, old, "--", "/usr/bin/python3",
                 "-c", ZOMBIE_REQUEST, VIP], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, env=dict(os.environ, CLUSTERD_BUILD=os.path.abspath(BUILD)))
            assert zombie.stdout.readline().strip() == "sent"
        finally:
            lab.run("thaw-node", old)
        # The thawed node wakes up without quorum (it heard nobody while frozen) and its
        # helper's first I/O meets the new owner's reservation: everything of the group stops.
        wait_for(lambda: group_runs_on(lab, old) is False and not disk_mounted(lab, old),
                 timeout=30, what=f"{old} stopping the ledger group after the thaw")
        reply, _ = zombie.communicate(timeout=90)
        summary = client_summary(client)
    finally:
        for proc in (client, zombie):
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()
    print(f"the frozen ledgerd answered the queued request with {reply.strip()!r}; {old} after "
          "the thaw: " + "; ".join(
              f"{e['resource'] or e['group']} {e['from']} -> {e['to']} ({e['reason']})"
              for e in lab.ctl(old, "events", "--json") if e.get("group") == "ledger"
              and e.get("kind") in ("resource", "group"))[-600:])
    # The request the frozen ledgerd read after the thaw was never acknowledged: its write met
    # the reservation conflict (EIO to the file system), so ledgerd could not sync it.
    assert not reply.strip().startswith("OK"), reply
    assert summary.get("lost", 0) == 0 and summary["verified"], summary
    assert summary["acked"] > 50
    # The new owner kept the group and the disk, and nothing of the thawed node reached it.
    assert group_owner(lab, survivors) == new
    assert only_holder(lab, new, new), reservation(lab, new)
    assert ledger_request(lab, "READ zombie") == ["END"]
    assert lab.exec(new, "grep", "-c", " zombie ", LEDGER_LOG, check=False).stdout.strip() == "0"
    # The thawed node's disk failed with the helper's own reason (it told the daemon before
    # unmounting), not with a LooksAlive's "not mounted".
    failures = [e["reason"] for e in lab.ctl(old, "events", "--json")
                if e.get("resource") == "data" and e.get("to") == "failed"]
    assert any(f"reservation lost: held by node {new[-1]}" in r for r in failures), failures
    data = [r for r in lab.ctl(old, "resources", "--json")
            if r["group"] == "ledger" and r["name"] == "data"]
    assert data and f"reservation lost: held by node {new[-1]}" in data[0]["last_failure"], data
    # Once it has heard the others again, the thawed node rejoins as a member without the group.
    wait_for(lambda: group_owner(lab, NODES) == new, timeout=30, what="every node agreeing on the owner")


def test_storage_restart_owner_restores_its_reservation_and_nothing_is_lost(lab):
    holder = group_owner(lab, NODES)
    assert holder
    client = start_client(lab, 10)
    try:
        wait_for(lambda: ledger_bytes(lab, holder) > 2000, timeout=20,
                 what="the client's records landing on the disk")
        lab.run("restart-storage")
        start = time.monotonic()
        # The restart wiped the reservation; the owner's next IsAlive finds it vacant and the
        # daemon tells the helper to restore it. The deadline only guards against a hang; the
        # time taken is printed (the design bound is one IsAlive period).
        wait_for(lambda: only_holder(lab, holder, holder), timeout=5 * IS_ALIVE_S, interval=0.1,
                 what="the owner's reservation restored after the tgtd restart")
        print(f"reservation restored {time.monotonic() - start:.2f} s after the tgtd restart "
              f"(IsAlive every {IS_ALIVE_S:.0f} s)")
        summary = client_summary(client)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert summary.get("lost", 0) == 0 and summary["verified"], summary
    wait_for(lambda: group_owner(lab, NODES), timeout=30, what="the ledger group online")
    now = group_owner(lab, NODES)
    assert only_holder(lab, now, now), reservation(lab, now)


def ledger_bytes(lab, node):
    r = clab("exec", "--name", lab.name, node, "--", "stat", "-c", "%s",
             LEDGER_LOG, check=False)
    return int(r.stdout) if r.returncode == 0 else 0


def lab_client_prefix(lab):
    return ["ip", "netns", "exec", f"{lab.name}-client"]
