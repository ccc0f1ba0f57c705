"""Warm pools, with the in-memory cluster: fake Docker engine, real REPL executor, Clock."""

from twisted.internet import task
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from sorna.agent import tap as agent_tap
from sorna.agent.pools import parse_warm_pools
from sorna.proto.errors import SornaError
from sorna.testing.cluster import FakeCluster


class ParseTests(SynchronousTestCase):
    def test_languages_and_counts(self):
        self.assertEqual(parse_warm_pools("python3=2, nodejs=1,r=0"),
                         {"python3": 2, "nodejs": 1})
        for off in ("0", "", "none", "off"):
            self.assertEqual(parse_warm_pools(off), {})

    def test_bad_settings_say_what_is_wrong(self):
        for text, words in [("python3", "LANG=N"), ("python3=x", "LANG=N"),
                            ("py/3=1", "LANG=N"), ("a=1,a=2", "twice"),
                            ("python3=65", "at most 64")]:
            with self.assertRaises(ValueError) as e:
                parse_warm_pools(text)
            self.assertIn(words, str(e.exception))

    def test_agent_option(self):
        options = agent_tap.Options()
        options.parseOptions(["--manager-addr", "tcp://127.0.0.1:5001"])
        self.assertEqual(options["warm-pool"], {"python3": 2})  # the default
        with self.assertRaises(usage.UsageError) as e:
            agent_tap.Options().parseOptions(["--manager-addr", "tcp://127.0.0.1:5001",
                                              "--warm-pool", "python3"])
        self.assertIn("--warm-pool", str(e.exception))


