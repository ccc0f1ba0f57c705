"""Hostile kernels and hostile peers: a kernel that takes over its own REPL link, plain
ZMQ clients that pose as agents or never read. In every case a neighbour kernel on the
same agent keeps answering `1+1` (its latency is measured and logged, with the agent's
and the manager's peak RSS; the bound asserted is a generous one, as this machine is
shared), no other user's kernel is lost, and nothing is left behind.
"""

import os
import secrets
import statistics
import threading
import time

import msgpack
import zmq
from twisted.python import log

from sorna.client.blocking import BlockingClient
from sorna.testing.keys import secure
from sorna.testing.processes import rss, wait_until
from tests.integration import HEARTBEAT
from tests.integration.test_hostile import HostileTestCase, snippet

ANSWER_BOUND = 10.0  # seconds a neighbour's `1+1` may take under any attack
RSS_BOUND = 300 << 20  # bytes an attack may add to the agent's or the manager's RSS

# Code for a kernel to write frames straight on its daemon's connection to the agent.
ON_THE_LINK = snippet("""
    import gc, os, socket, struct, msgpack
    def frame(message):
        payload = message if isinstance(message, bytes) else msgpack.packb(message)
        return struct.pack(">I", len(payload)) + payload
    session = [o for o in gc.get_objects() if type(o).__name__ == "Session"][0]
    run_id = session.output.run_id
    links = [o.sock for o in gc.get_objects()
             if type(o).__name__ == "_Connection" and not o.closed]
    def send(data):
        for sock in links:
            sock.setblocking(True)
            sock.sendall(data)
""")


class Watch:
    """While an attack runs: the neighbour's `1+1` again and again, and the peak RSS of
    the agent and the manager."""

    def __init__(self, test, neighbour, processes):
        self.test = test
        self.neighbour = neighbour
        self.processes = processes
        self.latencies, self.failures = [], []
        self.peak = {p.name: rss(p.pid) for p in processes}
        self.start_rss = dict(self.peak)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._ask, daemon=True),
                         threading.Thread(target=self._sample, daemon=True)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(ANSWER_BOUND + 5)

    def _ask(self):
        with BlockingClient(self.test.manager.addr, timeout=ANSWER_BOUND,
                            execute_timeout=ANSWER_BOUND) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    stdout = client.execute(self.neighbour, "1+1")["stdout"]
                except Exception as e:
                    self.failures.append(repr(e))
                else:
                    if stdout != "2\n":
                        self.failures.append(stdout)
                self.latencies.append(time.monotonic() - started)
                time.sleep(0.02)

    def _sample(self):
        while not self._stop.is_set():
            for process in self.processes:
                self.peak[process.name] = max(self.peak[process.name], rss(process.pid))
            time.sleep(0.02)

    def report(self, what, baseline):
        median = statistics.median(self.latencies)
        growth = {name: (self.peak[name] - self.start_rss[name]) >> 20 for name in self.peak}
        log.msg(f"measured: {what}: neighbour 1+1 median {median * 1000:.1f} ms "
                f"(x{median / baseline:.2f} of its {baseline * 1000:.1f} ms before), max "
                f"{max(self.latencies) * 1000:.1f} ms over {len(self.latencies)}; peak RSS "
                + ", ".join(f"{name} {self.peak[name] >> 20} MiB (+{growth[name]})"
                            for name in self.peak))
        self.test.assertEqual(self.failures, [], f"the neighbour failed during {what}")
        self.test.assertTrue(self.latencies, "the neighbour was never asked")
        self.test.assertLess(max(self.latencies), ANSWER_BOUND)
        for name in self.peak:
            self.test.assertLess(self.peak[name] - self.start_rss[name], RSS_BOUND,
                                 f"{name} grew by {growth[name]} MiB during {what}")


