"""The ledger example application end to end: the real ledgerd and ledger-client binaries, real
sockets on 127.0.0.1, real SIGKILLs, and the OCF agent run directly with OCF_RESKEY_* variables.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from harness import BUILD, pid_alive, wait_for

LEDGER_BIN = os.path.join(BUILD, "examples", "ledger")
LEDGERD = os.path.join(LEDGER_BIN, "ledgerd")
CLIENT = os.path.join(LEDGER_BIN, "ledger-client")
AGENT = os.path.join(BUILD, "agents", "ledgerd")
DTD = "/usr/share/resource-agents/ra-api-1.dtd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def converse(port, *lines, host="127.0.0.1", family=socket.AF_INET):
    """Sends request lines on one connection; returns the reply lines (READ's up to END)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect((host, port))
        s.sendall("".join(line + "\n" for line in lines).encode())
        expected = sum(1 for line in lines if not line.startswith("READ"))
        reads = sum(1 for line in lines if line.startswith("READ"))
        data = b""
        while data.count(b"\n") < expected or data.count(b"END\n") < reads:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.decode().splitlines()


def answers_ping(port, host="127.0.0.1", family=socket.AF_INET):
    try:
        return converse(port, "PING", host=host, family=family) == ["PONG"]
    except OSError:
        return False


class Ledgerd:
    """One ledgerd process with its stderr in a file."""

    def __init__(self, data_dir, port, host="127.0.0.1"):
        self.data_dir = data_dir
        self.port = port
        self.host = host
        self.log = os.path.join(os.path.dirname(data_dir), f"ledgerd-{port}.log")
        self.proc = None

    @property
    def listen(self):
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def start(self, wait=True, extra=()):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [LEDGERD, "--data-dir", self.data_dir, "--listen", self.listen, *extra],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if wait:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            wait_for(lambda: self.proc.poll() is not None or answers_ping(self.port, self.host, family),
                     timeout=10, what="ledgerd to answer PING")
            assert self.proc.poll() is None, f"ledgerd exited early:\n{self.log_text()}"
        return self

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=10) if self.proc else None


