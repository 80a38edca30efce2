#!/usr/bin/python3
"""Idle footprint of the daemon with 100 groups x 3 process resources at default monitor
intervals: CPU (percent of one core, over --seconds) and RSS. Targets (issue 2): CPU < 0.5 %,
RSS < 10 MiB."""
import argparse
import os
import re
import shutil
import time

from common import harness, summary


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def smaps_kib(pid):
    """Resident memory by kind: the totals of smaps_rollup, and the Rss of the [heap] mapping."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    out["Heap"] = 0
    with open(f"/proc/{pid}/smaps") as f:
        in_heap = False
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                in_heap = line.rstrip().endswith("[heap]")
            elif in_heap and line.startswith("Rss:"):
                out["Heap"] += int(line.split()[1])
    return out


def heap_report(pid, resources):
    m = smaps_kib(pid)
    file_backed = m["Rss"] - m["Anonymous"]
    print(f"RSS {m['Rss'] / 1024:.1f} MiB: file-backed {file_backed / 1024:.1f} MiB, "
          f"anonymous {m['Anonymous'] / 1024:.1f} MiB (heap {m['Heap'] / 1024:.1f} MiB, "
          f"{m['Heap'] / max(resources, 1):.1f} KiB per resource)", flush=True)


def config(groups, per_group):
    lines = ["cluster: {name: bench, id: 1}", "nodes: [{name: node1, id: 1}]", "groups:"]
    for g in range(groups):
        lines += [f"  - name: g{g}", "    preferred_owners: [node1]", "    resources:"]
        for r in range(per_group):
            dep = f", depends: [r{r - 1}]" if r else ""
            lines.append(f"      - {{name: r{r}, type: process, "
                         f"params: {{command: /bin/sleep, args: [infinity]}}{dep}}}")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--per-group", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--heap", action="store_true",
                    help="also break RSS down (file-backed, anonymous, heap) after each run")
    args = ap.parse_args()
    work = harness.make_workdir()
    d = harness.Daemon(work, config(args.groups, args.per_group))
    d.start()
    try:
        harness.wait_for(lambda: all(g["state"] == "online" for g in d.status()["groups"]),
                         timeout=120, what="all groups online")
        pid = d.proc.pid
        hz = os.sysconf("SC_CLK_TCK")
        cpus, rsss = [], []
        for _ in range(args.runs):
            t0, c0 = time.monotonic(), cpu_ticks(pid)
            time.sleep(args.seconds)  # measuring idle time, not synchronising
            cpus.append(100.0 * (cpu_ticks(pid) - c0) / hz / (time.monotonic() - t0))
            rsss.append(rss_kib(pid) / 1024)
            if args.heap:
                heap_report(pid, args.groups * args.per_group)
        print(f"{args.groups} groups x {args.per_group} resources, {args.seconds:.0f} s windows")
        summary("idle CPU", cpus, unit="% of a core", target=0.5)
        summary("RSS", rsss, unit="MiB", target=10)
    finally:
        d.stop(timeout=120)
        d.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
