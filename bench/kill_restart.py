#!/usr/bin/python3
"""kill -9 of a `process` resource's main process -> serving again (a TCP connect succeeds).

Runs the real daemon with one group holding one process resource (bench/tiny_server), kills the
main process N times and measures from the kill to the first successful connect, probing every
millisecond. Target (issue 2): median <= 50 ms over 20 runs."""
import argparse
import shutil

from common import TINY_SERVER, connects, free_port, harness, summary, kill_restart_samples


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    port = free_port()
    work = harness.make_workdir()
    d = harness.Daemon(work, f"""
    cluster: {{name: bench, id: 1}}
    nodes: [{{name: node1, id: 1}}]
    groups:
      - name: app
        preferred_owners: [node1]
        resources:
          - name: server
            type: process
            params: {{command: {TINY_SERVER}, args: ["{port}"]}}
            restart: {{threshold: {args.runs + 5}, period: 1h}}
    """)
    try:
        d.start()
        d.wait_group("app", "online")
        harness.wait_for(lambda: connects(port), what="server up")
        samples = kill_restart_samples(d, port, args.runs)
        summary("kill -9 -> serving again", samples, target=50)
    finally:
        d.stop()
        d.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
