"""The capacity table: which agents are alive, what they can run, which kernels they hold.

`CapacityTable` is the interface; every method returns a Deferred so that the Redis
table (`sorna.manager.redis_registry`) implements it unchanged. `MemoryCapacityTable` is
the default. Both must pass `tests/test_registry.py`.
"""

import heapq
import uuid
from dataclasses import asdict, dataclass, field, replace

from twisted.internet import defer


@dataclass
class AgentRecord:
    agent_id: str
    addr: str
    max_kernels: int
    langs: list
    last_seen: float
    instance: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)
    reserved: int = 0  # slots promised to creations in flight (live leases)
    kernels: int = 0  # kernels of this agent in the table
    aliases: dict = field(default_factory=dict)  # lang -> [alias], from its images
    # lang -> ready kernels in its warm pools, as of its last heartbeat less the
    # reservations since (each is likely to take one)
    warm: dict = field(default_factory=dict)
    reservation: str = None  # on what `reserve` returns: the id of the lease it took
    key: str = ""  # the CurveZMQ public key (Z85) it registered with; "" when insecure

    @property
    def free(self):
        return self.max_kernels - self.kernels - self.reserved

    def as_dict(self):
        return asdict(self)


@dataclass
class KernelRecord:
    kernel_id: str
    agent_id: str
    lang: str
    addr: str
    created_at: float
    session: tuple = None  # (user_id, entry_id, lang) for get_or_create kernels
    key: str = ""  # its agent's public key: what a front-end needs to reach `addr`

    def as_dict(self):
        return asdict(self)


PLACEMENTS = ("least-loaded", "most-loaded")

# How long the table remembers why a kernel was lost, so that its id answers
# "kernel lost" rather than a bare "no such kernel".
LOST_TTL = 3600.0

# How long a reserved slot stays promised without its kernel being recorded: a manager
# that dies between `reserve` and `add_kernel`/`release` must not leak the slot. The
# manager asks for its create timeout plus a margin.
DEFAULT_LEASE = 90.0


def load(agent):
    return (agent.kernels + agent.reserved) / agent.max_kernels


class CapacityTable:
    """Interface. `now` is always passed in, from the manager's injected clock."""

    def start(self):
        """Open connections (the manager calls it before it listens); a Deferred."""
        raise NotImplementedError

    def stop(self):
        """Close connections (the manager calls it once its socket is closed)."""
        raise NotImplementedError

    def heartbeat(self, agent, now):
        """Insert or refresh an AgentRecord (its reserved/kernels counts are ours).
        Returns {kernel_id: created_at} of the agent's kernels, which the heartbeat is
        checked against (one call: a heartbeat costs one round trip to Redis)."""
        raise NotImplementedError

    def agents(self, now):
        """Live agents, as AgentRecords."""
        raise NotImplementedError

    def expire(self, now):
        """Drop agents silent for longer than the timeout; return their ids and kernels."""
        raise NotImplementedError

    def reserve(self, lang, now, placement="least-loaded", lease=DEFAULT_LEASE,
                exclude=()):
        """Atomically take one slot on a live agent serving `lang` with room, not in
        `exclude`. Agents with a warm kernel of `lang` come first (and the reservation
        counts one of their warm kernels as taken, until their next heartbeat); among
        those equal, the least loaded one (spreading kernels), or with "most-loaded" the
        fullest one (packing them onto few hosts). Ties go to the lowest agent id. The
        slot is a lease: it counts as reserved until `now + lease`, unless released or
        consumed before.

        Returns the AgentRecord (its `reservation` names the lease), or None when no
        live agent with that language has room.
        """
        raise NotImplementedError

    def release(self, agent_id, reservation):
        """Give back a slot taken by `reserve` whose kernel was not created."""
        raise NotImplementedError

    def add_kernel(self, kernel, reservation=None):
        """Record a created kernel; with a `reservation` it consumes that lease."""
        raise NotImplementedError

    def get_kernel(self, kernel_id):
        raise NotImplementedError

    def remove_kernel(self, kernel_id):
        """Forget a kernel and its session; return its record or None."""
        raise NotImplementedError

    def find_session(self, session):
        """The kernel id bound to a (user_id, entry_id, lang) session, or None."""
        raise NotImplementedError

    def count_user_kernels(self, user_id):
        """How many session kernels `user_id` holds (for the per-user quota)."""
        raise NotImplementedError

    def mark_lost(self, kernel_ids, reason, now):
        """Remember, for LOST_TTL seconds, why these kernels are gone."""
        raise NotImplementedError

    def lost(self, kernel_id, now):
        """Why a kernel was lost, or None."""
        raise NotImplementedError


