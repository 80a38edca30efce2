"""Command line of clusterlab: argument parsing and output. The work is in lab.py."""
import argparse
import json
import os
import re
import shutil
import signal
import sys

from . import cluster_yaml, dns, keeper, lab, nodes, topology, user_manager
from .run import LabError, netns_path, nsenter

DEFAULT_NAME = os.environ.get("CLUSTERLAB_NAME", "lab")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def find_build(arg):
    """The build directory: --build, else $CLUSTERD_BUILD, else build/ of the repository this
    script is in; None means use PATH."""
    if arg:
        if not os.path.isdir(arg):
            raise LabError(f"--build {arg} is not a directory")
        return os.path.abspath(arg)
    for candidate in (os.environ.get("CLUSTERD_BUILD"), os.path.join(REPO, "build")):
        if candidate and os.path.isfile(os.path.join(candidate, "daemon", "clusterd")):
            return os.path.abspath(candidate)
    return None


def binaries(build_arg):
    """Paths of clusterd, clusterctl and the ledgerd agent, for the state file."""
    build = find_build(build_arg)
    if build:
        clusterd = os.path.join(build, "daemon", "clusterd")
        clusterctl = os.path.join(build, "cli", "clusterctl")
    else:
        clusterd = shutil.which("clusterd") or shutil.which("clusterd", path="/usr/sbin:/sbin")
        clusterctl = shutil.which("clusterctl") or "clusterctl"
        if not clusterd:
            raise LabError("clusterd is not built here and not on PATH; pass --build DIR")
    nodes.check_binary(clusterd, "clusterd")
    # In the source tree: the repo's agents/ledgerd; installed (share/clusterd/lab/labkit):
    # share/clusterd/agents/ledgerd. Both are two levels above this package.
    agent = os.path.join(REPO, "agents", "ledgerd")
    ledgerd = os.path.join(build, "examples", "ledger", "ledgerd") if build else None
    if ledgerd and not os.access(ledgerd, os.X_OK):
        ledgerd = None
    return {"build": build, "clusterd": clusterd, "clusterctl": clusterctl,
            "ledger_agent": agent, "ledgerd": ledgerd}


# -- output ------------------------------------------------------------------------------------

def _addresses(endpoint_status):
    parts = []
    for net, link in endpoint_status["links"].items():
        text = f"{net} {link['address']}"
        if link.get("address6"):
            text += f" {link['address6']}"
        parts.append(text)
    return "  ".join(parts)


def print_summary(status):
    name = status["name"]
    print(f"lab '{name}' is up: {len(status['nodes'])} nodes, demo group {status['group']}")
    print(f"  directory  {status['dir']}  (state.json, keeper.log, NODE/clusterd.log)")
    print(f"  networks   public {topology.PUBLIC.subnet} {topology.PUBLIC.subnet6}, private "
          f"{topology.PRIVATE.subnet}, storage {topology.STORAGE.subnet}")
    print(f"  switches   netns {', '.join(f'{name}-sw-{n}' for n in topology.NETWORKS)} "
          "(bridge br0, ports named after endpoints)")
    if status["heartbeat"]:
        hb = ", ".join(f"{k} {v}" for k, v in status["heartbeat"].items())
        print(f"  heartbeat  {hb}")
    for node in status["nodes"]:
        print(f"  {node['name']:<10} netns {node['netns']}  {_addresses(node)}")
        print(f"  {'':<10} mount/uts ns {node['mount_ns']} {node['uts_ns']}")
        if status["clusterd"]:
            print(f"  {'':<10} clusterd PID {node['daemon']['pid']}, log {node['daemon']['log']}")
        else:
            print(f"  {'':<10} clusterd not started (--no-clusterd); config in "
                  f"{os.path.join(status['dir'], node['name'], 'etc')}")
    print(f"  {'client':<10} netns {status['client']['netns']}  {_addresses(status['client'])}")
    st = status["storage"]
    print(f"  {'storage':<10} netns {st['netns']}  {_addresses(st)}  tgtd PID "
          f"{st['tgtd']['pid']} (-C {st['tgtd']['control']}), portal {st['tgtd']['portal']}")
    for lun, target in st["tgtd"]["targets"].items():
        print(f"  {'':<10} LUN {lun}: {target['iqn']} lun {target['lun']} ({target['file']})")
    if status.get("dns"):
        d = status["dns"]
        print(f"  {'dns':<10} netns {d['netns']}  named PID {d['pid']} at {d['server']}, zone "
              f"{d['zone']}, update key {d['key_file']} in each node ({d['dir']})")
    if status.get("systemd"):
        print(f"  {'systemd':<10} a systemd --user manager per node: {user_manager.PRIVATE} "
              f"(CLUSTERD_SYSTEMD_BUS), units in {user_manager.UNIT_DIR}")
    if status["group"] != "none":
        netname = (f", network name {cluster_yaml.NETWORK_NAME}.{dns.ZONE}"
                   if cluster_yaml.has_network_name(status["group"]) else "")
        print(f"  {'group':<10} {_group_name(status['group'])}: virtual IP "
              f"{topology.PUBLIC.host(topology.VIP_HOST)}{netname}")
    flag = "" if name == "lab" else f" --name {name}"
    print(f"  {'try':<10} clusterlab ctl{flag} node1 status")
    print(f"  {'':<10} clusterlab exec{flag} node1 -- ip -br addr")
    print(f"  {'':<10} clusterlab client{flag} -- ping -c1 {status['nodes'][0]['links']['public']['address']}")
    print(f"  {'':<10} clusterlab down{flag}")


