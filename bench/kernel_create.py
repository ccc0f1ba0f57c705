"""Kernel creation through Sorna vs. a bare hardened `docker run` of the same image.

(a) `create` through the manager (BlockingClient) until its reply: the manager reserves a
    slot, the agent starts the container and answers once the REPL's first ping returned
    (an agent without a warm pool). The kernel is then destroyed (not timed).
(w) the same against an agent with a warm pool (`--warm-pool python3=2`), each create
    made once the pool is full again (waiting for it is not timed): a hand-out.
(b) baseline: docker-py `containers.run(detach=True)` of the same image with the same
    sandbox options (the agent's own SandboxPolicy: network none, read-only, cap-drop ALL,
    no-new-privileges, pids/memory limits, uid 1000, tmpfs, ipc folder bind-mounted),
    timed until the daemon inside answers a ZMQ ping; then removed (not timed).

The three alternate, and the order reverses every round.

    python bench/kernel_create.py [-n 10]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid

import docker

from _common import Cluster, report, summary

from sorna.agent.sandbox import KERNEL_UID, SandboxPolicy
from sorna.client.blocking import BlockingClient
from sorna.testing.processes import remove_agent_containers
from sorna.testing.repl_socket import ReplSocket

IMAGE = "sorna/kernel-python3:latest"
TIMEOUT = 30.0


def create_through_sorna(client, warm=0):
    """`warm`: wait (untimed) until the manager lists that many warm kernels."""
    deadline = time.monotonic() + TIMEOUT
    while warm and client.status()["agents"][0]["warm"].get("python3", 0) < warm:
        if time.monotonic() > deadline:
            raise RuntimeError("the warm pool did not refill")
        time.sleep(0.05)
    started = time.perf_counter()
    kernel = client.create("python3")
    elapsed = time.perf_counter() - started
    client.destroy(kernel["kernel_id"])
    return elapsed


class Baseline:
    """Starts the kernel image by hand, the way the agent does, without the agent."""

    def __init__(self, docker_client):
        self.docker = docker_client
        self.policy = SandboxPolicy()
        self.labels = docker_client.images.get(IMAGE).labels
        self.agent_id = f"bench-baseline-{uuid.uuid4().hex[:8]}"
        self.root = tempfile.mkdtemp(prefix="sorna-bench-")

    def run_once(self):
        name = uuid.uuid4().hex[:22]
        ipc_dir = os.path.join(self.root, name)
        args = self.policy.container_args(self.agent_id, name, "python3", IMAGE, ipc_dir,
                                          self.policy.limits_for(self.labels, None))
        sock = ReplSocket(os.path.join(ipc_dir, "repl"), connect_timeout=TIMEOUT)
        container = None
        started = time.perf_counter()
        try:
            os.makedirs(ipc_dir, mode=0o700)
            os.chown(ipc_dir, KERNEL_UID, KERNEL_UID)
            container = self.docker.containers.run(**args)
            sock.send({"action": "ping", "id": 1})  # connects as soon as it can
            if not sock.poll(TIMEOUT):
                raise RuntimeError(f"the daemon in {container.name} did not answer")
            reply = sock.recv_message()
            elapsed = time.perf_counter() - started
            assert reply.get("reply") == 0, reply
            return elapsed
        finally:
            sock.close()
            if container is not None:
                container.remove(force=True)
            shutil.rmtree(ipc_dir, ignore_errors=True)

    def close(self):
        remove_agent_containers(self.docker, self.agent_id)
        shutil.rmtree(self.root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=10)
    args = parser.parse_args()

    docker_client = docker.from_env(timeout=60)
    sorna_times, baseline_times, warm_times = [], [], []
    with Cluster(docker_client) as cluster, \
            Cluster(docker_client, warm_pool="python3=2") as warm_cluster, \
            BlockingClient(cluster.manager.addr, timeout=TIMEOUT) as client, \
            BlockingClient(warm_cluster.manager.addr, timeout=TIMEOUT) as warm_client:
        baseline = Baseline(docker_client)
        try:
            create_through_sorna(client)  # warm-up: the agent's first docker calls
            create_through_sorna(warm_client, warm=2)
            baseline.run_once()
            for i in range(args.rounds):
                series = [(sorna_times, lambda: create_through_sorna(client)),
                          (warm_times, lambda: create_through_sorna(warm_client, warm=2)),
                          (baseline_times, baseline.run_once)]
                for times, run in (series if i % 2 == 0 else series[::-1]):
                    times.append(run())
                print(f"round {i + 1}/{args.rounds}: sorna {sorna_times[-1]:.3f} s, "
                      f"warm {warm_times[-1]:.3f} s, docker run {baseline_times[-1]:.3f} s",
                      file=sys.stderr)
        finally:
            baseline.close()
    docker_client.close()
    warm = summary(warm_times, 1000)
    warm_ratio = round(warm["median"] / summary(baseline_times, 1000)["median"], 3)
    report("kernel_create", "ms", summary(sorna_times, 1000), summary(baseline_times, 1000), {
        "sorna": "create through the manager until its reply (container started and the "
                 "REPL's first ping answered), BlockingClient over TCP loopback",
        "baseline": "docker-py containers.run(detach=True) with the same sandbox options, "
                    "until the REPL daemon inside answers a ping over its Unix socket",
        "warm": "create through the manager from an agent with a warm pool (python3=2), "
                "with the pool full: a hand-out; not part of the ratio",
        "rounds": args.rounds,
    }, extra={"warm": warm, "warm_ratio_to_baseline": warm_ratio})


if __name__ == "__main__":
    main()
