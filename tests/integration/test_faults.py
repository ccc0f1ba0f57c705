"""Faults injected into a real cluster: agents killed and restarted, the manager restarted
on Redis, Redis gone for a while, a client calling a manager that is not there.

Everything is real: `twistd -n` processes, `redis-server`, the Docker engine, ZMQ over
loopback. Heartbeats come every HEARTBEAT (0.5) s, so an agent is dead after 1.5 s of
silence and the manager looks for dead agents every 0.25 s. Waits poll a condition until
a deadline; the only fixed waits are the ones a scenario prescribes (Redis away for 10 s,
a manager started 1 s after a call). Measured times go to the test log
(`_trial_temp/test.log`).
"""

import signal
import threading
import time
import uuid

from twisted.python import log

from sorna.client.blocking import BlockingClient
from sorna.proto.errors import KernelNotFound, SornaError, Timeout
from sorna.testing.processes import (
    ManagerProcess, free_port, heard_since, wait_for_agent, wait_until,
)
from tests.integration import HEARTBEAT, ClusterTestCase
from tests.test_registry_redis import keys, start_redis

# An agent is declared dead 3 intervals after its last heartbeat, found by a check that
# runs every half interval: allow one interval more, and a second for the polling.
DETECTION_BOUND = 4 * HEARTBEAT + 1.0
# "Within a few heartbeats", for everything the manager learns from heartbeats.
FEW_HEARTBEATS = 10 * HEARTBEAT + 5


def listed(client):
    """Ids of the agents the manager's status lists."""
    return {a["agent_id"] for a in client.status()["agents"]}


def wait_for_heartbeat_since(manager_addr, agent_id, since, timeout):
    """Wait until the manager has heard from `agent_id` after `since`; return how long
    after `since` that was."""
    with BlockingClient(manager_addr, timeout=5) as client:
        return wait_until(lambda: heard_since(client, agent_id, since), timeout,
                          f"a new heartbeat of agent {agent_id}", interval=0.02)


def record(what, seconds):
    log.msg(f"measured: {what}: {seconds:.3f} s")


class FaultTestCase(ClusterTestCase):
    def assertLost(self, client, kernel_id, errors=("kernel-lost",)):
        error = self.error_of(client.kernel_info, kernel_id)
        self.assertIsInstance(error, KernelNotFound, repr(error))
        self.assertIn(error.error, errors, repr(error))
        return error

    def wait_forgotten(self, client, kernel_id, timeout=FEW_HEARTBEATS):
        """Wait until kernel_info of `kernel_id` answers 404; return the error."""
        def forgotten():
            try:
                client.kernel_info(kernel_id)
            except KernelNotFound as e:
                return e
            return None
        return wait_until(forgotten, timeout, f"the manager forgetting kernel {kernel_id}",
                          interval=0.1)

    def kernel_containers(self, agent, kernel_id):
        return [c for c in self.containers_of(agent)
                if c.labels.get("io.sorna.kernel") == kernel_id]

    def assertRuns(self, client, kernel_id):
        result = client.execute(kernel_id, "print(6 * 7)")
        self.assertEqual((result["stdout"], result["exceptions"]), ("42\n", []))


