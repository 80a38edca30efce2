#!/usr/bin/python3
"""Idle footprint of the daemon with 100 groups x 3 process resources at default monitor
intervals: CPU (percent of one core, over --seconds) and RSS. Targets (issue 2): CPU < 0.5 %,
RSS < 10 MiB. --heap also shows the heap in use (the resident heap is its start-up high-water
mark) and what malloc_trim(0) would leave resident."""
import argparse
import os
import re
import shutil
import subprocess
import time

from common import harness, smaps_rollup_kib, summary


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
    out = smaps_rollup_kib(pid)
    out["Heap"] = 0
    with open(f"/proc/{pid}/smaps") as f:
        in_heap = False
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                in_heap = line.rstrip().endswith("[heap]")
            elif in_heap and line.startswith("Rss:"):
                out["Heap"] += int(line.split()[1])
    return out


def gdb_eval(pid, *expressions):
    """Values of C expressions evaluated inside `pid` (gdb attaches for a moment), or None."""
    if not shutil.which("gdb"):
        return None
    cmd = ["gdb", "-p", str(pid), "-batch", "-nx"]
    for e in expressions:
        cmd += ["-ex", f"p (long)({e})"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    values = [int(m.group(1)) for m in re.finditer(r"^\$\d+ = (-?\d+)$", out, re.M)]
    return values if len(values) == len(expressions) else None


def heap_report(pid, resources):
    m = smaps_kib(pid)
    file_backed = m["Rss"] - m["Anonymous"]
    line = (f"RSS {m['Rss'] / 1024:.1f} MiB: file-backed {file_backed / 1024:.1f} MiB, "
            f"anonymous {m['Anonymous'] / 1024:.1f} MiB (heap {m['Heap'] / 1024:.1f} MiB")
    # The heap's resident size is its high-water mark (the start-up burst); what is in use
    # now is what the daemon keeps per resource.
    used = gdb_eval(pid, "mallinfo2().uordblks", "mallinfo2().fordblks")
    if used:
        line += (f", {used[0] / 1048576:.1f} MiB in use = {used[0] / 1024 / max(resources, 1):.1f}"
                 f" KiB per resource, {used[1] / 1048576:.1f} MiB free")
    print(line + ")", flush=True)


def trim_report(pid):
    """What returning the free heap to the kernel (malloc_trim) would leave resident."""
    if gdb_eval(pid, "malloc_trim(0)") is None:
        return
    print(f"RSS after malloc_trim(0): {smaps_kib(pid)['Rss'] / 1024:.1f} MiB", flush=True)


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
                    help="also break RSS down (file-backed, anonymous, heap; heap in use through "
                         "gdb) after each run, and show what malloc_trim(0) would leave")
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
        if args.heap:
            trim_report(pid)
    finally:
        d.stop(timeout=120)
        d.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