class Client:
    """A running ledger-client whose stderr is collected line by line as it arrives."""

    def __init__(self, workdir, *args):
        self.stdout_path = os.path.join(workdir, f"client-{time.monotonic_ns()}.out")
        self.stdout = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen([CLIENT, *args, "--json"], stdout=self.stdout,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.stderr_lines = []
        self.reader = threading.Thread(target=self._collect, daemon=True)
        self.reader.start()

    def _collect(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def said(self, text):
        return any(text in line for line in self.stderr_lines)

    def finish(self, timeout=60):
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        self.stdout.close()
        with open(self.stdout_path) as f:
            out = f.read()
        return code, json.loads(out.strip().splitlines()[-1]), out

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def ledger_dir():
    path = tempfile.mkdtemp(prefix="ledger-")
    data = os.path.join(path, "data")
    os.mkdir(data)
    yield data
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def procs():
    """Everything started here is killed at the end of the test."""
    started = []
    yield started
    for p in started:
        p.kill()


def test_client_survives_a_server_kill_without_losing_records(ledger_dir, procs):
    port = free_port()
    server = Ledgerd(ledger_dir, port).start()
    procs.append(server)
    client = Client(os.path.dirname(ledger_dir), f"127.0.0.1:{port}", "--count", "300",
                    "--interval", "5", "--client-id", "survivor", "--warn-after", "100")
    procs.append(client)
    wait_for(lambda: int(converse(port, "COUNT")[0]) >= 50, what="50 records written")
    server.kill(signal.SIGKILL)
    # The server stays down until the client has noticed (so an outage is certain), then
    # comes back on the same data directory.
    wait_for(lambda: client.said("unreachable"), what="the client to report the outage")
    procs.append(Ledgerd(ledger_dir, port).start())
    code, report, out = client.finish()
    assert code == 0, out
    assert report["acked"] == 300
    assert report["lost"] == 0 and report["lost_seqs"] == []
    assert report["duplicates"] == 0
    assert report["verified"] is True
    assert len(report["outages_ms"]) >= 1
    assert report["max_outage_ms"] >= 100
    assert report["reconnects"] >= 1
    assert client.said("back after")
    # Retries after the kill stored nothing twice.
    assert converse(port, "COUNT") == ["300"]


def test_client_times_out_on_a_hung_server_and_resumes(ledger_dir, procs):
    port = free_port()
    server = Ledgerd(ledger_dir, port).start()
    procs.append(server)
    client = Client(os.path.dirname(ledger_dir), f"127.0.0.1:{port}", "--count", "150",
                    "--interval", "5", "--client-id", "patient", "--timeout", "200",
                    "--warn-after", "300")
    procs.append(client)
    wait_for(lambda: int(converse(port, "COUNT")[0]) >= 30, what="30 records written")
    # A hung server still accepts connections (the kernel does) but never answers: only the
    # client's request timeout can notice. On SIGCONT it works through the stale requests.
    server.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: client.said("unreachable"), what="the client to report the outage")
    finally:
        server.proc.send_signal(signal.SIGCONT)
    code, report, out = client.finish()
    assert code == 0, out
    assert report["acked"] == 150 and report["lost"] == 0 and report["duplicates"] == 0
    assert report["max_outage_ms"] >= 300
    assert report["reconnects"] >= 1
    assert converse(port, "COUNT") == ["150"]


def test_client_duration_mode_and_random_id(ledger_dir, procs):
    port = free_port()
    procs.append(Ledgerd(ledger_dir, port).start())
    client = Client(os.path.dirname(ledger_dir), f"127.0.0.1:{port}", "--duration", "0.5")
    procs.append(client)
    code, report, out = client.finish()
    assert code == 0, out
    assert report["acked"] > 0
    assert report["client_id"].startswith("c-")
    assert report["read_back"] == report["acked"]
    assert report["elapsed_ms"] >= 500
    assert report["outages_ms"] == [] and report["reconnects"] == 0


def test_a_repeated_append_answers_dup_and_stores_nothing(ledger_dir, procs):
    port = free_port()
    server = Ledgerd(ledger_dir, port).start()
    procs.append(server)
    assert converse(port, "APPEND c1 1 hello", "APPEND c1 1 hello", "APPEND c1 2 more",
                    "APPEND c2 1 other") == ["OK 1", "OK 1 DUP", "OK 2", "OK 1"]
    assert converse(port, "COUNT") == ["3"]
    assert converse(port, "READ c1") == ["1", "2", "END"]
    assert converse(port, "READ nobody") == ["END"]
    size = os.path.getsize(os.path.join(ledger_dir, "ledger.log"))
    # The index survives a restart: it is rebuilt from the log.
    assert server.kill(signal.SIGTERM) == 0
    procs.append(Ledgerd(ledger_dir, port).start())
    assert converse(port, "APPEND c1 2 more") == ["OK 2 DUP"]
    assert os.path.getsize(os.path.join(ledger_dir, "ledger.log")) == size


def test_bad_requests_get_an_error_and_the_connection_stays_usable(ledger_dir, procs):
    port = free_port()
    procs.append(Ledgerd(ledger_dir, port).start())
    replies = converse(port, "FROB", "APPEND c1 notanumber x", "APPEND bad/id 1 x", "PING")
    assert [r.split(" ")[0] for r in replies] == ["ERR", "ERR", "ERR", "PONG"]
    assert converse(port, "COUNT") == ["0"]


def test_a_torn_last_record_is_truncated_at_start(ledger_dir, procs):
    port = free_port()
    server = Ledgerd(ledger_dir, port).start()
    procs.append(server)
    assert converse(port, "APPEND c 1 a", "APPEND c 2 b", "APPEND c 3 c") == ["OK 1", "OK 2", "OK 3"]
    assert server.kill(signal.SIGTERM) == 0
    log = os.path.join(ledger_dir, "ledger.log")
    intact = os.path.getsize(log)
    with open(log, "ab") as f:
        f.write(b"1a2b3c4d c 4 half a rec")  # a crash in the middle of an append
    restarted = Ledgerd(ledger_dir, port).start()
    procs.append(restarted)
    assert os.path.getsize(log) == intact
    assert converse(port, "COUNT") == ["3"]
    assert converse(port, "APPEND c 4 d") == ["OK 4"]
    assert converse(port, "READ c") == ["1", "2", "3", "4", "END"]


def test_damage_before_the_last_record_refuses_to_start(ledger_dir):
    log = os.path.join(ledger_dir, "ledger.log")
    damaged = b"00000000 c 1 bad checksum\n00000000 c 2 more\n"
    with open(log, "wb") as f:
        f.write(damaged)
    result = subprocess.run([LEDGERD, "--data-dir", ledger_dir, "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 1
    assert "damaged" in result.stderr
    with open(log, "rb") as f:
        assert f.read() == damaged  # left for the administrator, untouched


@pytest.mark.parametrize("make_bad", ["missing", "file"])
def test_an_unusable_data_dir_exits_nonzero_with_a_message(ledger_dir, make_bad):
    bad = os.path.join(ledger_dir, "nope")
    if make_bad == "file":
        open(bad, "w").close()
    result = subprocess.run([LEDGERD, "--data-dir", bad, "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 1
    assert bad in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_two_servers_cannot_share_a_data_dir(ledger_dir, procs):
    procs.append(Ledgerd(ledger_dir, free_port()).start())
    result = subprocess.run([LEDGERD, "--data-dir", ledger_dir, "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 1
    assert "in use" in result.stderr


def test_freebind_starts_before_the_address_exists(ledger_dir, procs):
    pidfile = os.path.join(os.path.dirname(ledger_dir), "ledgerd.pid")
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never configured here, like a VIP not yet added.
    server = Ledgerd(ledger_dir, free_port(), host="192.0.2.77")
    procs.append(server)
    server.start(wait=False, extra=("--pidfile", pidfile))
    wait_for(lambda: os.path.exists(pidfile) or server.proc.poll() is not None,
             what="ledgerd to listen")
    assert server.proc.poll() is None, server.log_text()
    assert server.kill(signal.SIGTERM) == 0
    assert not os.path.exists(pidfile)


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_listen_and_client(ledger_dir, procs):
    port = free_port()
    procs.append(Ledgerd(ledger_dir, port, host="::1").start())
    client = Client(os.path.dirname(ledger_dir), f"[::1]:{port}", "--count", "5", "--interval", "0")
    procs.append(client)
    code, report, out = client.finish()
    assert code == 0, out
    assert report["acked"] == 5 and report["lost"] == 0


def test_client_gives_up_when_nothing_listens(ledger_dir, procs):
    port = free_port()
    started = time.monotonic()
    client = Client(os.path.dirname(ledger_dir), f"127.0.0.1:{port}", "--count", "5",
                    "--give-up", "0.5", "--warn-after", "100")
    procs.append(client)
    code, report, out = client.finish(timeout=20)
    assert code == 3, out
    assert report["gave_up"] is True
    assert report["acked"] == 0
    assert report["lost"] is None and report["verified"] is False
    assert report["max_outage_ms"] >= 500
    assert time.monotonic() - started < 10
    assert client.said("giving up")


def test_client_usage_errors_exit_2():
    result = subprocess.run([CLIENT, "127.0.0.1:1"], capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    assert "--count" in result.stderr


# The OCF agent, run directly as a cluster would run it.

def agent(action, env, level=None):
    run_env = dict(os.environ, **env)
    if level is not None:
        run_env["OCF_CHECK_LEVEL"] = str(level)
    return subprocess.run(["sh", AGENT, action], env=run_env, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def agent_env(ledger_dir):
    port = free_port()
    run = os.path.join(os.path.dirname(ledger_dir), "run")
    env = {"OCF_RESKEY_binary": LEDGERD, "OCF_RESKEY_data_dir": ledger_dir,
           "OCF_RESKEY_listen": f"127.0.0.1:{port}", "HA_RSCTMP": run,
           "OCF_RESOURCE_INSTANCE": "ledger1"}
    yield env, port
    agent("stop", env)


def agent_pid(env):
    with open(os.path.join(env["HA_RSCTMP"], "ledgerd-ledger1.pid")) as f:
        return int(f.read())


def test_agent_start_monitor_stop(agent_env):
    env, port = agent_env
    assert agent("monitor", env, 0).returncode == 7
    assert agent("validate-all", env).returncode == 0
    started = agent("start", env)
    assert started.returncode == 0, started.stderr
    pid = agent_pid(env)
    assert answers_ping(port)
    assert agent("monitor", env, 0).returncode == 0
    assert agent("monitor", env, 20).returncode == 0
    assert agent("start", env).returncode == 0  # already running: still success
    assert agent_pid(env) == pid
    stopped = agent("stop", env)
    assert stopped.returncode == 0, stopped.stderr
    assert not pid_alive(pid)
    assert agent("monitor", env, 0).returncode == 7
    assert agent("monitor", env, 20).returncode == 7
    assert agent("stop", env).returncode == 0  # stopping a stopped resource succeeds


def test_agent_deep_monitor_fails_when_the_server_hangs(agent_env):
    env, _ = agent_env
    assert agent("start", env).returncode == 0
    pid = agent_pid(env)
    os.kill(pid, signal.SIGSTOP)
    try:
        assert agent("monitor", env, 0).returncode == 0  # the process is there...
        assert agent("monitor", env, 20).returncode == 1  # ...but it does not answer
    finally:
        os.kill(pid, signal.SIGCONT)
    assert agent("monitor", env, 20).returncode == 0


def test_agent_stop_finds_the_server_without_its_pidfile(agent_env):
    env, _ = agent_env
    assert agent("start", env).returncode == 0
    pid = agent_pid(env)
    os.unlink(os.path.join(env["HA_RSCTMP"], "ledgerd-ledger1.pid"))
    assert agent("monitor", env, 0).returncode == 0
    assert agent("stop", env).returncode == 0
    assert not pid_alive(pid)


def test_agent_detects_a_killed_server(agent_env):
    env, _ = agent_env
    assert agent("start", env).returncode == 0
    pid = agent_pid(env)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="ledgerd to die")
    assert agent("monitor", env, 0).returncode == 7
    assert agent("start", env).returncode == 0  # a stale pid file does not block a restart
    assert agent_pid(env) != pid


def test_agent_start_fails_fast_when_ledgerd_cannot_listen(agent_env):
    env, port = agent_env
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        started = time.monotonic()
        result = agent("start", env)
    assert result.returncode == 1
    assert "cannot listen" in result.stderr
    assert time.monotonic() - started < 10


def test_agent_configuration_errors(agent_env, ledger_dir):
    env, _ = agent_env
    assert agent("validate-all", dict(env, OCF_RESKEY_data_dir="")).returncode == 6
    assert agent("start", dict(env, OCF_RESKEY_data_dir="")).returncode == 6
    assert agent("validate-all", dict(env, OCF_RESKEY_binary="/nonexistent/ledgerd")).returncode == 5
    missing = os.path.join(ledger_dir, "not-there")
    assert agent("start", dict(env, OCF_RESKEY_data_dir=missing)).returncode == 5
    assert agent("frobnicate", env).returncode == 3


def test_agent_meta_data_is_valid_ocf_xml(agent_env):
    env, _ = agent_env
    result = agent("meta-data", env)
    assert result.returncode == 0
    root = ET.fromstring(result.stdout)
    assert root.tag == "resource-agent" and root.get("name") == "ledgerd"
    params = {p.get("name"): p for p in root.iter("parameter")}
    assert set(params) >= {"binary", "data_dir", "listen", "pidfile"}
    assert params["data_dir"].get("required") == "1"
    actions = {a.get("name"): a for a in root.iter("action")}
    assert set(actions) >= {"start", "stop", "monitor", "meta-data", "validate-all"}
    assert all(a.get("timeout", "").endswith("s") for a in actions.values())
    depths = {a.get("depth") for a in root.iter("action") if a.get("name") == "monitor"}
    assert depths == {"0", "20"}
    if os.path.exists(DTD) and shutil.which("xmllint"):
        check = subprocess.run(["xmllint", "--noout", "--dtdvalid", DTD, "-"],
                               input=result.stdout, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
