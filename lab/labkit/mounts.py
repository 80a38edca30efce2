"""Mount helpers: what is mounted where, in this or another mount namespace."""
import os

from .run import nsenter, run


def _unescape(path):
    """mountinfo escapes space, tab, newline and backslash as octal (\\040)."""
    out, i = "", 0
    while i < len(path):
        if path[i] == "\\" and len(path[i + 1:i + 4]) == 3 and path[i + 1:i + 4].isdigit():
            out += chr(int(path[i + 1:i + 4], 8))
            i += 4
        else:
            out += path[i]
            i += 1
    return out


def parse_mountinfo(text):
    """[(mount point, filesystem type)] from /proc/PID/mountinfo text."""
    mounts = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) >= 5 and right:
            mounts.append((_unescape(fields[4]), right.split()[0]))
    return mounts


def host_mounts():
    with open("/proc/self/mountinfo") as f:
        return parse_mountinfo(f.read())


def is_mounted(path):
    return any(point == path for point, _ in host_mounts())


def mounts_under(path):
    """Mount points in this namespace at or below `path`."""
    prefix = path.rstrip("/") + "/"
    return [p for p, _ in host_mounts() if p == path or p.startswith(prefix)]


def mounts_in(mnt_ns_file):
    """Mounts of the mount namespace pinned at `mnt_ns_file`."""
    return parse_mountinfo(run(nsenter(mount=mnt_ns_file) + ["cat", "/proc/self/mountinfo"])
                           .stdout)


def private_bind(path):
    """Bind-mounts `path` onto itself with private propagation: namespace files can only be
    pinned on such a mount (unshare(1), --mount=file)."""
    os.makedirs(path, exist_ok=True)
    run(["mount", "--bind", path, path])
    run(["mount", "--make-private", path])


def unmount(path):
    """Unmounts `path` if it is mounted; lazily when busy."""
    if not is_mounted(path):
        return
    if run(["umount", path], check=False).returncode != 0:
        run(["umount", "-l", path])
