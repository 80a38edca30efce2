"""Configuration changes on a running daemon: a bad file never replaces a good one; a good one
is applied by diffing, touching only what changed."""
import os
import re
import signal

from harness import AGENTS, free_port, pid_alive, wait_for

POSITION = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+):(?P<col>\d+): .+", re.M)


def two_groups(port_a, port_b, sleep_arg="3600"):
    return f"""
cluster:
  name: itest
  id: 7
nodes:
  - name: node1
    id: 1
groups:
  - name: alpha
    preferred_owners: [node1]
    resources:
      - name: server
        type: process
        params:
          command: {AGENTS}/tcp-server
          args: ["{port_a}"]
  - name: beta
    preferred_owners: [node1]
    resources:
      - name: server
        type: process
        params:
          command: {AGENTS}/tcp-server
          args: ["{port_b}"]
      - name: sleeper
        type: process
        params:
          command: /bin/sleep
          args: ["{sleep_arg}"]
"""


BAD = """
cluster:
  name: itest
  id: 7
nodes:
  - name: node1
    id: 1
groups:
  - name: alpha
    resources:
      - name: server
        type: proces
        params:
          command: /bin/true
      - name: other
        type: process
        depnds: [server]
        params: {command: /bin/true}
"""


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def pids(d):
    return {(g["name"], r["name"]): r["pid"] for g in d.status()["groups"]
            for r in g["resources"]}


def start_two_groups(daemon_factory):
    d = daemon_factory(two_groups(free_port(), free_port()))
    d.wait_group("alpha", "online")
    d.wait_group("beta", "online")
    return d


def test_validate_reports_every_error_with_position(daemon_factory, workdir):
    d = daemon_factory(two_groups(free_port(), free_port()), start=False)
    bad = os.path.join(workdir, "bad.yaml")
    write(bad, BAD)
    result = d.ctl("validate", bad, check=False)
    assert result.returncode == 1
    found = [m.groupdict() for m in POSITION.finditer(result.stdout + result.stderr)]
    assert {(f["line"], f["col"]) for f in found} >= {("12", "15"), ("17", "9")}
    assert "did you mean 'process'" in result.stdout + result.stderr
    assert "did you mean 'depends'" in result.stdout + result.stderr
    assert all(f["file"] == bad for f in found)


def test_apply_bad_file_is_rejected_and_the_running_config_stays(daemon_factory, workdir):
    d = start_two_groups(daemon_factory)
    before = pids(d)
    bad = os.path.join(workdir, "bad.yaml")
    write(bad, BAD)
    result = d.ctl("apply", bad, check=False)
    assert result.returncode == 1
    assert POSITION.search(result.stdout + result.stderr)
    assert pids(d) == before
    assert all(pid_alive(p) for p in before.values())
    assert {g["name"] for g in d.status()["groups"]} == {"alpha", "beta"}


def test_sighup_with_bad_file_keeps_running_config(daemon_factory, workdir):
    d = start_two_groups(daemon_factory)
    before = pids(d)
    write(d.config, BAD)
    d.proc.send_signal(signal.SIGHUP)
    # The daemon records the rejected reload in its event history.
    wait_for(lambda: any(e["kind"] == "config" and "reject" in e["reason"]
                         for e in d.events()), what="reload rejected event")
    assert pids(d) == before
    assert d.proc.poll() is None


def test_apply_touches_only_changed_resources(daemon_factory, workdir):
    d = start_two_groups(daemon_factory)
    before = pids(d)
    # Same alpha, beta/server unchanged, beta/sleeper changed.
    text = open(d.config).read().replace('args: ["3600"]', 'args: ["7200"]')
    new = os.path.join(workdir, "new.yaml")
    write(new, text)
    d.ctl("apply", new)
    wait_for(lambda: d.resource("beta", "sleeper")["state"] == "online"
             and d.resource("beta", "sleeper")["pid"] != before[("beta", "sleeper")],
             what="changed resource restarted")
    after = pids(d)
    assert after[("alpha", "server")] == before[("alpha", "server")]
    assert after[("beta", "server")] == before[("beta", "server")]
    assert not pid_alive(before[("beta", "sleeper")])
    with open(f"/proc/{after[('beta', 'sleeper')]}/cmdline") as f:
        assert f.read().split("\0")[1] == "7200"


def test_shipped_examples_validate_with_the_real_catalog(daemon_factory, workdir):
    d = daemon_factory(two_groups(free_port(), free_port()), start=False)
    examples = os.path.join(os.path.dirname(__file__), "..", "..", "config")
    files = sorted(f for f in os.listdir(examples) if f.endswith(".yaml"))
    assert files
    for name in files:
        result = d.ctl("validate", os.path.join(examples, name), check=False)
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
