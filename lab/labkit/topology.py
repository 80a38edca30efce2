"""The shape of a lab: names and addresses, computed from (prefix, node count). Pure: no I/O.

Every lab has the same subnets; labs never see each other because each lab's switches are
namespaces of their own. Host numbers: node K is .10+K on every network, the client .250 on
public, the iSCSI target .250 on storage, the demo group's virtual IP .100 on public.
"""
import re
import zlib
from dataclasses import dataclass, field

MAX_NODES = 32
NETWORKS = ("public", "private", "storage")
_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_TAG = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True)
class Network:
    """One bridge: its switch namespace sits in the middle, every endpoint has a veth to it."""
    name: str
    ipv4_prefix: str  # first three octets
    ipv6_prefix: str = ""  # ULA /64 prefix ("" = IPv4 only)

    @property
    def subnet(self):
        return f"{self.ipv4_prefix}.0/24"

    @property
    def subnet6(self):
        return f"{self.ipv6_prefix}:/64" if self.ipv6_prefix else ""

    def host(self, number):
        """IPv4 address of host `number` (no prefix length)."""
        return f"{self.ipv4_prefix}.{number}"

    def host6(self, number):
        """IPv6 address of host `number` (decimal digits read as hex, so .11 is ::11), or ""."""
        return f"{self.ipv6_prefix}:{number}" if self.ipv6_prefix else ""


PUBLIC = Network("public", "10.77.0", "fd00:77:0:1:")
PRIVATE = Network("private", "10.78.0")
STORAGE = Network("storage", "10.79.0")
BY_NAME = {n.name: n for n in (PUBLIC, PRIVATE, STORAGE)}

CLIENT_HOST = 250
TARGET_HOST = 250
VIP_HOST = 100
DNS_HOST = 53  # the lab's DNS server (clusterlab up --dns, implied by --group service)
ISCSI_PORT = 3260
LEDGER_PORT = 7070


@dataclass(frozen=True)
class Endpoint:
    """Something with a network namespace of its own plugged into some switches."""
    name: str        # node name, "client" or "storage"; also its port name on each switch
    netns: str       # network namespace name (ip netns)
    host: int        # host number on each of its networks
    networks: tuple  # names of the networks it is on

    def address(self, network):
        return BY_NAME[network].host(self.host)

    def address6(self, network):
        return BY_NAME[network].host6(self.host)


@dataclass(frozen=True)
class Topology:
    prefix: str
    nodes: tuple = field(default_factory=tuple)  # Endpoint per node, node1 first
    client: Endpoint = None
    storage: Endpoint = None
    dns: Endpoint = None  # None unless the lab runs a DNS server

    def switch_netns(self, network):
        return f"{self.prefix}-sw-{network}"

    def endpoints(self):
        return self.nodes + (self.client, self.storage) + ((self.dns,) if self.dns else ())

    def node(self, name):
        for n in self.nodes:
            if n.name == name:
                return n
        known = ", ".join(n.name for n in self.nodes)
        raise KeyError(f"no node named '{name}' in lab '{self.prefix}' (nodes: {known})")

    def ports(self, network):
        """Endpoint names plugged into `network`'s switch."""
        return [e.name for e in self.endpoints() if network in e.networks]

    @property
    def vip(self):
        return PUBLIC.host(VIP_HOST)

    @property
    def portal(self):
        return f"{STORAGE.host(TARGET_HOST)}:{ISCSI_PORT}"


def check_prefix(prefix):
    """Why `prefix` cannot name a lab, or None. It goes into namespace names."""
    if not _NAME.match(prefix):
        return (f"lab name '{prefix}' must be 1-12 lower-case letters or digits, "
                "starting with a letter")
    return None


def valid_tag(tag):
    """True when `tag` can name an extra process of a node (it becomes a log file name)."""
    return bool(_TAG.match(tag))


def node_name(index):
    return f"node{index}"


def make(prefix, node_count, dns=False):
    """The topology of lab `prefix` with `node_count` nodes (and a DNS server with `dns`)."""
    if not 1 <= node_count <= MAX_NODES:
        raise ValueError(f"--nodes must be between 1 and {MAX_NODES}, not {node_count}")
    nodes = tuple(
        Endpoint(node_name(i), f"{prefix}-{node_name(i)}", 10 + i, NETWORKS)
        for i in range(1, node_count + 1))
    client = Endpoint("client", f"{prefix}-client", CLIENT_HOST, ("public",))
    storage = Endpoint("storage", f"{prefix}-storage", TARGET_HOST, ("storage",))
    server = Endpoint("dns", f"{prefix}-dns", DNS_HOST, ("public",)) if dns else None
    return Topology(prefix, nodes, client, storage, server)


def cluster_id(prefix):
    """A stable cluster id in 1..2^24-1 per lab, so labs never share one."""
    return zlib.crc32(prefix.encode()) % (2**24 - 1) + 1


def target_iqn(prefix, lun_name):
    """IQN of the iSCSI target holding one LUN (one target per LUN: one session per disk)."""
    return f"iqn.2024-01.org.clusterd.lab:{prefix}.{lun_name}"