class PeerTestCase(HostileTestCase):
    def setUp(self):
        super().setUp()
        samples = []
        for _ in range(10):
            started = time.monotonic()
            self.front.execute(self.neighbour, "1+1")
            samples.append(time.monotonic() - started)
        self.baseline = statistics.median(samples)

    def watch(self):
        return Watch(self, self.neighbour, (self.agent, self.manager))

    def assertFlooded(self, reply, kernel_id):
        self.assertEqual(reply["reply"], 404, reply)
        self.assertIn("flooded the agent", reply["cause"])
        self.assertFalse(self.alive(kernel_id))


class FloodingKernelTests(PeerTestCase):
    """1. A kernel that controls its daemon floods the agent."""

    def flood(self, what, attack):
        offender = self.create(exec_timeout=60)["kernel_id"]
        with self.watch() as watch:
            reply = self.run_attack(offender, ON_THE_LINK + snippet(attack), timeout=30)
        self.assertFlooded(reply, offender)
        watch.report(what, self.baseline)
        self.finish()

    def test_tiny_valid_frames(self):
        self.flood("a flood of tiny output events", """
            event = frame({"id": run_id, "event": "output", "records": [["stdout", "x"]]})
            while True:
                send(event * 1000)
        """)

    def test_garbage_frames(self):
        self.flood("a flood of garbage frames", """
            while True:
                send(b"".join(frame(os.urandom(20)) for _ in range(1000)))
        """)

    def test_frames_larger_than_the_protocol_allows(self):
        self.flood("frames of 60 MiB", """
            send(struct.pack(">I", 60 << 20))
            while True:
                send(b"x" * (1 << 20))
        """)

    def test_a_kernel_that_takes_its_socket_over(self):
        """The attack of the issue: rebind /ipc/repl, let the agent reconnect, end the
        run with a forged `finished` (so no run is timed), then flood."""
        offender = self.create(exec_timeout=60)["kernel_id"]
        with self.watch() as watch:
            reply = self.run_attack(offender, ON_THE_LINK + snippet("""
                os.unlink("/ipc/repl")
                server = socket.socket(socket.AF_UNIX)
                server.bind("/ipc/repl")
                server.listen(4)
                for o in gc.get_objects():
                    if isinstance(o, socket.socket) and o is not server and o.fileno() >= 0:
                        try:
                            o.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                agent, _ = server.accept()
                agent.sendall(frame({"id": run_id, "event": "finished", "reply": 200,
                                     "exceptions": [], "files": []}))
                while True:
                    agent.sendall(frame({"id": 1234567, "reply": 0}) * 1000)
            """), timeout=30)
            self.assertEqual(reply["reply"], 200, reply)  # the forged end: its own business
            wait_until(lambda: not self.alive(offender), 30, "the flooding kernel's end")
        watch.report("a kernel that took over its socket", self.baseline)
        self.finish()


class ReplyBoundTests(PeerTestCase):
    """6. Ordinary code that once made replies of tens of MiB."""

    def test_a_huge_exception_is_cut_to_the_output_budget(self):
        offender = self.create()["kernel_id"]
        reply = self.run_attack(offender, "raise ValueError('x' * 30_000_000)")
        self.assertEqual(reply["result"]["exceptions"][0][0], "ValueError")
        self.assertTrue(reply["result"]["truncated"])
        self.assertLess(reply["_size"], 3 << 20)
        self.finish()

    def test_a_huge_prompt_is_cut(self):
        offender = self.create()["kernel_id"]
        reply = self.run_attack(offender, "input('p' * 50_000_000)")
        self.assertEqual(reply["status"], "waiting-input")
        self.assertLess(reply["_size"], 3 << 20)
        self.finish()

    def test_thousands_of_long_paths_are_cut(self):
        offender = self.create(exec_timeout=60)["kernel_id"]
        reply = self.run_attack(offender, snippet("""
            import os
            deep = "/".join(["d" * 250] * 15)
            os.makedirs(deep)
            for i in range(9900):
                open(f"{deep}/{i:06d}" + "f" * 90, "w").close()
        """), timeout=60)
        self.assertEqual(reply["result"]["exceptions"], [])
        self.assertTrue(reply["result"]["truncated"])
        self.assertLess(reply["_size"], 3 << 20)
        self.assertGreater(len(reply["result"]["files"]), 100)
        self.finish()

    def test_a_file_name_that_is_not_utf8_is_reported_escaped(self):
        kernel = self.create()["kernel_id"]
        result = self.front.execute(kernel, "open(b'bad\\xff.txt', 'w').write('x')")
        self.assertEqual(result["files"], ["bad\\udcff.txt"])
        self.assertEqual(self.front.execute(kernel, "1+1")["stdout"], "2\n")
        self.finish()


