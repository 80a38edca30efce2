#!/usr/bin/python3
"""Idle footprint of the daemon with 100 groups x 3 process resources at default monitor
intervals: CPU (percent of one core, over --seconds) and RSS. Targets (issue 2): CPU < 0.5 %,
RSS < 10 MiB."""
import argparse
import os
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
        print(f"{args.groups} groups x {args.per_group} resources, {args.seconds:.0f} s windows")
        summary("idle CPU", cpus, unit="% of a core", target=0.5)
        summary("RSS", rsss, unit="MiB", target=10)
    finally:
        d.stop(timeout=120)
        d.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
