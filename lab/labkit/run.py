"""Running commands, entering namespaces and the one error type every command reports."""
import shlex
import subprocess


class LabError(Exception):
    """A failure to report to the user as one sentence (no traceback)."""


def run(argv, *, check=True, input=None, timeout=30):
    """Runs `argv`, captures its output as text; raises LabError on failure when `check`."""
    try:
        result = subprocess.run(argv, input=input, capture_output=True, text=True,
                                timeout=timeout, stdin=None if input is not None else
                                subprocess.DEVNULL)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} is not installed (see packaging/debian-packages.txt)")
    except subprocess.TimeoutExpired:
        raise LabError(f"`{shlex.join(argv)}` did not finish within {timeout} s")
    if check and result.returncode != 0:
        why = result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}"
        raise LabError(f"`{shlex.join(argv)}` failed: {why}")
    return result


def netns_path(name):
    """The bind mount `ip netns add NAME` makes."""
    return f"/run/netns/{name}"


def nsenter(net=None, mount=None, uts=None):
    """The nsenter prefix that enters the given namespace files (None: stay)."""
    argv = ["nsenter"]
    if net:
        argv.append(f"--net={net}")
    if mount:
        argv.append(f"--mount={mount}")
    if uts:
        argv.append(f"--uts={uts}")
    return argv + ["--"]


def in_netns(name, argv, **kwargs):
    """Runs `argv` inside the network namespace `name` only (nft, sysctl, tgtd)."""
    return run(nsenter(net=netns_path(name)) + list(argv), **kwargs)