class AgentKilledTests(FaultTestCase):
    def test_killed_agent_is_dropped_and_its_kernels_are_lost(self):
        """SIGKILL the agent holding a session's kernel: the manager drops the agent within
        about three heartbeats, answers `kernel-lost` for its kernel, and gives the session
        a fresh kernel on the live agent. The killed agent's container outlives it; starting
        the agent again with the same id removes it."""
        manager = self.start_manager()
        agents = [self.start_agent(manager), self.start_agent(manager)]
        client = self.client(manager, timeout=10)
        kernel_id = client.get_or_create("u1", "e1", "python3")["kernel_id"]
        holder_id = client.kernel_info(kernel_id)["agent_id"]
        [holder] = [a for a in agents if a.agent_id == holder_id]
        [survivor] = [a for a in agents if a is not holder]
        self.assertEqual(len(self.kernel_containers(holder, kernel_id)), 1)

        holder.kill()
        killed = time.monotonic()
        wait_until(lambda: holder.agent_id not in listed(client), timeout=20,
                   what=f"the manager dropping killed agent {holder.agent_id}",
                   interval=0.02)
        detection = time.monotonic() - killed
        record("dead agent detection (heartbeat 0.5 s)", detection)
        self.assertLessEqual(detection, DETECTION_BOUND,
                             f"the manager took {detection:.2f} s to drop a dead agent")
        self.assertIn(survivor.agent_id, listed(client))

        # `status` hides an agent as soon as its heartbeats are 3 intervals old; the
        # expiry that forgets its kernels runs every half interval, so kernel_info may
        # know the kernel for up to that long after the agent left the status.
        error = self.wait_forgotten(client, kernel_id, timeout=HEARTBEAT / 2 + 0.5)
        self.assertEqual(error.error, "kernel-lost", repr(error))
        self.assertIn(holder.agent_id, error.cause)

        fresh = client.get_or_create("u1", "e1", "python3")
        self.destroy_later(client, fresh["kernel_id"])
        self.assertNotEqual(fresh["kernel_id"], kernel_id)
        self.assertEqual(fresh["kernel_addr"], survivor.addr)
        self.assertEqual(client.kernel_info(fresh["kernel_id"])["agent_id"],
                         survivor.agent_id)
        self.assertRuns(client, fresh["kernel_id"])

        # The dead agent's kernel still runs, unowned; its next start is what removes it.
        [orphan] = self.kernel_containers(holder, kernel_id)
        self.assertEqual(orphan.status, "running")
        holder.restart()
        self.assertEqual(self.containers_of(holder), [],
                         "the restarted agent did not remove its leftover container")
        self.assertIn(f"of kernel {kernel_id} left by an earlier run", holder.run_log())
        wait_for_agent(manager.addr, holder.agent_id, timeout=FEW_HEARTBEATS)
        self.assertLost(client, kernel_id)
        client.destroy(fresh["kernel_id"])
        self.assertEqual(self.containers_of(survivor), [])


class AgentRestartTests(FaultTestCase):
    """An agent that comes back with the same id starts clean: what it ran before is gone
    from Docker and from the manager, and new kernels work."""

    def restart_agent(self, halt):
        manager, agent = self.start_cluster()
        client = self.client(manager, timeout=10)
        old = [client.create("python3")["kernel_id"] for _ in range(2)]
        for kernel_id in old:
            self.destroy_later(client, kernel_id)
        self.assertEqual(len(self.containers_of(agent)), 2)

        halt(agent)
        agent.restart()
        self.assertEqual(self.containers_of(agent), [],
                         "containers of the agent's earlier run survived its restart")
        wait_for_agent(manager.addr, agent.agent_id, kernels=0, timeout=FEW_HEARTBEATS)
        for kernel_id in old:
            error = self.wait_forgotten(client, kernel_id)
            self.assertIn(error.error, ("kernel-lost", "kernel-not-found"), repr(error))

        kernel = client.create("python3")
        self.destroy_later(client, kernel["kernel_id"])
        self.assertEqual(kernel["kernel_addr"], agent.addr)
        self.assertRuns(client, kernel["kernel_id"])
        client.destroy(kernel["kernel_id"])
        self.assertEqual(self.containers_of(agent), [])
        return agent

    def test_restart_after_sigterm(self):
        def terminate(agent):
            agent.signal(signal.SIGTERM)
            agent.wait(timeout=30)
            self.assertTrue(agent.stopped_cleanly(), agent.log_tail())
            self.assertEqual(self.containers_of(agent), [],
                             "a stopping agent must destroy its kernels")

        agent = self.restart_agent(terminate)
        self.assertNotIn("left by an earlier run", agent.run_log())

    def test_restart_after_sigkill(self):
        def kill(agent):
            agent.kill()
            self.assertEqual(len(self.containers_of(agent)), 2,
                             "the containers outlive a killed agent")

        agent = self.restart_agent(kill)
        self.assertEqual(agent.run_log().count("left by an earlier run"), 2)


class RedisClusterTestCase(FaultTestCase):
    """A manager keeping its capacity table in a real redis-server of the test's own."""

    def setUp(self):
        super().setUp()
        self.redis = start_redis(self)
        self.prefix = f"it-{uuid.uuid4().hex[:8]}:"

    def start_redis_cluster(self):
        manager = self.start_manager(extra_args=["--redis", self.redis.url,
                                                 "--redis-prefix", self.prefix])
        agent = self.start_agent(manager)
        # Registered after the processes: runs before they stop, once kernels are gone.
        self.addCleanup(self.assertNoKernelKeys)
        return manager, agent

    def assertNoKernelKeys(self):
        """No record or session of a kernel that no longer exists. (`lost:` markers are
        kept on purpose, with an expiry, so that a lost kernel's id answers
        `kernel-lost`.)"""
        if not self.redis.alive():
            return
        left = [k for k in keys(self.redis, self.prefix + "*")
                if k[len(self.prefix):].startswith(("kernel:", "session:"))]
        self.assertEqual(left, [], "Redis keeps kernels that are gone")


