"""A real manager and agent, real kernels in Docker, driven the way front-ends drive them."""

import json
import signal
import time

import msgpack
import zmq
from twisted.python import log

from sorna.proto.errors import KernelNotFound, NoCapacity
from sorna.testing.processes import (
    ManagerProcess, free_port, wait_for_agent, wait_until,
)
from tests.integration import ClusterTestCase, HEARTBEAT


class KernelLifeTests(ClusterTestCase):
    def setUp(self):
        super().setUp()
        self.manager, self.agent = self.start_cluster()
        self.client = self.client(self.manager)

    def create(self):
        kernel = self.client.create("python3")
        self.destroy_later(self.client, kernel["kernel_id"])
        return kernel

    def kernel_container(self, kernel_id):
        found = [c for c in self.containers_of(self.agent)
                 if c.labels.get("io.sorna.kernel") == kernel_id]
        return found[0] if found else None

    def test_create_execute_destroy(self):
        kernel = self.create()
        self.assertEqual(kernel["lang"], "python3")
        self.assertEqual(len(kernel["kernel_id"]), 22)
        self.assertEqual(kernel["kernel_addr"], self.agent.addr)
        container = self.kernel_container(kernel["kernel_id"])
        self.assertIsNotNone(container, "no container runs the new kernel")
        self.assertEqual(container.status, "running")

        result = self.client.execute(kernel["kernel_id"], "print(6 * 7)")
        self.assertEqual(result["stdout"], "42\n")
        self.assertEqual(result["exceptions"], [])

        self.client.destroy(kernel["kernel_id"])
        self.assertIsNone(self.kernel_container(kernel["kernel_id"]))
        with self.assertRaises(KernelNotFound):
            self.client.kernel_info(kernel["kernel_id"])

    def test_kernel_info(self):
        kernel = self.create()
        info = self.client.kernel_info(kernel["kernel_id"])
        self.assertEqual(info["agent_id"], self.agent.agent_id)
        self.assertEqual(info["kernel_addr"], self.agent.addr)

    def test_state_output_and_errors(self):
        kernel_id = self.create()["kernel_id"]
        run = lambda code: self.client.execute(kernel_id, code)

        self.assertEqual(run("x = 20")["stdout"], "")
        self.assertEqual(run("x += 1\nx * 2")["stdout"], "42\n")

        result = run("import sys\nprint('out')\nprint('err', file=sys.stderr)")
        self.assertEqual((result["stdout"], result["stderr"]), ("out\n", "err\n"))

        result = run("print('before')\n1 / 0")
        self.assertEqual(result["stdout"], "before\n")
        [(name, args, before_exec, traceback)] = result["exceptions"]
        self.assertEqual((name, args, before_exec), ("ZeroDivisionError",
                                                     ["division by zero"], False))
        self.assertIn('File "<input>", line 2', traceback)
        self.assertIn("ZeroDivisionError: division by zero", traceback)

        [(name, _, before_exec, traceback)] = run("def f(:\n  pass")["exceptions"]
        self.assertEqual((name, before_exec), ("SyntaxError", True))
        self.assertIn("SyntaxError", traceback)

        self.assertEqual(run("x")["stdout"], "21\n", "an error must not lose the state")

    def test_two_kernels_execute_concurrently(self):
        slow, fast = self.create(), self.create()
        dealer = self.socket(zmq.DEALER, slow["kernel_addr"])
        started = time.monotonic()
        dealer.send_multipart([b"", msgpack.packb({
            "action": "execute", "id": "slow", "kernel_id": slow["kernel_id"],
            "code": "import time; time.sleep(2); print('slept')"})])

        result = self.client.execute(fast["kernel_id"], "print('fast')")
        fast_done = time.monotonic() - started
        self.assertEqual(result["stdout"], "fast\n")
        self.assertLess(fast_done, 1.5, "kernel B waited for kernel A")
        self.assertFalse(dealer.poll(0), "kernel A answered before its sleep ended")

        reply = msgpack.unpackb(self.receive(dealer), raw=False)
        self.assertEqual((reply["id"], reply["reply"]), ("slow", 200))
        self.assertEqual(reply["result"]["stdout"], "slept\n")
        self.assertGreaterEqual(time.monotonic() - started, 2.0)

    def test_busy_kernel_queues_executions(self):
        """Executions sent to one kernel run one after the other, none is lost."""
        kernel = self.create()
        dealer = self.socket(zmq.DEALER, kernel["kernel_addr"])
        for i in range(5):
            dealer.send_multipart([b"", msgpack.packb({
                "action": "execute", "id": i, "kernel_id": kernel["kernel_id"],
                "code": f"n = globals().get('n', 0) + 1\nprint({i}, n)"})])
        replies = sorted((msgpack.unpackb(self.receive(dealer), raw=False)
                          for _ in range(5)), key=lambda r: r["id"])
        self.assertEqual([r["result"]["stdout"] for r in replies],
                         [f"{i} {i + 1}\n" for i in range(5)])