class MemoryCapacityTable(CapacityTable):
    def __init__(self, agent_timeout):
        self.agent_timeout = agent_timeout
        self._agents = {}
        self._kernels = {}
        self._by_agent = {}  # agent id -> {kernel id}: heartbeats cost O(its kernels)
        self._sessions = {}
        self._lost = {}
        self._leases = {}  # agent id -> {reservation id: until}
        self._lease_ends = []  # heap of (until, agent id, reservation id)
        # Placement without a scan: per (lang, placement), a heap of (key, version,
        # agent id); a change to an agent pushes a new entry, and entries whose version
        # is not the agent's current one are dropped when they come to the top.
        self._choices = {}
        self._versions = {}
        self._version = 0

    def start(self):
        return defer.succeed(None)

    def stop(self):
        return defer.succeed(None)

    def _alive(self, agent, now):
        return now - agent.last_seen < self.agent_timeout

    def _expire_leases(self, now):
        ends = self._lease_ends
        while ends and ends[0][0] <= now:
            until, agent_id, reservation = heapq.heappop(ends)
            leases = self._leases.get(agent_id, {})
            if leases.get(reservation) == until:
                del leases[reservation]
                self._changed(agent_id)

    @staticmethod
    def _key(agent, lang, placement):
        sign = -1 if placement == "most-loaded" else 1
        return (agent.warm.get(lang, 0) <= 0, sign * load(agent), agent.agent_id)

    def _changed(self, agent_id):
        """Recount an agent's reservations and give it fresh places in the heaps."""
        agent = self._agents.get(agent_id)
        self._version += 1
        self._versions[agent_id] = self._version
        if agent is None:
            return
        agent.reserved = len(self._leases.get(agent_id, ()))
        for (lang, placement), heap in self._choices.items():
            if lang in agent.langs:
                heapq.heappush(heap, (self._key(agent, lang, placement), self._version,
                                      agent_id))
                if len(heap) > 2 * len(self._agents) + 64:
                    self._choices[(lang, placement)] = self._heap(lang, placement)

    def _heap(self, lang, placement):
        heap = [(self._key(a, lang, placement), self._versions[a.agent_id], a.agent_id)
                for a in self._agents.values() if lang in a.langs]
        heapq.heapify(heap)
        return heap

    def heartbeat(self, agent, now):
        self._expire_leases(now)
        agent.kernels = len(self._by_agent.get(agent.agent_id, ()))
        agent.last_seen = now
        self._agents[agent.agent_id] = agent
        self._changed(agent.agent_id)
        return defer.succeed({k: self._kernels[k].created_at
                              for k in self._by_agent.get(agent.agent_id, ())})

    def agents(self, now):
        self._expire_leases(now)
        return defer.succeed([a for a in self._agents.values() if self._alive(a, now)])

    def expire(self, now):
        dead = {}
        for agent_id, agent in list(self._agents.items()):
            if not self._alive(agent, now):
                del self._agents[agent_id]
                self._leases.pop(agent_id, None)
                self._changed(agent_id)
                kernels = self._kernels_of(agent_id)
                for k in kernels:
                    self._forget(k.kernel_id)
                dead[agent_id] = kernels
        return defer.succeed(dead)

    def reserve(self, lang, now, placement="least-loaded", lease=DEFAULT_LEASE,
                exclude=()):
        self._expire_leases(now)
        heap = self._choices.get((lang, placement))
        if heap is None:
            heap = self._choices[(lang, placement)] = self._heap(lang, placement)
        passed_over, best = [], None
        while heap:
            _, version, agent_id = heap[0]
            agent = self._agents.get(agent_id)
            if (agent is None or version != self._versions.get(agent_id)
                    or not self._alive(agent, now) or agent.free <= 0):
                # Stale, dead or full: a heartbeat or a freed slot pushes it again.
                heapq.heappop(heap)
            elif agent_id in exclude:
                passed_over.append(heapq.heappop(heap))
            else:
                best = agent
                break
        for entry in passed_over:
            heapq.heappush(heap, entry)
        if best is None:
            return defer.succeed(None)
        reservation = uuid.uuid4().hex
        self._leases.setdefault(best.agent_id, {})[reservation] = now + lease
        heapq.heappush(self._lease_ends, (now + lease, best.agent_id, reservation))
        if best.warm.get(lang, 0) > 0:
            best.warm = dict(best.warm, **{lang: best.warm[lang] - 1})
        self._changed(best.agent_id)
        return defer.succeed(replace(best, reservation=reservation))

    def _end_lease(self, agent_id, reservation):
        """Whether the lease was still held (then the agent's places must change)."""
        return self._leases.get(agent_id, {}).pop(reservation, None) is not None

    def release(self, agent_id, reservation):
        if self._end_lease(agent_id, reservation):
            self._changed(agent_id)
        return defer.succeed(None)

    def add_kernel(self, kernel, reservation=None):
        agent = self._agents.get(kernel.agent_id)
        changed = reservation is not None and self._end_lease(kernel.agent_id, reservation)
        if agent is not None and kernel.kernel_id not in self._kernels:
            agent.kernels += 1
            changed = True
        if changed:  # once: a placement turns a lease into a kernel, one new place
            self._changed(kernel.agent_id)
        old = self._kernels.get(kernel.kernel_id)
        if old is not None and old.agent_id != kernel.agent_id:
            self._by_agent.get(old.agent_id, set()).discard(kernel.kernel_id)
        self._kernels[kernel.kernel_id] = kernel
        self._by_agent.setdefault(kernel.agent_id, set()).add(kernel.kernel_id)
        if kernel.session is not None:
            self._sessions[kernel.session] = kernel.kernel_id
        return defer.succeed(kernel)

    def get_kernel(self, kernel_id):
        return defer.succeed(self._kernels.get(kernel_id))

    def remove_kernel(self, kernel_id):
        return defer.succeed(self._forget(kernel_id))

    def _forget(self, kernel_id):
        kernel = self._kernels.pop(kernel_id, None)
        if kernel is None:
            return None
        held = self._by_agent.get(kernel.agent_id)
        if held is not None:
            held.discard(kernel_id)
            if not held:
                del self._by_agent[kernel.agent_id]
        agent = self._agents.get(kernel.agent_id)
        if agent is not None and agent.kernels > 0:
            agent.kernels -= 1
            self._changed(kernel.agent_id)
        if kernel.session is not None and self._sessions.get(kernel.session) == kernel_id:
            del self._sessions[kernel.session]
        return kernel

    def _kernels_of(self, agent_id):
        return [self._kernels[k] for k in sorted(self._by_agent.get(agent_id, ()))]

    def find_session(self, session):
        return defer.succeed(self._sessions.get(tuple(session)))

    def count_user_kernels(self, user_id):
        return defer.succeed(sum(1 for k in self._kernels.values()
                                 if k.session is not None and k.session[0] == user_id))

    def mark_lost(self, kernel_ids, reason, now):
        # Entries stay in the order they end (re-marked ones move to the back), so the
        # expired ones are at the front: a call costs what it adds and what has ended.
        for kernel_id in kernel_ids:
            self._lost.pop(kernel_id, None)
            self._lost[kernel_id] = (reason, now + LOST_TTL)
        while self._lost:
            kernel_id, (_, until) = next(iter(self._lost.items()))
            if until > now:
                break
            del self._lost[kernel_id]
        return defer.succeed(None)

    def lost(self, kernel_id, now):
        reason, until = self._lost.get(kernel_id, (None, 0))
        return defer.succeed(reason if until > now else None)
