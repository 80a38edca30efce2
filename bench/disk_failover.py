#!/usr/bin/python3
"""Failover of the ledger group with its disk (disk + ip + ledgerd): the owner has its links cut
and every process SIGKILLed (clusterlab kill-node); the outage runs from the link cut to the first
PONG from the virtual IP on a survivor. The new owner's failover timeline gives the phases:
detect (node declared lost), decide, and the disk's start (iSCSI login, PREEMPT of the dead
owner's key = fence, e2fsck -p + journal replay + mount), then ip and ledgerd.
A fresh 3-node lab per kill (lab name dkbench), so each fault lands at an unrelated moment.
Target (issue 5): median <= 2 s."""
import argparse
import os
import statistics
import sys

from common import harness, summary

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from test_failover import failover_time, make_lab, online_on, vip_answers  # noqa: E402


def phases(lab, node):
    """{phase: ms after the first phase} of the last failover timeline on `node`."""
    timelines = lab.json(node, "timeline", "ledger") or []
    if not timelines:
        return {}
    steps = timelines[-1]["phases"]
    return {p["phase"]: (p["at_usec"] - steps[0]["at_usec"]) / 1000 for p in steps}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=3)
    args = ap.parse_args()
    times, per_phase = [], {}
    for _ in range(args.runs):
        lab = make_lab("dkbench", args.nodes)
        try:
            harness.wait_for(lambda: online_on(lab, lab.nodes), timeout=60, what="ledger online")
            harness.wait_for(lambda: vip_answers(lab), timeout=10, what="the VIP answering")
            owner, elapsed = failover_time(lab)
            survivors = [n for n in lab.nodes if n != owner]
            new = online_on(lab, survivors)
            times.append(elapsed * 1000)
            steps = phases(lab, new)
            for name, ms in steps.items():
                per_phase.setdefault(name, []).append(ms)
            print(f"  {owner} killed: answering again after {elapsed * 1000:.0f} ms; "
                  f"timeline on {new}: {steps}", flush=True)
        finally:
            lab.down()
    summary(f"disk failover, {args.nodes} nodes, default settings", times, target=2000)
    for name, values in per_phase.items():
        print(f"  phase {name}: median {statistics.median(values):.0f} ms after detection")


if __name__ == "__main__":
    main()