class ClientLoop(threading.Thread):
    """A front-end calling `status` and `get_or_create` over and over, with its own
    retrying BlockingClient, collecting every error it sees."""

    def __init__(self, manager_addr, session):
        super().__init__(daemon=True)
        self.manager_addr = manager_addr
        self.session = session
        self.calls = 0
        self.errors = []
        self.kernel_ids = set()
        self.done = threading.Event()

    def run(self):
        with BlockingClient(self.manager_addr, timeout=30, attempt_timeout=5) as client:
            while not self.done.is_set():
                try:
                    client.status()
                    self.kernel_ids.add(client.get_or_create(*self.session)["kernel_id"])
                except SornaError as e:
                    self.errors.append(repr(e))
                self.calls += 1
                self.done.wait(0.05)

    def stop(self):
        self.done.set()
        self.join(60)


class ManagerRestartTests(RedisClusterTestCase):
    """With Redis, a manager restart loses nothing: the agent registers again by itself,
    sessions find the same kernels, the kernels keep their state, and a front-end whose
    client retries sees no error."""

    def restart_manager(self, halt, down_for=0):
        manager, agent = self.start_redis_cluster()
        client = self.client(manager)
        kernel = client.get_or_create("u1", "e1", "python3")
        self.destroy_later(client, kernel["kernel_id"])
        client.execute(kernel["kernel_id"], "x = 41")

        loop = ClientLoop(manager.addr, ("u2", "e2", "python3"))
        loop.start()

        def stop_loop():
            loop.stop()
            for kernel_id in loop.kernel_ids:
                self.destroy_later(client, kernel_id)
        self.addCleanup(stop_loop)
        wait_until(lambda: loop.calls >= 2, 30, "the client loop getting going")

        halt(manager)
        halted = time.monotonic()
        if down_for:
            wait_until(lambda: time.monotonic() - halted >= down_for, down_for + 5,
                       f"{down_for:g} s of manager downtime")
        manager.restart()
        ready = time.monotonic()
        recovery = wait_for_heartbeat_since(manager.addr, agent.agent_id, ready,
                                            timeout=FEW_HEARTBEATS)
        record(f"manager restart ({halt.__name__}, down {ready - halted:.2f} s): first "
               f"heartbeat of the agent listed", recovery)

        with BlockingClient(manager.addr, timeout=30) as fresh_client:
            again = fresh_client.get_or_create("u1", "e1", "python3")
            self.destroy_later(client, again["kernel_id"])
            self.assertEqual(again["kernel_id"], kernel["kernel_id"],
                             "the restarted manager lost the session's kernel")
            self.assertEqual(fresh_client.execute(again["kernel_id"], "x + 1")["stdout"],
                             "42\n", "the kernel did not keep its state")

        calls = loop.calls
        wait_until(lambda: loop.calls >= calls + 2, 60, "the client loop going on")
        loop.stop()
        self.assertEqual(loop.errors, [], "a retrying client saw errors during the restart")
        self.assertEqual(len(loop.kernel_ids), 1,
                         "the looping session got more than one kernel")
        self.assertEqual(len(self.containers_of(agent)), 2)
        self.assertTrue(agent.alive())
        for kernel_id in [kernel["kernel_id"], *loop.kernel_ids]:
            client.destroy(kernel_id)

    def test_manager_sigterm_and_start(self):
        def sigterm(manager):
            manager.stop()
            self.assertTrue(manager.stopped_cleanly(), manager.log_tail())

        self.restart_manager(sigterm)

    def test_manager_sigkill_and_start(self):
        def sigkill(manager):
            manager.kill()

        self.restart_manager(sigkill)

    def test_manager_down_longer_than_the_agent_timeout(self):
        """The agent cannot heartbeat while no manager listens: a manager that comes back
        after more than 3 heartbeat intervals finds every agent's last heartbeat old.
        It must give them time to reconnect rather than declare them dead at once (which
        would forget every kernel and session Redis kept for it)."""
        def sigkill(manager):
            manager.kill()

        self.restart_manager(sigkill, down_for=4 * HEARTBEAT)


