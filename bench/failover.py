#!/usr/bin/python3
"""Failover at default settings: the ledger group's owner has its links cut and every process
SIGKILLed (clusterlab kill-node); the outage runs from the link cut to the first PONG from the
virtual IP on a survivor, probed from the client namespace with short connection attempts.
A fresh 3-node lab per kill, so each fault lands at an unrelated moment of the heartbeat cycle.
Target (issue 4): median <= 700 ms for an ip + ledgerd group."""
import argparse
import os
import sys

from common import harness, summary

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from test_failover import failover_time, make_lab, online_on, vip_answers  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=3)
    args = ap.parse_args()
    times = []
    for _ in range(args.runs):
        lab = make_lab("benchfo", args.nodes)
        try:
            harness.wait_for(lambda: online_on(lab, lab.nodes), timeout=20, what="ledger online")
            harness.wait_for(lambda: vip_answers(lab), timeout=10, what="the VIP answering")
            owner, elapsed = failover_time(lab)
            times.append(elapsed * 1000)
            print(f"  {owner} killed: answering again after {elapsed * 1000:.0f} ms", flush=True)
        finally:
            lab.down()
    summary(f"failover, {args.nodes} nodes, default settings", times, target=700)


if __name__ == "__main__":
    main()
