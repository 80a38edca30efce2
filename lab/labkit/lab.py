"""A lab's operations: up, down, kill/stop/start a node, partition, heal, status.

Everything `up` makes is recorded in the lab's state (see state.py) before it is made; `down`
walks that record, so it works after a partial `up` and twice in a row.
"""
import os
import secrets
import shutil
import signal
import socket
import time

from . import (cluster_yaml, dns, keeper, mounts, network, nodes, procs, storage, topology,
               user_manager)
from .run import LabError, netns_path
from .state import (State, existing_labs, forget_host_dirs, global_lock, note_host_dir,
                    read_host_dirs)

DAEMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
READY_TIMEOUT = 20.0
AUTHKEY_BYTES = 32


class Lab:
    """One lab, as recorded in its state file."""

    def __init__(self, state):
        self.state = state
        self.prefix = state.prefix
        self.dir = state.dir
        self.topo = topology.make(self.prefix, state["nodes"], dns=self.dns_enabled)

    @classmethod
    def load(cls, prefix):
        return cls(State.load(prefix))

    def paths(self, node):
        try:
            endpoint = self.topo.node(node)
        except KeyError as e:
            raise LabError(e.args[0])
        return nodes.NodePaths(self.dir, endpoint)

    # -- building ------------------------------------------------------------------------------

    def build(self, script, wait):
        """Makes every part of the lab, in dependency order."""
        self._start_keeper(script)
        for net in topology.NETWORKS:
            network.add_switch(self.state, self.topo, net)
        for endpoint in (self.topo.client, self.topo.storage) + (
                (self.topo.dns,) if self.topo.dns else ()):
            network.add_netns(self.state, endpoint.netns)
            for net in endpoint.networks:
                network.plug(self.topo, endpoint, net)
        self._make_nodes()
        self._start_storage()
        if self.dns_enabled:
            self._start_dns()
        if self.systemd_enabled:
            for node in self.topo.nodes:
                self._start_user_manager(node.name)
        if self.clusterd_enabled:
            for node in self.topo.nodes:
                self.start_daemon(node.name)
            if wait:
                self.wait_daemons([n.name for n in self.topo.nodes])

    def _start_keeper(self, script):
        pid = keeper.start(script, self.dir, os.path.join(self.dir, "keeper.log"))
        self.state["keeper"] = procs.identity(pid)

    def _make_nodes(self):
        ns_dir = os.path.join(self.dir, "ns")
        self.state.record("mount", path=ns_dir)
        mounts.private_bind(ns_dir)
        nodes.ensure_host_dirs(note_host_dir)
        dns_key = None
        if self.dns_enabled:
            _, dns_key = dns.prepare(self.dir)
        config = cluster_yaml.render(self.topo, self.state["group"], self.state["ledger_agent"],
                                     self.state.data.get("ledgerd"),
                                     self.state.data.get("heartbeat"), dns=self._dns_info(),
                                     quorum=self.state.data.get("quorum"))
        authkey = secrets.token_bytes(AUTHKEY_BYTES)
        for endpoint in self.topo.nodes:
            paths = nodes.NodePaths(self.dir, endpoint)
            nodes.make_dirs(paths)
            network.add_netns(self.state, endpoint.netns)
            for net in endpoint.networks:
                network.plug(self.topo, endpoint, net)
            nodes.pin_namespaces(self.state, paths)
            nodes.setup_inside(paths)
            nodes.write_config(paths, config, authkey)
            if dns_key:
                nodes.write_file(paths.on_host(dns.KEY_IN_NODE), dns_key.encode(), 0o600)
            if self.systemd_enabled:
                self._prepare_user_manager(paths)
        if self.state["group"] == cluster_yaml.SERVICE_GROUP:
            shared = nodes.NodePaths(self.dir, self.topo.nodes[0]).shared
            os.makedirs(os.path.join(shared, os.path.relpath(cluster_yaml.SERVICE_DATA_DIR,
                                                             nodes.SHARED)), exist_ok=True)

    def _start_storage(self):
        store = os.path.join(self.dir, "storage")
        os.makedirs(store, exist_ok=True)
        control = storage.pick_control_number()
        self.state["tgtd"] = {"control": control, "pid": None, "start": None, "targets": {}}
        tgtd = self._spawn_tgtd(control)
        for tid, name in enumerate(cluster_yaml.lun_names(self.state["group"]), start=1):
            backing = os.path.join(store, f"{name}.img")
            storage.make_lun_file(backing, storage.LUN_SIZES.get(name, storage.DATA_LUN_SIZE))
            iqn = storage.add_target(self.state, control, tid, self.prefix, name, backing)
            tgtd["targets"][name] = {"tid": tid, "iqn": iqn, "lun": 1, "file": backing}
        self.state["tgtd"] = tgtd

    # -- DNS server and systemd user managers ---------------------------------------------------

    @property
    def dns_enabled(self):
        """True for a lab with a DNS server (--dns, or the service group)."""
        return bool(self.state.data.get("dns", False))

    @property
    def systemd_enabled(self):
        """True for a lab with a systemd --user manager per node (--systemd)."""
        return bool(self.state.data.get("systemd", False))

    def _dns_info(self):
        if not self.dns_enabled:
            return None
        return {"server": dns.server_address(), "zone": dns.ZONE, "key_file": dns.KEY_IN_NODE}

    def _start_dns(self):
        directory = os.path.join(self.dir, dns.SUBDIR)
        pid = keeper.spawn(self.dir, dns.argv(self.topo, directory),
                           os.path.join(directory, "named.log"), self._daemon_env())
        self.state["named"] = procs.identity(pid)
        named = self.state["named"]
        dns.wait_ready(self.topo, lambda: procs.is_running(pid, named["start"]))

    def _prepare_user_manager(self, paths):
        node_run = paths.host_path("run")
        user_manager.prepare(node_run)
        user_manager.share_mounts(paths.enter())
        for name, text in cluster_yaml.user_units(self.topo, self.state["group"],
                                                  self.state.data.get("ledgerd")).items():
            user_manager.install_unit(node_run, name, text)

    def _start_user_manager(self, node):
        paths = self.paths(node)
        argv = user_manager.argv(self.prefix, node, paths.enter())
        record = self.spawn(node, user_manager.TAG, argv, enter=False)
        user_manager.wait_ready(paths.host_path("run"),
                                lambda: procs.is_running(record["pid"], record["start"]))

    def _spawn_tgtd(self, control):
        """Starts tgtd on control number `control` in the storage namespace; records it and
        waits until it answers. Returns the updated state["tgtd"]."""
        store = os.path.join(self.dir, "storage")
        argv = ["nsenter", f"--net={netns_path(self.topo.storage.netns)}", "--",
                "tgtd", "-f", "-C", str(control), "--iscsi", f"portal={self.topo.portal}"]
        pid = keeper.spawn(self.dir, argv, os.path.join(store, "tgtd.log"), self._daemon_env())
        tgtd = dict(self.state["tgtd"], **procs.identity(pid))
        self.state["tgtd"] = tgtd
        storage.wait_ready(control, lambda: procs.is_running(pid, tgtd["start"]))
        return tgtd

    def restart_storage(self):
        """A storage box that crashed and came back: tgtd SIGKILLed (every session drops without
        logout) and started again with the same control number, targets and LUN files. tgt has
        no APTPL, so every registration and reservation is gone afterwards. Returns the new PID."""
        tgtd = self.state.data.get("tgtd") or {}
        if not tgtd.get("start"):
            raise LabError(f"lab '{self.prefix}' has no tgtd to restart")
        if not procs.signal_and_wait(tgtd["pid"], tgtd["start"], signal.SIGKILL, 10.0):
            raise LabError(f"tgtd (PID {tgtd['pid']}) did not die within 10 s of SIGKILL")
        storage.remove_socket_files(tgtd["control"])
        tgtd = self._spawn_tgtd(tgtd["control"])
        for target in sorted(tgtd["targets"].values(), key=lambda t: t["tid"]):
            storage.define_target(tgtd["control"], target["tid"], target["iqn"],
                                  target["file"])
        return tgtd["pid"]

    # -- daemons -------------------------------------------------------------------------------

    def _daemon_env(self):
        return {"PATH": DAEMON_PATH, "LANG": "C.UTF-8", "CLUSTERD_BUS": nodes.BUS}

    @property
    def clusterd_enabled(self):
        """False for a lab made with --no-clusterd (other software manages the nodes)."""
        return not self.state.data.get("no_clusterd", False)

    def daemon(self, node):
        """{"pid", "start"} of the node's clusterd as last started, or None."""
        return self.state["daemons"].get(node)

    def daemon_running(self, node):
        d = self.daemon(node)
        return bool(d and d["start"] is not None and procs.is_running(d["pid"], d["start"]))

    def start_daemon(self, node):
        paths = self.paths(node)
        nodes.check_binary(self.state["clusterd"], "clusterd")
        with open(paths.log, "ab") as log:
            log.write(f"--- clusterlab: starting clusterd on {node} at "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        env = self._daemon_env()
        if self.systemd_enabled:
            env["CLUSTERD_SYSTEMD_BUS"] = user_manager.PRIVATE
        pid = keeper.spawn(self.dir, nodes.daemon_argv(paths, self.state["clusterd"]), paths.log,
                           env)
        daemons = dict(self.state["daemons"])
        daemons[node] = procs.identity(pid)
        self.state["daemons"] = daemons

    # -- extra per-node processes ---------------------------------------------------------------

    def extras(self, node):
        """The extra processes of `node` ([{"tag", "argv", "pid", "start"}]), oldest first."""
        return self.state.data.get("extras", {}).get(node, [])

    def spawn(self, node, tag, argv, enter=True):
        """Starts `argv` inside `node` (its network, mount and UTS namespaces) as a child of the
        keeper, output to NODE/TAG.log. It is one of the node's processes: kill-node and down
        kill it, and start-node starts it again (as a boot would start a service)."""
        paths = self.paths(node)
        if not topology.valid_tag(tag):
            raise LabError(f"process tag '{tag}' must be 1-32 letters, digits, '-' or '_'")
        if node in self.state["killed"]:
            raise LabError(f"{node} is killed; `clusterlab start-node {node}` first")
        kept = []
        for extra in self.extras(node):
            if extra["tag"] != tag:
                kept.append(extra)
            elif procs.is_running(extra["pid"], extra["start"]):
                raise LabError(f"{node} already runs a process tagged '{tag}' "
                               f"(PID {extra['pid']})")
        record = {"tag": tag, "argv": list(argv), "enter": enter}
        record.update(self._start_extra(paths, record))
        extras = dict(self.state.data.get("extras", {}))
        extras[node] = kept + [record]
        self.state["extras"] = extras
        return record

    def extra_log(self, node, tag):
        return os.path.join(self.paths(node).dir, f"{tag}.log")

    def _start_extra(self, paths, record):
        log = self.extra_log(paths.name, record["tag"])
        with open(log, "ab") as f:
            f.write(f"--- clusterlab: starting {record['tag']} on {paths.name} at "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        env = dict(self._daemon_env(), CLUSTERLAB_NODE=paths.name)
        if self.systemd_enabled:
            env["XDG_RUNTIME_DIR"] = user_manager.RUNTIME_DIR
        # enter False: the command enters the node itself (the systemd manager joins its cgroups
        # on the host side first).
        prefix = paths.enter() if record.get("enter", True) else []
        pid = keeper.spawn(self.dir, prefix + record["argv"], log, env)
        return procs.identity(pid)

    def _restart_extras(self, node):
        paths = self.paths(node)
        restarted = []
        for extra in self.extras(node):
            if not procs.is_running(extra["pid"], extra["start"]):
                extra = dict(extra, **self._start_extra(paths, extra))
            restarted.append(extra)
        extras = dict(self.state.data.get("extras", {}))
        extras[node] = restarted
        self.state["extras"] = extras

    def _extra_status(self, node):
        out = []
        for extra in self.extras(node):
            running = procs.is_running(extra["pid"], extra["start"])
            out.append({"tag": extra["tag"], "argv": extra["argv"], "pid": extra["pid"],
                        "running": running, "log": self.extra_log(node, extra["tag"]),
                        "ended": None if running else keeper.exit_status(self.dir,
                                                                        extra["pid"])})
        return out

    def _bus_answers(self, node):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(self.paths(node).bus_on_host)
                return True
            except OSError:
                return False

    def wait_daemons(self, names, timeout=READY_TIMEOUT):
        """Waits (polling with a deadline) until every node's clusterd accepts connections on
        its bus socket; fails at once when one exits."""
        deadline = time.monotonic() + timeout
        waiting = list(names)
        while waiting:
            for node in list(waiting):
                if self._bus_answers(node):
                    waiting.remove(node)
                elif not self.daemon_running(node):
                    raise LabError(f"clusterd on {node} {self._reaped_end(node)} "
                                   f"before opening its bus; its log ends:\n"
                                   + log_tail(self.paths(node).log))
            if waiting and time.monotonic() > deadline:
                raise LabError(f"clusterd did not open its bus within {timeout:.0f} s on "
                               f"{', '.join(waiting)}; see the logs in {self.dir}")
            if waiting:
                time.sleep(0.05)

    def _reaped_end(self, node, timeout=2.0):
        """How the node's clusterd ended, once the keeper has reaped it: the exit is visible in
        /proc a moment before the keeper records its status."""
        deadline = time.monotonic() + timeout
        while (end := self.daemon_end(node)) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return end or "exited"

    def daemon_end(self, node):
        """How the node's last clusterd ended ("exited 1"), or None."""
        d = self.daemon(node)
        return keeper.exit_status(self.dir, d["pid"]) if d else None

    # -- node failures -------------------------------------------------------------------------

    def node_namespace_keys(self, paths):
        keys = set()
        for path in (paths.net, paths.mnt, paths.uts):
            try:
                keys.add(procs.ns_key(path))
            except OSError:
                pass
        return keys

    def kill_node(self, node):
        """Crash: cut every link, then SIGKILL every process in the node's namespaces."""
        paths = self.paths(node)
        network.set_ports(self.topo, paths.endpoint, up=False)
        keys = self.node_namespace_keys(paths)
        left = procs.kill_all(lambda: procs.pids_in_namespaces(keys))
        if node not in self.state["killed"]:
            self.state["killed"] = self.state["killed"] + [node]
        if node in self.frozen():
            network.unsilence(self.topo, paths.endpoint)
            self.state["frozen"] = [n for n in self.frozen() if n != node]
        if left:
            raise LabError(f"processes {left} of {node} survived SIGKILL")

    def frozen(self):
        return self.state.data.get("frozen", [])

    def freeze_node(self, node):
        """A paused machine: the node's switch ports drop every frame (its kernel would still
        answer ARP for its addresses, which a paused machine does not), then SIGSTOP to every
        process in its namespaces (found as kill_node finds them). Returns the PIDs stopped."""
        paths = self.paths(node)
        if node in self.state["killed"]:
            raise LabError(f"{node} is killed; there is nothing to freeze")
        if node not in self.frozen():
            self.state["frozen"] = self.frozen() + [node]
        network.silence(self.topo, paths.endpoint)
        keys = self.node_namespace_keys(paths)
        try:
            return procs.signal_all(lambda: procs.pids_in_namespaces(keys), signal.SIGSTOP)
        except TimeoutError as e:
            raise LabError(f"cannot freeze {node}: {e}")

    def thaw_node(self, node):
        """Resumes a frozen node: its ports pass frames again, then SIGCONT to every process in
        its namespaces (network first, so what the thawed processes send reaches the others)."""
        paths = self.paths(node)
        if node not in self.frozen():
            raise LabError(f"{node} is not frozen")
        network.unsilence(self.topo, paths.endpoint)
        keys = self.node_namespace_keys(paths)
        try:
            pids = procs.signal_all(lambda: procs.pids_in_namespaces(keys), signal.SIGCONT)
        except TimeoutError as e:
            raise LabError(f"cannot thaw {node}: {e}")
        self.state["frozen"] = [n for n in self.frozen() if n != node]
        return pids

    def stop_node(self, node, timeout):
        """Graceful: SIGTERM the node's clusterd and wait for it to exit."""
        d = self.daemon(node)
        if not self.daemon_running(node):
            return False
        if not procs.signal_and_wait(d["pid"], d["start"], signal.SIGTERM, timeout):
            raise LabError(f"clusterd on {node} (PID {d['pid']}) did not exit within "
                           f"{timeout:.0f} s of SIGTERM; `clusterlab kill-node {node}` ends it")
        return True

    def start_node(self, node, wait):
        """Boot: links up (after a kill, addresses reset as a reboot would), clusterd started."""
        paths = self.paths(node)
        if self.clusterd_enabled and self.daemon_running(node):
            raise LabError(f"clusterd on {node} is already running "
                           f"(PID {self.daemon(node)['pid']})")
        if node in self.state["killed"]:
            for net in paths.endpoint.networks:
                network.set_base_addresses(paths.endpoint, net, flush=True)
            self.state["killed"] = [n for n in self.state["killed"] if n != node]
        network.set_ports(self.topo, paths.endpoint, up=True)
        if self.clusterd_enabled:
            self.start_daemon(node)
            if wait:
                self.wait_daemons([node])
        self._restart_extras(node)

    # -- partitions ----------------------------------------------------------------------------

    def partition(self, side, networks, outbound_only=False):
        known = [e.name for e in self.topo.endpoints()]
        for name in side:
            if name not in known:
                raise LabError(f"'{name}' is not a node or endpoint of lab '{self.prefix}' "
                               f"(known: {', '.join(known)})")
        applied = network.partition(self.topo, side, networks, outbound_only)
        if not applied:
            raise LabError(f"none of {', '.join(side)} is on the {', '.join(networks)} network")
        self.state["partitions"] = self.state["partitions"] + [applied]
        return applied

    def heal(self, networks):
        network.heal(self.topo, networks)
        kept = []
        for cut in self.state["partitions"]:
            rest = {net: ports for net, ports in cut.items() if net not in networks}
            if rest:
                kept.append(rest)
        self.state["partitions"] = kept

    def cut_networks(self, name):
        return sorted({net for cut in self.state["partitions"] for net, ports in cut.items()
                       if name in ports})

    # -- status --------------------------------------------------------------------------------

    def status(self):
        return {"name": self.prefix, "dir": self.dir, "group": self.state["group"],
                "dns": self._dns_status(), "systemd": self.systemd_enabled,
                "keeper": self.state.data.get("keeper"), "clusterd": self.clusterd_enabled,
                "heartbeat": self.state.data.get("heartbeat") or {},
                "quorum": self.state.data.get("quorum") or "node-majority",
                "nodes": [self._node_status(n.name) for n in self.topo.nodes],
                "client": self._endpoint_status(self.topo.client),
                "storage": dict(self._endpoint_status(self.topo.storage),
                                **self._storage_status()),
                "partitions": self.state["partitions"]}

    def _endpoint_status(self, endpoint):
        links = network.link_states(self.topo, endpoint)
        for net, link in links.items():
            link["address"] = endpoint.address(net)
            if endpoint.address6(net):
                link["address6"] = endpoint.address6(net)
            link["partitioned"] = net in self.cut_networks(endpoint.name)
        return {"name": endpoint.name, "netns": endpoint.netns, "links": links}

    def _node_status(self, node):
        paths = self.paths(node)
        d = self.daemon(node)
        running = self.daemon_running(node)
        daemon = {"pid": d["pid"] if d else None, "running": running,
                  "ended": None if running else self.daemon_end(node), "log": paths.log,
                  "bus": paths.bus_on_host}
        return dict(self._endpoint_status(paths.endpoint), hostname=node, daemon=daemon,
                    killed=node in self.state["killed"], frozen=node in self.frozen(),
                    mount_ns=paths.mnt, uts_ns=paths.uts,
                    extras=self._extra_status(node))

    def _dns_status(self):
        if not self.dns_enabled:
            return None
        named = self.state.data.get("named") or {}
        running = bool(named.get("start")) and procs.is_running(named["pid"], named["start"])
        return {"server": dns.server_address(), "zone": dns.ZONE, "pid": named.get("pid"),
                "running": running, "key_file": dns.KEY_IN_NODE,
                "netns": self.topo.dns.netns, "dir": os.path.join(self.dir, dns.SUBDIR)}

    def _storage_status(self):
        tgtd = self.state.data.get("tgtd") or {}
        running = bool(tgtd.get("start")) and procs.is_running(tgtd["pid"], tgtd["start"])
        return {"tgtd": {"pid": tgtd.get("pid"), "running": running,
                         "control": tgtd.get("control"), "portal": self.topo.portal,
                         "targets": tgtd.get("targets", {})}}


def log_tail(path, lines=10):
    """The last `lines` lines of a log file, indented, for error messages."""
    try:
        with open(path, errors="replace") as f:
            tail = f.read().splitlines()[-lines:]
    except OSError as e:
        return f"    ({path}: {e.strerror})"
    return "\n".join("    " + line for line in tail) or "    (empty)"


# -- up and down -------------------------------------------------------------------------------

def up(prefix, node_count, group, binaries, script, wait=True, keep_on_failure=False,
       heartbeat=None, clusterd=True, dns=False, systemd=False, quorum=None):
    """Builds lab `prefix`; on failure tears down what was made (unless `keep_on_failure`).
    `quorum`: a cluster_yaml.QUORUM_MODES mode on the lab's quorum LUN (None: node-majority).
    `heartbeat`: {"interval", "misses"} for cluster.yaml; `clusterd` False: no daemons; `dns`: a
    DNS server; `systemd`: a systemd --user manager per node (the service and full groups
    imply both)."""
    if cluster_yaml.needs_dns_and_systemd(group):
        dns = systemd = True
    why = topology.check_prefix(prefix)
    if why:
        raise LabError(why)
    try:
        topology.make(prefix, node_count)
    except ValueError as e:
        raise LabError(str(e))
    with global_lock():
        state = State.create(prefix, nodes=node_count, group=group, heartbeat=heartbeat or {},
                             no_clusterd=not clusterd, dns=dns, systemd=systemd, quorum=quorum,
                             **binaries)
        lab = Lab(state)
        try:
            lab.build(script, wait)
        except BaseException:
            if not keep_on_failure:
                _teardown(state)
            raise
    return lab


def down(prefix):
    """Removes lab `prefix`; True when there was one. Idempotent."""
    with global_lock():
        state = State.load(prefix, missing_ok=True)
        if state is None:
            _remove_host_dirs_if_last()
            return False
        _teardown(state)
        return True


def _teardown(state):
    """Undoes everything `state` records; keeps going past errors and reports them at the end."""
    errors = []

    def attempt(what, fn, *args):
        try:
            fn(*args)
        except (LabError, OSError) as e:
            errors.append(f"{what}: {e}")

    tgtd = state.data.get("tgtd") or {}
    if tgtd.get("start") and procs.is_running(tgtd["pid"], tgtd["start"]):
        tids = [e["tid"] for e in state.undo_log("target")]
        attempt("stopping tgtd", storage.shutdown, tgtd["control"], tids)
    attempt("killing the lab's processes", _kill_everything, state)
    if state.data.get("systemd"):
        for index in range(1, state["nodes"] + 1):
            node = topology.node_name(index)
            attempt(f"removing the cgroups of {node}'s systemd manager",
                    user_manager.remove_cgroups, state.prefix, node)
    attempt("stopping the keeper", _stop_keeper, state)
    for entry in reversed(state.undo_log("mount")):
        attempt(f"unmounting {entry['path']}", mounts.unmount, entry["path"])
    for entry in reversed(state.undo_log("netns")):
        attempt(f"deleting namespace {entry['name']}", network.delete_netns, entry["name"])
    if tgtd.get("control") is not None:
        attempt("removing tgtd's socket", storage.remove_socket_files, tgtd["control"])
    attempt(f"removing {state.dir}", _remove_lab_dir, state.dir)
    attempt("removing host directories", _remove_host_dirs_if_last)
    if errors:
        raise LabError("down left something behind: " + "; ".join(errors))


def _namespace_keys(state):
    keys = set()
    paths = [netns_path(e["name"]) for e in state.undo_log("netns")]
    paths += [e["path"] for e in state.undo_log("mount") if e["path"].endswith((".mnt", ".uts"))]
    for path in paths:
        try:
            if not path.startswith("/run/netns/") and not mounts.is_mounted(path):
                continue
            keys.add(procs.ns_key(path))
        except OSError:
            pass
    return keys


def _recorded_processes(state):
    """Processes the state names (daemons, tgtd), as far as they still run."""
    found = list(state["daemons"].values()) + [state.data.get("tgtd") or {},
                                               state.data.get("named") or {}]
    found += [e for extras in state.data.get("extras", {}).values() for e in extras]
    return [p["pid"] for p in found
            if p and p.get("start") and procs.is_running(p["pid"], p["start"])]


def _kill_everything(state):
    keys = _namespace_keys(state)
    left = procs.kill_all(
        lambda: sorted(set(procs.pids_in_namespaces(keys)) | set(_recorded_processes(state))))
    if left:
        raise LabError(f"processes {left} survived SIGKILL")


def _stop_keeper(state):
    k = state.data.get("keeper")
    if not k or not k.get("start"):
        return
    if not procs.signal_and_wait(k["pid"], k["start"], signal.SIGTERM, 5.0):
        procs.signal_and_wait(k["pid"], k["start"], signal.SIGKILL, 5.0)


def _remove_lab_dir(path):
    if not os.path.isdir(path):
        return
    busy = mounts.mounts_under(path)
    if busy:
        raise LabError(f"still mounted under {path}: {', '.join(busy)}")
    shutil.rmtree(path)


def _remove_host_dirs_if_last():
    """The bind-mount targets clusterlab created on the host go with the last lab: removing a
    directory that another lab's nodes mount on would detach their mounts."""
    if existing_labs():
        return
    for path in read_host_dirs():
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise LabError(f"cannot remove {path}, which clusterlab created: {e.strerror}")
    forget_host_dirs()

