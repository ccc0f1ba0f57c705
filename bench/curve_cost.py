"""What CurveZMQ costs: the same requests to a keyed cluster and to an --insecure one,
side by side, interleaved in blocks; and under them the same for a raw REQ/REP echo in
another process (pyzmq only), for reading the difference.

sorna:    a DEALER to a keyed agent sends `execute {code: "1+1"}` to a python3 kernel
          (CURVE on the TCP hop; the agent's ipc hop to the kernel is the same in both).
baseline: the same to a plaintext (--insecure) cluster's agent.
upload_*: `upload` of a 1 MiB file to the kernel, until the agent's reply.
raw_*:    a small map, and 1 MiB there with a short reply back, to an echo process.

    python bench/curve_cost.py [-n 500] [--uploads 60] [--block 20]
"""

import argparse
import os
import subprocess
import sys
import time

import docker
import msgpack
import zmq

from _common import Cluster, report, summary

from sorna.client.blocking import BlockingClient
from sorna.testing.keys import secure
from sorna.testing.processes import LOOPBACK, free_port

TIMEOUT = 30.0
MIB = 1 << 20


def serve(addr, curve):
    """The raw echo, in its own process: small messages come back whole, large ones get
    a short reply (as an upload's)."""
    from sorna.testing.keys import pair

    context = zmq.Context()
    sock = context.socket(zmq.REP)
    sock.linger = 0
    if curve:
        sock.curve_server = True
        sock.curve_secretkey = pair("manager")[1]
    sock.bind(addr)
    while True:
        message = sock.recv()
        if message == b"stop":
            sock.send(b"stopped")
            return
        sock.send(message if len(message) < 1024 else b"ok")


def round_trips(sock, frames, n, check):
    times = []
    for _ in range(n):
        started = time.perf_counter_ns()
        sock.send_multipart(frames)
        if not sock.poll(TIMEOUT * 1000):
            raise RuntimeError("no reply")
        reply = sock.recv_multipart()
        times.append(time.perf_counter_ns() - started)
        check(reply)
    return times


def sorna_reply(reply):
    message = msgpack.unpackb(reply[-1], raw=False)
    if message.get("reply") != 200:
        raise RuntimeError(f"unexpected reply {message}")
    if "result" in message and message["result"]["stdout"] != "2\n":
        raise RuntimeError(f"unexpected result {message}")


def echo_reply(reply):
    if not reply:
        raise RuntimeError("empty reply")


class Series:
    """The sockets of one side (plaintext or CURVE) and what each sends."""

    def __init__(self, context, curve, cluster, kernel, echo_addr):
        self.kernel = kernel
        self.agent = self._socket(context, zmq.DEALER, curve and "agent",
                                  kernel["kernel_addr"])
        self.echo = self._socket(context, zmq.REQ, curve and "manager", echo_addr)

    @staticmethod
    def _socket(context, kind, role, addr):
        sock = context.socket(kind)
        sock.linger = 0
        if role:
            secure(sock, role)
        sock.connect(addr)
        return sock

    def requests(self, upload):
        kernel_id = self.kernel["kernel_id"]
        execute = [b"", msgpack.packb({"action": "execute", "id": 1, "kernel_id": kernel_id,
                                       "code": "1+1"})]
        put = [b"", msgpack.packb({"action": "upload", "id": 2, "kernel_id": kernel_id,
                                   "path": "bench.bin", "data": upload})]
        small = [msgpack.packb({"action": "execute", "id": 1, "kernel_id": "K" * 22,
                                "code": "1+1"})]
        return {"execute": (self.agent, execute, sorna_reply),
                "upload": (self.agent, put, sorna_reply),
                "raw_small": (self.echo, small, echo_reply),
                "raw_upload": (self.echo, [upload], echo_reply)}

    def close(self):
        for sock in (self.agent, self.echo):
            sock.close(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=500)
    parser.add_argument("--uploads", type=int, default=60)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)  # the echo process
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1] == "curve")
        return
    docker_client = docker.from_env(timeout=60)
    context = zmq.Context()
    upload = os.urandom(MIB)
    echoes, sides = [], {}
    times = {}
    with Cluster(docker_client, insecure=True) as plain_cluster, \
            Cluster(docker_client) as curve_cluster, \
            BlockingClient(plain_cluster.manager.addr, timeout=TIMEOUT,
                           insecure=True) as plain_client, \
            BlockingClient(curve_cluster.manager.addr, timeout=TIMEOUT) as curve_client:
        kernels = []
        try:
            for name, cluster, client in (("plain", plain_cluster, plain_client),
                                          ("curve", curve_cluster, curve_client)):
                echo_addr = f"tcp://{LOOPBACK}:{free_port()}"
                echoes.append(subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                                "--serve", echo_addr, name]))
                kernel = client.create("python3")
                kernels.append((client, kernel))
                sides[name] = Series(context, name == "curve", cluster, kernel, echo_addr)
            work = {name: side.requests(upload) for name, side in sides.items()}
            for name in sides:  # warm-up: connections, handshakes, the kernels' first runs
                for what, (sock, frames, check) in work[name].items():
                    round_trips(sock, frames, 5 if "upload" in what else 30, check)
            for what, total in (("execute", args.count), ("raw_small", args.count),
                                ("upload", args.uploads), ("raw_upload", args.uploads)):
                done = 0
                while done < total:
                    block = min(args.block, total - done)
                    for name in sides:
                        sock, frames, check = work[name][what]
                        times.setdefault((name, what), []).extend(
                            round_trips(sock, frames, block, check))
                    done += block
            for side in sides.values():
                side.echo.send(b"stop")
                side.echo.recv()
                side.close()
        finally:
            for client, kernel in kernels:
                client.destroy(kernel["kernel_id"])
            for echo in echoes:
                echo.terminate()
                echo.wait(TIMEOUT)
    context.term()

    figures = {f"{what}_{name}": summary(values, 1e-3) for (name, what), values in
               times.items() if what != "execute"}
    for what in ("upload", "raw_small", "raw_upload"):
        figures[f"{what}_ratio_of_medians"] = round(
            figures[f"{what}_curve"]["median"] / figures[f"{what}_plain"]["median"], 2)
    report("curve_cost", "µs", summary(times["curve", "execute"], 1e-3),
           summary(times["plain", "execute"], 1e-3), {
               "sorna": "execute 1+1 on a python3 kernel, DEALER to a keyed agent (CURVE)",
               "baseline": "the same to an --insecure cluster's agent (plaintext)",
               "upload_curve": "upload of a 1 MiB file to the kernel, CURVE",
               "upload_plain": "the same, plaintext",
               "raw_small_*": "a small msgpack map to a REQ/REP echo process, pyzmq only",
               "raw_upload_*": "1 MiB to the echo process, a short reply back",
               "count": args.count, "uploads": args.uploads,
           }, extra=figures)


if __name__ == "__main__":
    main()
