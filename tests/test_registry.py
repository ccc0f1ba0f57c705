"""The capacity table suite. Every implementation (in memory, Redis) must pass it:
subclass `CapacityTableTests` and provide `make_table(agent_timeout)`.

The tests are `async def`s; `run_test` decides how they run. By default they must
complete at once (`successResultOf`), which holds the in-memory table to answering
synchronously, as the Clock-driven unit tests need; a table over real sockets
(tests/test_registry_redis.py) runs them on the reactor instead.
"""

import functools

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sorna.manager.registry import AgentRecord, KernelRecord, MemoryCapacityTable


def agent(agent_id, max_kernels=2, langs=("python3",), **kw):
    return AgentRecord(agent_id=agent_id, addr=f"tcp://{agent_id}:6001",
                       max_kernels=max_kernels, langs=list(langs), last_seen=0, **kw)


def kernel(kernel_id, agent_id, session=None, now=0.0):
    return KernelRecord(kernel_id=kernel_id, agent_id=agent_id, lang="python3",
                        addr=f"tcp://{agent_id}:6001", created_at=now, session=session)


def table_test(fn):
    """Mark an `async def` test of the suite: the test case runs it with `run_test`."""

    @functools.wraps(fn)
    def test(self):
        return self.run_test(fn(self))

    return test


