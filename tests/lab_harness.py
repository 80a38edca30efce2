"""Drives clusterlab (lab/clusterlab) for tests and benchmarks: a lab object whose `down` is
idempotent, so fixtures always call it."""
import contextlib
import json
import os
import subprocess

from harness import BUILD

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTERLAB = os.path.join(TOP, "lab", "clusterlab")
LEDGER_CLIENT = os.path.join(BUILD, "examples", "ledger", "ledger-client")
# The ledger's log, on the group's disk in the owner's mount namespace (labkit/cluster_yaml.py).
LEDGER_LOG = "/var/lib/clusterd/ledger/ledger.log"


def ledger_log_size(lab, node):
    """Bytes of the ledger's log as `node` (the group's owner) sees it; 0 when it has none."""
    result = clab("exec", "--name", lab.name, node, "--", "stat", "-c", "%s", LEDGER_LOG,
                  check=False)
    return int(result.stdout) if result.returncode == 0 else 0


def ns_key(path):
    """Identity of a namespace file (device, inode)."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def clab(*args, check=True, timeout=120):
    result = subprocess.run([CLUSTERLAB, *args], capture_output=True, text=True, timeout=timeout,
                            env=dict(os.environ, CLUSTERD_BUILD=os.path.abspath(BUILD)))
    if check and result.returncode != 0:
        raise AssertionError(f"clusterlab {' '.join(args)} exited {result.returncode}\n"
                             f"stdout: {result.stdout}\nstderr: {result.stderr}")
    return result


class Lab:
    """A lab made with clusterlab; `down` is idempotent, so fixtures always call it."""

    def __init__(self, name):
        self.name = name

    def up(self, *args):
        clab("up", "--name", self.name, *args)
        return self

    def down(self):
        return clab("down", "--name", self.name, check=False)

    def run(self, *args, check=True):
        return clab(*args, "--name", self.name, check=check)

    def exec(self, node, *cmd, check=True):
        return clab("exec", "--name", self.name, node, "--", *cmd, check=check)

    def client(self, *cmd, check=True):
        return clab("client", "--name", self.name, "--", *cmd, check=check)

    def status(self):
        return json.loads(clab("status", "--name", self.name, "--json").stdout)

    def pings(self, src, address):
        """True when `src` (a node or "client") gets an echo reply from `address`."""
        cmd = ["ping", "-c1", "-W0.5", "-n", address]
        r = self.client(*cmd, check=False) if src == "client" else self.exec(src, *cmd,
                                                                             check=False)
        return r.returncode == 0

    def netns_key(self, endpoint):
        return ns_key(f"/run/netns/{self.name}-{endpoint}")

    def ctl(self, node, *args, check=True):
        """clusterctl inside `node`; parsed JSON when "--json" is among the arguments."""
        result = clab("ctl", "--name", self.name, node, *args, check=check)
        return json.loads(result.stdout) if "--json" in args and result.returncode == 0 else result

    def group(self, node, name):
        """Group `name` as `node` sees it."""
        return next(g for g in self.ctl(node, "status", "--json")["groups"] if g["name"] == name)

    def mac(self, node, interface="public"):
        return self.exec(node, "cat", f"/sys/class/net/{interface}/address").stdout.strip()

    def directory(self):
        """The lab's directory on the host (state, logs, the shared directory)."""
        return f"/run/clusterlab/{self.name}"

    def popen_client(self, *cmd):
        """Starts `cmd` in the client namespace without waiting for it."""
        return subprocess.Popen([CLUSTERLAB, "client", "--name", self.name, "--", *cmd],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def group_owner(lab, nodes, group="ledger"):
    """The node whose own view says `group` is online there, or None."""
    for node in nodes:
        r = lab.ctl(node, "status", "--json", check=False)
        status = r if isinstance(r, dict) else None
        g = status and next((g for g in status["groups"] if g["name"] == group), None)
        if g and g["state"] == "online" and g["owner"] == node:
            return node
    return None


@contextlib.contextmanager
def ledger_lab(name, nodes):
    """A lab of `nodes` nodes with the default ledger group online; always taken down."""
    from harness import wait_for
    lab = Lab(name)
    lab.down()
    try:
        lab.up("--nodes", str(len(nodes)))
        wait_for(lambda: group_owner(lab, nodes), timeout=60, what="ledger online (autostart)")
        yield lab
    finally:
        lab.down()


# -- the lab's DNS server (clusterlab up --dns) --------------------------------------------------

DNS_SERVER = "10.77.0.53"


def dig(lab, *args):
    """dig in the client namespace against the lab's DNS server; its standard output."""
    return lab.client("dig", "+time=1", "+tries=2", f"@{DNS_SERVER}", *args).stdout


def dns_answer(lab, name):
    """(address, ttl) pairs of `name`'s A records, as the lab's DNS server answers."""
    out = dig(lab, name, "A", "+noall", "+answer")
    return [(f[4], int(f[1])) for f in (line.split() for line in out.splitlines())
            if len(f) == 5 and f[3] == "A"]


def dns_serial(lab, zone="lab.test"):
    """The zone's SOA serial."""
    return int(dig(lab, zone, "SOA", "+short").split()[2])
