"""Real `twistd sorna-manager` and `twistd sorna-agent` processes, for integration tests and
benchmarks.

Each process runs with the current interpreter in a folder of its own, logs to a file
there, and counts as started only once its readiness line is in that log. Nothing here
sleeps for luck: every wait polls a condition until a deadline, and a timeout or an early
exit raises `ProcessError` with the end of the log.

    manager = ManagerProcess(heartbeat_interval=0.5).start()
    agent = AgentProcess(manager.addr, agent_id="it-1", max_kernels=3).start()
    wait_for_agent(manager.addr, agent.agent_id)
    ...
    agent.stop(); manager.stop()
"""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from docker.errors import NotFound

from sorna.agent.docker import unmount_below
from sorna.testing.keys import use_test_keys

LOOPBACK = "127.0.0.1"
LABEL_AGENT = "io.sorna.agent"
_TWISTD = "from twisted.scripts.twistd import run; run()"


class ProcessError(Exception):
    """A process did not start, did not stop, or a condition did not come true in time."""


def free_port(host=LOOPBACK):
    """A TCP port nobody listens on right now (the kernel picks it for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def rss(pid):
    """A process's resident memory in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def wait_until(condition, timeout, what, interval=0.05):
    """Call `condition()` every `interval` s until it returns a true value (returned) or
    `timeout` s have passed (ProcessError naming `what`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise ProcessError(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)


class TwistdProcess:
    """One `twistd -n` process. Subclasses say which plugin, which options, which line."""

    name = "twistd"
    ready_pattern = None  # a compiled regex matched against the log

    def __init__(self, workdir=None, env=None, json_log=False, module=False):
        """`json_log`: log one JSON event per line (sorna.logging.json_observer).
        `module`: start it the original deployment's way, `python3 -m
        sorna.PART.server OPTIONS` (sorna.foreground), instead of `twistd -n`."""
        use_test_keys()  # the processes find the test keys as $SORNA_KEYS
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix=f"{self.name}-")
        self.log_path = os.path.join(self.workdir, f"{self.name}.log")
        self.env = dict(os.environ, **(env or {}))
        self.json_log = json_log
        self.module = module
        self.process = None
        self.returncode = None
        self._run_start = 0  # where the current run's part of the log begins

    def plugin_args(self):
        raise NotImplementedError

    def command(self):
        if self.module:
            plugin, *options = self.plugin_args()
            return [sys.executable, "-m", f"sorna.{plugin[len('sorna-'):]}.server",
                    *options]
        logger = ["--logger", "sorna.logging.json_observer"] if self.json_log else []
        return [sys.executable, "-c", _TWISTD, "-n", "--pidfile=", *logger,
                *self.plugin_args()]

    # -- life cycle
    def start(self, timeout=30.0):
        """Start and wait for the readiness line; return self."""
        if self.process is not None:
            raise ProcessError(f"{self.name} was already started")
        self._run_start = len(self.log())
        self._log_file = open(self.log_path, "ab")
        env = dict(self.env, SORNA_LOG_FORMAT="json") if (
            self.module and self.json_log) else self.env
        self.process = subprocess.Popen(
            self.command(), cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT)
        try:
            self.wait_for_log(self.ready_pattern, timeout, "the readiness line")
        except ProcessError:
            self.stop(timeout=5.0)
            raise
        return self

    def wait_for_log(self, pattern, timeout, what=None):
        """Wait until the current run's log matches `pattern` (regex or str); return the
        match."""
        if isinstance(pattern, str):
            pattern = re.compile(re.escape(pattern))
        what = what or f"a log line matching {pattern.pattern!r}"
        deadline = time.monotonic() + timeout
        while True:
            log = self.run_log()
            if self.json_log:
                log = "\n".join(str(e.get("log_text", "")) for e in _events(log))
            match = pattern.search(log)
            if match:
                return match
            code = self.process.poll()
            if code is not None:
                raise ProcessError(f"{self.name} exited with status {code} before "
                                   f"{what}; log:\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                raise ProcessError(f"{self.name} did not log {what} within {timeout:g} s; "
                                   f"log:\n{self.log_tail()}")
            time.sleep(0.02)

    @property
    def pid(self):
        return self.process.pid if self.process is not None else None

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def signal(self, signum):
        if self.alive():
            self.process.send_signal(signum)

    def wait(self, timeout):
        """Wait for the process to exit; return its status, or raise ProcessError."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ProcessError(f"{self.name} (pid {self.pid}) did not exit within "
                               f"{timeout:g} s; log:\n{self.log_tail()}")
        return self._reaped()

    def _reaped(self):
        if self.returncode is None:
            self.returncode = self.process.returncode
            self._log_file.close()
        return self.returncode

    def stop(self, timeout=20.0):
        """SIGTERM, wait up to `timeout` s, then SIGKILL. Return the exit status (negative:
        killed by that signal). Safe to call more than once."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self._reaped()

    def stopped_cleanly(self):
        """Whether the process ended by a clean shutdown. twistd re-raises the SIGTERM it
        handled once the reactor has stopped, so a clean stop on SIGTERM shows as status
        -SIGTERM; the "Server Shut Down." line tells it apart from a death by the signal."""
        if self.returncode == 0:
            return True
        return (self.returncode == -signal.SIGTERM
                and "Server Shut Down." in self.run_log())

    def kill(self):
        """SIGKILL, as a crash would; return the exit status."""
        if self.alive():
            self.process.kill()
        return self.stop()

    def restart(self, timeout=30.0):
        """Start again with the same options, port and folder, once the process has ended
        (stopped, killed or crashed); wait for the readiness line of the new run. The log
        goes on in the same file: `run_log()` is the new run's part. Return self."""
        if self.alive():
            raise ProcessError(f"{self.name} (pid {self.pid}) is still running; stop or "
                               f"kill it first")
        if self.process is not None:
            self.stop()  # reaps it and closes the log file
        self.process = None
        self.returncode = None
        return self.start(timeout)

    def remove_workdir(self):
        if self._own_workdir:
            unmount_below(self.workdir)  # a killed agent leaves its kernels' ipc tmpfs
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the log
    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def json_events(self):
        """The events of a `json_log` process's log, parsed (other lines skipped)."""
        return _events(self.log())

    def run_log(self):
        """The part of the log written since the latest `start` (or `restart`)."""
        return self.log()[self._run_start:]

    def log_tail(self, lines=40):
        return "\n".join(self.log().splitlines()[-lines:])


def _events(log):
    events = []
    for record in log.replace("\x1e", "\n").splitlines():
        try:
            event = json.loads(record)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


class ManagerProcess(TwistdProcess):
    name = "sorna-manager"
    ready_pattern = re.compile(r"sorna-manager ready on (\S+)")

    def __init__(self, port=None, heartbeat_interval=None, max_message_size=None,
                 extra_args=(), **kw):
        super().__init__(**kw)
        self.port = port or free_port()
        self.heartbeat_interval = heartbeat_interval
        self.max_message_size = max_message_size
        self.extra_args = list(extra_args)

    @property
    def addr(self):
        return f"tcp://{LOOPBACK}:{self.port}"

    def plugin_args(self):
        args = ["sorna-manager", "--listen", LOOPBACK, "--port", str(self.port)]
        if self.heartbeat_interval is not None:
            args += ["--heartbeat-interval", str(self.heartbeat_interval)]
        if self.max_message_size is not None:
            args += ["--max-message-size", str(self.max_message_size)]
        return args + self.extra_args


class AgentProcess(TwistdProcess):
    """The agent's ipc root is a `sorna-ipc-*` folder under `self.tmpdir` (its TMPDIR), so
    that a test can see it disappear. `listen` is the loopback address it binds (and
    advertises to front-ends, unless `advertise_host` says otherwise)."""

    name = "sorna-agent"

    def __init__(self, manager_addr, agent_id, port=None, max_kernels=4,
                 heartbeat_interval=None, max_message_size=None, extra_args=(),
                 listen=LOOPBACK, advertise_host=None, warm_pool="0", **kw):
        super().__init__(**kw)
        self.tmpdir = os.path.join(self.workdir, "tmp")
        os.makedirs(self.tmpdir, exist_ok=True)
        self.env["TMPDIR"] = self.tmpdir
        self.manager_addr = manager_addr
        self.agent_id = agent_id
        self.listen = listen
        self.advertise_host = advertise_host
        self.port = port or free_port(listen)
        self.max_kernels = max_kernels
        self.heartbeat_interval = heartbeat_interval
        self.max_message_size = max_message_size
        self.extra_args = list(extra_args)
        # Tests count the containers they cause: warm pools only where a test asks.
        self.warm_pool = warm_pool
        self.ready_pattern = re.compile(
            rf"sorna-agent {re.escape(agent_id)} ready on (\S+)")

    @property
    def addr(self):
        """The address front-ends are told (`kernel_addr`)."""
        return f"tcp://{self.advertise_host or self.listen}:{self.port}"

    def ipc_roots(self):
        return glob.glob(os.path.join(self.tmpdir, "sorna-ipc-*"))

    def plugin_args(self):
        args = ["sorna-agent", "--manager-addr", self.manager_addr, "--listen", self.listen,
                "--port", str(self.port), "--agent-id", self.agent_id,
                "--max-kernels", str(self.max_kernels), "--warm-pool", self.warm_pool]
        if self.advertise_host is not None:
            args += ["--advertise-host", self.advertise_host]
        if self.heartbeat_interval is not None:
            args += ["--heartbeat-interval", str(self.heartbeat_interval)]
        if self.max_message_size is not None:
            args += ["--max-message-size", str(self.max_message_size)]
        return args + self.extra_args


class GatewayProcess(TwistdProcess):
    """`twistd sorna-gateway` with a tokens file of its own holding one token,
    `self.token`, an operator's (admin) one (`url` is its base URL)."""

    name = "sorna-gateway"
    ready_pattern = re.compile(r"sorna-gateway ready on (\S+)")

    def __init__(self, manager_addr, port=None, extra_args=(), **kw):
        from sorna.gateway import tokens

        super().__init__(**kw)
        self.manager_addr = manager_addr
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.tokens_path = os.path.join(self.workdir, "tokens")
        self.token = tokens.add(self.tokens_path, "tests", admin=True)

    def add_token(self, name, timeout=10.0, **kw):
        """A new token (a plain one unless `admin=True`; `max_kernels`, `max_runs`),
        once the running gateway accepts it."""
        import urllib.error
        import urllib.request

        from sorna.gateway import tokens

        token = tokens.add(self.tokens_path, name, **kw)

        def accepted():
            request = urllib.request.Request(self.url + "/api/kernelspecs", headers={
                "Authorization": f"token {token}"})
            try:
                with urllib.request.urlopen(request, timeout=5):
                    return True
            except urllib.error.HTTPError as e:
                return e.code != 401
        wait_until(accepted, timeout, f"the gateway accepting the token {name!r}")
        return token

    @property
    def url(self):
        return f"http://{LOOPBACK}:{self.port}"

    def plugin_args(self):
        return ["sorna-gateway", "--manager-addr", self.manager_addr, "--listen", LOOPBACK,
                "--port", str(self.port), "--tokens", self.tokens_path, *self.extra_args]


def manager_status(manager_addr, timeout=5.0, insecure=False):
    from sorna.client.blocking import BlockingClient

    with BlockingClient(manager_addr, timeout=timeout, insecure=insecure) as client:
        return client.status()


def heard_since(client, agent_id, since):
    """Seconds after `since` (a `time.monotonic()` value) at which the manager received a
    heartbeat of `agent_id`, or None when its newest one is older. A restarted manager
    may list an agent from its table before it has heard from it."""
    asked = time.monotonic()
    for agent in client.status()["agents"]:
        if agent["agent_id"] == agent_id:
            received = asked - agent["last_heartbeat"]
            if received >= since:
                return max(received - since, 1e-6)
    return None


def wait_for_agent(manager_addr, agent_id, timeout=30.0, interval=0.1, kernels=None,
                   insecure=False):
    """Wait until the manager's `status` lists `agent_id` (with `kernels` kernels, when
    given); return that agent's status entry."""
    from sorna.client.blocking import BlockingClient

    with BlockingClient(manager_addr, timeout=min(timeout, 5.0),
                        insecure=insecure) as client:
        def listed():
            for agent in client.status()["agents"]:
                if agent["agent_id"] == agent_id and (
                        kernels is None or agent["kernels"] == kernels):
                    return agent
            return None

        what = f"agent {agent_id} appearing in the status of {manager_addr}"
        if kernels is not None:
            what += f" with {kernels} kernels"
        return wait_until(listed, timeout, what, interval)


def agent_containers(docker_client, agent_id):
    """Every container (running or not) labelled as belonging to `agent_id`."""
    # A container the agent removes between docker-py's listing and its inspection is
    # skipped rather than raising NotFound.
    return docker_client.containers.list(
        all=True, filters={"label": f"{LABEL_AGENT}={agent_id}"}, ignore_removed=True)


def remove_agent_containers(docker_client, agent_id):
    """Force-remove what an agent left behind; return the names removed."""
    removed = []
    for container in agent_containers(docker_client, agent_id):
        removed.append(container.name)
        try:
            container.remove(force=True)
        except NotFound:  # removed meanwhile (by the agent): what was wanted
            pass
    return removed


__all__ = [
    "ProcessError", "TwistdProcess", "ManagerProcess", "AgentProcess", "free_port",
    "wait_until", "wait_for_agent", "manager_status", "agent_containers",
    "remove_agent_containers",
]
