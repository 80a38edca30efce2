#!/usr/bin/python3
"""Failover of the ledger group with its disk (disk + ip + ledgerd): the owner has its links cut
and every process SIGKILLed (clusterlab kill-node); the outage runs from the link cut to the first
PONG from the virtual IP on a survivor.

Each kill is split into phases, all in ms after the link cut (wall clock: every node and this
script read the same host clock):
  detect         the new owner's timeline: the dead node declared lost
  decided        the timeline: "decided-start", the coordinator's placement on the new owner
                 committed
  disk-start     the new owner's events: the disk resource offline -> online-pending
  disk-online    the disk resource online: iSCSI login, PREEMPT of the dead owner's key (the
                 fence), e2fsck -p with journal replay, mount: the helper answers "ready" only
                 after all of that
  ledgerd-online the ledgerd resource online (after ip, which runs beside the disk)
  first-answer   the client namespace's first PONG through the virtual IP
A fresh 3-node lab per kill (lab name dlbench), so each fault lands at an unrelated moment.
Target (issue 5): median <= 2 s over 10 kills."""
import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time

from common import harness, summary

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from test_failover import PROBE_SCRIPT, VIP, make_lab, online_on, vip_answers  # noqa: E402

LAB_NAME = "dlbench"
PHASES = ("detect", "decided", "disk-start", "disk-online", "ledgerd-online", "first-answer")


def wall_of(iso):
    """Seconds since the epoch of an event's "2026-01-02T03:04:05.678Z"."""
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def kill_owner(lab):
    """Kills the owner; returns (owner, wall clock of the link cut, outage in seconds)."""
    owner = online_on(lab, lab.nodes)
    # The crash begins when the owner's links go down (kill-node's first step, done here so the
    # start does not include clusterlab's own start-up); both clocks are read together.
    wall0, mono0 = time.time(), time.monotonic()
    for net in ("public", "private", "storage"):
        subprocess.run(["ip", "-n", f"{lab.name}-sw-{net}", "link", "set", owner, "down"],
                       check=True)
    lab.run("kill-node", owner)
    probe = lab.client_run("/usr/bin/python3", "-c", PROBE_SCRIPT, VIP, timeout=15)
    if probe.returncode != 0:
        raise RuntimeError(f"the ledger did not answer again: {probe.stderr}")
    survivors = [n for n in lab.nodes if n != owner]
    harness.wait_for(lambda: online_on(lab, survivors) in survivors, timeout=10,
                     what="survivors agree on the new owner")
    return owner, wall0, float(probe.stdout) - mono0


def timeline_phases(lab, node, wall0):
    """{"detect", "decided"}: ms after `wall0` from the last timeline of the ledger on `node`."""
    timelines = lab.json(node, "timeline", "ledger") or []
    out = {}
    for p in timelines[-1]["phases"] if timelines else []:
        name = {"detected": "detect", "decided-start": "decided"}.get(p["phase"])
        if name and name not in out:
            out[name] = (p["at_usec"] / 1e6 - wall0) * 1000
    return out


def resource_phases(lab, node, wall0):
    """{"disk-start", "disk-online", "ledgerd-online"}: ms after `wall0`, from `node`'s
    events after the kill."""
    wanted = {("data", "online-pending"): "disk-start", ("data", "online"): "disk-online",
              ("ledgerd", "online"): "ledgerd-online"}
    out = {}
    for e in lab.json(node, "events") or []:
        name = wanted.get((e.get("resource"), e.get("to")))
        if not name or e.get("kind") != "resource" or e.get("node") != node:
            continue
        at = (wall_of(e["time"]) - wall0) * 1000
        if at >= -1 and name not in out:  # events of earlier starts are before the cut
            out[name] = at
    return out


def one_kill(nodes):
    lab = make_lab(LAB_NAME, nodes)
    try:
        harness.wait_for(lambda: online_on(lab, lab.nodes), timeout=60, what="ledger online")
        harness.wait_for(lambda: vip_answers(lab), timeout=10, what="the VIP answering")
        owner, wall0, elapsed = kill_owner(lab)
        new = online_on(lab, [n for n in lab.nodes if n != owner])
        steps = timeline_phases(lab, new, wall0)
        steps.update(resource_phases(lab, new, wall0))
        steps["first-answer"] = elapsed * 1000
        return owner, new, steps
    finally:
        lab.down()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--nodes", type=int, default=3)
    args = ap.parse_args()
    per_phase = {name: [] for name in PHASES}
    for _ in range(args.runs):
        owner, new, steps = one_kill(args.nodes)
        for name, ms in steps.items():
            per_phase[name].append(ms)
        shown = ", ".join(f"{n} {steps[n]:.0f}" for n in PHASES if n in steps)
        print(f"  {owner} killed, {new} took over: {shown} (ms after the link cut)", flush=True)
    summary(f"disk failover, {args.nodes} nodes, default settings", per_phase["first-answer"],
            target=2000)
    for name in PHASES:
        values = per_phase[name]
        if values:
            print(f"  {name:<15} median {statistics.median(values):6.0f} ms after the link cut "
                  f"(min {min(values):.0f}, max {max(values):.0f}, {len(values)} runs)")
        else:
            print(f"  {name:<15} not seen")


if __name__ == "__main__":
    main()
