"""The capacity table: which agents are alive, what they can run, which kernels they hold.

`CapacityTable` is the interface; every method returns a Deferred so that the Redis
table (`sorna.manager.redis_registry`) implements it unchanged. `MemoryCapacityTable` is
the default. Both must pass `tests/test_registry.py`.
"""

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
    reservation: str = None  # on what `reserve` returns: the id of the lease it took

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
        """Insert or refresh an AgentRecord (its reserved/kernels counts are ours)."""
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
        `exclude`: the least loaded one (spreading kernels), or with "most-loaded" the
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

    def kernels_of(self, agent_id):
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
        self._sessions = {}
        self._lost = {}
        self._leases = {}  # agent id -> {reservation id: until}

    def start(self):
        return defer.succeed(None)

    def stop(self):
        return defer.succeed(None)

    def _alive(self, agent, now):
        return now - agent.last_seen < self.agent_timeout

    def _count_leases(self, agent, now):
        leases = self._leases.get(agent.agent_id, {})
        for reservation, until in list(leases.items()):
            if until <= now:
                del leases[reservation]
        agent.reserved = len(leases)

    def heartbeat(self, agent, now):
        self._count_leases(agent, now)
        agent.kernels = sum(1 for k in self._kernels.values() if k.agent_id == agent.agent_id)
        agent.last_seen = now
        self._agents[agent.agent_id] = agent
        return defer.succeed(None)

    def agents(self, now):
        alive = [a for a in self._agents.values() if self._alive(a, now)]
        for agent in alive:
            self._count_leases(agent, now)
        return defer.succeed(alive)

    def expire(self, now):
        dead = {}
        for agent_id, agent in list(self._agents.items()):
            if not self._alive(agent, now):
                del self._agents[agent_id]
                self._leases.pop(agent_id, None)
                kernels = [k for k in self._kernels.values() if k.agent_id == agent_id]
                for k in kernels:
                    self._forget(k.kernel_id)
                dead[agent_id] = kernels
        return defer.succeed(dead)

    def reserve(self, lang, now, placement="least-loaded", lease=DEFAULT_LEASE,
                exclude=()):
        alive = [a for a in self._agents.values() if self._alive(a, now)]
        for agent in alive:
            self._count_leases(agent, now)
        candidates = [a for a in alive
                      if lang in a.langs and a.free > 0 and a.agent_id not in exclude]
        if not candidates:
            return defer.succeed(None)
        sign = -1 if placement == "most-loaded" else 1
        best = min(candidates, key=lambda a: (sign * load(a), a.agent_id))
        reservation = uuid.uuid4().hex
        self._leases.setdefault(best.agent_id, {})[reservation] = now + lease
        best.reserved += 1
        return defer.succeed(replace(best, reservation=reservation))

    def _end_lease(self, agent_id, reservation):
        leases = self._leases.get(agent_id, {})
        agent = self._agents.get(agent_id)
        if leases.pop(reservation, None) is not None and agent is not None:
            agent.reserved = max(0, agent.reserved - 1)

    def release(self, agent_id, reservation):
        self._end_lease(agent_id, reservation)
        return defer.succeed(None)

    def add_kernel(self, kernel, reservation=None):
        agent = self._agents.get(kernel.agent_id)
        if reservation is not None:
            self._end_lease(kernel.agent_id, reservation)
        if agent is not None:
            if kernel.kernel_id not in self._kernels:
                agent.kernels += 1
        self._kernels[kernel.kernel_id] = kernel
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
        agent = self._agents.get(kernel.agent_id)
        if agent is not None and agent.kernels > 0:
            agent.kernels -= 1
        if kernel.session is not None and self._sessions.get(kernel.session) == kernel_id:
            del self._sessions[kernel.session]
        return kernel

    def kernels_of(self, agent_id):
        return defer.succeed([k for k in self._kernels.values() if k.agent_id == agent_id])

    def find_session(self, session):
        return defer.succeed(self._sessions.get(tuple(session)))

    def count_user_kernels(self, user_id):
        return defer.succeed(sum(1 for k in self._kernels.values()
                                 if k.session is not None and k.session[0] == user_id))

    def mark_lost(self, kernel_ids, reason, now):
        for kernel_id in kernel_ids:
            self._lost[kernel_id] = (reason, now + LOST_TTL)
        for kernel_id, (_, until) in list(self._lost.items()):
            if until <= now:
                del self._lost[kernel_id]
        return defer.succeed(None)

    def lost(self, kernel_id, now):
        reason, until = self._lost.get(kernel_id, (None, 0))
        return defer.succeed(reason if until > now else None)
