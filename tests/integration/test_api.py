"""The D-Bus API, clusterctl and the daemon's process behaviour (signals, socket, exit codes):
real clusterd, real clusterctl, real busctl."""
import json
import os
import re
import select
import signal
import socket
import subprocess
import time

from harness import CLUSTERCTL, CLUSTERD, wait_for

NOBODY = 65534
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
POSITION = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+):(?P<col>\d+): .+", re.M)


def config(admin_group="", autostart=False):
    admin = f"\n  admin_group: {admin_group}" if admin_group else ""
    return f"""
cluster:
  name: apitest
  id: 9{admin}
nodes:
  - name: node1
    id: 1
groups:
  - name: web
    preferred_owners: [node1]
    autostart: {str(autostart).lower()}
    resources:
      - name: sleeper
        type: process
        params:
          command: /bin/sleep
          args: ["3600"]
"""


BAD = """cluster:
  name: apitest
  id: 9
nodes:
  - name: node1
    id: 1
groups:
  - name: web
    resources:
      - name: x
        type: nonsense
"""


def keys(obj):
    return sorted(obj.keys())


def as_nobody(d, *args):
    return d.ctl(*args, check=False, user=NOBODY)


def test_busctl_introspects_the_api(daemon_factory):
    d = daemon_factory(config())
    address = f"unix:path={d.bus}"
    out = subprocess.run(["busctl", f"--address={address}", "introspect", "org.clusterd1",
                          "/org/clusterd1", "org.clusterd1.Manager"],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    for member in ("GetStatus", "OnlineGroup", "OfflineResource", "Apply", "Reload", "Changed",
                   "ClusterName", "NodeName", "ConfigSource"):
        assert f".{member}" in out.stdout
    prop = subprocess.run(["busctl", f"--address={address}", "get-property", "org.clusterd1",
                           "/org/clusterd1", "org.clusterd1.Manager", "ClusterName"],
                          capture_output=True, text=True, timeout=10)
    assert prop.stdout.strip() == 's "apitest"'


def test_status_json_has_the_contract_shape(daemon_factory):
    d = daemon_factory(config())
    s = d.status()
    assert keys(s) == ["cluster", "config", "groups", "node", "nodes"]
    assert (s["cluster"], s["node"], s["config"]) == ("apitest", "node1", d.config)
    assert s["nodes"] == [{"name": "node1", "id": 1, "state": "up"}]
    (g,) = s["groups"]
    assert keys(g) == ["name", "owner", "reason", "resources", "state"]
    assert (g["name"], g["state"]) == ("web", "offline")
    (r,) = g["resources"]
    assert keys(r) == ["agent", "last_failure", "last_is_alive", "last_looks_alive", "name",
                       "pid", "reason", "restarts", "state", "type"]
    assert (r["name"], r["type"], r["state"], r["pid"]) == ("sleeper", "process", "offline", 0)
    assert d.json("groups") == s["groups"]
    assert d.json("nodes") == s["nodes"]
    (flat,) = d.json("resources")
    assert flat["group"] == "web" and flat["name"] == "sleeper"


def test_online_and_offline_wait_for_the_target_state(daemon_factory):
    d = daemon_factory(config())
    out = d.ctl("online", "web")
    assert out.stdout.strip() == "web: online"
    r = d.resource("web", "sleeper")
    assert r["state"] == "online" and r["pid"] > 0
    assert d.group("web")["owner"] == "node1"
    d.ctl("offline", "web/sleeper")
    assert d.resource("web", "sleeper")["state"] == "offline"
    d.ctl("online", "web", "--no-wait")
    d.wait_group("web", "online")


def test_unknown_names_fail_with_one_line(daemon_factory):
    d = daemon_factory(config())
    for target, message in (("nope", 'there is no group called "nope"'),
                            ("web/nope", 'group "web" has no resource called "nope"')):
        out = d.ctl("online", target, check=False)
        assert out.returncode == 1
        assert out.stderr == f"clusterctl: {message}\n"


def test_non_root_reads_but_is_refused_changes(daemon_factory):
    d = daemon_factory(config())
    read = as_nobody(d, "status", "--json")
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout)["cluster"] == "apitest"
    refused = as_nobody(d, "online", "web")
    assert refused.returncode == 4
    assert refused.stderr == "clusterctl: permission denied: OnlineGroup needs root\n"
    assert d.group("web")["state"] == "offline"
    bad = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                          "busctl", f"--address=unix:path={d.bus}", "call", "org.clusterd1",
                          "/org/clusterd1", "org.clusterd1.Manager", "Reload"],
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode != 0
    assert "needs root" in bad.stderr


