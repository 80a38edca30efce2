"""Processes by PID, safely: a PID is only trusted together with its start time (PIDs are
reused), and waiting for an exit uses a pidfd, never a sleep loop."""
import errno
import os
import select
import signal
import time


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid):
    """The process's start time in clock ticks since boot (stat field 22), or None."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_running(pid, start=None):
    """True when `pid` exists, is not a zombie and (if given) started at `start`."""
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return start is None or int(fields[19]) == start


def identity(pid):
    """What to record for a process we made: PID plus start time."""
    return {"pid": pid, "start": start_time(pid)}


def ns_key(path):
    """(device, inode) of a namespace file; equal keys mean the same namespace."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def pids_in_namespaces(keys, kinds=("net", "mnt", "uts")):
    """Live PIDs any of whose `kinds` namespaces is one of `keys`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        for kind in kinds:
            try:
                if ns_key(f"/proc/{entry}/ns/{kind}") in keys:
                    if is_running(int(entry)):
                        found.append(int(entry))
                    break
            except OSError:
                break
    return found


def _pidfd(pid, start):
    """A pidfd for `pid` if it is still the process that started at `start`, else None."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    if start is not None and start_time(pid) != start:
        os.close(fd)
        return None
    return fd


def _wait_fd(fd, timeout):
    """True when the process behind pidfd `fd` exits within `timeout` seconds."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


def signal_and_wait(pid, start, sig, timeout):
    """Sends `sig` to the process (if it is still the one recorded) and waits up to `timeout`
    seconds for it to exit. True when it is gone."""
    fd = _pidfd(pid, start)
    if fd is None:
        return True
    try:
        try:
            signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            return True
        return _wait_fd(fd, timeout) if timeout > 0 else not is_running(pid, start)
    finally:
        os.close(fd)


def wait_exit(pid, start, timeout):
    """Waits up to `timeout` seconds for the process to exit; True when it is gone."""
    fd = _pidfd(pid, start)
    if fd is None:
        return True
    try:
        return _wait_fd(fd, timeout)
    finally:
        os.close(fd)


def kill_all(find, timeout=10.0):
    """SIGKILLs every PID `find()` returns, again and again (a process may fork while we kill),
    until `find()` returns nothing. Returns the PIDs still there at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        pids = find()
        if not pids or time.monotonic() > deadline:
            return pids
        fds = []
        for pid in pids:
            fd = _pidfd(pid, None)
            if fd is None:
                continue
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                fds.append(fd)
            except OSError as e:
                os.close(fd)
                if e.errno != errno.ESRCH:
                    raise
        for fd in fds:
            _wait_fd(fd, max(0.0, deadline - time.monotonic()))
            os.close(fd)


def signal_all(find, sig, timeout=10.0):
    """Sends `sig` to every PID `find()` returns, again for PIDs that appear meanwhile (a process
    may fork between the scan and the signal), until a scan finds nobody new. Returns the PIDs
    signalled. For SIGSTOP/SIGCONT: the processes stay."""
    deadline = time.monotonic() + timeout
    done = set()
    while True:
        new = [pid for pid in find() if pid not in done]
        if not new:
            return sorted(done)
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes kept appearing: {new}")
        for pid in new:
            fd = _pidfd(pid, None)
            if fd is None:
                continue
            try:
                signal.pidfd_send_signal(fd, sig)
                done.add(pid)
            except ProcessLookupError:
                pass
            finally:
                os.close(fd)
