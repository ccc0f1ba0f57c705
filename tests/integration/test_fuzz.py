"""Fuzzing the manager, the agent and a kernel's REPL daemon with hostile frames
(sorna.testing.fuzz): random bytes, truncated and mutated msgpack, wrong types in every
field of every action, huge ints, deep nesting, non-UTF-8 strings. Each target gets
FUZZ_SECONDS of it (bench/fuzz.py runs longer). Afterwards every process still answers,
every tracked request got exactly one well-formed reply, and no container, thread or
socket is left over.
"""

import glob
import os

from twisted.python import log

from sorna.testing.fuzz import ZmqPeer, resources, run_fuzz
from sorna.testing.processes import wait_until
from sorna.testing.repl_socket import ReplSocket
from tests.integration import ClusterTestCase

FUZZ_SECONDS = float(os.environ.get("SORNA_FUZZ_SECONDS", 12))


def open_files(pid):
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":")[0] if ":" in target else target
        found[kind] = found.get(kind, 0) + 1
    return found


class FuzzTests(ClusterTestCase):
    def setUp(self):
        super().setUp()
        self.manager, self.agent = self.start_cluster()
        self.front = self.client(self.manager)
        self.kernel_id = self.front.create("python3")["kernel_id"]
        self.destroy_later(self.front, self.kernel_id)
        self.pid_code = "import os\nos.getpid()"
        self.daemon_pid = self.front.execute(self.kernel_id, self.pid_code)["stdout"]
        self.before = {p.name: resources(p.pid) for p in (self.manager, self.agent)}

    def check(self, target, stats):
        log.msg(f"measured: fuzz {target}: {stats['frames']} frames "
                f"({stats['bytes'] >> 10} KiB) in {stats['seconds']:.1f} s, "
                f"{stats['frames_per_second']} frames/s, {stats['replies']} replies")
        if stats["missing"]:
            [container] = self.containers_of(self.agent)
            kernel_log = container.logs(tail=30).decode("utf-8", "replace")
            self.fail(f"{target}: {len(stats['missing'])} tracked requests got no reply "
                      f"(first {stats['missing'][:3]}); the kernel's own log:\n{kernel_log}")
        self.assertEqual(stats["duplicated"][:20], [], f"{target}: requests answered twice")
        self.assertEqual(stats["malformed"], 0, f"{target}: malformed replies")
        # Everyone still answers, and the kernel is the same process with its state.
        self.assertEqual(self.front.ping("after"), "after")
        self.assertEqual(self.front.ping("after", addr=self.agent.addr), "after")
        self.assertEqual(self.front.execute(self.kernel_id, self.pid_code)["stdout"],
                         self.daemon_pid)
        self.assertEqual([c.labels["io.sorna.kernel"] for c in self.containers_of(self.agent)],
                         [self.kernel_id])
        self.assertEqual(self.front.status()["kernels"], 1)
        # The agent's Docker pool starts its threads lazily, up to --docker-threads (4),
        # each with its own client and connections to the engine: that much may come
        # and stay. A leak per frame would be thousands.
        for process, slack in ((self.manager, 0), (self.agent, 32)):
            threads, fds = self.before[process.name]
            try:
                wait_until(lambda: resources(process.pid)[0] <= threads + min(slack, 4)
                           and resources(process.pid)[1] <= fds + slack, 10,
                           f"{process.name} back to {threads} threads and {fds} "
                           f"descriptors (now {resources(process.pid)})")
            except Exception as e:
                self.fail(f"{e}; open now: {open_files(process.pid)}")

    def test_manager(self):
        self.check("manager", run_fuzz(ZmqPeer(self.zmq, self.manager.addr, "manager"), "manager",
                                       FUZZ_SECONDS))

    def test_agent(self):
        self.check("agent", run_fuzz(ZmqPeer(self.zmq, self.agent.addr, "agent"), "agent",
                                     FUZZ_SECONDS))

    def test_repl_daemon(self):
        [path] = glob.glob(os.path.join(self.agent.tmpdir, "sorna-ipc-*", self.kernel_id,
                                        "repl"))
        self.check("daemon", run_fuzz(ReplSocket(path), "daemon", FUZZ_SECONDS))
