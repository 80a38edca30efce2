#!/usr/bin/python3
"""kill -9 of a `service` resource's main process -> serving again (a TCP connect succeeds).

Runs a real `systemd --user` manager (tests/systemd_user.py, in a cgroup of its own) and the real
daemon with one group holding one service resource whose unit runs bench/tiny_server; kills the
unit's main process N times and measures from the kill to the first successful connect, probing
every millisecond. The path: systemd reaps the process and marks the unit failed, clusterd hears
PropertiesChanged, the restart policy stops (StopUnit) and starts (ResetFailedUnit, StartUnit)
the unit. Target (issue 6): median <= 100 ms over 20 runs."""
import argparse
import os
import shutil

from common import TINY_SERVER, connects, free_port, harness, summary, kill_restart_samples

import systemd_user


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    if not systemd_user.available():
        raise SystemExit("needs root and systemd")
    port = free_port()
    work = harness.make_workdir()
    manager = systemd_user.UserManager(work)
    os.environ["CLUSTERD_SYSTEMD_BUS"] = manager.private
    manager.install("bench-web.service", f"[Service]\nExecStart={TINY_SERVER} {port}\n")
    d = harness.Daemon(work, f"""
    cluster: {{name: bench, id: 1}}
    nodes: [{{name: node1, id: 1}}]
    groups:
      - name: app
        preferred_owners: [node1]
        resources:
          - name: server
            type: service
            params: {{unit: bench-web}}
            restart: {{threshold: {args.runs + 5}, period: 1h}}
    """)
    try:
        d.start()
        d.wait_group("app", "online")
        harness.wait_for(lambda: connects(port), what="server up")
        samples = kill_restart_samples(d, port, args.runs, wait_reaped=True)
        summary("service: kill -9 -> serving again", samples, target=100)
    finally:
        d.stop()
        d.kill()
        manager.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
