"""What a lab made, on disk, so that `down` removes exactly that.

Every lab lives in ROOT/PREFIX (default /run/clusterlab/PREFIX); its state.json lists what was
made in an undo log. Things are recorded *before* they are made, so a crash half-way through
`up` still leaves a record `down` can follow (undoing something that was never made is a no-op).
"""
import contextlib
import fcntl
import json
import os

from .run import LabError

ROOT = os.environ.get("CLUSTERLAB_ROOT", "/run/clusterlab")
HOST_DIRS = "host-dirs.json"


def lab_dir(prefix):
    return os.path.join(ROOT, prefix)


@contextlib.contextmanager
def global_lock():
    """Serialises commands that change labs (allocation of tgtd control numbers, host dirs)."""
    os.makedirs(ROOT, exist_ok=True)
    fd = os.open(os.path.join(ROOT, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def existing_labs():
    """Prefixes of the labs that have a state file."""
    try:
        entries = sorted(os.listdir(ROOT))
    except FileNotFoundError:
        return []
    return [e for e in entries if os.path.isfile(os.path.join(ROOT, e, "state.json"))]


class State:
    """The state file of one lab; every change is saved at once (atomically)."""

    def __init__(self, prefix, data):
        self.prefix = prefix
        self.dir = lab_dir(prefix)
        self.data = data

    @classmethod
    def create(cls, prefix, **fields):
        path = lab_dir(prefix)
        if os.path.exists(os.path.join(path, "state.json")):
            raise LabError(f"lab '{prefix}' already exists; run `clusterlab down --name {prefix}` "
                           "first or pick another --name")
        os.makedirs(path, mode=0o755, exist_ok=True)
        state = cls(prefix, dict(fields, prefix=prefix, undo=[], daemons={}, killed=[],
                                 partitions=[]))
        state.save()
        return state

    @classmethod
    def load(cls, prefix, missing_ok=False):
        try:
            with open(os.path.join(lab_dir(prefix), "state.json")) as f:
                return cls(prefix, json.load(f))
        except FileNotFoundError:
            if missing_ok:
                return None
            raise LabError(f"there is no lab named '{prefix}' (labs: "
                           f"{', '.join(existing_labs()) or 'none'})")
        except ValueError as e:
            raise LabError(f"the state file of lab '{prefix}' is damaged: {e}")

    def save(self):
        path = os.path.join(self.dir, "state.json")
        with open(path + ".tmp", "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(path + ".tmp", path)

    def record(self, kind, **fields):
        """Adds one thing to the undo log (before it is made) and saves."""
        self.data["undo"].append(dict(fields, kind=kind))
        self.save()

    def undo_log(self, kind):
        return [entry for entry in self.data["undo"] if entry["kind"] == kind]

    def __getitem__(self, key):
        return self.data[key]

    def __setitem__(self, key, value):
        self.data[key] = value
        self.save()


def note_host_dir(path):
    """Remembers that clusterlab created host directory `path` (a bind-mount target)."""
    record = os.path.join(ROOT, HOST_DIRS)
    dirs = read_host_dirs()
    if path not in dirs:
        with open(record, "w") as f:
            json.dump(dirs + [path], f)


def read_host_dirs():
    try:
        with open(os.path.join(ROOT, HOST_DIRS)) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return []


def forget_host_dirs():
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(ROOT, HOST_DIRS))
