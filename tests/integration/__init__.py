"""Integration tests: real `twistd` manager and agent processes, real sockets, the real
Docker engine. They skip without Docker or the python3 kernel image (and fail instead
under SORNA_REQUIRE_DOCKER=1).

`ClusterTestCase` starts the processes and, in `addCleanup`, stops them (checking that
they exit cleanly and logged no traceback) and checks that no container of the test's
agents is left. The processes use the run's CurveZMQ keys (sorna.testing.keys), and so
do the test's clients and raw sockets, unless a test starts them with `insecure=True`.
"""

import uuid

import msgpack
import zmq
from twisted.trial.unittest import SynchronousTestCase

from sorna.client.blocking import BlockingClient
from sorna.proto.errors import KernelNotFound, SornaError
from sorna.testing.keys import secure
from sorna.testing.processes import (
    AgentProcess, GatewayProcess, ManagerProcess, ProcessError, agent_containers,
    remove_agent_containers, wait_for_agent,
)
from tests.support import require_docker, require_image

IMAGE = "sorna/kernel-python3"
HEARTBEAT = 0.5  # short, so that the manager learns of agents and kernels quickly
REPLY_TIMEOUT = 30.0


class ClusterTestCase(SynchronousTestCase):
    def setUp(self):
        self.docker = require_docker(self)
        require_image(self.docker, IMAGE)
        self.addCleanup(self.docker.close)
        self.zmq = zmq.Context()
        self.addCleanup(self.zmq.term)
        self.managers = set()  # the addresses of this test's managers
        self.plaintext = set()  # ...and of its processes that run --insecure

    # -- processes
    def start_manager(self, insecure=False, **kw):
        kw.setdefault("heartbeat_interval", HEARTBEAT)
        if insecure:
            kw["extra_args"] = ["--insecure", *kw.get("extra_args", ())]
        manager = ManagerProcess(**kw)
        self.managers.add(manager.addr)
        if insecure:
            self.plaintext.add(manager.addr)
        self.addCleanup(manager.remove_workdir)
        self.addCleanup(self._stop_cleanly, manager)
        return manager.start()

    def start_agent(self, manager, max_kernels=4, wait=True, insecure=False, agent_id=None,
                    **kw):
        """Start an agent with a unique id (or `agent_id`); `wait`: until the manager
        lists it. `manager`: a ManagerProcess or the address of one."""
        kw.setdefault("heartbeat_interval", HEARTBEAT)
        if insecure:
            kw["extra_args"] = ["--insecure", *kw.get("extra_args", ())]
        manager_addr = getattr(manager, "addr", manager)
        agent = AgentProcess(manager_addr, agent_id=agent_id or f"it-{uuid.uuid4().hex[:12]}",
                             max_kernels=max_kernels, **kw)
        if insecure:
            self.plaintext.add(agent.addr)
        self.addCleanup(agent.remove_workdir)
        self.addCleanup(self._assert_no_containers, agent.agent_id)
        self.addCleanup(self._stop_cleanly, agent)
        agent.start()
        if wait:
            wait_for_agent(manager_addr, agent.agent_id, timeout=20,
                           insecure=manager_addr in self.plaintext)
        return agent

    def start_gateway(self, manager, insecure=False, **kw):
        """A `twistd sorna-gateway` of `manager`, with a token (`gateway.token`)."""
        if insecure:
            kw["extra_args"] = ["--insecure", *kw.get("extra_args", ())]
        gateway = GatewayProcess(getattr(manager, "addr", manager), **kw)
        self.addCleanup(gateway.remove_workdir)
        self.addCleanup(self._stop_cleanly, gateway)
        return gateway.start()

    def start_cluster(self, max_kernels=4, manager_kw=None, agent_kw=None, insecure=False):
        manager = self.start_manager(insecure=insecure, **(manager_kw or {}))
        agent = self.start_agent(manager, max_kernels=max_kernels, insecure=insecure,
                                 **(agent_kw or {}))
        return manager, agent

    def start_fails(self, process, timeout=20):
        """Start `process`, which must exit before its readiness line; return what the
        ProcessError says (its log included)."""
        self.addCleanup(process.remove_workdir)
        self.addCleanup(process.stop)
        with self.assertRaises(ProcessError) as caught:
            process.start(timeout=timeout)
        return str(caught.exception)

    def _stop_cleanly(self, process):
        was_alive = process.alive()
        code = process.stop()
        if was_alive and not process.stopped_cleanly():
            self.fail(f"{process.name} exited with status {code} on SIGTERM; log:\n"
                      f"{process.log_tail()}")
        if "Traceback" in process.log():
            self.fail(f"{process.name} logged a traceback:\n{process.log()}")

    def _assert_no_containers(self, agent_id):
        left = remove_agent_containers(self.docker, agent_id)
        self.assertEqual(left, [], f"containers of agent {agent_id} were left behind")

    def containers_of(self, agent):
        return agent_containers(self.docker, agent.agent_id)

    # -- clients
    def client(self, manager, timeout=REPLY_TIMEOUT):
        client = BlockingClient(manager.addr, timeout=timeout, execute_timeout=timeout,
                                insecure=manager.addr in self.plaintext)
        self.addCleanup(client.close)
        return client

    def error_of(self, fn, *args, **kw):
        """The SornaError that `fn(*args, **kw)` raises (failing the test if it returns)."""
        try:
            result = fn(*args, **kw)
        except SornaError as e:
            return e
        self.fail(f"{getattr(fn, '__name__', fn)}{args[:2]} returned {str(result)[:200]} "
                  f"instead of failing")

    def assertError(self, error, code, name):
        self.assertEqual((error.code, error.error), (code, name), error.cause)

    def destroy_later(self, client, kernel_id):
        """Destroy the kernel at cleanup, unless the test did."""
        def destroy():
            try:
                client.destroy(kernel_id)
            except KernelNotFound:
                pass
        self.addCleanup(destroy)

    def socket(self, kind, addr):
        """A raw ZMQ socket connected to `addr`: a CurveZMQ client with the test client
        key, unless that process runs --insecure."""
        sock = self.zmq.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if addr not in self.plaintext:
            secure(sock, "manager" if addr in self.managers else "agent")
        sock.connect(addr)
        self.addCleanup(sock.close, 0)
        return sock

    def receive(self, sock, timeout=REPLY_TIMEOUT):
        """The last frame of the next message, or fail after `timeout` s."""
        if not sock.poll(timeout * 1000):
            self.fail(f"no reply within {timeout:g} s")
        return sock.recv_multipart()[-1]

    def request(self, addr, payload, timeout=REPLY_TIMEOUT):
        """Send one msgpack request (a map, or raw bytes) from a fresh DEALER; return the
        decoded reply."""
        sock = self.socket(zmq.DEALER, addr)
        if not isinstance(payload, bytes):
            payload = msgpack.packb(payload, use_bin_type=True)
        sock.send_multipart([b"", payload])
        return msgpack.unpackb(self.receive(sock, timeout), raw=False)
