"""Switches, links and cuts.

Each network is a Linux bridge `br0` inside a switch namespace of its own ({prefix}-sw-NET), so
the host's network is untouched and several labs can use the same subnets. An endpoint (node,
client, storage) is plugged in with a veth pair made directly between the two namespaces: the
switch end is named after the endpoint, the endpoint's end after the network.

Partitions are nftables rules in the switch namespace's bridge family, so they cut frames of
every protocol both ways on exactly the ports named; deleting the table heals.
"""
import json
import os

from . import topology
from .run import LabError, in_netns, netns_path, run

BRIDGE = "br0"
NFT_TABLE = "clusterlab"


def add_netns(state, name, ipv6=True):
    """Creates network namespace `name` (recorded first) with lo up and duplicate address
    detection off: link-local addresses would otherwise stay tentative 1-2 s after link up."""
    if os.path.exists(netns_path(name)):
        # Not ours: refuse before recording it, or the cleanup after this failure would delete it.
        raise LabError(f"network namespace {name} already exists; remove it with "
                       f"`ip netns delete {name}` if an earlier lab left it behind")
    state.record("netns", name=name)
    run(["ip", "netns", "add", name])
    if ipv6:
        in_netns(name, ["sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0",
                        "net.ipv6.conf.default.accept_dad=0"])
    else:
        in_netns(name, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1"])
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def add_switch(state, topo, network):
    """A switch namespace with a bridge that floods multicast: with IGMP snooping and no querier
    on the segment, group entries expire and heartbeats would stop reaching the ports."""
    ns = topo.switch_netns(network)
    add_netns(state, ns, ipv6=False)
    run(["ip", "-n", ns, "link", "add", BRIDGE, "type", "bridge", "stp_state", "0",
         "mcast_snooping", "0"])
    run(["ip", "-n", ns, "link", "set", BRIDGE, "up"])


def plug(topo, endpoint, network):
    """Connects `endpoint` to `network`'s switch and gives it its addresses there."""
    sw = topo.switch_netns(network)
    run(["ip", "-n", sw, "link", "add", endpoint.name, "type", "veth", "peer", "name", network,
         "netns", endpoint.netns])
    run(["ip", "-n", sw, "link", "set", endpoint.name, "master", BRIDGE, "up"])
    set_base_addresses(endpoint, network)
    run(["ip", "-n", endpoint.netns, "link", "set", network, "up"])


def set_base_addresses(endpoint, network, flush=False):
    """Gives the endpoint's interface on `network` its lab addresses; with `flush`, first removes
    every other global address (what a reboot would do to addresses a killed daemon left)."""
    if flush:
        run(["ip", "-n", endpoint.netns, "addr", "flush", "dev", network, "scope", "global"])
    run(["ip", "-n", endpoint.netns, "addr", "replace", f"{endpoint.address(network)}/24",
         "dev", network])
    if endpoint.address6(network):
        run(["ip", "-n", endpoint.netns, "-6", "addr", "replace",
             f"{endpoint.address6(network)}/64", "dev", network, "nodad"])


def set_ports(topo, endpoint, up):
    """Sets the switch ends of every link of `endpoint` up or down (a cable pull: the endpoint's
    side loses carrier)."""
    for network in endpoint.networks:
        run(["ip", "-n", topo.switch_netns(network), "link", "set", endpoint.name,
             "up" if up else "down"])


def _links(netns):
    """{ifname: operstate} in `netns`, or {} when the namespace is gone."""
    result = run(["ip", "-n", netns, "-j", "link", "show"], check=False)
    if result.returncode != 0:
        return {}
    return {link["ifname"]: link.get("operstate", "UNKNOWN") for link in json.loads(result.stdout)}


def link_states(topo, endpoint):
    """{network: {"interface", "state", "switch_port"}} with kernel operstates in lower case."""
    mine = _links(endpoint.netns)
    states = {}
    for network in endpoint.networks:
        port = _links(topo.switch_netns(network)).get(endpoint.name, "ABSENT")
        states[network] = {"interface": network,
                           "state": mine.get(network, "ABSENT").lower(),
                           "switch_port": port.lower()}
    return states


def networks_arg(names):
    """The networks `--network` names ("all" = every network), in topology order."""
    if not names or "all" in names:
        return list(topology.NETWORKS)
    return [n for n in topology.NETWORKS if n in names]


def _nft(topo, network, script):
    in_netns(topo.switch_netns(network), ["nft", "-f", "-"], input=script)


def _quoted_set(names):
    return "{ " + ", ".join(f'"{n}"' for n in names) + " }"


def partition(topo, side, networks, outbound_only=False):
    """Cuts the endpoints in `side` off from every other port, both ways, on `networks`; ports
    inside `side` still reach each other. `outbound_only`: a one-way cut, only frames leaving
    `side` are dropped (the side still hears the others; they no longer hear it). Returns
    {network: ports cut} for what applied."""
    applied = {}
    for network in networks:
        ports = [p for p in side if p in topo.ports(network)]
        if not ports:
            continue
        inside = _quoted_set(ports)
        _nft(topo, network, "\n".join([
            f"table bridge {NFT_TABLE} {{",
            "  chain forward { type filter hook forward priority 0; policy accept; }",
            "}",
            f"add rule bridge {NFT_TABLE} forward iifname {inside} oifname != {inside} drop",
            "" if outbound_only else
            f"add rule bridge {NFT_TABLE} forward iifname != {inside} oifname {inside} drop",
            ""]))
        applied[network] = ports
    return applied


def heal(topo, networks):
    """Removes every cut on `networks`."""
    for network in networks:
        ns = topo.switch_netns(network)
        result = in_netns(ns, ["nft", "delete", "table", "bridge", NFT_TABLE], check=False)
        if result.returncode != 0 and "No such file" not in result.stderr:
            raise LabError(f"cannot heal the {network} network: {result.stderr.strip()}")


def _silence_table(endpoint):
    return f"clusterlab_silent_{endpoint.name}"


def silence(topo, endpoint):
    """Drops every frame to or from `endpoint`'s ports, carrier kept (a paused machine: nothing
    answers, not even its kernel's ARP); a table of its own, so partitions and heal leave it
    alone. Returns the networks silenced."""
    done = []
    for network in endpoint.networks:
        table = _silence_table(endpoint)
        _nft(topo, network, "\n".join([
            f"table bridge {table} {{",
            "  chain forward { type filter hook forward priority -10; policy accept; }",
            "}",
            f"flush chain bridge {table} forward",
            f'add rule bridge {table} forward iifname "{endpoint.name}" drop',
            f'add rule bridge {table} forward oifname "{endpoint.name}" drop',
            ""]))
        done.append(network)
    return done


def unsilence(topo, endpoint):
    """Undoes silence(); nothing to do when it was not silenced."""
    for network in endpoint.networks:
        ns = topo.switch_netns(network)
        result = in_netns(ns, ["nft", "delete", "table", "bridge", _silence_table(endpoint)],
                          check=False)
        if result.returncode != 0 and "No such file" not in result.stderr:
            raise LabError(f"cannot let {endpoint.name} talk on the {network} network again: "
                           f"{result.stderr.strip()}")


def delete_netns(name):
    """Deletes namespace `name` if it exists (its veths go with it)."""
    if os.path.exists(netns_path(name)):
        run(["ip", "netns", "delete", name])
