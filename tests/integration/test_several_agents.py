"""One manager, several agents: where kernels go, what `sorna status` shows, per-user
quotas, and agents culling idle kernels. Real processes, real Docker, loopback only
(agents on 127.0.0.1, 127.0.0.2 and 127.0.0.3)."""

import os
import re
import subprocess
import sys
import time

import msgpack
import zmq

from sorna.proto.errors import KernelNotFound, NoCapacity, QuotaExceeded
from sorna.testing.processes import wait_for_agent, wait_until
from tests.integration import HEARTBEAT, ClusterTestCase

HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sorna_cli(*args, manager):
    return subprocess.run([sys.executable, "-m", "sorna.client.cli", "--manager", manager,
                           *args], capture_output=True, text=True, timeout=60, cwd=REPO)


class SeveralAgentsTestCase(ClusterTestCase):
    def start_agents(self, manager, count, max_kernels=2, **kw):
        return [self.start_agent(manager, max_kernels=max_kernels, **kw)
                for _ in range(count)]

    def create(self, client, **kw):
        """Create a kernel (destroyed at cleanup); return its kernel_info."""
        kernel = client.create("python3", **kw)
        self.destroy_later(client, kernel["kernel_id"])
        return client.kernel_info(kernel["kernel_id"])

    def owner(self, agents, info):
        [agent] = [a for a in agents if a.agent_id == info["agent_id"]]
        return agent


class ThreeHostsTests(SeveralAgentsTestCase):
    def test_three_agents_on_three_addresses(self):
        """Each agent binds and advertises its own loopback address; the first three
        kernels go one to each agent (least loaded first), each kernel's address is its
        agent's, and it runs there. `sorna status` shows every agent."""
        manager = self.start_manager()
        agents = [self.start_agent(manager, max_kernels=2, listen=host, advertise_host=host)
                  for host in HOSTS]
        client = self.client(manager)

        infos = [self.create(client) for _ in HOSTS]
        self.assertEqual(sorted(i["agent_id"] for i in infos),
                         sorted(a.agent_id for a in agents),
                         "the first three kernels did not go one to each agent")
        for info in infos:
            agent = self.owner(agents, info)
            self.assertEqual(info["kernel_addr"], f"tcp://{agent.listen}:{agent.port}")
            self.assertEqual([c.labels["io.sorna.kernel"] for c in self.containers_of(agent)],
                             [info["kernel_id"]])
            result = client.execute(info["kernel_id"], "print(6 * 7)")
            self.assertEqual(result["stdout"], "42\n")
            # It runs on its agent only: the others do not know it.
            for stranger in agents:
                if stranger is not agent:
                    reply = self.request(stranger.addr, {
                        "action": "execute", "id": 1, "kernel_id": info["kernel_id"],
                        "code": "1"})
                    self.assertEqual(reply["reply"], 404, reply)

        # An agent bound to 127.0.0.2 does not answer on 127.0.0.1.
        other = self.owner(agents, next(i for i in infos if i["kernel_addr"].startswith(
            "tcp://127.0.0.2:")))
        sock = self.socket(zmq.DEALER, f"tcp://127.0.0.1:{other.port}")
        sock.send_multipart([b"", msgpack.packb({"action": "ping"})])
        self.assertFalse(sock.poll(1000), "an agent answered on an address it should "
                                          "not listen on")

        for agent in agents:
            wait_for_agent(manager.addr, agent.agent_id, kernels=1, timeout=10)
        done = sorna_cli("status", manager=manager.addr)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("3 agents, 3 kernels of 6 slots; languages: ", done.stdout)
        self.assertIn("python3", done.stdout.splitlines()[0])
        for agent in agents:
            line = re.search(rf"^{re.escape(agent.agent_id)}\s+{re.escape(agent.addr)}\s+"
                             rf"1/2\s+(\d+\.\d)s\s+.*\bpython3\b", done.stdout, re.MULTILINE)
            self.assertIsNotNone(line, f"no line for {agent.agent_id} at {agent.addr} with "
                                       f"1/2 kernels:\n{done.stdout}")
            self.assertLessEqual(float(line.group(1)), 3 * HEARTBEAT,
                                 "the last heartbeat shown is too old")

        for info in infos:
            client.destroy(info["kernel_id"])
        for agent in agents:
            self.assertEqual(self.containers_of(agent), [])


