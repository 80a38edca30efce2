"""systemd services in the lab: `clusterlab up --systemd` runs a real `systemd --user` manager per
node, and the service group's ledgerd is a unit of it. Killing the unit's main process is seen at
once and restarted per policy; a unit that cannot start fails its resource with systemd's reason;
the managers' units live in cgroups of their own per node; `down` leaves no cgroup behind."""
import os
import signal

import pytest

from harness import wait_for
from lab_harness import Lab

GROUP = "service"
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access("/lib/systemd/systemd", os.X_OK),
    reason="needs root and systemd installed")

BROKEN_UNIT = """[Service]
Type=exec
ExecStart=/nonexistent/ledgerd
"""


@pytest.fixture(scope="module")
def lab():
    lab = Lab("nmservice")
    lab.down()
    try:
        lab.up("--nodes", "2", "--group", GROUP)
        wait_for(lambda: owner(lab) == "node1", timeout=30, what="service online on node1")
        yield lab
    finally:
        lab.down()


def owner(lab):
    g = lab.group("node1", GROUP)
    return g["owner"] if g["state"] == "online" else None


def resource(lab, node, name):
    return next(r for r in lab.ctl(node, "resources", "--json") if r["name"] == name)


def systemctl(lab, node, *args):
    """systemctl --user in `node`; its output (is-active exits 3 for an inactive unit)."""
    return lab.exec(node, "systemctl", "--user", *args, check=False).stdout.strip()


def test_each_node_has_its_own_manager_and_clusterd_uses_it(lab):
    status = lab.status()
    assert status["systemd"] is True
    for node in status["nodes"]:
        extras = {e["tag"]: e for e in node["extras"]}
        assert extras["systemd"]["running"], node
    assert systemctl(lab, "node1", "is-active", "ledgerd") == "active"
    assert systemctl(lab, "node2", "is-active", "ledgerd") == "inactive"
    # The main PID clusterd shows is the unit's, from node1's own manager.
    main = int(systemctl(lab, "node1", "show", "ledgerd", "-p", "MainPID", "--value"))
    assert resource(lab, "node1", "ledgerd")["pid"] == main
    cgroup = systemctl(lab, "node1", "show", "ledgerd", "-p", "ControlGroup", "--value")
    assert cgroup.startswith("/clusterlab-nmservice-node1/"), cgroup


def test_killing_the_main_process_is_seen_at_once_and_restarted(lab):
    before = resource(lab, "node1", "ledgerd")
    old = before["pid"]
    os.kill(old, signal.SIGKILL)  # The host sees every node's processes.
    after = wait_for(lambda: (lambda r: r if r["pid"] not in (0, old) and r["state"] == "online"
                              else None)(resource(lab, "node1", "ledgerd")),
                     timeout=30, what="ledgerd restarted with a new main process")
    assert after["restarts"] == before["restarts"] + 1
    reasons = [e["reason"] for e in lab.ctl("node1", "events", "--json")
               if e["resource"] == "ledgerd"]
    assert any("SIGKILL" in r for r in reasons), reasons
    assert owner(lab) == "node1"  # Restarted in place: the policy allows 3 in 15 minutes.


def test_a_unit_that_fails_to_start_shows_systemds_reason(lab, tmp_path):
    # A second group whose unit cannot run on any node.
    for node in ("node1", "node2"):
        unit_dir = os.path.join(lab.directory(), node, "run", "user", "0", "systemd", "user")
        with open(os.path.join(unit_dir, "broken.service"), "w") as f:
            f.write(BROKEN_UNIT)
        systemctl(lab, node, "daemon-reload")
    with open(os.path.join(lab.directory(), "node1", "etc", "cluster.yaml")) as f:
        config = f.read()
    config += """  - name: broken
    preferred_owners: [node1]
    possible_owners: [node1]
    autostart: false
    resources:
      - name: app
        type: service
        params:
          unit: broken.service
        restart: {policy: never}
"""
    path = tmp_path / "cluster.yaml"
    path.write_text(config)
    lab.ctl("node1", "apply", str(path))
    result = lab.ctl("node1", "online", "broken", check=False)
    # clusterctl online says why, in systemd's words ...
    assert result.returncode != 0
    assert "unit broken.service failed" in result.stderr, result.stderr
    assert "status 203 (EXEC" in result.stderr, result.stderr
    # ... and so does the resource's failure in the event history ...
    failed = [e for e in lab.ctl("node1", "events", "--json")
              if e["resource"] == "app" and e["to"] == "failed"]
    assert failed and "status 203 (EXEC" in failed[-1]["reason"], failed
    # ... and `clusterctl resources`, also after the coordinator stopped the failed group for
    # cleanup (state offline, reason "stopped", the failure kept beside it).
    rows = [r for r in lab.ctl("node1", "resources", "--json")
            if r["group"] == "broken" and r["name"] == "app"]
    assert rows and "status 203 (EXEC" in rows[0]["last_failure"], rows
    table = lab.ctl("node1", "resources", check=False).stdout
    assert "status 203 (EXEC" in table, table
    assert owner(lab) == "node1"  # The other group is untouched.


def test_down_leaves_no_cgroup_and_no_process(lab):
    pids = [n["daemon"]["pid"] for n in lab.status()["nodes"]]
    pids += [e["pid"] for n in lab.status()["nodes"] for e in n["extras"]]
    lab.down()
    for h in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if os.path.isdir(h):
            assert not [d for d in os.listdir(h) if d.startswith("clusterlab-nmservice-")]
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