def _group_name(group):
    return cluster_yaml.IP_ONLY_GROUP if group == "ip-only" else group


def _link_word(link):
    if link["partitioned"]:
        return "cut"
    if link["switch_port"] != "up":
        return "unplugged"
    return link["state"]


def print_status(status):
    print(f"lab '{status['name']}' ({status['dir']}), demo group {status['group']}")
    print(f"{'NODE':<8} {'DAEMON':<26} {'PUBLIC':<10} {'PRIVATE':<10} {'STORAGE':<10}")
    for node in status["nodes"]:
        d = node["daemon"]
        if not status.get("clusterd", True):
            daemon = "not started (--no-clusterd)"
        elif d["running"]:
            daemon = f"running (PID {d['pid']})"
        else:
            daemon = "killed" if node["killed"] else (d["ended"] or "not running")
        if node.get("frozen"):
            daemon = "frozen, " + daemon
        links = [_link_word(node["links"][n]) for n in topology.NETWORKS]
        print(f"{node['name']:<8} {daemon:<26} {links[0]:<10} {links[1]:<10} {links[2]:<10}")
        for extra in node.get("extras", []):
            how = f"running (PID {extra['pid']})" if extra["running"] else (
                extra["ended"] or "not running")
            print(f"{'':<8} {extra['tag']}: {how}")
    tgtd = status["storage"]["tgtd"]
    if status.get("dns"):
        d = status["dns"]
        print(f"dns: named {'running' if d['running'] else 'NOT running'} (PID {d['pid']}), "
              f"{d['server']}, zone {d['zone']}")
    print(f"storage: tgtd {'running' if tgtd['running'] else 'NOT running'} "
          f"(PID {tgtd['pid']}), portal {tgtd['portal']}, "
          f"LUNs {', '.join(tgtd['targets']) or 'none'}")
    for cut in status["partitions"]:
        print("partition: " + "; ".join(f"{net}: {', '.join(p)} cut off"
                                        for net, p in cut.items()))


# -- commands ----------------------------------------------------------------------------------

_DURATION = re.compile(r"^[0-9]+(ms|s)$")


def heartbeat_args(args):
    """{"interval", "misses"} from --heartbeat-interval/--heartbeat-misses (only those given)."""
    heartbeat = {}
    if args.heartbeat_interval is not None:
        if not _DURATION.match(args.heartbeat_interval):
            raise LabError(f"--heartbeat-interval {args.heartbeat_interval}: expected a duration "
                           "like 10ms or 1s")
        heartbeat["interval"] = args.heartbeat_interval
    if args.heartbeat_misses is not None:
        if args.heartbeat_misses < 2:
            raise LabError(f"--heartbeat-misses {args.heartbeat_misses}: at least 2")
        heartbeat["misses"] = args.heartbeat_misses
    return heartbeat