class PlacementTests(SeveralAgentsTestCase):
    def test_most_loaded_packs_agents_one_after_the_other(self):
        manager = self.start_manager(extra_args=["--placement", "most-loaded"])
        agents = self.start_agents(manager, 2, max_kernels=2)
        client = self.client(manager)

        owners = [self.create(client)["agent_id"] for _ in range(4)]
        self.assertEqual(owners[0], owners[1], f"the second kernel did not join the first "
                                               f"on its agent: {owners}")
        self.assertEqual(owners[2], owners[3], owners)
        self.assertNotEqual(owners[1], owners[2], "a full agent got another kernel")
        self.assertEqual(sorted(set(owners)), sorted(a.agent_id for a in agents))
        with self.assertRaises(NoCapacity) as caught:
            client.create("python3")
        self.assertEqual(caught.exception.error, "no-capacity")


class QuotaTests(SeveralAgentsTestCase):
    def test_max_kernels_per_user(self):
        manager = self.start_manager(extra_args=["--max-kernels-per-user", "2"])
        self.start_agents(manager, 2, max_kernels=3)
        client = self.client(manager)

        def session(user, entry):
            kernel = client.get_or_create(user, entry, "python3")
            self.destroy_later(client, kernel["kernel_id"])
            return kernel

        first, second = session("u1", "e1"), session("u1", "e2")
        self.assertNotEqual(first["kernel_id"], second["kernel_id"])
        with self.assertRaises(QuotaExceeded) as caught:
            session("u1", "e3")
        self.assertEqual((caught.exception.code, caught.exception.error),
                         (429, "quota-exceeded"))
        self.assertIn("u1", caught.exception.cause)
        # The user's existing sessions are still served, and other users are unaffected.
        self.assertEqual(session("u1", "e1")["kernel_id"], first["kernel_id"])
        other = session("u2", "e1")
        self.assertEqual(client.execute(other["kernel_id"], "print(1)")["stdout"], "1\n")
        # Destroying one frees a place for the user.
        client.destroy(second["kernel_id"])
        third = session("u1", "e3")
        self.assertEqual(client.execute(third["kernel_id"], "print(3)")["stdout"], "3\n")


class IdleTimeoutTests(SeveralAgentsTestCase):
    IDLE = 2.0

    def test_idle_kernel_is_destroyed_used_kernel_survives(self):
        """With `--idle-timeout 2`, a kernel nobody uses is destroyed by its agent (the
        manager then answers `kernel-lost`), while a kernel used every 0.5 s lives on."""
        manager = self.start_manager()
        agent = self.start_agent(manager, extra_args=["--idle-timeout", str(self.IDLE)])
        client = self.client(manager)
        idle, used = self.create(client), self.create(client)
        created = time.monotonic()

        uses = 0

        def use():
            nonlocal uses
            uses += 1
            result = client.execute(used["kernel_id"], "n = globals().get('n', 0) + 1\nn")
            self.assertEqual(result["stdout"], f"{uses}\n", "the used kernel lost its state")

        def containers():
            return {c.labels["io.sorna.kernel"] for c in self.containers_of(agent)}

        def idle_gone():
            if idle["kernel_id"] in containers():
                return False
            try:
                client.kernel_info(idle["kernel_id"])
            except KernelNotFound as e:
                return e
            return False

        # Use one kernel every 0.5 s until the other has gone, and for two idle timeouts
        # in all, so that the used one has outlived the limit several times over.
        lost = None
        deadline = created + 2 * self.IDLE + 10 * HEARTBEAT + 5
        while not (lost and time.monotonic() - created >= 2 * self.IDLE):
            self.assertLess(time.monotonic(), deadline,
                            f"idle kernel {idle['kernel_id']} was not destroyed in time")
            use()
            lost = lost or idle_gone()
            time.sleep(0.5)  # the scenario: a front-end using its kernel every 0.5 s

        self.assertEqual(lost.error, "kernel-lost", repr(lost))
        self.assertIn(f"kernel {idle['kernel_id']} was idle", agent.log())
        self.assertEqual(containers(), {used["kernel_id"]})
        self.assertEqual(client.kernel_info(used["kernel_id"])["agent_id"], agent.agent_id)
        use()
        client.destroy(used["kernel_id"])
        wait_until(lambda: not containers(), 10, "the used kernel's container going")
