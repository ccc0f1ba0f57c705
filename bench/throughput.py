"""Executes per second on one agent, many kernels at once, vs. a raw ZMQ echo under the
same concurrency.

sorna:    K kernels (8) on one agent; C DEALER clients (4) each keep one `execute
          {code: "1+1"}` in flight per kernel (C x K requests in flight), for T seconds
          a round (R rounds); executes answered per second, per round.
baseline: the same C DEALERs and C x K requests in flight against a ROUTER echo thread
          in this process (pyzmq only), rounds interleaved with sorna's.

Also reported: the agent process's CPU time per execute (user + system, from /proc),
which says whether the agent's reactor or the kernels set the pace.

    python bench/throughput.py [--kernels 8] [--clients 4] [--seconds 3] [--rounds 5]
"""

import argparse
import os
import threading
import time

import docker
import msgpack
import zmq

from _common import Cluster, report, summary

from sorna.client.blocking import BlockingClient
from sorna.testing.keys import secure
from sorna.testing.processes import LOOPBACK, free_port

TIMEOUT = 30.0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RouterEcho:
    """A ROUTER answering every message with itself, in a thread."""

    def __init__(self, context):
        self.addr = f"tcp://{LOOPBACK}:{free_port()}"
        self.context = context
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        self._ready.wait(TIMEOUT)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(TIMEOUT)

    def _serve(self):
        sock = self.context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(self.addr)
        self._ready.set()
        while not self._stop.is_set():
            if sock.poll(100):
                while True:
                    try:
                        sock.send_multipart(sock.recv_multipart(zmq.NOBLOCK))
                    except zmq.Again:
                        break
        sock.close()


def drive(dealers, requests, seconds, check, idle=None):
    """Keep one request per (dealer, request) in flight for `seconds`; return answers/s.
    `idle()`, when given, runs between polls (a simulator's own work)."""
    poller = zmq.Poller()
    for dealer in dealers:
        poller.register(dealer, zmq.POLLIN)
    for dealer in dealers:
        for request in requests:
            dealer.send_multipart(request)
    answered = 0
    started = time.perf_counter()
    deadline = started + seconds
    in_flight = len(dealers) * len(requests)
    heard = started
    while in_flight:
        ready = dict(poller.poll(1 if idle else TIMEOUT * 1000))
        now = time.perf_counter()
        if idle:
            idle()
        if not ready:
            if now - heard > TIMEOUT:
                raise RuntimeError(f"no reply within {TIMEOUT:g} s ({in_flight} in flight)")
            continue
        heard = now
        for dealer in ready:
            while True:
                try:
                    frames = dealer.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                index = check(frames)
                if now < deadline:
                    answered += 1
                    dealer.send_multipart(requests[index])
                else:
                    in_flight -= 1
    return answered / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=8)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    docker_client = docker.from_env(timeout=60)
    context = zmq.Context()
    sorna_rates, baseline_rates, cpu_per_execute = [], [], []
    with Cluster(docker_client, max_kernels=args.kernels) as cluster, \
            BlockingClient(cluster.manager.addr, timeout=TIMEOUT) as client, \
            RouterEcho(context) as echo:
        kernels = [client.create("python3") for _ in range(args.kernels)]
        try:
            executes = [[b"", msgpack.packb({"action": "execute", "id": i,
                                             "kernel_id": k["kernel_id"], "code": "1+1"})]
                        for i, k in enumerate(kernels)]
            echoes = [[b"", msgpack.packb({"id": i, "body": "x" * 16})]
                      for i in range(args.kernels)]

            def check_execute(frames):
                reply = msgpack.unpackb(frames[-1], raw=False)
                if reply.get("reply") != 200 or reply["result"]["stdout"] != "2\n":
                    raise RuntimeError(f"unexpected reply {reply}")
                return reply["id"]

            def check_echo(frames):
                return msgpack.unpackb(frames[-1], raw=False)["id"]

            def dealers(addr, role=None):
                socks = []
                for _ in range(args.clients):
                    sock = context.socket(zmq.DEALER)
                    sock.setsockopt(zmq.LINGER, 0)
                    if role is not None:
                        secure(sock, role)
                    sock.connect(addr)
                    socks.append(sock)
                return socks

            agent_dealers = dealers(kernels[0]["kernel_addr"], "agent")
            echo_dealers = dealers(echo.addr)
            drive(agent_dealers, executes, 1.0, check_execute)  # warm-up
            drive(echo_dealers, echoes, 1.0, check_echo)
            pid = cluster.agent.pid
            for round_ in range(args.rounds):
                order = [0, 1] if round_ % 2 == 0 else [1, 0]
                for which in order:
                    if which == 0:
                        before = cpu_seconds(pid)
                        rate = drive(agent_dealers, executes, args.seconds, check_execute)
                        used = cpu_seconds(pid) - before
                        sorna_rates.append(rate)
                        cpu_per_execute.append(used / (rate * args.seconds))
                    else:
                        baseline_rates.append(drive(echo_dealers, echoes, args.seconds,
                                                    check_echo))
                print(f"round {round_ + 1}: {sorna_rates[-1]:.0f} executes/s, "
                      f"echo {baseline_rates[-1]:.0f}/s", file=__import__("sys").stderr)
            for sock in agent_dealers + echo_dealers:
                sock.close(0)
        finally:
            for kernel in kernels:
                client.destroy(kernel["kernel_id"])
    context.term()
    docker_client.close()
    report("throughput", "requests/s", summary(sorna_rates, digits=0),
           summary(baseline_rates, digits=0), {
               "sorna": f"execute `1+1` answered per second: {args.kernels} kernels on one "
                        f"agent, {args.clients} DEALER clients each keeping one execute in "
                        f"flight per kernel",
               "baseline": "the same clients and requests in flight against a ROUTER echo "
                           "thread (pyzmq)",
               "agent_cpu_us_per_execute": "the agent process's user + system CPU per "
                                           "execute, per round",
               "rounds": args.rounds, "seconds": args.seconds,
           }, extra={"agent_cpu_us_per_execute": summary(cpu_per_execute, 1e6)})


if __name__ == "__main__":
    main()