def cmd_up(args):
    result = lab.up(args.name, args.nodes, args.group, binaries(args.build),
                    script=os.path.abspath(sys.argv[0]), wait=not args.no_wait,
                    keep_on_failure=args.keep, heartbeat=heartbeat_args(args),
                    clusterd=not args.no_clusterd, dns=args.dns, systemd=args.systemd,
                    quorum=args.quorum)
    print_summary(result.status())


def cmd_down(args):
    if not lab.down(args.name):
        print(f"clusterlab: there is no lab named '{args.name}'; nothing to do")


def cmd_status(args):
    status = lab.Lab.load(args.name).status()
    if args.json:
        json.dump(status, sys.stdout, indent=2)
        print()
    else:
        print_status(status)


def cmd_list(args):
    for name in lab.existing_labs():
        print(name)


def _command(args):
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    return cmd or [os.environ.get("SHELL") or "/bin/sh"]


def _exec_env(the_lab):
    env = dict(os.environ, CLUSTERD_BUS=nodes.BUS)
    if the_lab.systemd_enabled:
        env["XDG_RUNTIME_DIR"] = user_manager.RUNTIME_DIR  # systemctl --user in a node
    build = the_lab.state.data.get("build")
    if build:
        extra = [os.path.join(build, "cli"), os.path.join(build, "daemon")]
        env["PATH"] = ":".join(extra + [env.get("PATH", lab.DAEMON_PATH)])
    return env


def _replace_process(argv, env):
    sys.stdout.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        raise LabError(f"cannot run {argv[0]}: {e.strerror}")


def cmd_exec(args):
    the_lab = lab.Lab.load(args.name)
    _replace_process(the_lab.paths(args.node).enter() + _command(args), _exec_env(the_lab))


def cmd_client(args):
    the_lab = lab.Lab.load(args.name)
    command = _command(args)
    if the_lab.dns_enabled:
        command = dns.with_resolver(the_lab.dir, command)
    argv = nsenter(net=netns_path(the_lab.topo.client.netns)) + command
    _replace_process(argv, _exec_env(the_lab))


def cmd_storage(args):
    the_lab = lab.Lab.load(args.name)
    argv = nsenter(net=netns_path(the_lab.topo.storage.netns)) + _command(args)
    _replace_process(argv, _exec_env(the_lab))


def cmd_ctl(args):
    the_lab = lab.Lab.load(args.name)
    ctl_args = list(args.args)
    if ctl_args and ctl_args[0] == "--":
        ctl_args = ctl_args[1:]
    argv = the_lab.paths(args.node).enter() + [the_lab.state["clusterctl"]] + ctl_args
    _replace_process(argv, _exec_env(the_lab))


def cmd_kill_node(args):
    lab.Lab.load(args.name).kill_node(args.node)
    print(f"{args.node}: links cut, every process killed")


def cmd_freeze_node(args):
    pids = lab.Lab.load(args.name).freeze_node(args.node)
    print(f"{args.node}: frozen ({len(pids)} processes stopped, every frame to or from it "
          "dropped)")


def cmd_thaw_node(args):
    pids = lab.Lab.load(args.name).thaw_node(args.node)
    print(f"{args.node}: thawed ({len(pids)} processes continued, links pass again)")


def cmd_restart_storage(args):
    pid = lab.Lab.load(args.name).restart_storage()
    print(f"storage: tgtd killed and started again (PID {pid}) with the same targets and LUN "
          "files; every reservation is gone (tgt has no APTPL)")


def cmd_stop_node(args):
    stopped = lab.Lab.load(args.name).stop_node(args.node, args.timeout)
    print(f"{args.node}: clusterd {'stopped' if stopped else 'was not running'}")


