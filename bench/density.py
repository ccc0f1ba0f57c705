"""Idle kernels on one host: host memory per kernel, the agent's RSS, and the agent's
`ping` latency while they idle, vs. the same ping with no kernel (the baseline, measured
in the same run, before the kernels start).

sorna:    `ping` round trips to the agent (DEALER over TCP loopback) with N idle python3
          kernels on it.
baseline: the same pings before any kernel started.

Memory per kernel is MemAvailable's drop (/proc/meminfo) over N. Every kernel is
destroyed at the end and the agent's containers are counted: none may be left.

    python bench/density.py [-n 100] [--pings 500] [--parallel 4]
"""

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import docker
import msgpack
import zmq

from _common import Cluster, report, summary

from sorna.client.blocking import BlockingClient
from sorna.testing.keys import secure
from sorna.testing.processes import agent_containers, rss

TIMEOUT = 60.0


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def pings(sock, count):
    times = []
    for i in range(count):
        started = time.perf_counter_ns()
        sock.send_multipart([b"", msgpack.packb({"action": "ping", "id": i})])
        if not sock.poll(TIMEOUT * 1000):
            raise RuntimeError("the agent did not answer a ping")
        sock.recv_multipart()
        times.append(time.perf_counter_ns() - started)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--kernels", type=int, default=100)
    parser.add_argument("--pings", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()

    docker_client = docker.from_env(timeout=120)
    context = zmq.Context()
    with Cluster(docker_client, max_kernels=args.kernels, heartbeat_interval=3.0) as cluster:
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        secure(sock, "agent")
        sock.connect(cluster.agent.addr)
        pings(sock, 50)  # warm-up
        baseline = pings(sock, args.pings)
        available_before = mem_available()
        rss_before = rss(cluster.agent.pid)
        started = time.monotonic()
        kernels = []
        try:
            with ThreadPoolExecutor(args.parallel) as pool:
                def create(_):
                    with BlockingClient(cluster.manager.addr, timeout=TIMEOUT) as c:
                        return c.create("python3")["kernel_id"]
                for i, kernel_id in enumerate(pool.map(create, range(args.kernels))):
                    kernels.append(kernel_id)
                    if (i + 1) % 50 == 0:
                        print(f"{i + 1} kernels in {time.monotonic() - started:.0f} s",
                              file=sys.stderr)
            start_seconds = time.monotonic() - started
            time.sleep(10)  # let them settle: idle, as they would be
            idle = pings(sock, args.pings)
            per_kernel = (available_before - mem_available()) / args.kernels
            agent_rss = rss(cluster.agent.pid)
        finally:
            started = time.monotonic()
            with ThreadPoolExecutor(args.parallel) as pool:
                def destroy(kernel_id):
                    with BlockingClient(cluster.manager.addr, timeout=TIMEOUT) as c:
                        c.destroy(kernel_id)
                list(pool.map(destroy, kernels))
            destroy_seconds = time.monotonic() - started
        left = len(agent_containers(docker_client, cluster.agent.agent_id))
        sock.close(0)
    context.term()
    docker_client.close()
    report("density", "µs", summary(idle, 1e-3), summary(baseline, 1e-3), {
        "sorna": f"agent ping round trips with {args.kernels} idle python3 kernels",
        "baseline": "the same pings before any kernel started",
        "kernels": args.kernels,
    }, extra={
        "host_mib_per_kernel": round(per_kernel / (1 << 20), 1),
        "agent_rss_mib": {"before": round(rss_before / (1 << 20), 1),
                          "with_kernels": round(agent_rss / (1 << 20), 1)},
        "start_all_seconds": round(start_seconds, 1),
        "destroy_all_seconds": round(destroy_seconds, 1),
        "containers_left": left,
    })
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
