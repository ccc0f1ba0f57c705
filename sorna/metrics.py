"""Prometheus metrics: one registry per service, served by twisted.web on the reactor
thread (`--metrics-port`, off by default, bound to the service's listen address).

Labels never carry kernel, user or agent ids: every label value comes from a small set
(actions, reply codes, error codes, languages the cluster serves), so that no peer can
make a process keep an unbounded number of series.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.twisted import MetricsResource
from twisted.application import strports
from twisted.python.usage import UsageError
from twisted.web.server import Site

# Request durations, in seconds: from a ping's microseconds to a creation's seconds.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0, 60.0)
OTHER = "other"  # the label of a value outside the known set


# The option both twistd plugins take, and its check.
METRICS_PORT_OPTION = ["metrics-port", None, None,
                       "Serve Prometheus metrics over HTTP on this port (on the --listen "
                       "address); off by default.", int]


def check_metrics_port(options):
    port = options["metrics-port"]
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"--metrics-port must be 1-65535, not {port}")


def new_registry():
    return CollectorRegistry(auto_describe=True)


def bounded(value, known):
    """`value` if it is one of `known`, else "other": a label a peer cannot inflate."""
    return value if value in known else OTHER


class RequestMetrics:
    """Requests answered by a RequestServer, by action and reply code."""

    def __init__(self, registry, service, actions):
        self.actions = frozenset(actions)
        self.answered = Counter(f"sorna_{service}_requests",
                                "Requests answered, by action and reply code",
                                ["action", "code"], registry=registry)
        self.seconds = Histogram(f"sorna_{service}_request_seconds",
                                 "Time from a request's arrival to its reply", ["action"],
                                 buckets=REQUEST_BUCKETS, registry=registry)

        self._children = {}  # (action, code) -> (count, duration): labels() locks

    def observe(self, action, code, seconds):
        children = self._children.get((action, code))
        if children is None:
            label = bounded(action, self.actions)
            children = (self.answered.labels(label, str(code)), self.seconds.labels(label))
            if label != OTHER and len(self._children) < 4096:
                self._children[action, code] = children
        children[0].inc()
        if seconds is not None:
            children[1].observe(seconds)


def metrics_service(registry, port, interface):
    """A service answering GET /metrics (any path) with the registry's text format."""
    host = interface if interface not in ("*", "") else ""
    description = f"tcp:{port}" + (f":interface={host}" if host else "")
    return strports.service(description, Site(MetricsResource(registry)))
