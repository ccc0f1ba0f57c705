"""The manager's Prometheus metrics (sorna.metrics serves them)."""

from prometheus_client import Counter, Gauge, Histogram

from sorna import langs
from sorna.metrics import (
    REQUEST_BUCKETS, LabelCache, RequestMetrics, bounded, new_registry,
)
from sorna.proto import actions
from sorna.proto.errors import Timeout

LOST_REASONS = ("agent-died", "left-agent")


class ManagerMetrics:
    def __init__(self):
        self.registry = registry = new_registry()
        self.requests = RequestMetrics(registry, "manager", actions.MANAGER)
        self.heartbeats = LabelCache(Counter(
            "sorna_manager_heartbeats", "Agent heartbeats, by what became of them "
            "(accepted, too-soon, refused, leaving)", ["result"], registry=registry))
        self.creations = LabelCache(Counter(
            "sorna_manager_creations", "Kernel creations, by language and outcome "
            "(created, timeout, client-error, server-error)", ["lang", "outcome"],
            registry=registry))
        self.creation_seconds = LabelCache(Histogram(
            "sorna_manager_creation_seconds", "Time a creation took, placement and "
            "retries included", ["lang"], buckets=REQUEST_BUCKETS, registry=registry))
        self.kernels_lost = LabelCache(Counter(
            "sorna_manager_kernels_lost", "Kernels lost, by reason (agent-died, "
            "left-agent)", ["reason"], registry=registry))
        self.agents_died = Counter("sorna_manager_agents_died",
                                   "Agents declared dead after missing their heartbeats",
                                   registry=registry)
        self.agents = Gauge("sorna_manager_agents", "Live agents", registry=registry)
        self.slots = Gauge("sorna_manager_slots",
                           "Kernel slots of the live agents, by kind (capacity, kernels, "
                           "reserved, free)", ["kind"], registry=registry)
        self.warm = Gauge("sorna_manager_warm_kernels",
                          "Warm kernels the live agents report, by language", ["lang"],
                          registry=registry)

    def heartbeat(self, result):
        self.heartbeats(result).inc()

    def created(self, lang, seconds, error=None):
        lang = bounded(lang, langs.KNOWN)
        if error is None:
            outcome = "created"
        elif isinstance(error, Timeout):
            outcome = "timeout"
        else:
            outcome = "client-error" if error.code < 500 else "server-error"
        self.creations(lang, outcome).inc()
        if error is None:
            self.creation_seconds(lang).observe(seconds)

    def lost(self, reason, count=1):
        if count:
            self.kernels_lost(bounded(reason, LOST_REASONS)).inc(count)

    def listed(self, agents):
        """The gauges, from a listing of the live agents."""
        self.agents.set(len(agents))
        for kind, value in (("capacity", sum(a.max_kernels for a in agents)),
                            ("kernels", sum(a.kernels for a in agents)),
                            ("reserved", sum(a.reserved for a in agents)),
                            ("free", sum(a.free for a in agents))):
            self.slots.labels(kind).set(value)
        warm = {}
        for a in agents:
            for lang, count in (a.warm or {}).items():
                if isinstance(count, int) and lang in langs.KNOWN:
                    warm[lang] = warm.get(lang, 0) + count
        for lang in langs.KNOWN:
            self.warm.labels(lang).set(warm.get(lang, 0))
