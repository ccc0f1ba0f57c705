"""The agent's Prometheus metrics (sorna.metrics serves them)."""

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from sorna import langs
from sorna.metrics import LabelCache, RequestMetrics, bounded, new_registry
from sorna.proto import actions

EXECUTION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                     10.0, 30.0, 60.0, 300.0)
# How runs end besides `finished`, and why kernels are destroyed: the agent's own error
# codes. Whatever else a daemon says counts as "other".
RUN_ENDS = ("finished", "exec-timeout", "input-timeout", "restarted", "kernel-died",
            "kernel-not-found", "kernel-busy", "internal-error")
DEATHS = ("kernel-died", "exec-timeout", "restart-failed", "start-timeout")


class AgentMetrics:
    def __init__(self, kernels):
        self.registry = registry = new_registry()
        self.requests = RequestMetrics(registry, "agent", actions.AGENT)
        self.executions = LabelCache(Counter(
            "sorna_agent_executions", "Runs ended, by language and how (finished, or the "
            "error that ended them)", ["lang", "outcome"], registry=registry))
        self.execution_seconds = LabelCache(Histogram(
            "sorna_agent_execution_seconds", "Time from a run's start at the daemon to its "
            "end", ["lang"], buckets=EXECUTION_BUCKETS, registry=registry))
        self.truncations = LabelCache(Counter(
            "sorna_agent_output_truncations", "Runs whose output went past the output "
            "budget", ["lang"], registry=registry))
        self.deaths = LabelCache(Counter(
            "sorna_agent_kernel_deaths", "Kernels destroyed by the agent, by reason",
            ["reason"], registry=registry))
        Gauge("sorna_agent_kernels", "Kernels handed out and alive", registry=registry
              ).set_function(kernels.count)
        Gauge("sorna_agent_runs_in_progress", "Runs at a daemon now", registry=registry
              ).set_function(kernels.executions)
        Gauge("sorna_agent_queued_runs", "Runs waiting behind another on their kernel",
              registry=registry).set_function(kernels.queued)
        registry.register(_WarmKernels(kernels))

    def run_ended(self, lang, seconds, error, truncated):
        lang = bounded(lang, langs.KNOWN)
        self.executions(lang, bounded(error.error if error else "finished", RUN_ENDS)).inc()
        if seconds is not None:
            self.execution_seconds(lang).observe(seconds)
        if truncated:
            self.truncations(lang).inc()

    def died(self, error):
        self.deaths(bounded(error.error, DEATHS)).inc()


class _WarmKernels:
    """The warm pools' sizes, read when scraped."""

    def __init__(self, kernels):
        self.kernels = kernels

    def describe(self):
        return [self._family()]

    def collect(self):
        family = self._family()
        for lang, count in sorted(self.kernels.pools.counts().items()):
            if lang in langs.KNOWN:
                family.add_metric([lang], count)
        yield family

    @staticmethod
    def _family():
        return GaugeMetricFamily("sorna_agent_warm_kernels",
                                 "Warm kernels ready, by language", labels=["lang"])
