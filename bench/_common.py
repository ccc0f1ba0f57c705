"""What the benchmarks share: statistics, the JSON report, a cluster of real processes."""

import json
import statistics
import sys
import time
import uuid
from pathlib import Path

# Run as `python bench/NAME.py` from the repository: make `sorna` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sorna.testing.processes import (  # noqa: E402
    AgentProcess, ManagerProcess, remove_agent_containers, wait_for_agent,
)


def percentile(values, fraction):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary(values, scale=1.0, digits=1):
    return {"n": len(values),
            "median": round(statistics.median(values) * scale, digits),
            "p90": round(percentile(values, 0.9) * scale, digits),
            "min": round(min(values) * scale, digits),
            "max": round(max(values) * scale, digits)}


def report(name, unit, measured, baseline, notes, extra=None):
    """Print one JSON document: both series and the ratio of their medians (`extra`:
    more series, for reading the result, outside the ratio)."""
    document = {
        "benchmark": name, "unit": unit, "sorna": measured, "baseline": baseline,
        "ratio_of_medians": round(measured["median"] / baseline["median"], 2),
    }
    document.update(extra or {})
    document["notes"] = notes
    print(json.dumps(document, indent=2, ensure_ascii=False))


class Cluster:
    """A manager and one agent as real `twistd` processes; a context manager that stops
    them and removes every container of the agent on the way out."""

    def __init__(self, docker_client, max_kernels=4, heartbeat_interval=0.5, warm_pool="0",
                 insecure=False):
        """`insecure`: both processes speak plaintext (--insecure)."""
        self.docker = docker_client
        self.insecure = insecure
        self.max_kernels = max_kernels
        self.warm_pool = warm_pool
        self.heartbeat_interval = heartbeat_interval
        self.manager = self.agent = None

    def __enter__(self):
        started = time.monotonic()
        try:
            flags = ["--insecure"] if self.insecure else []
            self.manager = ManagerProcess(heartbeat_interval=self.heartbeat_interval,
                                          extra_args=flags).start()
            self.agent = AgentProcess(
                self.manager.addr, agent_id=f"bench-{uuid.uuid4().hex[:10]}",
                max_kernels=self.max_kernels, warm_pool=self.warm_pool,
                heartbeat_interval=self.heartbeat_interval, extra_args=flags).start()
            wait_for_agent(self.manager.addr, self.agent.agent_id, timeout=30,
                           insecure=self.insecure)
        except BaseException:
            self.__exit__()
            raise
        print(f"cluster up in {time.monotonic() - started:.2f} s", file=sys.stderr)
        return self

    def __exit__(self, *exc):
        for process in (self.agent, self.manager):
            if process is not None:
                process.stop()
                process.remove_workdir()
        if self.agent is not None:
            left = remove_agent_containers(self.docker, self.agent.agent_id)
            if left:
                print(f"removed containers left by the agent: {left}", file=sys.stderr)
