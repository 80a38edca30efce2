#!/usr/bin/python3
"""The disk helper's data path on a plain file (clusterd-disk --file): start -> mounted (mkfs
once, then e2fsck -p + mount each run), and sequential writes of 1 MiB with one fsync at the end
through ext4 -> loop (direct I/O) -> FUSE -> the helper -> the file. Runs in a private mount
namespace of its own (re-executes itself under unshare -m), as root.
Reference (issue 5, libiscsi instead of a file): 15-30 ms start -> mounted, 300-450 MB/s."""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from common import harness, summary

HELPER = os.path.join(harness.BUILD, "daemon", "clusterd-disk")


def read_line(sock, timeout=60):
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(256)
        if not chunk:
            raise RuntimeError(f"clusterd-disk closed its socket after {data!r}")
        data += chunk
    return data.decode().strip()


def start(lun, work, mkfs):
    ours, theirs = socket.socketpair()
    args = [HELPER, "--file", lun, "--fuse-dir", f"{work}/fuse", "--mount-point", f"{work}/mnt",
            "--control-fd", str(theirs.fileno())] + (["--mkfs"] if mkfs else [])
    began = time.monotonic()
    proc = subprocess.Popen(args, pass_fds=[theirs.fileno()], stderr=subprocess.DEVNULL)
    theirs.close()
    line = read_line(ours)
    elapsed = (time.monotonic() - began) * 1000
    if not line.startswith("ready "):
        raise RuntimeError(f"clusterd-disk did not start: {line}")
    return proc, ours, elapsed


def stop(proc, sock):
    sock.sendall(b"stop\n")
    line = read_line(sock)
    if proc.wait(timeout=60) != 0 or line != "stopped":
        raise RuntimeError(f"clusterd-disk did not stop cleanly: {line}")
    sock.close()


def write_mbps(path, megabytes):
    chunk = bytes(range(256)) * 4096
    began = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(megabytes):
            os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.monotonic() - began
    os.unlink(path)
    return megabytes * len(chunk) / 1e6 / elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--disk-mib", type=int, default=512)
    ap.add_argument("--write-mib", type=int, default=256)
    args = ap.parse_args()
    if os.environ.get("DISK_BENCH_NS") != "1":
        env = dict(os.environ, DISK_BENCH_NS="1")
        sys.exit(subprocess.call(["unshare", "-m", "--propagation", "private", sys.executable]
                                 + sys.argv, env=env))
    work = tempfile.mkdtemp(prefix="clusterd-disk-bench-")
    try:
        lun = f"{work}/lun"
        with open(lun, "wb") as f:
            f.truncate(args.disk_mib << 20)
        mkfs_ms, mount_ms, mbps = [], [], []
        for run in range(args.runs):
            proc, sock, elapsed = start(lun, work, mkfs=run == 0)
            (mkfs_ms if run == 0 else mount_ms).append(elapsed)
            mbps.append(write_mbps(f"{work}/mnt/bench", args.write_mib))
            stop(proc, sock)
        print(f"start with mkfs -> mounted: {mkfs_ms[0]:.1f} ms ({args.disk_mib} MiB disk)")
        summary("start (e2fsck -p + mount) -> mounted", mount_ms)
        summary(f"sequential write {args.write_mib} MiB + fsync", mbps, unit="MB/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
