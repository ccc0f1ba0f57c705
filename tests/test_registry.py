"""The capacity table suite. Every implementation (in memory now, Redis in production)
must pass it: subclass `CapacityTableTests` and provide `make_table(agent_timeout)`."""

from twisted.trial.unittest import SynchronousTestCase

from sorna.manager.registry import AgentRecord, KernelRecord, MemoryCapacityTable


def agent(agent_id, max_kernels=2, langs=("python3",)):
    return AgentRecord(agent_id=agent_id, addr=f"tcp://{agent_id}:6001",
                       max_kernels=max_kernels, langs=list(langs), last_seen=0)


def kernel(kernel_id, agent_id, session=None, now=0.0):
    return KernelRecord(kernel_id=kernel_id, agent_id=agent_id, lang="python3",
                        addr=f"tcp://{agent_id}:6001", created_at=now, session=session)


class CapacityTableTests:
    def make_table(self, agent_timeout):
        raise NotImplementedError

    def setUp(self):
        self.table = self.make_table(agent_timeout=9.0)

    def run_(self, d):
        return self.successResultOf(d)

    def test_reserve_never_exceeds_max_kernels(self):
        self.run_(self.table.heartbeat(agent("a", max_kernels=3), now=0))
        got = [self.run_(self.table.reserve("python3", now=1)) for _ in range(5)]
        self.assertEqual([g.agent_id if g else None for g in got], ["a", "a", "a", None, None])

    def test_reserve_needs_the_language_and_a_live_agent(self):
        self.run_(self.table.heartbeat(agent("a", langs=["r"]), now=0))
        self.assertIsNone(self.run_(self.table.reserve("python3", now=1)))
        self.assertEqual(self.run_(self.table.reserve("r", now=1)).agent_id, "a")
        self.assertIsNone(self.run_(self.table.reserve("r", now=100)))  # a is dead by then

    def test_least_loaded_agent_is_chosen(self):
        self.run_(self.table.heartbeat(agent("a", max_kernels=4), now=0))
        self.run_(self.table.heartbeat(agent("b", max_kernels=4), now=0))
        picks = [self.run_(self.table.reserve("python3", now=0)).agent_id for _ in range(4)]
        self.assertEqual(sorted(picks), ["a", "a", "b", "b"])

    def test_release_gives_the_slot_back(self):
        self.run_(self.table.heartbeat(agent("a", max_kernels=1), now=0))
        self.assertIsNotNone(self.run_(self.table.reserve("python3", now=0)))
        self.assertIsNone(self.run_(self.table.reserve("python3", now=0)))
        self.run_(self.table.release("a"))
        self.assertIsNotNone(self.run_(self.table.reserve("python3", now=0)))

    def test_kernels_consume_slots_and_free_them_when_removed(self):
        self.run_(self.table.heartbeat(agent("a", max_kernels=1), now=0))
        self.run_(self.table.reserve("python3", now=0))
        self.run_(self.table.add_kernel(kernel("k1", "a")))
        self.assertIsNone(self.run_(self.table.reserve("python3", now=0)))
        [a] = self.run_(self.table.agents(now=0))
        self.assertEqual((a.kernels, a.reserved, a.free), (1, 0, 0))
        self.assertEqual(self.run_(self.table.remove_kernel("k1")).kernel_id, "k1")
        self.assertIsNone(self.run_(self.table.remove_kernel("k1")))
        self.assertIsNotNone(self.run_(self.table.reserve("python3", now=0)))

    def test_heartbeats_keep_reservations_and_counts(self):
        self.run_(self.table.heartbeat(agent("a", max_kernels=2), now=0))
        self.run_(self.table.reserve("python3", now=0))
        self.run_(self.table.reserve("python3", now=0))
        self.run_(self.table.add_kernel(kernel("k1", "a")))
        self.run_(self.table.heartbeat(agent("a", max_kernels=2), now=3))
        [a] = self.run_(self.table.agents(now=3))
        self.assertEqual((a.kernels, a.reserved, a.last_seen), (1, 1, 3))
        self.assertIsNone(self.run_(self.table.reserve("python3", now=3)))

    def test_sessions(self):
        self.run_(self.table.heartbeat(agent("a"), now=0))
        session = ("u", "e", "python3")
        self.assertIsNone(self.run_(self.table.find_session(session)))
        self.run_(self.table.add_kernel(kernel("k1", "a", session=session), reserved=False))
        self.assertEqual(self.run_(self.table.find_session(session)), "k1")
        self.assertEqual(self.run_(self.table.get_kernel("k1")).session, session)
        self.run_(self.table.remove_kernel("k1"))
        self.assertIsNone(self.run_(self.table.find_session(session)))

    def test_expire_drops_silent_agents_with_their_kernels(self):
        self.run_(self.table.heartbeat(agent("a"), now=0))
        self.run_(self.table.heartbeat(agent("b"), now=0))
        self.run_(self.table.add_kernel(kernel("k1", "a", session=("u", "e", "python3")),
                                        reserved=False))
        self.run_(self.table.heartbeat(agent("b"), now=8))
        self.assertEqual(self.run_(self.table.expire(now=8.9)), {})  # not yet 3 intervals
        dead = self.run_(self.table.expire(now=9))
        self.assertEqual(list(dead), ["a"])
        self.assertEqual([k.kernel_id for k in dead["a"]], ["k1"])
        self.assertIsNone(self.run_(self.table.get_kernel("k1")))
        self.assertIsNone(self.run_(self.table.find_session(("u", "e", "python3"))))
        self.assertEqual([a.agent_id for a in self.run_(self.table.agents(now=9))], ["b"])

    def test_kernels_of(self):
        self.run_(self.table.heartbeat(agent("a"), now=0))
        self.run_(self.table.heartbeat(agent("b"), now=0))
        self.run_(self.table.add_kernel(kernel("k1", "a"), reserved=False))
        self.run_(self.table.add_kernel(kernel("k2", "b"), reserved=False))
        self.assertEqual([k.kernel_id for k in self.run_(self.table.kernels_of("a"))], ["k1"])


class MemoryCapacityTableTests(CapacityTableTests, SynchronousTestCase):
    def make_table(self, agent_timeout):
        return MemoryCapacityTable(agent_timeout)
