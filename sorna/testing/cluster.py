"""A whole Sorna cluster in memory: manager, agents, Docker and REPL daemons, on a fake
network and an injected clock. Sorna's unit tests use it, and so can front-end authors:

    cluster = FakeCluster(clock=task.Clock())
    cluster.start()
    client = cluster.client()
    kernel = successResultOf(client.create("python3"))

The fake REPL runs Python code in-process with the real daemon's `LocalDaemon`: it
isolates nothing and exists for tests only.
"""

import importlib.util
import os
import platform
import shutil
import tempfile

import msgpack
from twisted.internet.testing import MemoryReactor

from sorna import language_spec
from sorna.agent import tap as agent_tap
from sorna.agent.grading import InlineGrader
from sorna.client.api import SornaClient
from sorna.manager import tap as manager_tap
from sorna.proto.codec import encode
from sorna.testing.docker import FakeDockerClient
from sorna.testing.transport import FakeNetwork
from sorna.threadpool import WorkerPool

REPL_DIR = language_spec.repl_dir()


def load_python_repl():
    """The real kernel runner (repl/runner/runner.py), without running it: its
    LocalDaemon runs Python in-process."""
    spec = importlib.util.spec_from_file_location("sorna_repl_runner",
                                                  REPL_DIR / "runner" / "runner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeKernelHost:
    """Plays a Docker engine whose containers run the REPL daemon, in memory.

    Set `hold = True` to keep the runs that start meanwhile going until `release()`
    (an interrupt ends them, unless `ignore_interrupts`; see LocalDaemon), and
    `mute = True` to make new daemons never answer (a kernel that fails to start).
    """

    def __init__(self, network, langs=("python3",)):
        self.network = network
        self.docker = FakeDockerClient()
        for lang in langs:
            self.docker.add_image(f"sorna/kernel-{lang}", {
                "io.sorna.lang": lang, "io.sorna.memory": "256m",
                "io.sorna.exec-timeout": "60", "io.sorna.aliases": "python,py3",
                "io.sorna.version": platform.python_version()})
        self.docker.on_run = self._boot
        self.docker.on_remove = self._halt
        self._hold = False
        self._ignore_interrupts = False
        self.mute = False
        self.script = None  # when set, `script(daemon, request)` plays the daemon
        self.daemons = {}  # container id -> (router, LocalDaemon, [peer, envelope])
        self._repl = load_python_repl()

    @property
    def hold(self):
        return self._hold

    @hold.setter
    def hold(self, value):
        self._hold = value
        for _, executor, _ in self.daemons.values():
            executor.hold = value

    @property
    def ignore_interrupts(self):
        return self._ignore_interrupts

    @ignore_interrupts.setter
    def ignore_interrupts(self, value):
        self._ignore_interrupts = value
        for _, executor, _ in self.daemons.values():
            executor.ignore_interrupts = value

    def _boot(self, container):
        ipc_dir = container.kwargs["mounts"][0]["Source"]
        work_dir = os.path.join(ipc_dir, "work")
        os.makedirs(work_dir, exist_ok=True)
        executor = self._repl.LocalDaemon(work_dir)
        executor.hold, executor.ignore_interrupts = self._hold, self._ignore_interrupts
        mute = self.mute
        sender = [None]  # the connection of the last request: the agent's

        def on_request(connection, payload):
            if mute:
                return
            if self.script is not None:
                daemon = ScriptedDaemon(listener, connection, container.id)
                self.script(daemon, msgpack.unpackb(payload, raw=False))
                return
            sender[:] = [connection]
            self._send(listener, sender, executor.handle_payload(payload))

        listener = self.network.listen_repl(os.path.join(ipc_dir, "repl"), on_request)
        self.daemons[container.id] = (listener, executor, sender)

    @staticmethod
    def _send(listener, sender, payloads):
        for payload in payloads:
            if not listener.closed:
                sender[0].send(payload)

    def release(self):
        """End every held run now: its events go to the agent."""
        for listener, executor, sender in list(self.daemons.values()):
            if executor.running:
                self._send(listener, sender, [encode(m) for m in executor.release()])

    def _halt(self, container):
        entry = self.daemons.pop(container.id, None)
        if entry is not None:
            entry[0].close()

    def running(self):
        return [c for c in self.docker.containers.list(all=True)]


class ScriptedDaemon:
    """What a test's script uses to answer as the daemon would."""

    def __init__(self, listener, connection, container_id):
        self.listener = listener
        self.connection = connection
        self.container_id = container_id

    def send(self, message):
        if not self.listener.closed:
            self.connection.send(encode(message))


class FakeCluster:
    """Uses the CurveZMQ keys $SORNA_KEYS names (sorna.testing.keys), or plaintext
    when `insecure`."""

    def __init__(self, clock, agents=1, max_kernels=4, heartbeat_interval=3.0,
                 manager_addr="tcp://127.0.0.1:5001", agent_argv=(), insecure=False):
        self.clock = clock
        self.insecure = insecure
        security = ["--insecure"] if insecure else []
        # What a fatal error would stop: recorded here, never the test's own reactor.
        self.reactor = MemoryReactor()
        self.network = FakeNetwork()
        self.manager_addr = manager_addr
        self.manager = manager_tap.makeService(
            _options(manager_tap.Options(), ["--listen", "127.0.0.1", *security,
                                             "--heartbeat-interval", str(heartbeat_interval)]),
            clock=clock, transport=self.network, reactor=self.reactor)
        self.hosts = []
        self.agents = []
        self.ipc_roots = []
        for i in range(agents):
            self.ipc_roots.append(tempfile.mkdtemp(prefix="sorna-fake-ipc-"))
            host = FakeKernelHost(self.network)
            config = _options(agent_tap.Options(), [
                "--manager-addr", manager_addr, "--listen", "127.0.0.1",
                "--port", str(6001 + i), "--agent-id", f"agent-{i}",
                "--max-kernels", str(max_kernels),
                "--heartbeat-interval", str(heartbeat_interval),
                "--ipc-root", self.ipc_roots[-1], "--ipc-tmpfs-mb", "0",
                "--warm-pool", "0", *security, *agent_argv])
            self.hosts.append(host)
            self.agents.append(agent_tap.makeService(
                config, clock=clock, transport=self.network, reactor=self.reactor,
                links=self.network.repl_links,
                client_factory=lambda host=host: host.docker,
                pool=WorkerPool("fake-docker", inline=True), grader=InlineGrader()))

    def start(self):
        self.manager.startService()
        for agent in self.agents:
            agent.startService()

    def stop(self):
        from twisted.internet import defer

        def cleanup(result):
            for path in self.ipc_roots:
                shutil.rmtree(path, ignore_errors=True)
            return result

        d = defer.gatherResults([a.stopService() for a in self.agents])
        d.addCallback(lambda _: self.manager.stopService())
        return d.addBoth(cleanup)

    def client(self, **kwargs):
        kwargs.setdefault("insecure", self.insecure)
        return SornaClient(self.manager_addr, transport=self.network, clock=self.clock,
                           **kwargs)


def _options(options, argv):
    options.parseOptions(argv)
    return options