def cmd_start_node(args):
    the_lab = lab.Lab.load(args.name)
    the_lab.start_node(args.node, wait=not args.no_wait)
    started = [f"clusterd started (PID {the_lab.daemon(args.node)['pid']})"] if (
        the_lab.clusterd_enabled) else []
    started += [f"{e['tag']} started (PID {e['pid']})" for e in the_lab.extras(args.node)]
    print(f"{args.node}: links up" + "".join(", " + s for s in started))


def cmd_spawn(args):
    the_lab = lab.Lab.load(args.name)
    argv = list(args.command)
    # argparse hands everything after NODE to the command; options may still precede "--".
    while argv and argv[0] != "--" and argv[0].startswith("--tag"):
        if "=" in argv[0]:
            args.tag = argv.pop(0).split("=", 1)[1]
        elif len(argv) >= 2:
            argv.pop(0)
            args.tag = argv.pop(0)
        else:
            raise LabError("--tag needs a value")
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise LabError("spawn needs a command: clusterlab spawn NODE -- CMD [ARGS...]")
    tag = args.tag or os.path.basename(argv[0])
    record = the_lab.spawn(args.node, tag, argv)
    print(f"{args.node}: {tag} started (PID {record['pid']}), log "
          f"{the_lab.extra_log(args.node, tag)}")


def cmd_partition(args):
    the_lab = lab.Lab.load(args.name)
    applied = the_lab.partition(args.nodes, lab.network.networks_arg(args.network),
                                args.outbound_only)
    how = "no longer heard by" if args.outbound_only else "cut off from"
    for net, ports in applied.items():
        print(f"{net}: {', '.join(ports)} {how} the rest")


def cmd_heal(args):
    lab.Lab.load(args.name).heal(lab.network.networks_arg(args.network))
    print("healed")


# -- parser ------------------------------------------------------------------------------------

