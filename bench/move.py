#!/usr/bin/python3
"""Planned move of the ledger group (virtual IP + ledgerd) between two lab nodes, seen from a
client: the outage is the ledger client's own measure (last acknowledged record before the move
to the first one after), the client probing every 10 ms (--max-backoff 10).

Each move is `clusterctl move ledger NODE`, run straight against a node's bus socket (no
clusterlab start-up in between): the coordinator takes the group offline on the owner, waits for
the confirmation, then brings it online on the other node.
Target (issue 3): median outage <= 300 ms over 10 moves."""
import argparse
import json
import os
import subprocess
import time

from common import harness, summary
import lab_harness

VIP = "10.77.0.100"


def ctl(lab, node, *args):
    bus = os.path.join(lab.directory(), node, "run", "clusterd", "bus")
    subprocess.run([harness.CLUSTERCTL, "--bus", bus, *args], check=True, capture_output=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--moves", type=int, default=10)
    ap.add_argument("--gap", type=float, default=1.5, help="seconds between moves")
    args = ap.parse_args()
    lab = lab_harness.Lab("benchmove")
    lab.down()
    try:
        lab.up("--nodes", "2")
        harness.wait_for(lambda: lab.group("node1", "ledger")["state"] == "online", timeout=30)
        duration = args.moves * args.gap + 3
        client = lab.popen_client(lab_harness.LEDGER_CLIENT, f"{VIP}:7070", "--duration",
                                  str(duration), "--interval", "5", "--max-backoff", "10",
                                  "--json")
        time.sleep(1.5)  # pacing the moves, not synchronising
        owner, other = "node1", "node2"
        for _ in range(args.moves):
            ctl(lab, other, "move", "ledger", other)
            owner, other = other, owner
            time.sleep(args.gap)
        out, err = client.communicate(timeout=duration + 60)
        report = json.loads(out.strip().splitlines()[-1])
        print(f"client: {report['acked']} acked, {report['lost']} lost, "
              f"{len(report['outages_ms'])} outages")
        summary("planned move, client outage", report["outages_ms"], target=300)
    finally:
        lab.down()


if __name__ == "__main__":
    main()
