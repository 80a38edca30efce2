"""The resource engine on one node, end to end: the real daemon, clusterctl, real processes and
real OCF agents (Debian's resource-agents)."""
import os
import signal
import socket
import subprocess
import time

from harness import AGENTS, free_port, pgroup_members, pid_alive, wait_for


def serving(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
            return c.recv(16) != b""
    except OSError:
        return False


def web_config(workdir, port, autostart=False, threshold=3, extra=""):
    """A group `web`: a process resource `app` (TCP server) and an OCF Dummy `flag` that
    depends on it."""
    return f"""
    cluster:
      name: itest
      id: 7
    nodes:
      - name: node1
        id: 1
    groups:
      - name: web
        preferred_owners: [node1]
        autostart: {str(autostart).lower()}
        resources:
          - name: app
            type: process
            params:
              command: {AGENTS}/tcp-server
              args: ["{port}"]
            monitor:
              looks_alive: 1s
              is_alive: 5s
            restart:
              threshold: {threshold}
              period: 60s
          - name: flag
            type: ocf
            agent: heartbeat:Dummy
            params:
              state: {workdir}/dummy.state
            depends: [app]
            monitor:
              looks_alive: 1s
              is_alive: 10s
{extra}
    """


def transitions(events, resource):
    return [(e["from"], e["to"]) for e in events if e.get("resource") == resource]


def first_seq(events, resource, to):
    return next(e["seq"] for e in events if e.get("resource") == resource and e["to"] == to)


def test_group_online_in_dependency_order_and_offline_in_reverse(daemon_factory, workdir):
    port = free_port()
    d = daemon_factory(web_config(workdir, port))
    assert d.group("web")["state"] == "offline"
    d.ctl("online", "web")
    g = d.group("web")
    assert g["state"] == "online" and g["owner"] == "node1"
    # `process` is online once exec succeeded; the server opens its port a moment later.
    wait_for(lambda: serving(port), what="server answering")
    assert os.path.exists(f"{workdir}/dummy.state")
    app_pid = d.resource("web", "app")["pid"]
    assert pid_alive(app_pid)

    ev = d.events()
    assert first_seq(ev, "app", "online") < first_seq(ev, "flag", "online-pending")

    d.ctl("offline", "web")
    assert d.group("web")["state"] == "offline"
    assert not pid_alive(app_pid)
    assert not os.path.exists(f"{workdir}/dummy.state")
    ev = d.events()
    assert first_seq(ev, "flag", "offline") < first_seq(ev, "app", "offline-pending")


def test_autostart_on_first_preferred_owner(daemon_factory, workdir):
    port = free_port()
    d = daemon_factory(web_config(workdir, port, autostart=True))
    d.wait_group("web", "online")
    wait_for(lambda: serving(port), what="server answering")


def test_single_resource_online_brings_dependencies(daemon_factory, workdir):
    port = free_port()
    d = daemon_factory(web_config(workdir, port))
    d.ctl("online", "web/flag")
    assert d.resource("web", "app")["state"] == "online"
    assert d.resource("web", "flag")["state"] == "online"
    d.ctl("offline", "web/app")
    assert d.resource("web", "flag")["state"] == "offline"
    assert d.resource("web", "app")["state"] == "offline"


def test_kill9_restarts_within_policy_then_fails_group(daemon_factory, workdir):
    port = free_port()
    d = daemon_factory(web_config(workdir, port, threshold=2))
    d.ctl("online", "web")
    for n in (1, 2):
        pid = d.resource("web", "app")["pid"]
        os.kill(pid, signal.SIGKILL)
        r = d.wait_resource("web", "app",
                            lambda r: r["state"] == "online" and r["pid"] not in (0, pid),
                            what=f"restart {n}")
        assert r["restarts"] == n
        d.wait_group("web", "online")
        assert wait_for(lambda: serving(port), what="server back")
    pid = d.resource("web", "app")["pid"]
    os.kill(pid, signal.SIGKILL)
    d.wait_group("web", "failed")
    app = d.resource("web", "app")
    assert app["state"] == "failed"
    assert "signal 9" in app["reason"] or "killed" in app["reason"]
    assert d.resource("web", "flag")["state"] == "offline"
    assert not serving(port)
    # An administrator's online clears the failure and starts over.
    d.ctl("online", "web")
    assert d.resource("web", "app")["restarts"] == 0
    wait_for(lambda: serving(port), what="server answering")


def test_hung_agent_times_out_and_its_process_group_is_killed(daemon_factory, workdir):
    marker = f"{workdir}/hang.pgid"
    d = daemon_factory(f"""
    cluster: {{name: itest, id: 7}}
    nodes: [{{name: node1, id: 1}}]
    groups:
      - name: stuck
        autostart: false
        resources:
          - name: hang
            type: ocf
            agent: {AGENTS}/hang
            params: {{marker: {marker}}}
            timeouts: {{start: 1s, stop: 5s}}
            restart: {{policy: never}}
    """)
    started = time.monotonic()
    result = d.ctl("online", "stuck", check=False)
    assert result.returncode == 1
    elapsed = time.monotonic() - started
    assert elapsed < 10
    r = d.resource("stuck", "hang")
    assert r["state"] == "failed"
    assert "timed out" in r["reason"] or "timeout" in r["reason"]
    pgid = int(open(marker).read())
    wait_for(lambda: not pgroup_members(pgid), timeout=5, what="agent process group gone")


def test_real_service_through_ocf_nginx(daemon_factory, workdir):
    port = free_port()
    conf = f"{workdir}/nginx.conf"
    with open(conf, "w") as f:
        f.write(f"""
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {workdir}; proxy_temp_path {workdir}; fastcgi_temp_path {workdir};
  uwsgi_temp_path {workdir}; scgi_temp_path {workdir};
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "clusterd nginx ok\\n"; }} }}
}}
""")
    d = daemon_factory(f"""
    cluster: {{name: itest, id: 7}}
    nodes: [{{name: node1, id: 1}}]
    groups:
      - name: www
        autostart: false
        resources:
          - name: nginx
            type: ocf
            agent: heartbeat:nginx
            params:
              configfile: {conf}
              httpd: /usr/sbin/nginx
              test20url: http://127.0.0.1:{port}/
              test20regex: clusterd nginx ok
            monitor: {{looks_alive: 2s, is_alive: 3s}}
    """)
    d.ctl("online", "www")
    body = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/"], capture_output=True,
                          text=True).stdout
    assert body == "clusterd nginx ok\n"
    nginx_pid = int(open(f"{workdir}/nginx.pid").read())
    # IsAlive (OCF_CHECK_LEVEL 20 fetches testurl and matches test20regex) passes.
    d.wait_resource("www", "nginx", lambda r: r.get("last_is_alive") == "ok", timeout=10,
                    what="a passing IsAlive check")
    assert d.resource("www", "nginx")["state"] == "online"
    d.ctl("offline", "www")
    assert not pid_alive(nginx_pid)
    assert subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/"]).returncode != 0


def test_sigterm_takes_groups_offline_and_exits_zero(daemon_factory, workdir):
    port = free_port()
    d = daemon_factory(web_config(workdir, port, autostart=True))
    d.wait_group("web", "online")
    pid = d.resource("web", "app")["pid"]
    assert d.stop() == 0
    assert not pid_alive(pid)
    assert not os.path.exists(f"{workdir}/dummy.state")