class UnreadReplyTests(PeerTestCase):
    """5. A client that asks and never reads."""

    def test_downloads_nobody_reads(self):
        kernel = self.create()["kernel_id"]
        self.front.upload(kernel, "big.bin", os.urandom(16 << 20))
        sock = self.zmq.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 1)  # ZMQ itself stops reading: TCP pushes back
        sock.setsockopt(zmq.RCVBUF, 65536)
        secure(sock, "agent")
        sock.connect(self.agent.addr)
        self.addCleanup(sock.close, 0)
        request = msgpack.packb({"action": "download", "kernel_id": kernel,
                                 "path": "big.bin"})
        with self.watch() as watch:
            for _ in range(150):
                sock.send_multipart([b"", request])
            time.sleep(5)  # the agent answers them all meanwhile
        watch.report("150 downloads of 16 MiB nobody reads", self.baseline)
        codes = []
        while sock.poll(2000):
            codes.append(msgpack.unpackb(sock.recv_multipart()[-1], raw=False)["reply"])
        self.assertEqual(len(codes), 150)
        # Two at a time at the kernel, 16 waiting, the rest refused at once; past the
        # connection's reply budget, short refusals instead of 16 MiB each.
        self.assertEqual(sorted(set(codes)), [200, 409, 503])
        self.finish()


