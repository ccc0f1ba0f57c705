"""The Redis capacity table against real `redis-server` processes: the shared suite of
tests/test_registry.py, then what only Redis has (concurrent managers, prefixes, Redis
going away and coming back, the `--redis` and REDIS_PORT_6379_TCP_* options, a real
`twistd sorna-manager`). Skipped without redis-server, failed under
SORNA_REQUIRE_DOCKER=1 (CI)."""

import os
import time

import msgpack
import zmq
from twisted.internet import defer, reactor, task
from twisted.logger import Logger
from twisted.trial.unittest import SkipTest, TestCase

from sorna.client.api import SornaClient
from sorna.client.blocking import BlockingClient
from sorna.manager import tap
from sorna.manager.redis_registry import RedisCapacityTable, parse_redis_url
from sorna.manager.registry import MemoryCapacityTable
from sorna.proto.errors import NoCapacity
from sorna.testing.keys import secure, use_test_keys
from sorna.testing.processes import ManagerProcess, wait_until
from sorna.testing.redis import RedisServer, redis_server_path
from sorna.testing.transport import FakeNetwork
from tests.test_registry import CapacityTableTests, agent, kernel

log = Logger(namespace="tests.test_registry_redis")

PREFIX = "test:"
CALL_TIMEOUT = 0.5


def start_redis(testcase):
    """A fresh redis-server, removed at the end of the test; skip (or, under
    SORNA_REQUIRE_DOCKER=1, fail) when redis-server is not installed."""
    if redis_server_path() is None:
        reason = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("SORNA_REQUIRE_DOCKER") == "1":
            raise AssertionError(reason + " (SORNA_REQUIRE_DOCKER=1)")
        raise SkipTest(reason)
    server = RedisServer()
    testcase.addCleanup(server.remove)
    return server.start()


def keys(server, pattern="*"):
    return sorted(k.decode() for k in server.call("KEYS", pattern))