class CapacityTests(ClusterTestCase):
    def test_max_kernels_under_concurrent_creates(self):
        manager, agent = self.start_cluster(max_kernels=3)
        sockets = [self.socket(zmq.DEALER, manager.addr) for _ in range(20)]
        for i, sock in enumerate(sockets):
            sock.send_multipart([b"", msgpack.packb({"action": "create", "id": i,
                                                     "lang": "python3"})])
        replies = [msgpack.unpackb(self.receive(sock, 60), raw=False) for sock in sockets]
        created = [r for r in replies if r["reply"] == 200]
        refused = [r for r in replies if r["reply"] != 200]
        client = self.client(manager)
        for reply in created:
            self.destroy_later(client, reply["kernel_id"])

        self.assertEqual(len(created), 3, replies)
        self.assertEqual(len(refused), 17)
        for reply in refused:
            self.assertEqual((reply["reply"], reply["error"]), (503, "no-capacity"))
            self.assertIn("full", reply["cause"])
        running = self.containers_of(agent)
        self.assertEqual(sorted(c.labels["io.sorna.kernel"] for c in running),
                         sorted(r["kernel_id"] for r in created))

        for reply in created:
            client.destroy(reply["kernel_id"])
        self.assertEqual(self.containers_of(agent), [])
        # The slots are free again.
        kernel = client.create("python3")
        client.destroy(kernel["kernel_id"])


class ShutdownTests(ClusterTestCase):
    def test_agent_shutdown_removes_its_containers(self):
        manager, agent = self.start_cluster()
        client = self.client(manager)
        for _ in range(2):
            client.create("python3")
        self.assertEqual(len(self.containers_of(agent)), 2)
        [ipc_root] = agent.ipc_roots()

        agent.signal(signal.SIGTERM)
        agent.wait(timeout=30)
        self.assertTrue(agent.stopped_cleanly(), agent.log_tail())
        self.assertEqual(self.containers_of(agent), [])
        self.assertEqual(agent.ipc_roots(), [], f"{ipc_root} outlived the agent")
        self.assertIn(f"sorna-agent {agent.agent_id} stopped", agent.log())

    def test_manager_forgets_a_dead_agent(self):
        manager, agent = self.start_cluster()
        client = self.client(manager, timeout=5)
        agent.stop()
        self.assertTrue(agent.stopped_cleanly(), agent.log_tail())
        wait_until(lambda: all(a["agent_id"] != agent.agent_id
                               for a in client.status()["agents"]),
                   timeout=10 * HEARTBEAT + 5, what="the manager forgetting the agent")
        with self.assertRaises(NoCapacity) as caught:
            client.create("python3")
        self.assertIn("no agent is connected", caught.exception.cause)


class LegacyJsonTests(ClusterTestCase):
    """The 2016 front-ends: REQ sockets, JSON text frames, integer actions, no `id`."""

    def json_request(self, addr, message, timeout=30):
        sock = self.socket(zmq.REQ, addr)
        sock.send(json.dumps(message).encode())
        raw = self.receive(sock, timeout)
        self.assertEqual(raw[:1], b"{", f"a JSON request got a non-JSON reply: {raw[:80]!r}")
        return json.loads(raw)

    def test_2016_front_end(self):
        manager, agent = self.start_cluster(insecure=True)  # they cannot speak CurveZMQ
        self.assertEqual(self.json_request(manager.addr, {"action": 0, "body": "hello"}),
                         {"reply": 0, "body": "hello"})

        session = {"action": 2, "user_id": "u1", "entry_id": "e1", "lang": "python3"}
        first = self.json_request(manager.addr, session)
        again = self.json_request(manager.addr, session)
        other = self.json_request(manager.addr, dict(session, entry_id="e2"))
        for reply in (first, again, other):
            self.assertEqual(reply["reply"], 200, reply)
        self.assertEqual(first["kernel_id"], again["kernel_id"])
        self.assertEqual(first["kernel_addr"], agent.addr)
        self.assertNotEqual(first["kernel_id"], other["kernel_id"])

        reply = self.json_request(first["kernel_addr"], {
            "action": 1, "kernel_id": first["kernel_id"], "entry_id": "e1", "cell_id": 3,
            "code": "print(1+1)"})
        self.assertEqual(reply["reply"], 200, reply)
        self.assertEqual(reply["result"]["stdout"], "2\n")

        reply = self.json_request(first["kernel_addr"], {
            "action": 1, "kernel_id": first["kernel_id"], "code": 5})
        self.assertEqual(reply["reply"], 400)
        self.assertIn("`code` must be a string", reply["cause"])

        for kernel in (first, other):
            reply = self.json_request(manager.addr, {"action": 3,
                                                     "kernel_id": kernel["kernel_id"]})
            self.assertEqual(reply["reply"], 200, reply)
        reply = self.json_request(manager.addr, {"action": 3,
                                                 "kernel_id": first["kernel_id"]})
        self.assertEqual(reply["reply"], 400, "2016 clients know 400, not 404")
        self.assertEqual(self.containers_of(agent), [])