class FakeAgentTests(PeerTestCase):
    """2, 3, 4. Peers posing as agents at the manager."""

    manager_args = ("--create-attempt-timeout", "3")

    def agent_socket(self, identity=None):
        sock = self.zmq.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if identity is not None:
            sock.setsockopt(zmq.IDENTITY, identity)
        secure(sock, "manager", client="agents/agent")  # hostile, with an agent's key
        sock.connect(self.manager.addr)
        self.addCleanup(sock.close, 0)
        return sock

    def heartbeat(self, sock, agent_id, session, **fields):
        message = {"action": "heartbeat", "agent_id": agent_id, "session": session,
                   "addr": fields.pop("addr", "tcp://127.0.0.1:1"), "max_kernels": 100000,
                   "kernels": {}, "langs": ["python3"], **fields}
        sock.send_multipart([b"", msgpack.packb(message)])

    def test_a_client_claiming_a_live_agents_id_changes_nothing(self):
        for identity in (self.agent.agent_id.encode(), None):  # as in 2016, or any
            thief = self.agent_socket(identity)
            self.heartbeat(thief, self.agent.agent_id, secrets.token_hex(16))
            reply = msgpack.unpackb(self.receive(thief), raw=False)
            self.assertEqual((reply["reply"], reply["error"]), (403, "agent-id-taken"))
        time.sleep(4 * HEARTBEAT)
        [entry] = self.front.status()["agents"]
        self.assertEqual((entry["agent_id"], entry["max_kernels"], entry["kernels"]),
                         (self.agent.agent_id, self.max_kernels, 1))
        self.assertEqual(self.front.kernel_info(self.neighbour)["kernel_id"], self.neighbour)
        self.neighbour_ok("after the theft")
        self.finish()

    def test_creates_go_around_an_agent_that_never_answers_or_fails(self):
        silent = self.agent_socket()
        failing = self.agent_socket()
        stop = threading.Event()

        def keep_beating():
            sessions = {silent: secrets.token_hex(16), failing: secrets.token_hex(16)}
            while not stop.is_set():
                for sock, name in ((silent, "aaa-silent"), (failing, "aab-failing")):
                    self.heartbeat(sock, name, sessions[sock])
                while failing.poll(0):
                    command = msgpack.unpackb(failing.recv_multipart()[-1], raw=False)
                    failing.send_multipart([b"", msgpack.packb({
                        "id": command.get("id"), "reply": 500, "error": "x",
                        "cause": "a fake agent's failure"})])
                time.sleep(HEARTBEAT / 2)

        beater = threading.Thread(target=keep_beating, daemon=True)
        beater.start()
        self.addCleanup(beater.join, 5)
        self.addCleanup(stop.set)
        wait_until(lambda: len(self.front.status()["agents"]) == 3, 10, "the fake agents")
        started = time.monotonic()
        kernel = self.create()["kernel_id"]
        first = time.monotonic() - started
        self.assertEqual(self.front.kernel_info(kernel)["agent_id"], self.agent.agent_id)
        started = time.monotonic()
        again = self.create()["kernel_id"]
        second = time.monotonic() - started
        self.assertEqual(self.front.kernel_info(again)["agent_id"], self.agent.agent_id)
        log.msg(f"measured: creates around a silent and a failing agent: {first:.2f} s, "
                f"then {second:.2f} s (the bad ones passed over)")
        self.assertLess(second, first)
        stop.set()
        self.finish()

    def test_an_agent_advertising_anything_but_tcp_is_refused(self):
        sock = self.agent_socket()
        for addr in ("ipc:///var/run/docker.sock", "tcp://host", "http://x:1",
                     "tcp://x:99999"):
            self.heartbeat(sock, "fake", secrets.token_hex(16), addr=addr)
            reply = msgpack.unpackb(self.receive(sock), raw=False)
            self.assertEqual(reply["reply"], 400, (addr, reply))
        self.assertEqual(len(self.front.status()["agents"]), 1)
        self.finish()

    def test_heartbeats_listing_thousands_of_unknown_kernels(self):
        peers = [self.agent_socket() for _ in range(10)]
        kernels = {secrets.token_urlsafe(16)[:22]: "python3" for _ in range(30000)}
        with self.watch() as watch:
            for round_ in range(3):
                for n, sock in enumerate(peers):
                    self.heartbeat(sock, f"amp-{n}", f"{n:032x}", kernels=kernels)
                time.sleep(HEARTBEAT)
            commands = 0
            for sock in peers:
                while sock.poll(200):
                    sock.recv_multipart()
                    commands += 1
        watch.report("10 heartbeats a round listing 30,000 unknown kernels", self.baseline)
        log.msg(f"measured: destroy_kernel commands sent for 900,000 listed orphans: "
                f"{commands}")
        self.assertLessEqual(commands, 10 * 8 * 3)
        self.finish()


class PlainIpcFolderTests(PeerTestCase):
    """7. With plain ipc folders, a link a kernel puts at /ipc/repl is not followed."""

    agent_args = ("--ipc-tmpfs-mb", "0")

    def test_the_agent_never_connects_through_a_kernels_link(self):
        import socket
        victim_path = os.path.join(self.agent.workdir, "victim.sock")
        victim = socket.socket(socket.AF_UNIX)
        victim.bind(victim_path)
        victim.listen(1)
        victim.settimeout(0.2)
        self.addCleanup(victim.close)
        offender = self.create(exec_timeout=60)["kernel_id"]
        self.attack(offender, snippet("""
            import gc, os, socket
            os.unlink("/ipc/repl")
            os.symlink({victim}, "/ipc/repl")
            for o in gc.get_objects():
                if isinstance(o, socket.socket) and o.fileno() >= 0:
                    o.shutdown(socket.SHUT_RDWR)
            import time
            time.sleep(30)
        """, victim=victim_path))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                victim.accept()
            except socket.timeout:
                continue
            self.fail("the agent connected to a host socket through the kernel's link")
        self.destroy(offender)
        self.finish()

