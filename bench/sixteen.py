#!/usr/bin/python3
"""A 16-node lab (clusterlab up --nodes 16) at default settings (heartbeats every 100 ms on
public and private, misses 5):

1. idle heartbeat CPU: each clusterd's CPU over --seconds (utime + stime, % of one core), their
   sum against the machine's cores, and the membership events seen meanwhile (a saturated
   machine shows up as evictions);
2. --kills times: a random node's links cut and its processes killed at a random moment; the
   time from the fault to the new view (the node unreachable) installed on every survivor,
   from each survivor's `clusterctl events`; the node is started again and the cluster whole
   before the next kill.
Group `none` by default (membership alone); --group ledger adds the demo group."""
import argparse
import os
import random
import time

import labbench as lb


def whole(lab):
    """Every node sees every node up and is quorate."""
    for n in lab.nodes:
        c = lab.cluster(n)
        if not c or not c["quorate"] or any(x["state"] != "up" for x in c["nodes"]):
            return False
    return True


def membership_changes(lab, since):
    """Membership events (unreachable/reachable, elections) after each node's seq in `since`."""
    changes = 0
    for n in lab.nodes:
        for e in lab.json(n, "events") or []:
            if e["seq"] > since[n] and e["kind"] in ("membership", "quorum"):
                changes += 1
    return changes


def last_seqs(lab):
    return {n: max((e["seq"] for e in lab.json(n, "events") or []), default=0)
            for n in lab.nodes}


def idle_cpu(lab, seconds):
    status = lb.lab_status(lab)
    pids = {n["name"]: n["daemon"]["pid"] for n in status["nodes"]}
    hz = os.sysconf("SC_CLK_TCK")
    since = last_seqs(lab)
    t0 = time.monotonic()
    c0 = {n: lb.cpu_ticks(p) for n, p in pids.items()}
    time.sleep(seconds)  # measuring idle time, not synchronising
    elapsed = time.monotonic() - t0
    cpus = {n: 100.0 * (lb.cpu_ticks(p) - c0[n]) / hz / elapsed for n, p in pids.items()}
    print("  " + ", ".join(f"{n} {c:.2f}" for n, c in cpus.items()) + " (% of a core)")
    lb.summary(f"idle CPU per clusterd, {len(pids)} nodes, {seconds:.0f} s",
               list(cpus.values()), unit="% of a core")
    total = sum(cpus.values())
    cores = os.cpu_count() or 1
    print(f"all {len(pids)} clusterds together: {total:.1f} % of one core = "
          f"{total / cores:.1f} % of the machine's {cores} cores; membership/quorum events "
          f"meanwhile: {membership_changes(lab, since)}", flush=True)


def kills(lab, count):
    times = []
    for i in range(count):
        lb.harness.wait_for(lambda: whole(lab), timeout=60, interval=0.2,
                            what="every node up and quorate")
        victim = random.choice(lab.nodes)
        coordinator = lab.cluster(lab.nodes[0] if victim != lab.nodes[0] else
                                  lab.nodes[1])["coordinator"]
        lb.random_pause()
        _, fault_wall = lb.crash(lab, victim)
        survivors = [n for n in lab.nodes if n != victim]
        views = lb.view_installed(lab, survivors, victim, fault_wall, timeout=20)
        slowest = max(views.values()) * 1000
        times.append(slowest)
        role = " (coordinator)" if victim == coordinator else ""
        print(f"  kill {i + 1}: {victim}{role}: new view on all {len(survivors)} survivors "
              f"after {slowest:.0f} ms (first {min(views.values()) * 1000:.0f} ms)", flush=True)
        lab.run("start-node", victim)
    lb.summary(f"fault -> new view on every survivor, {len(lab.nodes)} nodes", times)
    lb.distribution("  distribution", times)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60, help="idle window (default 60)")
    ap.add_argument("--kills", "--runs", dest="kills", type=int, default=5,
                    help="nodes killed one after the other (default 5)")
    ap.add_argument("--group", choices=("none", "ledger"), default="none")
    ap.add_argument("--name", default="i4b16", help="lab name (default i4b16)")
    args = ap.parse_args()
    t0 = time.monotonic()
    lab = lb.make_lab(args.name, args.nodes, "--group", args.group)
    try:
        lb.harness.wait_for(lambda: whole(lab), timeout=120, interval=0.2,
                            what="every node up and quorate")
        print(f"{args.nodes}-node lab up and whole after {time.monotonic() - t0:.1f} s",
              flush=True)
        idle_cpu(lab, args.seconds)
        kills(lab, args.kills)
    finally:
        lab.down()


if __name__ == "__main__":
    main()