class CapacityTableTests:
    def make_table(self, agent_timeout):
        raise NotImplementedError

    def setUp(self):
        self.table = self.make_table(agent_timeout=9.0)

    def run_test(self, coroutine):
        outcome = []
        defer.Deferred.fromCoroutine(coroutine).addBoth(outcome.append)
        if not outcome:
            self.fail("the test waits for a Deferred that has not fired: this table must "
                      "answer at once")
        if isinstance(outcome[0], Failure):
            outcome[0].raiseException()

    @table_test
    async def test_reserve_never_exceeds_max_kernels(self):
        await self.table.heartbeat(agent("a", max_kernels=3), now=0)
        got = [await self.table.reserve("python3", now=1) for _ in range(5)]
        self.assertEqual([g.agent_id if g else None for g in got], ["a", "a", "a", None, None])

    @table_test
    async def test_reserve_needs_the_language_and_a_live_agent(self):
        await self.table.heartbeat(agent("a", langs=["r"]), now=0)
        self.assertIsNone(await self.table.reserve("python3", now=1))
        self.assertEqual((await self.table.reserve("r", now=1)).agent_id, "a")
        self.assertIsNone(await self.table.reserve("r", now=100))  # a is dead by then

    @table_test
    async def test_least_loaded_agent_is_chosen(self):
        await self.table.heartbeat(agent("a", max_kernels=4), now=0)
        await self.table.heartbeat(agent("b", max_kernels=4), now=0)
        picks = [(await self.table.reserve("python3", now=0)).agent_id for _ in range(4)]
        self.assertEqual(sorted(picks), ["a", "a", "b", "b"])

    @table_test
    async def test_load_is_relative_to_max_kernels_and_ties_go_to_the_lowest_id(self):
        await self.table.heartbeat(agent("b", max_kernels=2), now=0)
        await self.table.heartbeat(agent("a", max_kernels=2), now=0)
        await self.table.heartbeat(agent("c", max_kernels=4), now=0)
        picks = [(await self.table.reserve("python3", now=0)).agent_id for _ in range(8)]
        # loads before each pick: a 0/2 b 0/2 c 0/4 -> a; c (0 < 1/2) -> ...
        self.assertEqual(picks, ["a", "b", "c", "c", "a", "b", "c", "c"])
        self.assertIsNone(await self.table.reserve("python3", now=0))

    @table_test
    async def test_reserve_returns_the_agent_with_its_new_counts(self):
        await self.table.heartbeat(agent("a", max_kernels=3), now=0)
        await self.table.add_kernel(kernel("k1", "a"))
        got = await self.table.reserve("python3", now=1)
        self.assertEqual((got.agent_id, got.addr, got.kernels, got.reserved, got.free),
                         ("a", "tcp://a:6001", 1, 1, 1))

    @table_test
    async def test_the_agents_key_goes_with_its_records(self):
        key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
        await self.table.heartbeat(agent("a", key=key), now=0)
        self.assertEqual((await self.table.reserve("python3", now=0)).key, key)
        self.assertEqual([a.key for a in await self.table.agents(now=0)], [key])
        record = kernel("k1", "a")
        record.key = key
        await self.table.add_kernel(record)
        self.assertEqual((await self.table.get_kernel("k1")).key, key)
        await self.table.heartbeat(agent("b"), now=0)  # an insecure cluster's: no key
        self.assertEqual({a.agent_id: a.key for a in await self.table.agents(now=0)},
                         {"a": key, "b": ""})

    @table_test
    async def test_release_gives_the_slot_back(self):
        await self.table.heartbeat(agent("a", max_kernels=1), now=0)
        got = await self.table.reserve("python3", now=0)
        self.assertIsNone(await self.table.reserve("python3", now=0))
        await self.table.release("a", got.reservation)
        self.assertIsNotNone(await self.table.reserve("python3", now=0))

    @table_test
    async def test_release_never_goes_below_zero_nor_invents_agents(self):
        await self.table.heartbeat(agent("a", max_kernels=1), now=0)
        got = await self.table.reserve("python3", now=0)
        await self.table.release("a", got.reservation)
        await self.table.release("a", got.reservation)
        await self.table.release("a", "unknown")
        await self.table.release("nobody", got.reservation)
        [a] = await self.table.agents(now=0)
        self.assertEqual((a.agent_id, a.reserved, a.free), ("a", 0, 1))

    @table_test
    async def test_kernels_consume_slots_and_free_them_when_removed(self):
        await self.table.heartbeat(agent("a", max_kernels=1), now=0)
        got = await self.table.reserve("python3", now=0)
        await self.table.add_kernel(kernel("k1", "a"), reservation=got.reservation)
        self.assertIsNone(await self.table.reserve("python3", now=0))
        [a] = await self.table.agents(now=0)
        self.assertEqual((a.kernels, a.reserved, a.free), (1, 0, 0))
        self.assertEqual((await self.table.remove_kernel("k1")).kernel_id, "k1")
        self.assertIsNone(await self.table.remove_kernel("k1"))
        self.assertIsNotNone(await self.table.reserve("python3", now=0))

    @table_test
    async def test_an_unreserved_kernel_leaves_reservations_alone(self):
        await self.table.heartbeat(agent("a", max_kernels=3), now=0)
        await self.table.reserve("python3", now=0)
        await self.table.add_kernel(kernel("k1", "a"))
        [a] = await self.table.agents(now=0)
        self.assertEqual((a.kernels, a.reserved, a.free), (1, 1, 1))

    @table_test
    async def test_heartbeats_keep_reservations_and_counts(self):
        await self.table.heartbeat(agent("a", max_kernels=2), now=0)
        got = await self.table.reserve("python3", now=0)
        await self.table.reserve("python3", now=0)
        await self.table.add_kernel(kernel("k1", "a"), reservation=got.reservation)
        await self.table.heartbeat(agent("a", max_kernels=2), now=3)
        [a] = await self.table.agents(now=3)
        self.assertEqual((a.kernels, a.reserved, a.last_seen), (1, 1, 3))
        self.assertIsNone(await self.table.reserve("python3", now=3))

    @table_test
    async def test_reserve_passes_over_excluded_agents(self):
        for name in "abc":
            await self.table.heartbeat(agent(name, max_kernels=2), now=0)
        got = await self.table.reserve("python3", now=0, exclude={"a", "b"})
        self.assertEqual(got.agent_id, "c")
        self.assertIsNone(await self.table.reserve("python3", now=0, exclude={"a", "b", "c"}))

    @table_test
    async def test_a_reservation_nobody_ends_expires_with_its_lease(self):
        await self.table.heartbeat(agent("a", max_kernels=1), now=0)
        got = await self.table.reserve("python3", now=0, lease=5)
        self.assertEqual(got.reservation and got.reserved, 1)
        self.assertIsNone(await self.table.reserve("python3", now=4.9))
        [a] = await self.table.agents(now=4.9)
        self.assertEqual(a.reserved, 1)
        await self.table.heartbeat(agent("a", max_kernels=1), now=5)
        [a] = await self.table.agents(now=5)
        self.assertEqual((a.reserved, a.free), (0, 1))  # the manager that took it died
        again = await self.table.reserve("python3", now=5, lease=5)
        self.assertNotEqual(again.reservation, got.reservation)
        await self.table.add_kernel(kernel("k1", "a"), reservation=got.reservation)
        [a] = await self.table.agents(now=5)
        self.assertEqual((a.kernels, a.reserved), (1, 1))  # a stale lease ends nothing

    @table_test
    async def test_heartbeats_count_kernels_recorded_before_the_agent_was_known(self):
        await self.table.add_kernel(kernel("k1", "a"))
        await self.table.heartbeat(agent("a", max_kernels=2), now=0)
        [a] = await self.table.agents(now=0)
        self.assertEqual((a.kernels, a.reserved), (1, 0))

    @table_test
    async def test_records_keep_every_field(self):
        await self.table.heartbeat(agent(
            "a", max_kernels=7, langs=["python3", "r"],
            instance={"id": "i-123", "type": "t3.large", "spot": False},
            resources={"cpus": 4, "memory_mb": 7936.5, "disks": ["/", "/tmp"]}), now=1.25)
        [a] = await self.table.agents(now=2)
        self.assertEqual(a, AgentRecord(
            agent_id="a", addr="tcp://a:6001", max_kernels=7, langs=["python3", "r"],
            last_seen=1.25, instance={"id": "i-123", "type": "t3.large", "spot": False},
            resources={"cpus": 4, "memory_mb": 7936.5, "disks": ["/", "/tmp"]},
            reserved=0, kernels=0))
        k = kernel("k1", "a", session=("ü:ser", "entry\x00", "python3"),
                   now=1700000000.123456)
        await self.table.add_kernel(k)
        self.assertEqual(await self.table.get_kernel("k1"), k)
        self.assertEqual(await self.table.heartbeat(agent("a"), now=2),
                         {"k1": 1700000000.123456})
        self.assertEqual(await self.table.remove_kernel("k1"), k)

    @table_test
    async def test_sessions(self):
        await self.table.heartbeat(agent("a"), now=0)
        session = ("u", "e", "python3")
        self.assertIsNone(await self.table.find_session(session))
        await self.table.add_kernel(kernel("k1", "a", session=session))
        self.assertEqual(await self.table.find_session(session), "k1")
        self.assertEqual(await self.table.find_session(list(session)), "k1")
        self.assertEqual((await self.table.get_kernel("k1")).session, session)
        await self.table.remove_kernel("k1")
        self.assertIsNone(await self.table.find_session(session))

    @table_test
    async def test_sessions_do_not_mix_their_parts(self):
        await self.table.heartbeat(agent("a", max_kernels=3), now=0)
        await self.table.add_kernel(kernel("k1", "a", session=("u:e", "x", "python3")))
        await self.table.add_kernel(kernel("k2", "a", session=("u", "e:x", "python3")))
        self.assertEqual(await self.table.find_session(("u:e", "x", "python3")), "k1")
        self.assertEqual(await self.table.find_session(("u", "e:x", "python3")), "k2")
        self.assertIsNone(await self.table.find_session(("u", "e", "x:python3")))

    @table_test
    async def test_removing_a_replaced_kernel_keeps_its_session_with_the_new_one(self):
        await self.table.heartbeat(agent("a"), now=0)
        session = ("u", "e", "python3")
        await self.table.add_kernel(kernel("k1", "a", session=session))
        await self.table.add_kernel(kernel("k2", "a", session=session))
        self.assertEqual(await self.table.find_session(session), "k2")
        await self.table.remove_kernel("k1")
        self.assertEqual(await self.table.find_session(session), "k2")

    @table_test
    async def test_expire_drops_silent_agents_with_their_kernels(self):
        await self.table.heartbeat(agent("a"), now=0)
        await self.table.heartbeat(agent("b"), now=0)
        await self.table.add_kernel(kernel("k1", "a", session=("u", "e", "python3")))
        await self.table.heartbeat(agent("b"), now=8)
        self.assertEqual(await self.table.expire(now=8.9), {})  # not yet 3 intervals
        dead = await self.table.expire(now=9)
        self.assertEqual(list(dead), ["a"])
        self.assertEqual([k.kernel_id for k in dead["a"]], ["k1"])
        self.assertIsNone(await self.table.get_kernel("k1"))
        self.assertIsNone(await self.table.find_session(("u", "e", "python3")))
        self.assertEqual([a.agent_id for a in await self.table.agents(now=9)], ["b"])
        self.assertEqual(await self.table.heartbeat(agent("a"), now=10), {})

    @table_test
    async def test_a_dead_agent_that_beats_again_is_alive(self):
        await self.table.heartbeat(agent("a"), now=0)
        self.assertEqual(await self.table.agents(now=20), [])
        await self.table.heartbeat(agent("a"), now=20)
        self.assertEqual([a.agent_id for a in await self.table.agents(now=20)], ["a"])
        self.assertEqual(await self.table.expire(now=20), {})

    @table_test
    async def test_a_heartbeat_returns_the_ages_of_the_agents_kernels(self):
        self.assertEqual(await self.table.heartbeat(agent("a"), now=0), {})
        await self.table.heartbeat(agent("b"), now=0)
        await self.table.add_kernel(kernel("k1", "a", now=2.5))
        await self.table.add_kernel(kernel("k2", "b"))
        self.assertEqual(await self.table.heartbeat(agent("a"), now=3), {"k1": 2.5})
        await self.table.remove_kernel("k1")
        self.assertEqual(await self.table.heartbeat(agent("a"), now=4), {})


    @table_test
    async def test_agents_with_a_warm_kernel_of_the_language_come_first(self):
        await self.table.heartbeat(agent("a", max_kernels=4), now=0)
        await self.table.heartbeat(agent("b", max_kernels=4, langs=["python3", "r"],
                                         warm={"python3": 2, "r": 1}), now=0)
        picks = [(await self.table.reserve("python3", now=0)).agent_id for _ in range(4)]
        # b's two warm kernels are taken, then load decides (b holds 2, a 0).
        self.assertEqual(picks, ["b", "b", "a", "a"])
        [a, b] = await self.table.agents(now=0)
        self.assertEqual(b.warm, {"python3": 0, "r": 1})
        self.assertEqual((await self.table.reserve("r", now=0)).agent_id, "b")
        await self.table.heartbeat(agent("b", max_kernels=4, langs=["python3", "r"],
                                         warm={"python3": 1}), now=1)
        self.assertEqual((await self.table.reserve("python3", now=1,
                                                   placement="most-loaded")).agent_id, "b")

    async def _check_counts(self, now, model):
        for a in await self.table.agents(now):
            leases = [1 for agent_id, _, until in model["leases"]
                      if agent_id == a.agent_id and until > now]
            kernels = [1 for agent_id in model["kernels"].values() if agent_id == a.agent_id]
            self.assertEqual((a.reserved, a.kernels), (len(leases), len(kernels)), a.agent_id)

    async def _expected(self, lang, now, placement, exclude):
        sign = -1 if placement == "most-loaded" else 1
        candidates = [a for a in await self.table.agents(now)
                      if lang in a.langs and a.free > 0 and a.agent_id not in exclude]
        if not candidates:
            return None
        return min(candidates, key=lambda a: (a.warm.get(lang, 0) <= 0,
                                              sign * (a.kernels + a.reserved) / a.max_kernels,
                                              a.agent_id)).agent_id

    @table_test
    async def test_random_operations_keep_counts_and_choose_as_a_scan_would(self):
        """Tables may place without scanning (heaps, sorted sets): a random mix of
        operations must keep the counts a plain model keeps and choose what a scan of
        `agents()` would."""
        import random
        rng = random.Random(1234)
        ids = [f"a{i}" for i in range(12)]
        now, serial = 0.0, 0
        model = {"leases": [], "kernels": {}, "seen": {}}
        for step in range(1500):
            op = rng.random()
            if op < 0.2:
                agent_id = rng.choice(ids)
                await self.table.heartbeat(agent(
                    agent_id, max_kernels=rng.randint(1, 4),
                    langs=rng.choice([["python3"], ["python3", "r"], ["r"]]),
                    warm={"python3": rng.randint(0, 2)}), now=now)
                model["seen"][agent_id] = now
            elif op < 0.6:
                lang = rng.choice(["python3", "r"])
                placement = rng.choice(["least-loaded", "most-loaded"])
                exclude = set(rng.sample(ids, rng.randint(0, 2)))
                await self._check_counts(now, model)
                want = await self._expected(lang, now, placement, exclude)
                lease = rng.choice([1.0, 5.0])
                got = await self.table.reserve(lang, now=now, placement=placement,
                                               exclude=exclude, lease=lease)
                self.assertEqual(got.agent_id if got else None, want, f"step {step}")
                if got:
                    model["leases"].append((got.agent_id, got.reservation, now + lease))
            elif op < 0.75 and model["leases"]:
                agent_id, reservation, until = model["leases"].pop(
                    rng.randrange(len(model["leases"])))
                serial += 1
                if rng.random() < 0.5:
                    await self.table.release(agent_id, reservation)
                elif agent_id in model["seen"]:
                    await self.table.add_kernel(kernel(f"k{serial}", agent_id, now=now),
                                                reservation)
                    model["kernels"][f"k{serial}"] = agent_id
            elif op < 0.85 and model["kernels"]:
                kernel_id = rng.choice(sorted(model["kernels"]))
                await self.table.remove_kernel(kernel_id)
                del model["kernels"][kernel_id]
            elif op < 0.95:
                now += rng.choice([0.5, 2.0])
            else:
                await self.table.expire(now)
                dead = {a for a, seen in model["seen"].items() if now - seen >= 9.0}
                model["leases"] = [x for x in model["leases"] if x[0] not in dead]
                model["kernels"] = {k: a for k, a in model["kernels"].items()
                                    if a not in dead}
                for agent_id in dead:
                    del model["seen"][agent_id]

    @table_test
    async def test_most_loaded_packs_kernels(self):
        await self.table.heartbeat(agent("a", max_kernels=2), now=0)
        await self.table.heartbeat(agent("b", max_kernels=2), now=0)
        picks = [(await self.table.reserve("python3", now=0, placement="most-loaded")).agent_id
                 for _ in range(4)]
        self.assertEqual(picks, ["a", "a", "b", "b"])

    @table_test
    async def test_user_kernels_are_counted(self):
        await self.table.heartbeat(agent("a", max_kernels=5), now=0)
        await self.table.add_kernel(kernel("k1", "a", session=("u", "e1", "python3")))
        await self.table.add_kernel(kernel("k2", "a", session=("u", "e2", "python3")))
        await self.table.add_kernel(kernel("k3", "a", session=("v", "e1", "python3")))
        await self.table.add_kernel(kernel("k4", "a"))
        self.assertEqual(await self.table.count_user_kernels("u"), 2)
        self.assertEqual(await self.table.count_user_kernels("nobody"), 0)
        await self.table.remove_kernel("k1")
        self.assertEqual(await self.table.count_user_kernels("u"), 1)
        await self.table.expire(now=100)
        self.assertEqual(await self.table.count_user_kernels("u"), 0)

    @table_test
    async def test_lost_kernels_are_remembered_for_a_while(self):
        self.assertIsNone(await self.table.lost("k1", now=0))
        await self.table.mark_lost(["k1", "k2"], "its agent a died", now=0)
        self.assertEqual(await self.table.lost("k2", now=10), "its agent a died")
        await self.table.mark_lost([], "nothing", now=0)


class MemoryCapacityTableTests(CapacityTableTests, SynchronousTestCase):
    def make_table(self, agent_timeout):
        return MemoryCapacityTable(agent_timeout)

    def test_lost_entries_expire(self):
        self.successResultOf(self.table.mark_lost(["k1"], "gone", now=0))
        self.assertIsNone(self.successResultOf(self.table.lost("k1", now=3601)))