def test_admin_group_members_may_change(daemon_factory):
    # Debian's nobody has the primary group nogroup; peer credentials carry only the EUID, so the
    # daemon finds the group in the user database.
    d = daemon_factory(config(admin_group="nogroup"))
    out = as_nobody(d, "online", "web")
    assert out.returncode == 0, out.stderr
    assert d.group("web")["state"] == "online"


def test_check_config_and_validate_print_positions(daemon_factory, workdir):
    d = daemon_factory(config(), start=False)
    bad = os.path.join(workdir, "bad.yaml")
    with open(bad, "w") as f:
        f.write(BAD)
    for cmd in ([CLUSTERD, "--check-config", bad], [CLUSTERCTL, "validate", bad]):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert out.returncode == 1, cmd
        found = [m.groupdict() for m in POSITION.finditer(out.stderr)]
        assert found and all(f["file"] == bad for f in found), out.stderr
        assert ("11", "15") in {(f["line"], f["col"]) for f in found}, out.stderr
    for cmd in ([CLUSTERD, "--check-config", d.config], [CLUSTERCTL, "validate", d.config]):
        assert subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0


def test_apply_prints_changes_and_saves_the_file(daemon_factory, workdir):
    d = daemon_factory(config())
    new = os.path.join(workdir, "new.yaml")
    with open(new, "w") as f:
        f.write(config().replace('"3600"', '"3601"'))
    out = d.ctl("apply", new)
    assert out.stdout == "resource web/sleeper: changed\n"
    assert '"3601"' in open(d.config).read()
    again = d.ctl("apply", new)
    assert again.stdout == "applied: no changes\n"
    reload = d.ctl("reload")
    assert reload.stdout == "applied: no changes\n"