def _parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default=DEFAULT_NAME, metavar="PREFIX",
                        help=f"the lab (default: {DEFAULT_NAME}; $CLUSTERLAB_NAME)")
    parser = argparse.ArgumentParser(
        prog="clusterlab", description="A whole clusterd cluster on one machine: nodes are "
        "network+mount+UTS namespaces on public, private and storage bridges.")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def add(name, func, help_text):
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = add("up", cmd_up, "build a lab and start clusterd in every node")
    p.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    p.add_argument("--build", metavar="DIR", help="meson build directory with daemon/clusterd "
                   "and cli/clusterctl (default: $CLUSTERD_BUILD, the repo's build/, PATH)")
    p.add_argument("--group", choices=cluster_yaml.GROUPS, default="ledger",
                   help="demo group in cluster.yaml (default ledger: virtual IP + ledgerd; "
                   f"ip-only: group '{cluster_yaml.IP_ONLY_GROUP}' with only the virtual IP, no "
                   "ARP probe; service: virtual IP + network name in DNS + ledgerd as a systemd "
                   "unit, implies --dns and --systemd; full: the ledger LUN + virtual IP + network "
                   "name + ledgerd as a systemd unit with its data on the LUN, implies --dns and "
                   "--systemd; none: no groups)")
    p.add_argument("--dns", action="store_true",
                   help=f"run a DNS server (named, {topology.PUBLIC.host(topology.DNS_HOST)}, "
                   f"zone {dns.ZONE}, updates signed with a key in every node); `client` "
                   "commands resolve through it")
    p.add_argument("--systemd", action="store_true",
                   help="run a systemd --user manager in every node; clusterd gets "
                   "CLUSTERD_SYSTEMD_BUS pointing at it")
    p.add_argument("--quorum", choices=cluster_yaml.QUORUM_MODES,
                   help="quorum mode on the lab's quorum LUN (default node-majority, no disk)")
    p.add_argument("--heartbeat-interval", metavar="DURATION",
                   help="heartbeat.interval in cluster.yaml, e.g. 10ms (default: the daemon's)")
    p.add_argument("--heartbeat-misses", metavar="N", type=int,
                   help="heartbeat.misses in cluster.yaml (default: the daemon's)")
    p.add_argument("--no-clusterd", action="store_true",
                   help="write the configuration but start no clusterd (for other software, "
                   "started with spawn); start-node then starts only the spawned processes")
    p.add_argument("--no-wait", action="store_true",
                   help="do not wait for clusterd to open its bus socket")
    p.add_argument("--keep", action="store_true",
                   help="on failure keep what was made, for inspection (then run down)")
    add("down", cmd_down, "remove a lab completely (safe to repeat)")
    p = add("status", cmd_status, "nodes, their clusterd and their links")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add("list", cmd_list, "names of the labs that exist")
    p = add("exec", cmd_exec, "run a command inside a node (CLUSTERD_BUS set)")
    p.add_argument("node")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...] (default $SHELL)")
    for name, func, text in (("client", cmd_client, "run a command in the client namespace "
                              "(resolving through the lab's DNS server when it has one)"),
                             ("storage", cmd_storage, "run a command in the storage namespace")):
        p = add(name, func, text)
        p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    p = add("ctl", cmd_ctl, "run clusterctl inside a node")
    p.add_argument("node")
    p.add_argument("args", nargs=argparse.REMAINDER, help="clusterctl arguments")
    p = add("kill-node", cmd_kill_node,
            "crash a node: cut its links, SIGKILL every process in its namespaces")
    p.add_argument("node")
    p = add("freeze-node", cmd_freeze_node,
            "pause a node as a hypervisor would: SIGSTOP every process in its namespaces and "
            "drop every frame to or from it (links stay up); thaw-node resumes it")
    p.add_argument("node")
    p = add("thaw-node", cmd_thaw_node, "resume a frozen node: its frames pass again, then "
            "SIGCONT to every process in its namespaces")
    p.add_argument("node")
    add("restart-storage", cmd_restart_storage, "crash and restart tgtd in the storage "
        "namespace (SIGKILL, same targets and LUN files): every session drops and every "
        "persistent reservation is lost, as tgt has no APTPL")
    p = add("stop-node", cmd_stop_node, "stop a node's clusterd gracefully (SIGTERM, wait)")
    p.add_argument("node")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    p = add("start-node", cmd_start_node, "links up again; clusterd and the node's spawned "
            "processes started again")
    p.add_argument("node")
    p.add_argument("--no-wait", action="store_true", help="do not wait for the bus socket")
    p = add("spawn", cmd_spawn, "start an extra process inside a node (under the lab's keeper, "
            "output to PREFIX/NODE/TAG.log); kill-node and down kill it, start-node starts it "
            "again")
    p.add_argument("node")
    p.add_argument("--tag", help="name of the process in status and its log file (default: "
                   "the command's base name); one running process per tag and node")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    p = add("partition", cmd_partition, "cut the named nodes (one side) off from every other "
            "port of the chosen networks, both ways; the named nodes still reach each other")
    p.add_argument("nodes", nargs="+", metavar="NODE", help="node (or client, storage)")
    p.add_argument("--network", action="append", choices=list(topology.NETWORKS) + ["all"],
                   help="network to cut (repeatable; default all)")
    p.add_argument("--outbound-only", action="store_true",
                   help="one-way cut: drop only what the named nodes send (they still hear "
                   "the others)")
    p = add("heal", cmd_heal, "remove every cut (on the chosen networks)")
    p.add_argument("--network", action="append", choices=list(topology.NETWORKS) + ["all"],
                   help="network to heal (repeatable; default all)")
    return parser


def main(argv):
    if len(argv) == 3 and argv[0] == "_keeper":
        keeper.main(argv[1], int(argv[2]))
        return 0
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `clusterlab status | head` ends quietly
    args = _parser().parse_args(argv)
    if os.geteuid() != 0:
        print("clusterlab: must run as root (namespaces, mounts, nftables)", file=sys.stderr)
        return 1
    try:
        args.func(args)
    except LabError as e:
        print(f"clusterlab: {e}", file=sys.stderr)
        return 1
    return 0
