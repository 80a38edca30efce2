"""Shared bits of the benchmarks: the test harness, medians, a free port."""
import os
import socket
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import harness  # noqa: E402
from harness import free_port  # noqa: E402,F401

TINY_SERVER = os.path.join(harness.BUILD, "bench", "tiny_server")


def connects(port, timeout=0.05):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
            return c.recv(8) == b"ok\n"
    except OSError:
        return False


def summary(name, values, unit="ms", target=None):
    values = sorted(values)
    med = statistics.median(values)
    line = (f"{name}: median {med:.1f} {unit}, min {values[0]:.1f}, max {values[-1]:.1f}, "
            f"n={len(values)}")
    if target is not None:
        line += f"  (target <= {target} {unit}: {'met' if med <= target else 'NOT met'})"
    print(line, flush=True)
    return med


def kill_restart_samples(daemon, port, runs, wait_reaped=False):
    """SIGKILLs the main process of resource app/server `runs` times; each sample is the time
    until the server accepts a connection again (ms). With `wait_reaped`, probing starts once the
    old process is gone, so a connect cannot reach the dying process (systemd reaps it, not us)."""
    import signal
    import time
    samples = []
    for _ in range(runs):
        pid = daemon.resource("app", "server")["pid"]
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        while wait_reaped and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.0002)
        while not connects(port, timeout=0.01):
            if time.monotonic() - t0 > 10:
                raise SystemExit("server did not come back within 10 s")
            time.sleep(0.001)
        samples.append((time.monotonic() - t0) * 1000)
        harness.wait_for(lambda: (r := daemon.resource("app", "server"))["state"] == "online"
                         and r["pid"] not in (0, pid), what="server online again")
    return samples


def smaps_rollup_kib(pid):
    """The kB totals of /proc/PID/smaps_rollup by field ("Rss", "Pss", "Private_Dirty", ...)."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out
