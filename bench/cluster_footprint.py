#!/usr/bin/python3
"""Idle footprint per node in a cluster: a 3-node lab at default settings (heartbeats every
100 ms on public and private, misses 5) with the ledger group online, idle for --seconds.
For each node's clusterd: RSS, and Pss and private memory (Private_Clean + Private_Dirty) from
/proc/PID/smaps_rollup, at the end of the window; CPU as a percentage of one core over the
window (utime + stime from /proc/PID/stat). With --keepalived (the default), keepalived runs in
the same lab at the same time on another address (10.77.0.101, its own VRRP id), advert_int
--advert (default 1 s, its default), and its processes (parent + VRRP child) are measured the
same way. Targets (issue 4): RSS < 10 MiB and CPU < 0.5 % of a core per node."""
import argparse
import os
import time

import labbench as lb
from common import smaps_rollup_kib


def memory_kib(pid):
    """{"Rss", "Pss", "Private"} of the process in KiB."""
    out = smaps_rollup_kib(pid)
    return {"Rss": out["Rss"], "Pss": out["Pss"],
            "Private": out.get("Private_Clean", 0) + out.get("Private_Dirty", 0)}


def children(pid):
    """PIDs whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError):
                pass
    return found


def keepalived_pids(status):
    """{node: [parent, children...]} of the keepalived processes the lab started."""
    out = {}
    for node in status["nodes"]:
        for extra in node["extras"]:
            if extra["tag"] == "keepalived" and extra["running"]:
                out[node["name"]] = [extra["pid"]] + children(extra["pid"])
    return out


def measure(pids_by_node, seconds):
    """{node: (cpu %, {"Rss","Pss","Private"} KiB summed over its processes)}."""
    hz = os.sysconf("SC_CLK_TCK")
    t0 = time.monotonic()
    c0 = {n: sum(lb.cpu_ticks(p) for p in pids) for n, pids in pids_by_node.items()}
    time.sleep(seconds)  # measuring idle time, not synchronising
    elapsed = time.monotonic() - t0
    out = {}
    for n, pids in pids_by_node.items():
        cpu = 100.0 * (sum(lb.cpu_ticks(p) for p in pids) - c0[n]) / hz / elapsed
        mem = {"Rss": 0, "Pss": 0, "Private": 0}
        for p in pids:
            for k, v in memory_kib(p).items():
                mem[k] += v
        out[n] = (cpu, mem)
    return out


def report(what, results, targets):
    for n, (cpu, mem) in sorted(results.items()):
        print(f"  {what} {n}: CPU {cpu:.2f} % of a core, RSS {mem['Rss'] / 1024:.1f} MiB, Pss "
              f"{mem['Pss'] / 1024:.1f} MiB, private {mem['Private'] / 1024:.1f} MiB", flush=True)
    cpus = [r[0] for r in results.values()]
    rss = [r[1]["Rss"] / 1024 for r in results.values()]
    lb.summary(f"{what} CPU per node", cpus, unit="% of a core",
               target=0.5 if targets else None)
    lb.summary(f"{what} RSS per node", rss, unit="MiB", target=10 if targets else None)
    lb.summary(f"{what} private per node", [r[1]["Private"] / 1024 for r in results.values()],
               unit="MiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60, help="idle window (default 60)")
    ap.add_argument("--runs", type=int, default=1, help="windows, one after the other")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--no-keepalived", dest="keepalived", action="store_false",
                    help="do not run keepalived beside clusterd")
    ap.add_argument("--advert", default="1", help="keepalived advert_int (default 1)")
    ap.add_argument("--group", choices=("ledger", "none"), default="ledger",
                    help="the lab's group (default ledger; none: membership alone)")
    ap.add_argument("--aggressive", action="store_true",
                    help=f"clusterd at the aggressive settings ({lb.AGGRESSIVE_INTERVAL} x "
                    f"{lb.AGGRESSIVE_MISSES}) instead of the defaults; pair with --advert 0.01")
    ap.add_argument("--name", default="i4b", help="lab name (default i4b)")
    args = ap.parse_args()
    extra = (["--heartbeat-interval", lb.AGGRESSIVE_INTERVAL, "--heartbeat-misses",
              str(lb.AGGRESSIVE_MISSES)] if args.aggressive else [])
    settings = (f"aggressive settings ({lb.AGGRESSIVE_INTERVAL} x {lb.AGGRESSIVE_MISSES})"
                if args.aggressive else "default settings")
    lab = lb.make_lab(args.name, args.nodes, "--group", args.group, *extra)
    try:
        if args.group == "ledger":
            lb.harness.wait_for(lambda: lb.online_on(lab, lab.nodes), timeout=30,
                                what="the ledger group online")
        if args.keepalived:
            lb.check_binaries(lb.KEEPALIVED)
            lb.start_keepalived(lab, args.advert, vip="10.77.0.101", router_id=78)
        status = lb.lab_status(lab)
        pids = {n["name"]: [n["daemon"]["pid"]] for n in status["nodes"]}
        kpids = keepalived_pids(status) if args.keepalived else {}
        for i in range(args.runs):
            print(f"window {i + 1}: {args.seconds:.0f} s idle, {args.nodes} nodes, {settings}, "
                  f"group {args.group}", flush=True)
            results = measure({**{("clusterd", n): p for n, p in pids.items()},
                               **{("keepalived", n): p for n, p in kpids.items()}},
                              args.seconds)
            report("clusterd", {n: r for (w, n), r in results.items() if w == "clusterd"},
                   not args.aggressive)
            if kpids:
                report(f"keepalived (advert_int {args.advert}, parent + VRRP child)",
                       {n: r for (w, n), r in results.items() if w == "keepalived"}, False)
    finally:
        lab.down()


if __name__ == "__main__":
    main()