class DeadKernelTests(ClusterTestCase):
    def test_get_or_create_replaces_a_dead_kernel(self):
        manager, agent = self.start_cluster()
        client = self.client(manager, timeout=10)
        kernel_id = client.get_or_create("u1", "e1", "python3")["kernel_id"]
        [container] = self.containers_of(agent)
        container.kill()

        def forgotten():
            try:
                client.kernel_info(kernel_id)
            except KernelNotFound:
                return True
            return False

        wait_until(forgotten, timeout=10 * HEARTBEAT + 5,
                   what=f"the manager forgetting dead kernel {kernel_id}")
        self.assertIn(f"kernel {kernel_id} died", agent.log())
        with self.assertRaises(KernelNotFound):
            client.execute(kernel_id, "1")
        kernel = client.get_or_create("u1", "e1", "python3")
        self.assertNotEqual(kernel["kernel_id"], kernel_id)
        self.assertEqual(client.execute(kernel["kernel_id"], "print(3)")["stdout"], "3\n")
        client.destroy(kernel["kernel_id"])

    def test_execution_in_a_killed_kernel_fails_quickly(self):
        """A kernel killed mid-execution answers 404 within a few heartbeats, not at the
        end of its execution time."""
        manager, agent = self.start_cluster()
        client = self.client(manager)
        kernel = client.create("python3")
        dealer = self.socket(zmq.DEALER, kernel["kernel_addr"])
        dealer.send_multipart([b"", msgpack.packb({
            "action": "execute", "id": 1, "kernel_id": kernel["kernel_id"],
            "code": "import time; time.sleep(30)"})])
        [container] = self.containers_of(agent)
        container.kill()
        reply = msgpack.unpackb(self.receive(dealer, timeout=10 * HEARTBEAT + 5), raw=False)
        self.assertEqual((reply["id"], reply["reply"]), (1, 404), reply)
        self.assertIn("died", reply["cause"])


class StartupTests(ClusterTestCase):
    def test_manager_on_a_taken_port_exits_with_an_error(self):
        first = self.start_manager()
        error = self.start_fails(ManagerProcess(port=first.port))
        self.assertIn("exited with status 1", error)
        self.assertIn("cannot listen", error)
        self.assertIn(ping(self, first.addr), ("pong",))

    def test_agent_without_a_manager_still_starts(self):
        """Agents may start before their manager; they register once it is up."""
        port = free_port()
        agent = self.start_agent(f"tcp://127.0.0.1:{port}", wait=False)
        manager = self.start_manager(port=port)
        wait_for_agent(manager.addr, agent.agent_id, timeout=20)


def ping(testcase, addr):
    return testcase.request(addr, {"action": "ping", "body": "pong"})["body"]


class NewImageTests(ClusterTestCase):
    def test_an_image_built_after_the_agent_started_is_served_within_two_heartbeats(self):
        import io

        manager, agent = self.start_cluster()
        client = self.client(manager)
        tag = "sorna/kernel-lang14:latest"
        dockerfile = (b"FROM sorna/kernel-bash:latest\n"
                      b'LABEL io.sorna.lang="lang14" io.sorna.aliases="fourteen"\n')
        self.docker.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True,
                                 network_mode="none")
        self.addCleanup(self.docker.images.remove, tag, force=True)
        built = time.monotonic()

        def served():
            [entry] = client.status()["agents"]
            return "lang14" in entry["langs"]

        # The agent looks at its images every heartbeat interval (0.5 s here); this
        # machine is shared, so the bound waited for is generous and the time logged.
        wait_until(served, 10 * HEARTBEAT, "the new language in status")
        log.msg(f"measured: a new image served {time.monotonic() - built:.2f} s after it "
                f"was built (heartbeat interval {HEARTBEAT} s)")
        kernel = client.create("fourteen")  # by its alias, from the image's label
        self.destroy_later(client, kernel["kernel_id"])
        self.assertEqual(kernel["lang"], "lang14")
        self.assertEqual(client.execute(kernel["kernel_id"], "echo 14")["stdout"], "14\n")
