"""Which connection speaks for which agent.

Agent ids are public (`status` lists them), so an id alone proves nothing: any peer can
claim one. The first connection whose heartbeat claims an id holds it, together with the
agent process's `session` (a random token it draws at start and sends in heartbeats
only). While that holding is live, a heartbeat for the same id from another process is
refused; the same process on a new connection (ZMQ reconnected it) moves the holding
along. A holding ends when the agent says goodbye (a clean stop) or stays silent for the
agent timeout, as the capacity table's record does. Commands to an agent go to the
connection that holds its id, never to whoever used the id last.

With CurveZMQ an id is also bound to the agent key that first claimed it, for as long
as the manager runs: another key claiming it is refused even once its holder is gone,
until that key is revoked (no longer `key_allowed`).
"""

from dataclasses import dataclass

TOO_SOON = "too-soon"  # a heartbeat past the agent's rate: accepted, and ignored
# Agent ids bound to keys at most; allowed agent keys are few, their ids too.
MAX_BOUND_IDS = 65536


@dataclass(frozen=True)
class Refusal:
    cause: str
    error: str


@dataclass
class Holding:
    peer: bytes  # the ZMQ routing id of the connection
    session: str
    last_seen: float
    window: float = 0.0  # when the current rate window began
    beats: int = 0  # heartbeats in it


class AgentConnections:
    def __init__(self, timeout, interval, burst=4, key_allowed=None):
        """At most `burst` heartbeats of one agent count per `interval` seconds.
        `key_allowed(key)`: whether a bound key is still an allowed agent key."""
        self.timeout = timeout
        self.interval = interval
        self.burst = burst
        self.key_allowed = key_allowed
        self._holdings = {}  # agent id -> Holding
        self._agents = {}  # peer -> agent id
        self._keys = {}  # agent id -> the key it is bound to

    def claim(self, agent_id, peer, session, now, key=None):
        """Record a heartbeat; return None when it is accepted, TOO_SOON when the agent
        already sent its share of this interval (nothing to do), else the Refusal."""
        if key is not None:
            refused = self._bind(agent_id, key)
            if refused is not None:
                return refused
        held = self._holdings.get(agent_id)
        if held is not None and held.session == session and held.peer == peer:
            if now - held.window >= self.interval:
                held.window, held.beats = now, 0
            held.beats += 1
            if held.beats > self.burst:
                return TOO_SOON
            held.last_seen = now
            return None
        if held is not None and now - held.last_seen < self.timeout \
                and held.session != session:
            return Refusal(
                f"agent id {agent_id} is held by another live agent process; an agent "
                f"that restarted is accepted once the old one's heartbeats have been "
                f"missing for {self.timeout:g} s", "agent-id-taken")
        other = self._agents.get(peer)
        if other is not None and other != agent_id and other in self._holdings:
            return Refusal(f"this connection already speaks for agent {other}; one "
                           f"connection is one agent", "agent-id-taken")
        if held is not None:
            self._agents.pop(held.peer, None)
        self._holdings[agent_id] = Holding(peer, session, now, now, 1)
        self._agents[peer] = agent_id
        return None

    def _bind(self, agent_id, key):
        bound = self._keys.get(agent_id)
        if bound == key:
            return None
        if bound is not None and (self.key_allowed is None or self.key_allowed(bound)):
            return Refusal(f"agent id {agent_id} belongs to another agent key; an agent "
                           f"with a new key needs a new --agent-id (or the old key's "
                           f"revocation)", "agent-key-mismatch")
        if bound is None and len(self._keys) >= MAX_BOUND_IDS:
            self._keys = {a: k for a, k in self._keys.items()
                          if self.key_allowed is None or self.key_allowed(k)}
            if len(self._keys) >= MAX_BOUND_IDS:
                return Refusal(f"this manager has bound {MAX_BOUND_IDS} agent ids to "
                               f"keys, the most it holds", "too-many-agents")
        self._keys[agent_id] = key
        return None

    def release(self, agent_id, session):
        """The agent process `session` said goodbye: its id is free at once."""
        held = self._holdings.get(agent_id)
        if held is not None and held.session == session:
            self.forget(agent_id)

    def forget(self, agent_id):
        held = self._holdings.pop(agent_id, None)
        if held is not None and self._agents.get(held.peer) == agent_id:
            del self._agents[held.peer]

    def peer_of(self, agent_id):
        """The routing id of the connection holding `agent_id`, or None."""
        held = self._holdings.get(agent_id)
        return held.peer if held is not None else None

    def __len__(self):
        return len(self._holdings)
