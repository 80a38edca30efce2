"""systemd/clusterd.service under a real systemd manager: a `systemd --user` instance in a mount
namespace of its own (tmpfs on /run/systemd), driven with systemctl. Proves Type=notify
(READY=1 only once the API answers), STATUS=, the watchdog pings, ExecReload and
Restart=on-failure, and a clean stop that takes the groups offline."""
import json
import os
import shutil
import signal
import subprocess
import textwrap

import pytest

import systemd_user
from harness import BUILD, CLUSTERCTL, CLUSTERD, make_workdir, pid_alive, wait_for

pytestmark = pytest.mark.skipif(not systemd_user.available(), reason="needs root and systemd")

CONFIG = """
cluster: {name: unit, id: 3}
nodes: [{name: node1, id: 1}]
groups:
  - name: web
    preferred_owners: [node1]
    resources:
      - {name: app, type: process, params: {command: /bin/sleep, args: [infinity]}}
"""


@pytest.fixture
def manager():
    workdir = make_workdir()
    m = systemd_user.UserManager(workdir)
    m.workdir = workdir
    try:
        yield m
    finally:
        m.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def install_unit(m, extra=""):
    """The real unit file as built, with a drop-in pointing it at a private configuration."""
    config = os.path.join(m.workdir, "cluster.yaml")
    with open(config, "w") as f:
        f.write(CONFIG)
    m.bus = os.path.join(m.workdir, "bus")
    os.makedirs(os.path.join(m.units, "clusterd.service.d"))
    shutil.copy(os.path.join(BUILD, "systemd", "clusterd.service"), m.units)
    with open(os.path.join(m.units, "clusterd.service.d", "test.conf"), "w") as f:
        f.write(textwrap.dedent(f"""\
            [Service]
            ExecStart=
            ExecStart={CLUSTERD} --config {config} --node node1 --bus-socket {m.bus} \\
                --state-dir {m.workdir}/state --log-target stderr
            # A user manager cannot apply this one (it needs the system manager's privileges).
            ProtectKernelLogs=no
            """) + extra)
    m.systemctl("daemon-reload")
    return config


def ctl(m, *args):
    return subprocess.run([CLUSTERCTL, "--bus", m.bus, *args], capture_output=True, text=True,
                          timeout=60)


def test_notify_status_reload_restart_and_stop(manager):
    m = manager
    config = install_unit(m)
    # Type=notify: `start` returns once READY=1 came, and by then the API answers.
    m.systemctl("start", "clusterd")
    assert m.show("clusterd", "ActiveState") == "active"
    assert ctl(m, "status").returncode == 0
    wait_for(lambda: m.show("clusterd", "StatusText").startswith("1 group, 1 online"),
             what="STATUS= from the daemon")
    pid = json.loads(ctl(m, "resources", "--json").stdout)[0]["pid"]
    assert pid_alive(pid)

    # ExecReload: SIGHUP re-reads the file.
    with open(config, "a") as f:
        f.write("  - name: extra\n    autostart: false\n    resources:\n"
                "      - {name: s, type: process, params: {command: /bin/true}}\n")
    m.systemctl("reload", "clusterd")
    wait_for(lambda: "extra" in ctl(m, "groups").stdout, what="the reloaded group")

    # Restart=on-failure: a crash brings it back (and the group online again).
    main = int(m.show("clusterd", "MainPID"))
    os.kill(main, signal.SIGKILL)
    wait_for(lambda: m.show("clusterd", "NRestarts") == "1"
             and m.show("clusterd", "ActiveState") == "active", timeout=20,
             what="systemd restarting clusterd")
    assert int(m.show("clusterd", "MainPID")) != main

    # A clean stop takes the groups offline: no resource process survives.
    new_pid = json.loads(ctl(m, "resources", "--json").stdout)[0]["pid"]
    m.systemctl("stop", "clusterd")
    assert m.show("clusterd", "Result") == "success"
    assert not pid_alive(new_pid)


def test_watchdog_is_petted(manager):
    m = manager
    install_unit(m, "WatchdogSec=1s\n")
    m.systemctl("start", "clusterd")
    main = m.show("clusterd", "MainPID")
    # Without WATCHDOG=1 pings systemd would kill the daemon one second after start.
    subprocess.run(["sleep", "2.5"])  # waiting for time to pass, not for an event
    assert m.show("clusterd", "ActiveState") == "active"
    assert m.show("clusterd", "MainPID") == main
    assert m.show("clusterd", "NRestarts") == "0"