class RedisTestCase(TestCase):
    def setUp(self):
        self.redis = start_redis(self)

    def make_table(self, agent_timeout=9.0, prefix=PREFIX, start=True, **kw):
        kw.setdefault("call_timeout", CALL_TIMEOUT)
        table = RedisCapacityTable(self.redis.url, prefix, reactor, agent_timeout, **kw)
        if start:
            self.addCleanup(table.stop)
            return table.start().addCallback(lambda _: table)
        return table

    async def until_it_works(self, call, timeout):
        """Retry `call()` until it succeeds (its result) or `timeout` s pass."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await call()
            except NoCapacity:
                if time.monotonic() >= deadline:
                    raise
            await task.deferLater(reactor, 0.05, lambda: None)


class RedisCapacityTableTests(CapacityTableTests, RedisTestCase):
    """The shared suite; afterwards no key may be outside the prefix."""

    def setUp(self):
        RedisTestCase.setUp(self)
        self.addCleanup(lambda: self.assertEqual(
            [k for k in keys(self.redis) if not k.startswith(PREFIX)], []))
        self.table = RedisCapacityTable(self.redis.url, PREFIX, reactor, 9.0,
                                        call_timeout=5.0)
        self.addCleanup(self.table.stop)
        return self.table.start()

    def run_test(self, coroutine):
        return defer.Deferred.fromCoroutine(coroutine)


class RedisOnlyTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_concurrent_reserves_never_exceed_any_agents_max(self):
        """200 reserves issued at once by 8 tables (as 8 managers would), 5 connections
        each, over agents with 5, 7 and 11 slots: exactly 23 succeed."""
        tables = yield defer.gatherResults(
            [self.make_table(agent_timeout=60, poolsize=5, call_timeout=10)
             for _ in range(8)])
        # The pools open their connections in the background (start() waits for one):
        # wait for all of them, so that the reserves really race over 40 connections.
        deadline = time.monotonic() + 10
        while (self.redis.call("CLIENT", "LIST").count(b"\n") < 8 * 5
               and time.monotonic() < deadline):
            yield task.deferLater(reactor, 0.05, lambda: None)
        clients = self.redis.call("CLIENT", "LIST").count(b"\n")
        self.assertGreaterEqual(clients, 8 * 5)
        now = reactor.seconds()
        maxima = {"a5": 5, "a7": 7, "a11": 11}
        for agent_id, max_kernels in maxima.items():
            yield tables[0].heartbeat(agent(agent_id, max_kernels=max_kernels), now)
        started = time.monotonic()
        got = yield defer.gatherResults(
            [tables[i % len(tables)].reserve("python3", now) for i in range(200)])
        log.info("200 concurrent reserves over 8 tables took {ms:.1f} ms",
                 ms=(time.monotonic() - started) * 1000)
        picked = {}
        for record in got:
            if record is not None:
                picked[record.agent_id] = picked.get(record.agent_id, 0) + 1
                self.assertLessEqual(record.kernels + record.reserved, record.max_kernels)
        self.assertEqual(picked, maxima)
        self.assertEqual(got.count(None), 200 - 23)
        agents = yield tables[1].agents(now)
        self.assertEqual({a.agent_id: (a.reserved, a.free) for a in agents},
                         {a: (m, 0) for a, m in maxima.items()})

    @defer.inlineCallbacks
    def test_keys_carry_the_prefix_and_prefixes_do_not_see_each_other(self):
        one = yield self.make_table(prefix="one:")
        two = yield self.make_table(prefix="two:")
        yield one.heartbeat(agent("a", max_kernels=2), now=0)
        yield one.reserve("python3", now=0)
        yield one.add_kernel(kernel("k1", "a", session=("u", "e", "python3")))
        self.assertTrue(all(k.startswith("one:") for k in keys(self.redis)))
        self.assertEqual((yield two.agents(now=0)), [])
        self.assertIsNone((yield two.reserve("python3", now=0)))
        self.assertIsNone((yield two.get_kernel("k1")))
        self.assertIsNone((yield two.find_session(("u", "e", "python3"))))
        self.assertEqual((yield two.expire(now=100)), {})
        yield two.heartbeat(agent("a", max_kernels=1), now=0)
        self.assertIsNone((yield two.remove_kernel("k1")))
        [a1] = yield one.agents(now=0)
        [a2] = yield two.agents(now=0)
        self.assertEqual((a1.max_kernels, a1.kernels), (2, 1))
        self.assertEqual((a2.max_kernels, a2.kernels), (1, 0))
        self.assertEqual(keys(self.redis, "two:*"), ["two:agent:a", "two:agents",
                                                     "two:cand-ml:python3", "two:cand:python3"])

    @defer.inlineCallbacks
    def test_dead_kernels_and_agents_leave_no_keys(self):
        table = yield self.make_table()
        yield table.heartbeat(agent("a", max_kernels=3), now=0)
        yield table.heartbeat(agent("b", max_kernels=3), now=0)
        for n in range(3):  # placed on a, b, a
            got = yield table.reserve("python3", now=0)
            yield table.add_kernel(kernel(f"k{n}", got.agent_id,
                                          session=("u", f"e{n}", "python3")),
                                   reservation=got.reservation)
        yield table.reserve("python3", now=0, lease=10)  # on b, never ended: it expires
        self.assertEqual(len(keys(self.redis, PREFIX + "session:*")), 3)
        yield table.remove_kernel("k1")
        yield table.heartbeat(agent("b", max_kernels=3), now=8)
        dead = yield table.expire(now=9)
        self.assertEqual(sorted(k.kernel_id for k in dead["a"]), ["k0", "k2"])
        [b] = yield table.agents(now=16)  # past b's lease, and b is still alive
        self.assertEqual(b.reserved, 0)
        self.assertEqual(keys(self.redis), [f"{PREFIX}agent:b", f"{PREFIX}agents",
                                            f"{PREFIX}cand-ml:python3",
                                            f"{PREFIX}cand:python3"])
        yield table.expire(now=100)
        self.assertEqual(keys(self.redis), [])

    @defer.inlineCallbacks
    def test_redis_down_fails_every_call_within_the_timeout_with_503(self):
        table = yield self.make_table()
        yield table.heartbeat(agent("a"), now=0)
        self.redis.stop()
        calls = {
            "heartbeat": lambda: table.heartbeat(agent("a"), now=1),
            "agents": lambda: table.agents(now=1),
            "expire": lambda: table.expire(now=1),
            "reserve": lambda: table.reserve("python3", now=1),
            "release": lambda: table.release("a", "r1"),
            "add_kernel": lambda: table.add_kernel(kernel("k1", "a")),
            "get_kernel": lambda: table.get_kernel("k1"),
            "remove_kernel": lambda: table.remove_kernel("k1"),
            "find_session": lambda: table.find_session(("u", "e", "python3")),
        }
        for name, call in calls.items():
            started = time.monotonic()
            e = yield self.assertFailure(call(), NoCapacity)
            elapsed = time.monotonic() - started
            self.assertLess(elapsed, CALL_TIMEOUT + 0.5, name)
            self.assertEqual((e.code, e.error), (503, "state-unavailable"), name)
            self.assertIn(f"Redis at 127.0.0.1:{self.redis.port}", e.cause)
            self.assertIn("retry shortly", e.cause)

    @defer.inlineCallbacks
    def test_a_hanging_redis_times_out(self):
        table = yield self.make_table()
        self.redis.pause()
        self.addCleanup(self.redis.resume)
        started = time.monotonic()
        e = yield self.assertFailure(table.reserve("python3", now=0), NoCapacity)
        self.assertLess(time.monotonic() - started, CALL_TIMEOUT + 0.5)
        self.assertIn(f"no reply to reserve within {CALL_TIMEOUT:g} s", e.cause)
        self.redis.resume()
        self.assertIsNone((yield self.until_it_works(
            lambda: table.reserve("python3", now=0), timeout=5)))

    @defer.inlineCallbacks
    def test_the_same_table_works_again_once_redis_is_back(self):
        table = yield self.make_table()
        yield table.heartbeat(agent("a"), now=0)
        self.redis.stop()
        yield self.assertFailure(table.agents(now=0), NoCapacity)
        self.redis.start()  # same port, empty: nothing was saved
        started = time.monotonic()
        agents = yield self.until_it_works(lambda: table.agents(now=0), timeout=10)
        self.assertEqual(agents, [])
        self.assertLess(time.monotonic() - started, 5)
        # Scripts are loaded again (the restarted Redis forgot them).
        yield table.heartbeat(agent("a"), now=0)
        self.assertEqual((yield table.reserve("python3", now=0)).agent_id, "a")

    @defer.inlineCallbacks
    def test_a_table_started_while_redis_is_down_starts_and_catches_up(self):
        self.redis.stop()
        started = time.monotonic()
        table = yield self.make_table()
        self.assertLess(time.monotonic() - started, CALL_TIMEOUT + 0.5)
        yield self.assertFailure(table.agents(now=0), NoCapacity)
        self.redis.start()
        self.assertEqual((yield self.until_it_works(lambda: table.agents(now=0), 10)), [])

    @defer.inlineCallbacks
    def test_the_manager_replies_503_unchanged(self):
        network = FakeNetwork()
        options = tap.Options(environ={"SORNA_KEYS": use_test_keys()})
        options.parseOptions(["--listen", "127.0.0.1", "--redis", self.redis.url])
        manager = tap.makeService(options, clock=reactor, transport=network)
        manager.table.call_timeout = CALL_TIMEOUT
        yield manager.startService()
        self.addCleanup(manager.stopService)
        client = SornaClient("tcp://127.0.0.1:5001", transport=network, clock=reactor)
        self.addCleanup(client.close)
        self.redis.stop()
        e = yield self.assertFailure(client.create("python3"), NoCapacity)
        self.assertEqual((e.code, e.error), (503, "state-unavailable"))
        self.assertIn("is unreachable", e.cause)


class OptionsTests(TestCase):
    def config(self, argv, environ):
        options = tap.Options(environ=dict(environ, SORNA_KEYS=use_test_keys()))
        options.parseOptions(argv)
        return options

    def test_memory_without_redis(self):
        service = tap.makeService(self.config([], {}), clock=task.Clock(),
                                  transport=FakeNetwork())
        self.assertIsInstance(service.table, MemoryCapacityTable)

    def test_redis_option(self):
        service = tap.makeService(
            self.config(["--redis", "redis://:pw@127.0.0.1:6380/2", "--redis-prefix", "x:",
                         "--heartbeat-interval", "2"], {}),
            clock=task.Clock(), transport=FakeNetwork())
        table = service.table
        self.assertIsInstance(table, RedisCapacityTable)
        self.assertEqual((table.where, table.address["db"], table.address["password"],
                          table.prefix, table.agent_timeout),
                         ("127.0.0.1:6380", 2, "pw", "x:", 6.0))

    def test_the_default_prefix(self):
        config = self.config(["--redis", "127.0.0.1:7000"], {})
        self.assertEqual(config["redis-prefix"], "sorna:")

    def test_docker_link_variables(self):
        env = {"REDIS_PORT_6379_TCP_ADDR": "127.0.0.1", "REDIS_PORT_6379_TCP_PORT": "6390"}
        self.assertEqual(self.config([], env)["redis"], "redis://127.0.0.1:6390/0")
        env = {"REDIS_PORT_6379_TCP_ADDR": "127.0.0.1"}
        self.assertEqual(self.config([], env)["redis"], "redis://127.0.0.1:6379/0")
        self.assertEqual(self.config(["--redis", "redis://127.0.0.1:1/3"], env)["redis"],
                         "redis://127.0.0.1:1/3")

    def test_bad_urls(self):
        from twisted.python.usage import UsageError

        for url in ["rediss://127.0.0.1", "redis://127.0.0.1:99999", "redis://:1",
                    "redis://127.0.0.1/x"]:
            self.assertRaises(UsageError, self.config, ["--redis", url], {})
            self.assertRaises(ValueError, parse_redis_url, url)


class DockerLinkTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_the_tap_uses_the_linked_redis(self):
        env = {"REDIS_PORT_6379_TCP_ADDR": "127.0.0.1",
               "REDIS_PORT_6379_TCP_PORT": str(self.redis.port), "SORNA_KEYS": use_test_keys()}
        options = tap.Options(environ=env)
        options.parseOptions(["--listen", "127.0.0.1"])
        service = tap.makeService(options, clock=reactor, transport=FakeNetwork())
        yield service.startService()
        self.addCleanup(service.stopService)
        yield service.table.heartbeat(agent("a"), now=reactor.seconds())
        self.assertEqual(keys(self.redis), ["sorna:agent:a", "sorna:agents",
                                            "sorna:cand-ml:python3", "sorna:cand:python3"])


class ManagerProcessTests(TestCase):
    """A real `twistd -n sorna-manager --redis ...` and a raw pyzmq agent."""

    def setUp(self):
        self.redis = start_redis(self)
        self.zmq = zmq.Context()
        self.addCleanup(self.zmq.term)

    def start_manager(self, *args):
        manager = ManagerProcess(extra_args=["--redis", self.redis.url, *args])
        self.addCleanup(manager.remove_workdir)
        self.addCleanup(manager.stop)
        return manager.start()

    def heartbeat(self, manager, max_kernels=2, sock=None):
        if sock is None:
            sock = self.zmq.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IDENTITY, b"a1")
            secure(sock, "manager", client="agents/agent")
            sock.connect(manager.addr)
        sock.send_multipart([b"", msgpack.packb({
            "action": "heartbeat", "agent_id": "a1", "session": "a1" * 16,
            "addr": "tcp://127.0.0.1:1",
            "max_kernels": max_kernels, "kernels": {}, "langs": ["python3"]})])
        return sock

    def test_a_manager_killed_mid_create_leaks_no_slot(self):
        # create timeout 1 s and heartbeats every 0.5 s: reservations last 2 s.
        manager = self.start_manager("--create-timeout", "1", "--heartbeat-interval", "0.5")
        agent = self.heartbeat(manager, max_kernels=1)
        self.addCleanup(agent.close)
        front = self.zmq.socket(zmq.DEALER)
        front.setsockopt(zmq.LINGER, 0)
        secure(front, "manager")
        front.connect(manager.addr)
        self.addCleanup(front.close)

        def create_reaches_the_agent():
            front.send_multipart([b"", msgpack.packb({"action": "create", "lang": "python3"})])

            def asked():
                self.heartbeat(manager, max_kernels=1, sock=agent)
                while agent.poll(100):
                    command = msgpack.unpackb(agent.recv_multipart()[-1], raw=False)
                    if command.get("action") == "create_kernel":
                        return True
                return False
            return wait_until(asked, 10, "a create_kernel command at the agent")

        create_reaches_the_agent()  # the slot is reserved, and the agent never answers
        manager.kill()
        self.assertEqual(self.redis.call("ZCARD", "sorna:reservations:a1"), 1)
        manager.restart()

        def free_slots():
            self.heartbeat(manager, max_kernels=1, sock=agent)
            with BlockingClient(manager.addr, timeout=5) as client:
                agents = client.status()["agents"]
            return agents and agents[0]["free"] == 1 and agents[0]["reserved"] == 0

        wait_until(free_slots, 15, "the dead manager's reservation expiring", interval=0.3)
        create_reaches_the_agent()  # the slot serves again

    def test_a_manager_keeps_its_table_in_redis(self):
        manager = self.start_manager()
        self.assertIn(f"capacity table: Redis at 127.0.0.1:{self.redis.port}",
                      manager.log())
        with BlockingClient(manager.addr, timeout=5) as client:
            self.assertEqual(client.status()["agents"], [])
        sock = self.heartbeat(manager)
        try:
            wait_until(lambda: self.redis.call("HGET", "sorna:agent:a1", "max_kernels"),
                       10, "agent a1 appearing in Redis")
        finally:
            sock.close()
        self.assertEqual(keys(self.redis)[:2], ["sorna:agent:a1", "sorna:agents"])
        self.assertTrue(set(keys(self.redis)[2:]) <= {
            "sorna:cand-ml:python3", "sorna:cand:python3"}, keys(self.redis))
        with BlockingClient(manager.addr, timeout=5) as client:
            [a1] = client.status()["agents"]
        self.assertEqual((a1["agent_id"], a1["max_kernels"], a1["langs"]),
                         ("a1", 2, ["python3"]))
        manager.stop()
        self.assertIn("Server Shut Down.", manager.log())

        # A new manager finds the agent where the first one left it.
        again = self.start_manager()
        with BlockingClient(again.addr, timeout=5) as client:
            self.assertEqual([a["agent_id"] for a in client.status()["agents"]], ["a1"])