def test_events_json_and_since(daemon_factory):
    d = daemon_factory(config())
    d.ctl("online", "web")
    events = d.events()
    assert events[0]["kind"] == "daemon"
    for e in events:
        assert keys(e) == ["from", "group", "kind", "node", "reason", "resource", "seq", "time",
                           "to"]
        assert ISO_MS.match(e["time"]), e["time"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    later = d.json("events", "--since", str(events[1]["seq"]))
    assert later == events[2:]
    assert any(e["resource"] == "sleeper" and e["to"] == "online" for e in events)


def read_line(proc, timeout=10):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output in time"
    return proc.stdout.readline()


def test_status_watch_follows_the_change_signal(daemon_factory):
    d = daemon_factory(config())
    watch = subprocess.Popen([CLUSTERCTL, "--bus", d.bus, "status", "--watch", "--json"],
                             stdout=subprocess.PIPE, text=True)
    try:
        first = json.loads(read_line(watch))
        assert first["groups"][0]["state"] == "offline"
        d.ctl("online", "web", "--no-wait")
        deadline = time.monotonic() + 10
        state = None
        while state != "online" and time.monotonic() < deadline:
            state = json.loads(read_line(watch))["groups"][0]["state"]
        assert state == "online"
    finally:
        watch.kill()
        watch.wait()


def test_events_follow_prints_new_events(daemon_factory):
    d = daemon_factory(config())
    last = d.events()[-1]["seq"]
    follow = subprocess.Popen([CLUSTERCTL, "--bus", d.bus, "events", "--follow", "--json",
                               "--since", str(last)], stdout=subprocess.PIPE, text=True)
    try:
        d.ctl("online", "web", "--no-wait")
        e = json.loads(read_line(follow))
        assert e["seq"] == last + 1
    finally:
        follow.kill()
        follow.wait()


def test_a_silent_client_does_not_block_the_daemon(daemon_factory):
    d = daemon_factory(config())
    silent = socket.socket(socket.AF_UNIX)
    silent.connect(d.bus)
    silent.sendall(b"\0AUTH EXTERNAL 30\r\n")  # and never another byte, never reads
    half = socket.socket(socket.AF_UNIX)
    half.connect(d.bus)
    half.close()
    try:
        d.ctl("online", "web")
        assert d.status()["groups"][0]["state"] == "online"
    finally:
        silent.close()


def test_exit_codes_for_usage_and_unreachable(workdir):
    missing = os.path.join(workdir, "nothing-here")
    out = subprocess.run([CLUSTERCTL, "--bus", missing, "status"], capture_output=True, text=True)
    assert out.returncode == 3
    assert out.stderr.startswith(f"clusterctl: cannot reach clusterd at {missing}")
    for args in (["frobnicate"], ["online"], ["nodes", "--watch"], []):
        out = subprocess.run([CLUSTERCTL, *args], capture_output=True, text=True)
        assert out.returncode == 2, args
        assert out.stderr.count("\n") == 1
    assert subprocess.run([CLUSTERD, "--bogus"], capture_output=True).returncode == 2
    env = dict(os.environ, CLUSTERD_BUS=missing)
    assert subprocess.run([CLUSTERCTL, "nodes"], capture_output=True, env=env).returncode == 3


def test_help_teaches(daemon_factory):
    for cmd in ([CLUSTERD, "--help"], [CLUSTERCTL, "--help"], [CLUSTERCTL, "online", "--help"],
                [CLUSTERCTL, "help", "events"]):
        out = subprocess.run(cmd, capture_output=True, text=True)
        assert out.returncode == 0 and "Example" in out.stdout, cmd


def test_node_must_be_in_the_config(daemon_factory):
    d = daemon_factory(config(), node="stranger", start=False)
    d.start(wait=False)
    assert d.proc.wait(timeout=15) == 1
    assert 'node "stranger" is not a node of' in d.log_text()


def test_sigterm_exits_zero_and_removes_the_socket(daemon_factory):
    d = daemon_factory(config(autostart=True))
    d.wait_group("web", "online")
    pid = d.resource("web", "sleeper")["pid"]
    assert d.stop(signal.SIGTERM) == 0
    assert not os.path.exists(d.bus)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_a_second_daemon_does_not_steal_the_socket(daemon_factory, workdir):
    d = daemon_factory(config())
    other = subprocess.run([CLUSTERD, "--config", d.config, "--node", "node1", "--bus-socket",
                            d.bus, "--state-dir", d.state, "--log-target", "stderr"],
                           capture_output=True, text=True, timeout=15)
    assert other.returncode == 1
    assert "another server already listens" in other.stderr
    assert d.ctl_ok("status")


def test_sighup_reloads_the_file(daemon_factory):
    d = daemon_factory(config())
    d.write_config(config().replace("name: web", "name: web2"))
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: [g["name"] for g in d.status()["groups"]] == ["web2"], what="reloaded")
    assert d.proc.poll() is None


def test_clusterctl_unit_tests_pass():
    # clusterctl's pure pieces have their own doctest binary (the core's unit_tests does not link
    # the CLI); running it here puts it into tests/run.
    binary = os.path.join(os.path.dirname(CLUSTERCTL), "clusterctl_tests")
    out = subprocess.run([binary, "--no-intro", "--minimal"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
