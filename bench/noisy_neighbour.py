"""A kernel's execute latency while another kernel burns every CPU it can get.

idle:       `execute {code: "1+1"}` on kernel A, from a DEALER over TCP loopback to the
            agent, one after the other for BLOCK seconds, while kernel B does nothing.
under_burn: the same while kernel B runs four busy processes (a parent and three forked
            children) for the whole block: without a CPU quota they would take every core.

The two alternate for ROUNDS rounds, swapping which goes first each round. The JSON gives
both series (ms), the ratio of their medians, and how many cores B actually used during
its burns (from its cgroup's cpuacct.usage), which shows the CPU quota at work.

    python bench/noisy_neighbour.py [-n ROUNDS (4)] [--block SECONDS (4)]
"""

import argparse
import json
import sys
import time

import docker
import msgpack
import zmq

from _common import Cluster, summary

from sorna.client.blocking import BlockingClient
from sorna.testing.keys import secure

TIMEOUT = 30.0
BURN = """
import os, time
def burn(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        try:
            burn({seconds})
        finally:
            os._exit(0)
    children.append(pid)
burn({seconds})
for pid in children:
    os.waitpid(pid, 0)
"""


def cpu_seconds(container_id):
    """CPU time the container has used so far (cgroup v1 cpuacct), or None."""
    for path in (f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage",
                 f"/sys/fs/cgroup/cpu,cpuacct/docker/{container_id}/cpuacct.usage"):
        try:
            with open(path) as f:
                return int(f.read()) / 1e9
        except OSError:
            continue
    return None


def measure(dealer, kernel_id, seconds):
    """Sequential `1+1` executions on `kernel_id` for `seconds`; their latencies (s)."""
    times = []
    request = [b"", msgpack.packb({"action": "execute", "id": 1, "kernel_id": kernel_id,
                                   "code": "1+1"})]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        dealer.send_multipart(request)
        if not dealer.poll(TIMEOUT * 1000):
            raise RuntimeError("the neighbour did not answer within 30 s")
        reply = msgpack.unpackb(dealer.recv_multipart()[-1], raw=False)
        times.append(time.perf_counter() - started)
        if reply.get("reply") != 200 or reply["result"]["stdout"] != "2\n":
            raise RuntimeError(f"unexpected reply {reply}")
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=4)
    parser.add_argument("--block", type=float, default=4.0)
    args = parser.parse_args()

    docker_client = docker.from_env(timeout=60)
    context = zmq.Context()
    idle, burn, cores = [], [], []
    with Cluster(docker_client, max_kernels=2) as cluster, \
            BlockingClient(cluster.manager.addr, timeout=TIMEOUT) as client:
        quiet = client.create("python3")
        noisy = client.create("python3", limits={"exec_timeout": args.block + 20})
        try:
            [container] = [c for c in docker_client.containers.list(
                filters={"label": f"io.sorna.kernel={noisy['kernel_id']}"})]
            dealer = context.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 0)
            secure(dealer, "agent")
            dealer.connect(quiet["kernel_addr"])
            burner = context.socket(zmq.DEALER)
            burner.setsockopt(zmq.LINGER, 0)
            secure(burner, "agent")
            burner.connect(noisy["kernel_addr"])
            measure(dealer, quiet["kernel_id"], 1.0)  # warm-up

            def burn_block():
                before, started = cpu_seconds(container.id), time.monotonic()
                burner.send_multipart([b"", msgpack.packb({
                    "action": "execute", "id": 2, "kernel_id": noisy["kernel_id"],
                    "code": BURN.replace("{seconds}", repr(args.block + 0.5))})])
                time.sleep(0.25)  # the burn is under way
                burn.extend(measure(dealer, quiet["kernel_id"], args.block))
                if not burner.poll(TIMEOUT * 1000):
                    raise RuntimeError("the burn did not end")
                reply = msgpack.unpackb(burner.recv_multipart()[-1], raw=False)
                if reply.get("reply") != 200:
                    raise RuntimeError(f"the burn failed: {reply}")
                after = cpu_seconds(container.id)
                if before is not None and after is not None:
                    cores.append((after - before) / (time.monotonic() - started))

            for round_ in range(args.rounds):
                blocks = [lambda: idle.extend(measure(dealer, quiet["kernel_id"],
                                                      args.block)), burn_block]
                if round_ % 2:
                    blocks.reverse()
                for block in blocks:
                    block()
                print(f"round {round_ + 1}/{args.rounds}: {len(idle)} idle, "
                      f"{len(burn)} under burn", file=sys.stderr)
            dealer.close(0)
            burner.close(0)
        finally:
            for kernel in (quiet, noisy):
                client.destroy(kernel["kernel_id"])
    context.term()
    docker_client.close()
    idle_s, burn_s = summary(idle, 1e3, 2), summary(burn, 1e3, 2)
    print(json.dumps({
        "benchmark": "noisy_neighbour", "unit": "ms",
        "idle": idle_s, "under_burn": burn_s,
        "ratio_of_medians": round(burn_s["median"] / idle_s["median"], 2),
        "burner_cores_used": [round(c, 2) for c in cores],
        "notes": {
            "idle": "execute `1+1` on kernel A (DEALER over TCP loopback -> agent -> "
                    "ipc:// -> REPL), back to back, while kernel B is idle",
            "under_burn": "the same while kernel B runs 4 busy processes (its CPU quota: "
                          "1 CPU, the agent's default)",
            "burner_cores_used": "CPU seconds kernel B used per second of each burn "
                                 "block (cgroup cpuacct): the quota holds it at 1 at most; below 1 when the host's other core is busy too",
            "rounds": args.rounds, "block_seconds": args.block,
        },
    }, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
