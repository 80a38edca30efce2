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