class RedisOutageTests(RedisClusterTestCase):
    OUTAGE = 10.0

    def test_redis_down_for_ten_seconds(self):
        """While Redis is down, every request that needs the table gets a prompt
        `503 state-unavailable` naming Redis, and no Sorna process dies or logs a
        traceback. Once Redis is back (on the same port, empty: it persists nothing), the
        agent is listed again after a few heartbeats and kernels can be created, without
        restarting anything.

        The kernel created before the outage is still running on the agent, but the table
        that knew it is gone. The agent keeps reporting it in its heartbeats; the manager,
        which neither knows it nor is creating it, destroys it as an orphan (the documented
        reconciliation): nobody can reach it through the manager any more, and keeping it
        would hold a slot for ever. Its id then answers a plain 404 `kernel-not-found`:
        the record of why it went was in Redis too.
        """
        manager, agent = self.start_redis_cluster()
        client = self.client(manager)
        before = client.create("python3")["kernel_id"]
        self.destroy_later(client, before)

        self.redis.stop()
        down = time.monotonic()
        for request in ({"action": "create", "lang": "python3"},
                        {"action": "get_or_create", "user_id": "u1", "entry_id": "e1",
                         "lang": "python3"},
                        {"action": "status"},
                        {"action": "kernel_info", "kernel_id": before}):
            sent = time.monotonic()
            reply = self.request(manager.addr, dict(request, id=1), timeout=15)
            took = time.monotonic() - sent
            record(f"Redis down: 503 to {request['action']}", took)
            self.assertEqual((reply["reply"], reply.get("error")), (503, "state-unavailable"),
                             reply)
            self.assertIn(f"Redis at 127.0.0.1:{self.redis.port}", reply["cause"])
            self.assertLess(took, 5.0, f"{request['action']} hung for {took:.1f} s")

        def outage_over():
            self.assertTrue(manager.alive() and agent.alive(), "a Sorna process died")
            return time.monotonic() - down >= self.OUTAGE

        wait_until(outage_over, self.OUTAGE + 30, "the end of the Redis outage",
                   interval=0.2)
        self.redis.start()
        up = time.monotonic()
        wait_for_agent(manager.addr, agent.agent_id, timeout=FEW_HEARTBEATS, interval=0.05)
        record("Redis back: agent listed again", time.monotonic() - up)

        kernel = client.create("python3")
        self.destroy_later(client, kernel["kernel_id"])
        self.assertRuns(client, kernel["kernel_id"])

        wait_until(lambda: not self.kernel_containers(agent, before), FEW_HEARTBEATS,
                   f"the manager destroying orphan kernel {before}", interval=0.1)
        self.assertIn(f"destroying orphan kernel {before}", manager.log())
        error = self.error_of(client.kernel_info, before)
        self.assertEqual((error.code, error.error), (404, "kernel-not-found"), repr(error))
        client.destroy(kernel["kernel_id"])
        self.assertEqual(self.containers_of(agent), [])
        self.assertTrue(manager.alive() and agent.alive())


class ClientRetryTests(ClusterTestCase):
    """The blocking client against a manager that is not (yet) there. No Docker needed."""

    def setUp(self):
        pass  # only a manager process, made by each test

    def test_call_without_manager_times_out_at_its_deadline(self):
        addr = f"tcp://127.0.0.1:{free_port()}"
        with BlockingClient(addr, timeout=3) as client:
            started = time.monotonic()
            with self.assertRaises(Timeout) as caught:
                client.status()
            took = time.monotonic() - started
        record("status without a manager, timeout=3", took)
        self.assertGreaterEqual(took, 2.9, "gave up before its deadline")
        self.assertLessEqual(took, 5.0, "went on long after its deadline")
        self.assertEqual(caught.exception.error, "timeout")
        self.assertIn("status", caught.exception.cause)

    def test_call_succeeds_when_the_manager_starts_late(self):
        manager = ManagerProcess(port=free_port(), heartbeat_interval=HEARTBEAT)
        self.addCleanup(manager.remove_workdir)
        self.addCleanup(self._stop_cleanly, manager)
        outcome = {}
        began = threading.Event()

        def call():
            with BlockingClient(manager.addr, timeout=15) as client:
                began.set()
                started = time.monotonic()
                try:
                    outcome["status"] = client.status()
                except SornaError as e:
                    outcome["error"] = e
                outcome["took"] = time.monotonic() - started

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        began.wait(10)
        time.sleep(1.0)  # the scenario: the manager comes up 1 s into the call
        manager.start()
        caller.join(30)
        self.assertFalse(caller.is_alive(), "the call did not end")
        self.assertNotIn("error", outcome)
        self.assertEqual(outcome["status"]["agents"], [])
        record("status with a manager started 1 s late", outcome["took"])
        self.assertGreaterEqual(outcome["took"], 1.0)
