#!/usr/bin/python3
"""No false evictions at aggressive settings on a busy machine: a 3-node lab at heartbeat
interval 10 ms (misses --misses), the ip-only group online, then a CPU hog on every core (busy
loops at nice 0, the same priority as clusterd) for --seconds. Reported from every node's
`clusterctl events` and `clusterctl cluster --json`: evictions (a peer declared unreachable),
elections (a node became candidate or pre-candidate), view changes (reachable/unreachable),
quorum lost or fenced, group moves; heartbeat frames sent/accepted/dropped, and the oldest
`last_heard_ms` and `confirmed_ms_ago` seen while sampling once a second (how close it came).
Target (issue 4): zero evictions, elections and view changes over 600 s."""
import argparse
import os
import subprocess
import time

import labbench as lb

HOG = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end:\n    pass\n"


def last_seq(lab, node):
    events = lab.json(node, "events") or []
    return max((e["seq"] for e in events), default=0)


def classify(events, counts):
    for e in events:
        reason = e["reason"]
        if e["kind"] == "membership":
            if " is unreachable" in reason:
                counts["evictions"] += 1
                counts["view changes"] += 1
            elif " is reachable" in reason:
                counts["view changes"] += 1
            elif "pre-candidate (" in reason:
                counts["pre-votes"] += 1
            elif "candidate (" in reason:
                counts["elections"] += 1
        elif e["kind"] == "quorum":
            counts["quorum events"] += 1
        elif e["kind"] == "cluster" and "start " in reason:
            counts["placements"] += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600, help="hog duration (default 600)")
    ap.add_argument("--hogs", type=int, default=os.cpu_count() or 2,
                    help="busy loops (default: one per core)")
    ap.add_argument("--interval", default=lb.AGGRESSIVE_INTERVAL)
    ap.add_argument("--misses", type=int, default=lb.AGGRESSIVE_MISSES)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--name", default="i4b", help="lab name (default i4b)")
    args = ap.parse_args()
    lab = lb.make_lab(args.name, args.nodes, "--group", "ip-only", "--heartbeat-interval",
                      args.interval, "--heartbeat-misses", str(args.misses))
    hogs = []
    try:
        owner = lb.harness.wait_for(lambda: lb.online_on(lab, lab.nodes, "vip"), timeout=30,
                                    what="the vip group online")
        seqs = {n: last_seq(lab, n) for n in lab.nodes}
        terms = {n: lab.cluster(n)["term"] for n in lab.nodes}
        before = {n: lb.heartbeat_counters(lab, n) for n in lab.nodes}
        hogs = [subprocess.Popen(["/usr/bin/python3", "-c", HOG.format(s=args.seconds)])
                for _ in range(args.hogs)]
        worst_heard, worst_confirmed = 0, 0
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            for n in lab.nodes:
                c = lab.cluster(n) or {}
                worst_confirmed = max(worst_confirmed, c.get("confirmed_ms_ago") or 0)
                for peer in c.get("nodes", []):
                    worst_heard = max(worst_heard, peer.get("last_heard_ms") or 0)
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        for h in hogs:
            h.wait(timeout=30)
        counts = {k: 0 for k in ("evictions", "pre-votes", "elections", "view changes",
                                 "quorum events", "placements")}
        for n in lab.nodes:
            events = [e for e in lab.json(n, "events") or [] if e["seq"] > seqs[n]]
            classify(events, counts)
        after = {n: lb.heartbeat_counters(lab, n) for n in lab.nodes}
        terms_after = {n: lab.cluster(n)["term"] for n in lab.nodes}
        owner_after = lb.online_on(lab, lab.nodes, "vip")
    finally:
        for h in hogs:
            if h.poll() is None:
                h.kill()
                h.wait()
        lab.down()
    print(f"{args.nodes} nodes, interval {args.interval}, misses {args.misses}, {args.hogs} "
          f"busy loops for {args.seconds:.0f} s:")
    for n in sorted(before):
        d = {k: after[n][k] - before[n][k] for k in before[n]}
        print(f"  {n}: heartbeat frames sent {d['sent']}, received {d['received']}, accepted "
              f"{d['accepted']}, dropped {d['dropped']}; term {terms[n]} -> {terms_after[n]}")
    print(f"  oldest last_heard_ms sampled {worst_heard}, oldest confirmed_ms_ago "
          f"{worst_confirmed} (sampled once a second per node)")
    print(f"  group vip: {owner} -> {owner_after}")
    bad = sum(v for k, v in counts.items() if k != "placements")
    print("  " + ", ".join(f"{k} {v}" for k, v in counts.items()) +
          f"  (target: zero: {'met' if bad == 0 and owner == owner_after else 'NOT met'})",
          flush=True)


if __name__ == "__main__":
    main()
