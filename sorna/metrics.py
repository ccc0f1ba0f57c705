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


class LabelCache:
    """`metric.labels(*values)`, looked up once per set of values (prometheus_client's
    `labels()` takes a lock every time). The values must come from small sets."""

    def __init__(self, metric):
        self.metric = metric
        self._children = {}

    def __call__(self, *values):
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


class RequestMetrics:
    """Requests answered by a RequestServer, by action and reply code."""

    def __init__(self, registry, service, actions):
        self.actions = frozenset(actions)
        self.answered = LabelCache(Counter(f"sorna_{service}_requests",
                                           "Requests answered, by action and reply code",
                                           ["action", "code"], registry=registry))
        self.seconds = LabelCache(Histogram(f"sorna_{service}_request_seconds",
                                            "Time from a request's arrival to its reply",
                                            ["action"], buckets=REQUEST_BUCKETS,
                                            registry=registry))

    def observe(self, action, code, seconds):
        action = bounded(action, self.actions)
        self.answered(action, str(code)).inc()
        if seconds is not None:
            self.seconds(action).observe(seconds)


def metrics_service(registry, port, interface):
    """A service answering GET /metrics (any path) with the registry's text format."""
    host = interface if interface not in ("*", "") else ""
    description = f"tcp:{port}" + (f":interface={host}" if host else "")
    return strports.service(description, Site(MetricsResource(registry)))