class WarmPoolTests(SynchronousTestCase):
    max_kernels = 3

    def setUp(self):
        self.clock = task.Clock()
        self.cluster = FakeCluster(self.clock, max_kernels=self.max_kernels,
                                   agent_argv=["--warm-pool", "python3=2"])
        self.cluster.start()
        self.agent = self.cluster.agents[0]
        self.host = self.cluster.hosts[0]
        self.client = self.cluster.client(timeout=10)

    def tearDown(self):
        self.client.close()
        self.successResultOf(self.cluster.stop())
        self.assertEqual(self.host.running(), [], "the pools' kernels outlived the agent")

    def containers(self):
        return {c.id for c in self.host.running()}

    def error(self, d):
        return self.failureResultOf(d, SornaError).value

    def test_pools_fill_at_start_and_show_in_status(self):
        self.assertEqual(len(self.host.running()), 2)
        self.assertEqual(self.agent.kernels.pools.counts(), {"python3": 2})
        self.assertEqual(self.agent.kernels.running(), {})  # not users' kernels
        self.clock.advance(3)
        [agent] = self.successResultOf(self.client.status())["agents"]
        self.assertEqual((agent["warm"], agent["kernels"], agent["free"]),
                         ({"python3": 2}, 0, 3))

    def test_a_create_gets_a_warm_kernel_and_the_pool_refills(self):
        warm = self.containers()
        kernel = self.successResultOf(self.client.create("python3"))
        kid = kernel["kernel_id"]
        [mine] = [k for k in self.agent.kernels._kernels.values() if k.kernel_id == kid]
        self.assertIn(mine.container_id, warm)
        self.assertEqual(self.successResultOf(self.client.execute(kid, "x = 6\nx * 7"))[
            "stdout"], "42\n")
        # One slot is the user's; the pool may use the other two.
        self.assertEqual(len(self.host.running()), 3)
        self.assertEqual(self.agent.kernels.pools.counts(), {"python3": 2})
        self.assertEqual(self.agent.kernels.running(), {kid: "python3"})

    def test_a_used_kernel_is_destroyed_never_pooled_again(self):
        kid = self.successResultOf(self.client.create("python3"))["kernel_id"]
        [mine] = [k.container_id for k in self.agent.kernels._kernels.values()
                  if k.kernel_id == kid]
        self.successResultOf(self.client.destroy(kid))
        self.assertNotIn(mine, self.containers())
        self.clock.advance(3)
        self.assertEqual(len(self.host.running()), 2)
        self.assertEqual(self.agent.kernels.pools.counts(), {"python3": 2})

    def test_pooled_kernels_never_make_a_create_fail(self):
        kids = [self.successResultOf(self.client.create("python3"))["kernel_id"]
                for _ in range(self.max_kernels)]
        self.assertEqual(len(set(kids)), self.max_kernels)
        self.assertEqual(len(self.host.running()), self.max_kernels)
        self.assertEqual(self.agent.kernels.pools.counts(), {})
        self.assertEqual(self.error(self.client.create("python3")).code, 503)
        for kid in kids:
            self.assertEqual(self.successResultOf(self.client.execute(kid, "1+1"))["stdout"],
                             "2\n")

    def test_a_cold_create_destroys_a_warm_kernel_to_make_room(self):
        agent = self.agent.kernels
        agent.create("A" * 22, "python3")  # takes a warm one; the pool refills to 2
        self.assertEqual(len(self.host.running()), 3)
        d = agent.create("B" * 22, "python3", {"memory_mb": 64})
        self.successResultOf(d)  # warm, with its memory lowered
        self.assertEqual(len(self.host.running()), 3)
        # No warm kernel has the java image: a warm python3 kernel gives its slot.
        self.host.docker.add_image("sorna/kernel-java", {"io.sorna.lang": "java"})
        self.successResultOf(agent.refresh_images())
        self.successResultOf(agent.create("C" * 22, "java"))
        self.assertEqual(len(self.host.running()), 3)
        self.assertEqual(sorted(agent.running().values()), ["java", "python3", "python3"])

    def test_lower_memory_is_applied_to_the_running_warm_container(self):
        warm = self.containers()
        kernel = self.successResultOf(self.client.create("python3",
                                                         limits={"memory_mb": 64,
                                                                 "exec_timeout": 7}))
        [mine] = [k for k in self.agent.kernels._kernels.values()
                  if k.kernel_id == kernel["kernel_id"]]
        self.assertIn(mine.container_id, warm)
        config = self.host.docker.containers.get(mine.container_id).attrs["HostConfig"]
        self.assertEqual((config["Memory"], config["MemorySwap"]), (64 << 20, 64 << 20))
        self.assertEqual(mine.limits, {"memory_mb": 64, "exec_timeout": 7})
        self.assertIs(mine.runs.limits, mine.limits)

    def test_a_warm_kernel_that_cannot_take_the_limit_gives_way_to_a_cold_start(self):
        warm = self.containers()
        original = self.agent.kernels.containers.limit_memory

        def refuse(container_id, memory_mb):
            raise RuntimeError("the engine refused")
        self.agent.kernels.containers.limit_memory = refuse
        self.addCleanup(setattr, self.agent.kernels.containers, "limit_memory", original)
        kernel = self.successResultOf(self.client.create("python3",
                                                         limits={"memory_mb": 64}))
        [mine] = [k for k in self.agent.kernels._kernels.values()
                  if k.kernel_id == kernel["kernel_id"]]
        self.assertNotIn(mine.container_id, warm)
        self.assertEqual(self.host.docker.containers.get(mine.container_id).kwargs[
            "mem_limit"], "64m")
        self.assertEqual(len(self.host.running()), 3)

    def test_warm_kernels_are_no_ones_until_handed_out(self):
        [pool_id, _] = [k.kernel_id for k in self.agent.kernels.pooled()]
        for d in (self.agent.kernels.execute(pool_id, "1"),
                  self.agent.kernels.destroy(pool_id)):
            self.assertEqual(self.error(d).code, 404)
        self.clock.pump([1] * 12)  # heartbeats: the manager destroys no orphan
        self.assertEqual(len(self.host.running()), 2)
        self.assertEqual(self.agent.kernels.gone(), {})

    def test_a_dead_warm_kernel_is_replaced_silently(self):
        [first, second] = self.host.running()
        first.die()
        self.clock.advance(3)
        self.assertNotIn(first.id, self.containers())
        self.assertIn(second.id, self.containers())
        self.assertEqual(self.agent.kernels.pools.counts(), {"python3": 2})
        self.assertEqual(self.agent.kernels.gone(), {})

    def test_a_rebuilt_image_replaces_the_warm_kernels(self):
        before = self.containers()
        self.host.docker.add_image("sorna/kernel-python3", {
            "io.sorna.lang": "python3", "io.sorna.memory": "256m"})
        self.clock.advance(3)
        self.assertEqual(len(self.host.running()), 2)
        self.assertFalse(before & self.containers())
        kernel = self.successResultOf(self.client.create("python3"))
        self.assertEqual(self.successResultOf(
            self.client.execute(kernel["kernel_id"], "1+1"))["stdout"], "2\n")

    def test_a_failing_start_is_retried_at_the_next_interval_only(self):
        self.successResultOf(self.agent.stopService())
        self.assertEqual(self.host.running(), [])
        self.host.docker.fail_next_run = True
        self.agent.startService()
        # The first start failed; the pool waits for the next reap interval.
        self.assertEqual(len(self.host.running()), 0)
        self.clock.advance(3)
        self.assertEqual(len(self.host.running()), 2)

    def test_shutdown_destroys_warm_kernels_and_a_restart_rebuilds_them(self):
        self.successResultOf(self.agent.stopService())
        self.assertEqual(self.host.running(), [])
        self.agent.startService()
        self.assertEqual(self.agent.kernels.pools.counts(), {"python3": 2})
